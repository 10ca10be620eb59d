"""Shape backends, created by name. Imports are deferred so that choosing a
backend never pulls in torch unless a Hunyuan3D model is actually used."""

from __future__ import annotations

from ..models import DRAFT, HUNYUAN_MODELS
from ..settings import Settings
from ..types import ShapeBackend


def create_backend(name: str, settings: Settings) -> ShapeBackend:
    if name == DRAFT:
        from .draft import DraftBackend

        return DraftBackend()
    if name in HUNYUAN_MODELS:
        from .hunyuan import HunyuanShapeBackend

        return HunyuanShapeBackend(HUNYUAN_MODELS[name], settings)
    raise ValueError(f"no backend named {name!r}")
