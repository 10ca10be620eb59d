"""Iso-surface extraction from a sampled field: VTK's flying edges, or
scikit-image's marching cubes where VTK is not installed.

VTK is several times faster than scikit-image (hy3dgen's choice), but its
first call in a process is slow, hence :func:`warm_up`; :func:`surface_backend`
says which extractor runs. Both turn NaN cells (hy3dgen's octree decoders
leave them far from the surface) into NaN vertices, which are dropped with
their faces. Figures: ``bench/postprocess.py``, reported in the README's
"Performance" section ("CPU work after the network").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import trimesh

Bounds = float | Sequence[float]

# The package's name, as before the split: log configuration keys on it.
log = logging.getLogger("pipeline.mesh")


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
        import vtkmodules.vtkFiltersCore  # noqa: F401 - an availability probe
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
