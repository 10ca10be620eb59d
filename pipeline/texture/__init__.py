"""hy3dgen texgen's texture stage without native builds.

* :mod:`.backend`: :class:`~.backend.TextureBackend`, the model backend that
  paints a mesh (its parts: :mod:`.config`, :mod:`.loading`, :mod:`.texgen`,
  :mod:`.stages`; imported only when texturing runs).
* :mod:`.rasterizer`: a PyTorch drop-in for the compiled ``custom_rasterizer``
  extension (:func:`install_rasterizer` registers it when the compiled one is
  missing).
* :mod:`.inpaint`: ``meshVerticeInpaint`` compiled by numba at run time, with
  bit-identical results to texgen's pure-Python fallback
  (:func:`install_inpaint` patches texgen).
* :mod:`.fill`: a texture hole fill that inpaints only the texels a render
  samples, instead of texgen's full-frame ``cv2.inpaint``.
"""

from __future__ import annotations

from .fill import fill_texture, uv_coverage
from .inpaint import install_inpaint, mesh_vertex_inpaint
from .rasterizer import TORCH_RASTERIZER, install_rasterizer, interpolate, rasterize

__all__ = [
    "TORCH_RASTERIZER",
    "fill_texture",
    "install_inpaint",
    "install_rasterizer",
    "interpolate",
    "mesh_vertex_inpaint",
    "rasterize",
    "uv_coverage",
]
