"""The CPU work after the network: surface extraction, clean-up, face
reduction and UV unwrapping, on plain numpy/trimesh meshes.

The choices, measured on a 2-core machine on a 384^3 octree-style grid with a
40k-face budget (bench/postprocess.py prints the current figures):

* Extraction: VTK ``vtkFlyingEdges3D`` 0.15-0.24 s, against scikit-image's
  Lewiner marching cubes 0.68-1.1 s (hy3dgen's choice) and PyMCubes 1.3 s.
  Its first call in a process costs about 0.5-1 s, hence :func:`warm_up`.
  Where VTK is not installed (the GPU kit's machine: the wheel is far too big
  to carry), scikit-image's marching cubes stands in, with a warning once per
  process; :func:`surface_backend` says which one runs.
  Like scikit-image it turns NaN cells (hy3dgen's octree decoders leave them
  far from the surface) into NaN vertices, which are dropped with their faces.
* Floaters: connected components of the vertex graph with scipy, 0.08 s,
  against pymeshlab's 0.92 s (plus two temp-file round trips).
* Decimation: fast-simplification (quadric) with ``agg=3``: 0.7-0.9 s and the
  same mean error as pymeshlab's quadric collapse (15.4 s); the default
  ``agg=7`` had 4x the error. Its stopping threshold is absolute, so the mesh
  is brought to a fixed scale first, and passes repeat if it stops early.
* UV unwrap: xatlas with ``max_iterations=0`` and a chart boundary capped at
  80 mean edge lengths. Uncapped (texgen's plain call), a 40k decimated mesh
  with thin parts took 10-15 s (a few huge charts are slow to parameterise),
  stretch 0.05 (mean |log area ratio|). Caps at 40k faces, 256^3 / 384^3
  subject (``python -m bench.uv --caps 44 60 100 [--resolution 384]``):
  44 edges 0.7 s, 474-531 charts, 27.5-28.1k vertices, texel coverage
  0.51-0.53; 80 edges 1.2 s, 273-277 charts, 25.3-25.8k vertices, coverage
  0.54-0.56, stretch 0.022; 100 edges 1.4-1.5 s for 0.2-0.5k fewer vertices
  and stretch 0.027. Every seam vertex is one more GLB vertex (20 bytes), so
  80 buys 45 KB and 4 % more texels for a few tenths of a second. In edge
  lengths (not a fraction of the area) the charts keep a similar face count
  whatever the budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import trimesh

# Components smaller than this fraction of the largest one (in faces) are
# floaters; 0.005 is hy3dgen's own threshold (pymeshlab nbfaceratio).
FLOATER_RATIO = 0.005
# fast-simplification aggressiveness: 3 matched pymeshlab's error (0.013 of the
# bbox diagonal, 7 gave 0.057); higher values only for retries that stalled.
DECIMATE_AGG = (3.0, 5.0, 7.0)
# The fixed bbox diagonal used while decimating (that of the [-1, 1] cube), so
# fast-simplification's absolute error threshold means the same at any scale.
DECIMATE_DIAGONAL = 2.0 * 3.0**0.5
# xatlas: max_iterations=0 and a chart boundary cap in mean edge lengths.
UV_MAX_ITERATIONS = 0
UV_BOUNDARY_EDGES = 80.0

Bounds = float | Sequence[float]

log = logging.getLogger(__name__)


# -- extraction ----------------------------------------------------------


def _box(bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """hy3dgen accepts a half-size, (min, max) or a 6-tuple; normalise to two 3-vectors."""
    if isinstance(bounds, (int, float)):
        b = float(bounds)
        return np.full(3, -b), np.full(3, b)
    values = [float(x) for x in bounds]
    if len(values) == 2:
        return np.full(3, values[0]), np.full(3, values[1])
    if len(values) == 6:
        return np.asarray(values[:3]), np.asarray(values[3:])
    raise ValueError(f"bounds must be a number, (min, max) or 6 values, got {bounds!r}")


def _flying_edges(grid: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw VTK output: (k, j, i)-ordered index-space points and triangles."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D

    image = vtkImageData()
    image.SetDimensions(grid.shape[2], grid.shape[1], grid.shape[0])  # VTK's x runs fastest
    scalars = numpy_to_vtk(grid.reshape(-1), deep=False)  # zero-copy view; `grid` outlives the filter
    image.GetPointData().SetScalars(scalars)
    contour = vtkFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, float(level))
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    out = contour.GetOutput()
    if out.GetNumberOfPolys() == 0:
        return np.empty((0, 3), np.float32), np.empty((0, 3), np.int64)
    points = vtk_to_numpy(out.GetPoints().GetData())
    faces = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return points, faces


def _marching_cubes(grid: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's Lewiner marching cubes in :func:`_flying_edges`' conventions.

    scikit-image returns (i, j, k) points wound inward for a field that is high
    inside; reversing the axes to VTK's (k, j, i) is a reflection, which makes
    the same faces wind outward, as VTK's do. It refuses a level outside the
    data's range, which here means no surface.
    """
    from skimage import measure

    finite = grid[np.isfinite(grid)]
    if finite.size == 0 or not finite.min() < level < finite.max():
        return np.empty((0, 3), np.float32), np.empty((0, 3), np.int64)
    points, faces, _, _ = measure.marching_cubes(grid, level)
    return np.ascontiguousarray(points[:, ::-1]), faces.astype(np.int64)


@lru_cache(maxsize=1)
def surface_backend() -> str:
    """``"vtk"`` (flying edges) when VTK imports, else ``"scikit-image"``, with a warning once."""
    try:
        import vtkmodules.vtkFiltersCore  # noqa: F401
    except ImportError:
        log.warning(
            "VTK is not installed: surface extraction falls back to scikit-image marching cubes "
            "(about 4x slower at 384^3)."
        )
        return "scikit-image"
    return "vtk"


def _iso_surface(grid: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    return (_flying_edges if surface_backend() == "vtk" else _marching_cubes)(grid, level)


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber the faces."""
    used = np.zeros(len(vertices), bool)
    used[faces.reshape(-1)] = True
    if used.all():
        return vertices, faces
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces]


def warm_up() -> None:
    """Pay VTK's one-off first-call cost (about 0.5-1 s) at start-up, not in a request."""
    grid = np.full((4, 4, 4), -1.0, np.float32)
    grid[1:3, 1:3, 1:3] = 1.0
    _iso_surface(grid, 0.0)


def extract_surface(grid: np.ndarray, level: float = 0.0, bounds: Bounds = (-1.01, 1.01)) -> trimesh.Trimesh:
    """Iso-surface of ``grid`` (values above ``level`` are inside, as with
    hy3dgen's occupancy logits) in world coordinates, normals pointing out.

    Grid point (i, j, k) sits at ``min + (i, j, k) * (max - min) / (n - 1)``,
    which is how hy3dgen samples it (``linspace(min, max, res + 1)``); note that
    hy3dgen's own extractor divides by ``n`` instead, shrinking its mesh by one
    voxel. Faces touching NaN cells are dropped, as hy3dgen's are. Returns an
    empty mesh when there is no surface.
    """
    grid = np.asarray(grid)
    if grid.ndim != 3 or min(grid.shape) < 2:
        raise ValueError(f"grid must be a 3D array of at least 2^3 points, got shape {grid.shape}")
    if grid.dtype not in (np.float32, np.float64):
        grid = grid.astype(np.float32)
    grid = np.ascontiguousarray(grid)
    points, faces = _iso_surface(grid, level)
    if len(faces):
        finite = np.isfinite(points).all(axis=1)
        if not finite.all():
            faces = faces[finite[faces].all(axis=1)]
    if len(faces) == 0:
        return trimesh.Trimesh(np.empty((0, 3)), np.empty((0, 3), np.int64), process=False)
    points, faces = _compact(points, faces)
    lo, hi = _box(bounds)
    spacing = (hi - lo) / (np.asarray(grid.shape) - 1)
    vertices = points[:, ::-1].astype(np.float64) * spacing + lo
    # Reversing the axes is a reflection, which turns VTK's outward winding inward.
    return trimesh.Trimesh(vertices, faces[:, ::-1], process=False)


# -- clean-up ------------------------------------------------------------


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


# -- face reduction ------------------------------------------------------


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


# -- UVs and placement ---------------------------------------------------


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
