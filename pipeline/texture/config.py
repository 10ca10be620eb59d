"""What one texture request asks for: sizes, sampling, the result, progress spans and camera rows.

:func:`render_config` turns a request's ``texture_size`` into the render and
bake sizes; :class:`Sampling` the diffusion settings (None keeps hy3dgen's);
:class:`TextureResult` is what :meth:`~pipeline.texture.backend.TextureBackend.paint`
returns; :class:`Span` reports progress inside one sub-stage's share of the
texture stage; :func:`camera_indices` is texgen's camera-embedding table.
No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import OptionsError
from ..models import TEXTURE_SIZES
from ..progress import ProgressCallback

if TYPE_CHECKING:  # pragma: no cover
    import trimesh

STAGE = "texture"  # the progress stage every update is reported under
# hy3dgen's camera-embedding index of a view: ((azim // 30 + 9) % 12) // DIVISOR[elev] + OFFSET[elev].
_ELEV_DIVISOR = {-20: 1, 0: 1, 20: 1, -90: 3, 90: 3}
_ELEV_OFFSET = {-20: 0, 0: 12, 20: 24, -90: 36, 90: 40}
# End of each sub-stage as a fraction of the texture stage (diffusion dominates on every device).
SPANS = {
    "delight": (0.0, 0.15),
    "uv": (0.15, 0.2),
    "render": (0.2, 0.25),
    "multiview": (0.25, 0.85),
    "bake": (0.85, 0.95),
    "inpaint": (0.95, 1.0),
}


@dataclass(frozen=True)
class RenderConfig:
    """Sizes of one request: texgen renders and bakes at ``render_size`` into a ``texture_size`` atlas."""

    render_size: int
    texture_size: int

    @property
    def unreliable_kernel(self) -> int:
        """texgen's erosion of view borders when baking: 2 px per 512 of render size."""
        return int((2 / 512) * self.render_size)


def render_config(texture_size: int) -> RenderConfig:
    """hy3dgen renders at the texture's own size (its defaults are 2048 and 2048)."""
    if texture_size not in TEXTURE_SIZES:
        raise OptionsError(
            f"Field 'texture_size' must be one of {', '.join(map(str, TEXTURE_SIZES))}, got {texture_size!r}."
        )
    return RenderConfig(render_size=texture_size, texture_size=texture_size)


@dataclass(frozen=True)
class Sampling:
    """Diffusion settings; None keeps hy3dgen's own (50 delight steps, 30
    multiview steps, 512-px views). Production leaves them all None; the tests
    lower them to stay fast on CPU."""

    delight_steps: int | None = None
    multiview_steps: int | None = None
    view_size: int | None = None


@dataclass
class TextureResult:
    """A painted mesh: UVs in [0, 1] and a PBR material whose ``baseColorTexture`` is the atlas."""

    mesh: trimesh.Trimesh
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rasterizer: str = ""


class Span:
    """Reports progress inside one sub-stage's share of the texture stage."""

    def __init__(self, progress: ProgressCallback, name: str) -> None:
        self.progress = progress
        self.start, self.end = SPANS[name]

    def __call__(self, done: int, total: int, message: str) -> None:
        fraction = self.start + (self.end - self.start) * min(done / max(total, 1), 1.0)
        self.progress(STAGE, round(fraction, 4), message)


def camera_indices(elevs: list[int], azims: list[int]) -> list[int]:
    """The camera-embedding row of each view, as texgen's ``__call__`` computes it."""
    return [
        ((azim // 30 + 9) % 12) // _ELEV_DIVISOR[elev] + _ELEV_OFFSET[elev]
        for elev, azim in zip(elevs, azims, strict=False)
    ]
