"""UVs and placement: xatlas unwrapping with a capped chart size, and the
common centring and scale every backend hands the exporter.

An uncapped unwrap (texgen's plain call) spends most of its time on a few
huge charts; the cap, in mean edge lengths so charts keep a similar face
count whatever the budget, trades a little packing for a much faster
unwrap. Figures: ``bench/uv.py`` (``--caps`` compares caps), reported in the
README's "Texturing" and "Performance" sections.
"""

from __future__ import annotations

import time

import numpy as np
import trimesh

# xatlas: max_iterations=0 and a chart boundary cap in mean edge lengths.
UV_MAX_ITERATIONS = 0
UV_BOUNDARY_EDGES = 80.0


def _mean_edge_length(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Over face edges (interior edges count twice, which leaves the mean alone)."""
    return float(np.linalg.norm(vertices[faces[:, [1, 2, 0]]] - vertices[faces], axis=2).mean())


def unwrap_uv(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, dict[str, float]]:
    """UV-unwrap with xatlas (call it on the reduced mesh: time grows fast with
    chart size). Vertices are split along seams; each copy keeps the source
    vertex's normal so seams don't show in the shading. UVs lie in [0, 1]."""
    import xatlas

    start = time.perf_counter()
    vertices = np.asarray(mesh.vertices, np.float32)
    chart = xatlas.ChartOptions()
    chart.max_iterations = UV_MAX_ITERATIONS
    chart.max_boundary_length = UV_BOUNDARY_EDGES * _mean_edge_length(vertices, np.asarray(mesh.faces))
    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, np.asarray(mesh.faces, np.uint32))
    atlas.generate(chart, xatlas.PackOptions())
    vmapping, faces, uv = atlas[0]
    normals = np.asarray(mesh.vertex_normals)[vmapping]
    result = trimesh.Trimesh(
        np.asarray(mesh.vertices)[vmapping],
        faces.astype(np.int64),
        vertex_normals=normals,
        visual=trimesh.visual.TextureVisuals(uv=np.clip(uv, 0.0, 1.0)),
        process=False,
    )
    stats = {
        "seconds": time.perf_counter() - start,
        "charts": float(atlas.chart_count),
        "atlas_width": float(atlas.width),
        "atlas_height": float(atlas.height),
        "utilization": float(atlas.utilization),
        "vertices": float(len(vmapping)),
    }
    return result, stats


def normalize(mesh: trimesh.Trimesh, extent: float = 1.9) -> trimesh.Trimesh:
    """A copy centred on its bounding box with the longest side ``extent`` long,
    so every backend hands the exporter the same placement as hy3dgen's."""
    result = mesh.copy()
    if len(result.vertices) == 0:
        return result
    lo, hi = result.bounds
    size = float((hi - lo).max())
    scale = extent / size if size > 0 else 1.0
    result.vertices = (np.asarray(result.vertices) - (lo + hi) / 2) * scale
    return result
