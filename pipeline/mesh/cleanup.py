"""Clean-up and face reduction of an extracted mesh: floaters, degenerate
faces, quadric decimation, and :func:`postprocess`, the chain of the three.

Floaters are found with scipy's connected components rather than pymeshlab,
decimation uses fast-simplification rather than pymeshlab's quadric collapse
(the same mean error, far less time). Figures: ``bench/postprocess.py``,
reported in the README's "Performance" section ("CPU work after the network").
"""

from __future__ import annotations

import time

import numpy as np
import trimesh

from .extract import _compact

# Components smaller than this fraction of the largest one (in faces) are
# floaters; 0.005 is hy3dgen's own threshold (pymeshlab nbfaceratio).
FLOATER_RATIO = 0.005
# fast-simplification aggressiveness: 3 matched pymeshlab's error (0.013 of the
# bbox diagonal, 7 gave 0.057); higher values only for retries that stalled.
DECIMATE_AGG = (3.0, 5.0, 7.0)
# The fixed bbox diagonal used while decimating (that of the [-1, 1] cube), so
# fast-simplification's absolute error threshold means the same at any scale.
DECIMATE_DIAGONAL = 2.0 * 3.0**0.5


def _submesh(mesh: trimesh.Trimesh, keep: np.ndarray) -> trimesh.Trimesh:
    """The faces selected by ``keep`` with only the vertices they use (geometry only)."""
    vertices, faces = _compact(np.asarray(mesh.vertices), np.asarray(mesh.faces)[keep])
    return trimesh.Trimesh(vertices, faces, process=False)


def component_labels(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Connected-component label of each face (faces sharing a vertex are connected)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels[faces[:, 0]]


def remove_floaters(mesh: trimesh.Trimesh, keep_ratio: float = FLOATER_RATIO) -> trimesh.Trimesh:
    """Keep the components with at least ``keep_ratio`` times the largest one's
    face count (hy3dgen's rule), dropping the specks the decoder leaves around."""
    if len(mesh.faces) == 0:
        return mesh
    labels = component_labels(np.asarray(mesh.faces), len(mesh.vertices))
    sizes = np.bincount(labels)
    big = sizes >= keep_ratio * sizes.max()
    if big.all():
        return mesh
    return _submesh(mesh, big[labels])


def _extent(vertices: np.ndarray) -> float:
    return float(np.ptp(vertices, axis=0).max()) or 1.0


def _doubled_area_squared(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """|cross|^2 per face, by components: 55 ms against 89 ms for np.cross + norm at 500k faces."""
    p0, p1, p2 = (vertices[faces[:, i]] for i in range(3))
    a, b = p1 - p0, p2 - p0
    cx = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    cy = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    cz = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return cx * cx + cy * cy + cz * cz


def remove_degenerate(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Drop faces that repeat a vertex, have zero area or duplicate another
    face (any winding), and the vertices left unused."""
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        return mesh
    vertices = np.asarray(mesh.vertices)
    keep = _doubled_area_squared(vertices, faces) > (1e-14 * _extent(vertices) ** 2) ** 2
    keep &= (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    ordered = np.sort(faces, axis=1).astype(np.int64)
    n = np.int64(len(vertices))
    key = (ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2]  # exact while n < 2**21
    if len(vertices) < 2**21:
        _, first = np.unique(key, return_index=True)
    else:
        _, first = np.unique(ordered, axis=0, return_index=True)
    unique = np.zeros(len(faces), bool)
    unique[first] = True
    keep &= unique
    if keep.all() and np.bincount(faces.reshape(-1), minlength=len(vertices)).all():
        return mesh
    return _submesh(mesh, keep)


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to at most ``max_faces`` (and within 1% of it).

    fast-simplification at ``agg=3`` sometimes stops short of the target; the
    result is then decimated again with a more aggressive setting.
    """
    if max_faces < 4:
        raise ValueError(f"max_faces must be at least 4, got {max_faces}")
    if len(mesh.faces) <= max_faces:
        return mesh
    import fast_simplification

    vertices = np.asarray(mesh.vertices, np.float64)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre, scale = (lo + hi) / 2, DECIMATE_DIAGONAL / max(float(np.linalg.norm(hi - lo)), 1e-12)
    points, faces = (vertices - centre) * scale, np.asarray(mesh.faces)
    for agg in DECIMATE_AGG:
        points, faces = fast_simplification.simplify(points, faces, target_count=max_faces, agg=agg)
        if len(faces) <= max_faces:
            break
    points, faces = _compact(points, faces)
    return trimesh.Trimesh(points / scale + centre, faces, process=False)


def postprocess(
    mesh: trimesh.Trimesh, max_faces: int, keep_ratio: float = FLOATER_RATIO
) -> tuple[trimesh.Trimesh, dict[str, float]]:
    """The clean-up chain (floaters, degenerate faces, decimation) with the
    seconds each stage took."""
    timings: dict[str, float] = {}
    stages = (
        ("floaters", lambda m: remove_floaters(m, keep_ratio)),
        ("degenerate", remove_degenerate),
        ("decimate", lambda m: decimate(m, max_faces)),
    )
    for name, stage in stages:
        start = time.perf_counter()
        mesh = stage(mesh)
        timings[name] = time.perf_counter() - start
    return mesh, timings
