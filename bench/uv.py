"""UV unwrap: texgen's plain ``xatlas.parametrize`` against ``pipeline.mesh.unwrap_uv``.

Both unwrap the same 40k-face mesh, the service's own chain applied to the
synthetic figure of ``bench/common.py`` (thin legs, antennae, a fin, a handle):
extraction, clean-up and decimation with :mod:`pipeline.mesh`. Reported per
method, medians of ``--repeats`` runs:

* seconds;
* utilisation: the charts' total area in UV space over the unit square (xatlas
  packs charts without overlap, so the sum is the covered fraction);
* texel coverage: the fraction of a 2048 atlas's texels the charts cover
  (what the bake can fill; rasterised with ``pipeline.texture.fill.uv_coverage``
  without its bleed margin);
* charts (connected components of the unwrapped faces) and stretch, the
  area-weighted mean |log(UV area share / 3D area share)| (0 = every triangle
  keeps its share of the texture);
* vertices: an unwrap splits vertices along seams, and every copy is one
  more GLB vertex.

``--caps 44 80`` adds a row per chart-boundary cap (in mean edge
lengths; the service uses ``pipeline.mesh.UV_BOUNDARY_EDGES``).

Run: ``python -m bench.uv [--repeats 3] [--faces 40000] [--resolution 256] [--caps N ...]``.
The last line is ``uv_speedup=<default/ours> utilisation_ours=<..> utilisation_default=<..>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` and `pipeline` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import subject_grid

ATLAS = 2048  # texel grid of the coverage measure: the service's largest texture


@dataclass(frozen=True)
class Unwrap:
    """One unwrap's output: per-vertex UVs and the faces indexing them, with the 3D positions."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray


@dataclass(frozen=True)
class UvStats:
    seconds: float
    utilisation: float
    coverage: float
    charts: int
    stretch: float
    vertices: int


def subject_mesh(faces: int = 40000, resolution: int = 256):
    """The figure, extracted, cleaned and decimated to ``faces`` by the service's own chain."""
    from pipeline.mesh import extract_surface, postprocess

    mesh = extract_surface(subject_grid(resolution))
    reduced, _ = postprocess(mesh, faces)
    return reduced


def texgen_default(mesh) -> Unwrap:
    """What texgen's ``mesh_uv_wrap`` does: ``xatlas.parametrize`` with default options."""
    import xatlas

    vmapping, indices, uvs = xatlas.parametrize(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    return Unwrap(np.asarray(mesh.vertices)[vmapping], indices.astype(np.int64), uvs)


def ours(mesh) -> Unwrap:
    """``pipeline.mesh.unwrap_uv``: max_iterations=0 and a capped chart boundary."""
    from pipeline.mesh import unwrap_uv

    result, _ = unwrap_uv(mesh)
    return Unwrap(np.asarray(result.vertices), np.asarray(result.faces), np.asarray(result.visual.uv))


def _areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unsigned triangle areas for 2D or 3D points."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    u, v = b - a, c - a
    if points.shape[1] == 2:
        return 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    return 0.5 * np.linalg.norm(np.cross(u, v), axis=1)


def utilisation(unwrap: Unwrap) -> float:
    return float(_areas(unwrap.uv, unwrap.faces).sum())


def coverage(unwrap: Unwrap, size: int = ATLAS) -> float:
    from pipeline.texture.fill import uv_coverage

    return float(uv_coverage(unwrap.uv, unwrap.faces, (size, size), margin=0).mean())


def charts(unwrap: Unwrap) -> int:
    """Connected components of the face graph over UV vertices (unwraps split vertices at seams)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = unwrap.faces
    rows, cols = np.concatenate([f[:, 0], f[:, 1]]), np.concatenate([f[:, 1], f[:, 2]])
    n = len(unwrap.uv)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    used = np.unique(f)
    _, labels = connected_components(graph, directed=False)
    return int(len(np.unique(labels[used])))


def stretch(unwrap: Unwrap) -> float:
    uv_area, xyz_area = _areas(unwrap.uv, unwrap.faces), _areas(unwrap.vertices, unwrap.faces)
    keep = (uv_area > 0) & (xyz_area > 0)
    uv_share, xyz_share = uv_area[keep] / uv_area[keep].sum(), xyz_area[keep] / xyz_area[keep].sum()
    return float(np.sum(xyz_share * np.abs(np.log(uv_share / xyz_share))))


def measure(method: Callable, mesh, repeats: int) -> UvStats:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = method(mesh)
        seconds.append(time.perf_counter() - start)
    return UvStats(
        statistics.median(seconds),
        utilisation(result),
        coverage(result),
        charts(result),
        stretch(result),
        len(result.uv),
    )


def with_cap(edges: float) -> Callable:
    """``ours`` with the chart boundary capped at ``edges`` mean edge lengths instead of the service's value."""

    def unwrap(mesh) -> Unwrap:
        from pipeline.mesh import uv as chain  # unwrap_uv reads the cap from its own module

        saved = chain.UV_BOUNDARY_EDGES
        chain.UV_BOUNDARY_EDGES = edges
        try:
            return ours(mesh)
        finally:
            chain.UV_BOUNDARY_EDGES = saved

    return unwrap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--faces", type=int, default=40000)
    parser.add_argument("--resolution", type=int, default=256, help="occupancy grid of the synthetic subject")
    parser.add_argument("--caps", type=float, nargs="*", default=[], help="extra rows: chart boundary caps to compare")
    args = parser.parse_args(argv)
    mesh = subject_mesh(args.faces, args.resolution)
    print(f"mesh: {len(mesh.faces)} faces, {len(mesh.vertices)} vertices; medians of {args.repeats}")
    print(
        f"{'method':<16} {'seconds':>8} {'utilisation':>12} {'coverage':>9} {'charts':>7} {'stretch':>8} "
        f"{'vertices':>9}"
    )
    results = {}
    methods = [("texgen default", texgen_default), ("ours", ours)]
    methods += [(f"ours cap={cap:g}", with_cap(cap)) for cap in args.caps]
    for name, method in methods:
        stats = results[name] = measure(method, mesh, args.repeats)
        print(
            f"{name:<16} {stats.seconds:>8.3f} {stats.utilisation:>12.3f} {stats.coverage:>9.3f} "
            f"{stats.charts:>7d} {stats.stretch:>8.3f} {stats.vertices:>9d}",
            flush=True,
        )
    default, our = results["texgen default"], results["ours"]
    print(
        f"uv_speedup={default.seconds / our.seconds:.2f} utilisation_ours={our.utilisation:.3f} "
        f"utilisation_default={default.utilisation:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
