"""hy3dgen's ``SurfaceExtractor`` plug-in, backed by :func:`pipeline.mesh.extract_surface`.

Only the Hunyuan3D shape backend (:mod:`pipeline.backends.hunyuan`) uses it.
hy3dgen's ``ShapeVAE.latents2mesh`` calls ``vae.surface_extractor(grid_logits,
mc_level=..., bounds=..., octree_resolution=..., ...)`` with a batch of
grids, and expects one ``Latent2MeshOutput`` (``mesh_v``, ``mesh_f``) or
``None`` per grid. Install it after anything that resets the extractor
(``enable_flashvdm`` does)::

    pipe.vae.surface_extractor = Hy3dgenSurfaceExtractor()

Through hy3dgen's interface (:meth:`~Hy3dgenSurfaceExtractor.__call__`) faces
come in scikit-image's winding, as hy3dgen's own extractor gives them, because
hy3dgen's ``export_to_trimesh`` reverses them to point outward. The backend
itself takes :meth:`~Hy3dgenSurfaceExtractor.outward_mesh`, which never flips.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..mesh import Bounds, extract_surface

log = logging.getLogger(__name__)


class MeshOutput:
    """Duck-type of hy3dgen's ``Latent2MeshOutput`` (used when hy3dgen isn't importable)."""

    def __init__(self, mesh_v: np.ndarray | None = None, mesh_f: np.ndarray | None = None):
        self.mesh_v = mesh_v
        self.mesh_f = mesh_f


def _output_class() -> type:
    try:
        from hy3dgen.shapegen.models.autoencoders import Latent2MeshOutput
    except Exception:  # noqa: BLE001 - hy3dgen absent or broken: the duck type is all callers touch
        return MeshOutput
    return Latent2MeshOutput


def _to_numpy(grid: Any) -> np.ndarray:
    """A torch tensor (any device, any float dtype) or array as a numpy array;
    ``.float()`` is a no-op for the float32 grids hy3dgen decodes."""
    if hasattr(grid, "detach"):
        grid = grid.detach().float().cpu().numpy()
    return np.asarray(grid)


class Hy3dgenSurfaceExtractor:
    """hy3dgen ``SurfaceExtractor`` interface over VTK flying edges (scikit-image without VTK)."""

    def outward(self, grid_logit: Any, *, mc_level: float = 0.0, bounds: Bounds = 1.01) -> tuple:
        """One grid to (vertices float32, faces int64), faces pointing outward; raises if empty."""
        mesh = extract_surface(_to_numpy(grid_logit), level=float(mc_level), bounds=bounds)
        if len(mesh.faces) == 0:
            raise ValueError("no surface at this level")
        return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces)

    def outward_mesh(self, grid_logit: Any, *, mc_level: float = 0.0, bounds: Bounds = 1.01) -> Any:
        """:meth:`outward` as a ``Latent2MeshOutput``, or ``None`` (logged) where extraction failed."""
        try:
            vertices, faces = self.outward(grid_logit, mc_level=mc_level, bounds=bounds)
        except Exception as exc:  # noqa: BLE001 - same contract as hy3dgen: log, then None
            log.warning("surface extraction failed: %s", exc)
            return None
        return _output_class()(mesh_v=vertices, mesh_f=faces)

    def run(self, grid_logit: Any, *, mc_level: float = 0.0, bounds: Bounds = 1.01, **_: Any) -> tuple:
        """One grid to (vertices float32, faces int64) in hy3dgen's winding; raises if empty."""
        vertices, faces = self.outward(grid_logit, mc_level=mc_level, bounds=bounds)
        return vertices, np.ascontiguousarray(faces[:, ::-1])

    def __call__(self, grid_logits: Any, **kwargs: Any) -> list:
        """One output per grid of the batch; ``None`` where extraction failed,
        as hy3dgen does (its pipeline then returns ``[None]``)."""
        output = _output_class()
        outputs = []
        for i in range(grid_logits.shape[0]):
            try:
                vertices, faces = self.run(grid_logits[i], **kwargs)
                outputs.append(output(mesh_v=vertices, mesh_f=faces))
            except Exception as exc:  # noqa: BLE001 - same contract as hy3dgen: log, then None
                log.warning("surface extraction failed for grid %d: %s", i, exc)
                outputs.append(None)
        return outputs
