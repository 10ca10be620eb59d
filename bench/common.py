"""Shared helpers for the benchmarks and their tests: a deterministic test
subject (an occupancy grid like hy3dgen's decoder produces), a detailed
synthetic texture, a surface-distance metric, and the median-of-runs timer
the CPU benchmarks share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

BOUNDS = (-1.01, 1.01)  # hy3dgen's default box_v


def _capsule(p: np.ndarray, a: tuple, b: tuple, r: float) -> np.ndarray:
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b_ - a_
    t = np.clip(((p - a_) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a_ - t[..., None] * ab, axis=-1) - r


def _ellipsoid(p: np.ndarray, c: tuple, radii: tuple) -> np.ndarray:
    """Approximate SDF (exact on the axes), good enough for a test subject."""
    q = (p - np.asarray(c, np.float32)) / np.asarray(radii, np.float32)
    k = np.linalg.norm(q, axis=-1)
    return (k - 1.0) * min(radii)


def _torus_xy(p: np.ndarray, c: tuple, major: float, minor: float) -> np.ndarray:
    q = p - np.asarray(c, np.float32)
    ring = np.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2) - major
    return np.sqrt(ring**2 + q[..., 2] ** 2) - minor


def _smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


# Small detached pieces, like the specks the decoder leaves around a subject.
_FLOATERS = [
    ((-0.75, 0.7, 0.3), 0.03),
    ((0.8, 0.8, -0.4), 0.025),
    ((-0.8, -0.85, -0.5), 0.04),
    ((0.1, 0.9, 0.75), 0.02),
    ((-0.6, -0.2, 0.8), 0.03),
    ((0.85, -0.8, 0.6), 0.035),
]


def subject_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of a toy figure: a bumpy body and head,
    thin legs and antennae (1-3 voxels thick at 256-384), a thin fin, a torus
    handle fused to the side (genus 1) and small floating specks."""
    body = _ellipsoid(p, (0.0, -0.12, 0.0), (0.5, 0.62, 0.4))
    head = np.linalg.norm(p - np.asarray((0.0, 0.66, 0.0), np.float32), axis=-1) - 0.28
    d = _smooth_union(body, head, 0.08)
    # surface detail so decimation has something to lose
    bumps = np.sin(23 * p[..., 0]) * np.sin(19 * p[..., 1]) * np.sin(21 * p[..., 2]) + 0.5 * np.sin(
        57 * p[..., 0] + 31 * p[..., 2]
    ) * np.sin(43 * p[..., 1])
    d = d + 0.008 * bumps
    d = np.minimum(d, _torus_xy(p, (0.62, -0.12, 0.0), 0.24, 0.05))
    for a, b in [((-0.22, -0.6, 0.0), (-0.3, -0.94, 0.05)), ((0.22, -0.6, 0.0), (0.32, -0.94, -0.05))]:
        d = np.minimum(d, _capsule(p, a, b, 0.035))
    for a, b in [((-0.08, 0.85, 0.0), (-0.3, 0.99, 0.1)), ((0.08, 0.85, 0.0), (0.32, 0.99, -0.1))]:
        d = np.minimum(d, _capsule(p, a, b, 0.009))
    fin = np.maximum.reduce(
        [
            np.abs(p[..., 2] + 0.05) - 0.006,
            np.linalg.norm(p[..., :2] - np.asarray((-0.55, 0.1), np.float32), axis=-1) - 0.3,
        ]
    )
    d = np.minimum(d, fin)
    for c, r in _FLOATERS:
        d = np.minimum(d, np.linalg.norm(p - np.asarray(c, np.float32), axis=-1) - r)
    return d


def subject_grid(resolution: int, *, nan_band: float | None = 3.0, chunk: int = 16) -> np.ndarray:
    """The subject as hy3dgen's decoder would hand it to the surface extractor:
    a (res+1)^3 float32 grid of occupancy logits (positive inside, surface at 0)
    sampled on ``linspace(-1.01, 1.01, res+1)``.

    With ``nan_band`` (in voxels), cells farther than that from the surface are
    NaN, as the hierarchical/FlashVDM decoders leave them; the NaN region inside
    the body is what makes naive marching cubes emit a second, broken shell.
    """
    n = resolution + 1
    axis = np.linspace(BOUNDS[0], BOUNDS[1], n, dtype=np.float32)
    voxel = (BOUNDS[1] - BOUNDS[0]) / resolution
    grid = np.empty((n, n, n), np.float32)
    yz = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)  # (n, n, 2)
    for start in range(0, n, chunk):
        xs = axis[start : start + chunk]
        p = np.empty((len(xs), n, n, 3), np.float32)
        p[..., 0] = xs[:, None, None]
        p[..., 1:] = yz[None]
        sdf = subject_sdf(p)
        logits = -sdf * (1.0 / voxel)  # ~1 logit per voxel, like a sharp decoder
        if nan_band is not None:
            logits[np.abs(sdf) > nan_band * voxel] = np.nan
        grid[start : start + chunk] = logits
    return grid


def sphere_grid(resolution: int, radius: float = 0.6, nan_band: float | None = None) -> np.ndarray:
    """Occupancy grid of a sphere (positive inside) on hy3dgen's grid."""
    n = resolution + 1
    axis = np.linspace(BOUNDS[0], BOUNDS[1], n, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    sdf = np.sqrt(x * x + y * y + z * z) - radius
    grid = (-sdf).astype(np.float32)
    if nan_band is not None:
        voxel = (BOUNDS[1] - BOUNDS[0]) / resolution
        grid[np.abs(sdf) > nan_band * voxel] = np.nan
    return grid


def detailed_texture(size: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB texture shaped like hy3dgen's bakes, so PNG and JPEG
    sizes are realistic: texgen paints 512-px views and resizes them to 2048
    before baking, so colour, stripes and grain live at 1/4 resolution
    (bicubic upsampling), while chart-like blocks keep sharp full-resolution
    edges. At 2048 it is 5.3 MB as PNG (hy3dgen's GLB measured 6.27 MB with
    its geometry) and 0.8 MB as JPEG q90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = max(size // 4, 16)
    yy, xx = np.mgrid[0:base, 0:base].astype(np.float32) / base
    img = np.empty((base, base, 3), np.float32)
    for c in range(3):
        f1, f2, f3 = rng.uniform(2, 9, 3)
        img[..., c] = (
            0.5
            + 0.25 * np.sin(2 * np.pi * (f1 * xx + rng.uniform())) * np.cos(2 * np.pi * (f2 * yy + rng.uniform()))
            + 0.1 * np.sin(2 * np.pi * f3 * 7 * (xx + yy))
        )
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)  # texture grain of the painted views
    small = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    full = np.asarray(small.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
    cells = max(size // 128, 1)  # blocky "charts" of different base colours, like a UV atlas
    tiles = rng.uniform(-0.15, 0.15, (cells, cells, 3)).astype(np.float32)
    full = full + np.kron(tiles, np.ones((size // cells, size // cells, 1), np.float32))[:size, :size]
    return (np.clip(full, 0, 1) * 255).astype(np.uint8)


def _closest_distances(points: np.ndarray, mesh, k: int = 12) -> np.ndarray:
    """Exact-ish point-to-surface distances: candidate faces are the k nearest
    face centroids (scipy cKDTree); the exact point-triangle distance is taken
    over those candidates. Unlike point-to-sample distances this has no bias
    from the sample spacing, which is as large as the errors being measured."""
    import trimesh
    from scipy.spatial import cKDTree

    tri = mesh.triangles
    _, idx = cKDTree(tri.mean(axis=1)).query(points, k=k)
    cand = tri[idx.reshape(-1)]
    rep = np.repeat(points, k, axis=0)
    closest = trimesh.triangles.closest_point(cand, rep)
    dist = np.linalg.norm(closest - rep, axis=1).reshape(-1, k)
    return dist.min(axis=1)


def surface_error(result, reference, samples: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Symmetric surface distance between two meshes, as fractions of the
    reference's bounding-box diagonal: mean over both directions and max."""
    import trimesh

    a, _ = trimesh.sample.sample_surface(result, samples, seed=seed)
    b, _ = trimesh.sample.sample_surface(reference, samples, seed=seed + 1)
    d_ab = _closest_distances(np.asarray(a), reference)
    d_ba = _closest_distances(np.asarray(b), result)
    diag = float(np.linalg.norm(reference.bounds[1] - reference.bounds[0]))
    both = np.concatenate([d_ab, d_ba])
    return {"mean": float(both.mean() / diag), "max": float(both.max() / diag)}


def median_seconds(fn: Callable[[], object], runs: int, *, warm_up: bool = False) -> float:
    """Median wall seconds of ``runs`` calls of ``fn``; ``warm_up`` makes one
    untimed call first (allocations, kernel choice)."""
    if warm_up:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
