"""The CPU work on meshes, on plain numpy/trimesh meshes: surface extraction
(:mod:`.extract`), clean-up and face reduction (:mod:`.cleanup`), UV
unwrapping and placement (:mod:`.uv`), and the draft backend's silhouette
inflation (:mod:`.inflate`, imported on its own: it pulls in OpenCV, scipy
and scikit-image).

Why each library was chosen, and what each stage costs: the README's
"Performance" section, from ``bench/postprocess.py``, ``bench/uv.py`` and
``bench/draft.py``.
"""

from __future__ import annotations

from .cleanup import (
    DECIMATE_AGG,
    DECIMATE_DIAGONAL,
    FLOATER_RATIO,
    component_labels,
    decimate,
    postprocess,
    remove_degenerate,
    remove_floaters,
)
from .extract import Bounds, extract_surface, surface_backend, warm_up
from .uv import UV_BOUNDARY_EDGES, UV_MAX_ITERATIONS, normalize, unwrap_uv

__all__ = [
    "DECIMATE_AGG",
    "DECIMATE_DIAGONAL",
    "FLOATER_RATIO",
    "UV_BOUNDARY_EDGES",
    "UV_MAX_ITERATIONS",
    "Bounds",
    "component_labels",
    "decimate",
    "extract_surface",
    "normalize",
    "postprocess",
    "remove_degenerate",
    "remove_floaters",
    "surface_backend",
    "unwrap_uv",
    "warm_up",
]
