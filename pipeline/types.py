"""Dataclasses at the pipeline's boundaries: what backends return and what the
faces receive. Kept free of heavy imports (trimesh/PIL only as type hints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    import trimesh
    from PIL import Image

    from .options import GenerationOptions
    from .progress import ProgressCallback
    from .service import ModelChoice
    from .settings import Settings


@dataclass
class ShapeOutput:
    """A backend's mesh, before export.

    Meshes are Y-up with the subject facing +Z (glTF conventions), centred at
    the origin and inside the [-1, 1] cube, like hy3dgen's own output.
    """

    mesh: trimesh.Trimesh
    model: str
    textured: bool = False  # the mesh already carries a texture (draft's projection)
    profile: int | None = None  # the memory profile that actually ran, if any
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class ShapeBackend(Protocol):
    """What the orchestrator needs from a backend. Implementations are created
    once per process (:class:`pipeline.service.ImageTo3D` caches them), build
    their models in :meth:`load` or on the first call, and are reused."""

    name: str

    def load(self) -> None:
        """Build the models now (start-up) instead of in the first request; idempotent."""
        ...

    def generate(
        self,
        image: Image.Image,
        options: GenerationOptions,
        progress: ProgressCallback,
        views: Mapping[str, Image.Image] | None = None,
    ) -> ShapeOutput:
        """The mesh for ``image``; ``views`` (left/back/right) only for a multi-view model."""
        ...


@dataclass
class GenerationResult:
    """Everything a face needs to answer one request."""

    glb: bytes
    textured: bool
    model: str
    seed: int
    profile: int | None
    faces: int
    vertices: int
    timings: dict[str, float]
    warnings: list[str]
    execution_time: float
    options: dict[str, Any] = field(default_factory=dict)
    # "torch" or "compiled" when Hunyuan3D-Paint baked the texture, else None.
    texture_rasterizer: str | None = None
    # A GPU out-of-memory the request survived (texturing fell back): the
    # worker returns refresh_worker so RunPod replaces the process after it.
    refresh_worker: bool = False
    # The exported mesh and GLB extras, kept so delivery can re-encode the
    # texture smaller without running the models again.
    mesh: Any = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)
    # PNG bytes of the final model (pipeline/preview.py) when ``preview`` was asked for.
    preview_png: bytes | None = field(default=None, repr=False)

    @property
    def file_size(self) -> int:
        return len(self.glb)


class Generator(Protocol):
    """What the app needs from whatever turns an image into a GLB: the local
    :class:`pipeline.service.ImageTo3D`, or :class:`pipeline.runpod.remote.RemoteGenerator`
    which hands each job to a deployed RunPod endpoint."""

    settings: Settings  # the request defaults (HY3D_MODEL, HY3D_PROFILE) the widgets show

    def choose_model(self, requested: str) -> ModelChoice:
        """Which model serves ``requested``, with the sentence the banner shows."""
        ...

    def warm_up(self) -> ModelChoice:
        """Load the configured model now rather than in the first request."""
        ...

    def generate(
        self,
        image: bytes,
        options: GenerationOptions,
        progress: ProgressCallback = ...,
        views: Mapping[str, bytes] | None = None,
    ) -> GenerationResult:
        """Run one request end to end."""
        ...
