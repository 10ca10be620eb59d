"""The rows the GPU kit measures, in the order it runs them.

The GPU machine is lent rarely and briefly, and the kit stops at its budget, so the
figures worth most come first: what production runs by default (hunyuan3d-2 at
profile 3, a 2048 texture), then a 1024 texture and turbo, then the other profiles,
then mini.

To add rows, append ``ShapeRow``/``TextureRow`` entries to :data:`PLAN`, or define
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


@dataclass(frozen=True)
class ShapeRow:
    """One shape model (a ``pipeline.models.HUNYUAN_MODELS`` name) at one mmgp profile."""

    model: str
    profile: int
    estimate_s: float = 60.0
    kind: ClassVar[str] = "shape"

    def label(self) -> str:
        return f"{self.model} profile {self.profile}"


@dataclass(frozen=True)
class TextureRow:
    """One textured job: the paint model on a 40k-face mesh at ``texture_size``.

    ``profile`` is for texturing under mmgp; None runs the texture backend as it
    loads today.
    """

    texture_size: int
    paint_model: str = DEFAULT_PAINT_MODEL
    profile: int | None = None
    estimate_s: float = 120.0
    kind: ClassVar[str] = "texture"

    def label(self) -> str:
        profile = "" if self.profile is None else f" profile {self.profile}"
        return f"{self.paint_model} {self.texture_size}{profile}"


# The two texture rows run back to back, so their models load (and warm up) once.
PLAN: tuple[ShapeRow | TextureRow, ...] = (
    ShapeRow("hunyuan3d-2", 3),
    TextureRow(2048),
    TextureRow(1024),
    ShapeRow("hunyuan3d-2-turbo", 3),
    ShapeRow("hunyuan3d-2", 1),
    ShapeRow("hunyuan3d-2-turbo", 1),
    ShapeRow("hunyuan3d-2", 5),
    ShapeRow("hunyuan3d-2-turbo", 5),
    ShapeRow("hunyuan3d-2mini", 3, estimate_s=40.0),
    ShapeRow("hunyuan3d-2mini-turbo", 3, estimate_s=30.0),
)
