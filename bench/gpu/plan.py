"""The rows the GPU kit measures, in the order it runs them.

The GPU machine is lent rarely and briefly, and the kit stops at its budget, so the
figures worth most come first: what production runs by default (hunyuan3d-2 at
profile 3, a 2048 texture), then a 1024 texture (the same loaded models), then the
textured job under each mmgp profile (#19: does its peak keep the profile's VRAM
promise? the tightest promise first), then turbo, fast and multi-view (#17) at
profile 3, then the other shape profiles, then mini. A row that no longer fits is
skipped and the later, cheaper ones still run; :data:`PROFILES` is the textured
profile rows alone, for a run that wants only them.

To add rows, append ``ShapeRow``/``TextureRow``/``ProfileRow`` entries to :data:`PLAN`, or define
another list in a module of your own and run ``bash bench/gpu/run.sh --plan
bench.gpu.mymodule:ROWS``. A row of a new kind needs a class with a ``kind`` and
``label()``, plus a measuring function registered in ``bench.gpu.kit.MEASURES``.
``estimate_s`` is a rough H200 cost used to decide whether a row still fits in the
budget; once a row of the same kind has run, its measured time is used instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

DEFAULT_PAINT_MODEL = "hunyuan3d-paint-v2-0"  # pipeline.models.DEFAULT_PAINT_MODEL, kept import-free


VIEW_KEYS = ("left", "back", "right")  # the request's extra views, in the order a row sends them


@dataclass(frozen=True)
class ShapeRow:
    """One shape model (a ``pipeline.models.HUNYUAN_MODELS`` name) at one mmgp profile.

    ``views``: how many extra views (left, back, right, in that order) each job
    sends beside the front image; only a multi-view model takes them.
    """

    model: str
    profile: int
    views: int = 0
    estimate_s: float = 60.0
    kind: ClassVar[str] = "shape"

    def __post_init__(self) -> None:
        if not 0 <= self.views <= len(VIEW_KEYS):
            raise ValueError(f"ShapeRow views must be from 0 to {len(VIEW_KEYS)}, got {self.views}.")

    def label(self) -> str:
        views = f" + {self.views} views" if self.views else ""
        return f"{self.model} profile {self.profile}{views}"


@dataclass(frozen=True)
class TextureRow:
    """One texture backend job: the paint model on a 40k-face mesh at ``texture_size``
    (the backend as the worker loads it; the textured request under each mmgp profile
    is :class:`ProfileRow`)."""

    texture_size: int
    paint_model: str = DEFAULT_PAINT_MODEL
    estimate_s: float = 120.0
    kind: ClassVar[str] = "texture"

    def label(self) -> str:
        return f"{self.paint_model} {self.texture_size}"


@dataclass(frozen=True)
class ProfileRow:
    """One textured request through the service (hunyuan3d-2 and the default paint
    model, both pipelines under mmgp ``profile``), as bench/gpu/profiles.py measures it:
    peak VRAM allocated and reserved, total and reload seconds, and whether the peak
    keeps the profile's promise. Consecutive rows share the service, so each is a
    profile switch (both pipelines reloaded from disk and re-profiled)."""

    profile: int
    texture_size: int = 2048
    estimate_s: float = 180.0
    kind: ClassVar[str] = "profile"

    def __post_init__(self) -> None:
        if not 1 <= self.profile <= 5:
            raise ValueError(f"ProfileRow profile must be from 1 to 5, got {self.profile}.")

    def label(self) -> str:
        return f"textured hunyuan3d-2 profile {self.profile}"


# Textured jobs under profiles 5 (6 GB promised) to 1 (24 GB): the tightest promise first.
PROFILES: tuple[ProfileRow, ...] = tuple(ProfileRow(profile) for profile in (5, 4, 3, 2, 1))

# The two texture rows run back to back, so their models load (and warm up) once;
# so do the profile rows, which share one service.
PLAN: tuple[ShapeRow | TextureRow | ProfileRow, ...] = (
    ShapeRow("hunyuan3d-2", 3),
    TextureRow(2048),
    TextureRow(1024),
    *PROFILES,
    ShapeRow("hunyuan3d-2-turbo", 3),
    ShapeRow("hunyuan3d-2-fast", 3),
    ShapeRow("hunyuan3d-2mv", 3, views=3),
    ShapeRow("hunyuan3d-2", 1),
    ShapeRow("hunyuan3d-2-turbo", 1),
    ShapeRow("hunyuan3d-2", 5),
    ShapeRow("hunyuan3d-2-turbo", 5),
    ShapeRow("hunyuan3d-2mini", 3, estimate_s=40.0),
    ShapeRow("hunyuan3d-2mini-turbo", 3, estimate_s=30.0),
)
