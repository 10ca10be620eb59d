"""Benchmark: texgen's full-frame ``cv2.inpaint`` against ``pipeline.texture.fill.fill_texture``.

Uses the same bumpy 40k-face torus, UV atlas and bake mask as ``bench/inpaint.py``
at 2048. The texture is a smooth colour field of the 3-D position, baked into
UV space with the PyTorch rasterizer. As in texgen, unbaked texels are zero
and the vertex inpaint runs first. The benchmark prints both fill times, how
far ours is from the full-frame fill on the texels a render can see (in uint8
levels), both fills' error against the true colour field there, and
``fill_ratio=<full s / ours s>`` last.

    python -m bench.texture_fill [--quick] [--runs N] [--workers N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `pipeline` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inpaint import make_case
from pipeline.texture.fill import INPAINT_RADIUS, fill_texture, uv_coverage
from pipeline.texture.inpaint import mesh_vertex_inpaint
from pipeline.texture.rasterizer import interpolate, rasterize


def colour_field(points: np.ndarray) -> np.ndarray:
    """A smooth, detailed RGB field in [0, 1] over 3-D points."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    red, green, blue = np.sin(3 * x + 2 * z), np.cos(4 * y - z), np.sin(5 * z + x * y)
    return 0.5 + 0.4 * np.stack([red, green, blue], axis=-1)


def bake_truth(case: dict) -> np.ndarray:
    """[H, W, 3] float32 true colour of every texel (texgen's UV layout: row 0 = v 1), 0 outside the charts."""
    size = case["texture"].shape[0]
    uv = torch.from_numpy(case["vtx_uv"]).float()
    ones = torch.ones_like(uv[:, :1])
    clip = torch.cat([uv[:, :1] * 2 - 1, (1 - uv[:, 1:]) * 2 - 1, 0 * ones, ones], 1)
    uv_idx = torch.from_numpy(case["uv_idx"]).int()
    findices, bary = rasterize(clip[None], uv_idx, (size, size))
    pos = torch.from_numpy(case["vtx_pos"]).float()[None]
    points = interpolate(pos, findices, bary, torch.from_numpy(case["pos_idx"]).int())[0].numpy()
    return np.where((findices.numpy() > 0)[..., None], colour_field(points), 0).astype(np.float32)


def make_fill_case(quick: bool) -> dict:
    """Baked texture (zero where unbaked, vertex inpaint applied), mask, region and truth."""
    case = make_case(quick, size=512 if quick else 2048)  # 512: wide enough gutters to leave background
    truth = bake_truth(case)
    texture = np.where((case["mask"] > 0)[..., None], truth, 0).astype(np.float32)
    texture, mask = mesh_vertex_inpaint(
        texture, case["mask"], case["vtx_pos"], case["vtx_uv"], case["pos_idx"], case["uv_idx"]
    )
    region = uv_coverage(case["vtx_uv"], case["uv_idx"], mask.shape)
    return {"texture": texture, "mask": mask, "region": region, "truth": truth}


def full_frame(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """texgen's ``uv_inpaint`` fill, as written."""
    return cv2.inpaint((texture * 255).astype(np.uint8), 255 - mask, INPAINT_RADIUS, cv2.INPAINT_NS)


def median_time(fn: Callable[[], np.ndarray], runs: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small mesh and texture, for tests")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="inpaint threads for ours (default: OpenCV's)")
    args = parser.parse_args(argv)
    workers = cv2.getNumThreads() if args.workers is None else args.workers
    case = make_fill_case(args.quick)
    texture, mask, region, truth = case["texture"], case["mask"], case["region"], case["truth"]
    full_s, full = median_time(lambda: full_frame(texture, mask), max(1, args.runs))
    texture8 = (texture * 255).astype(np.uint8)
    ours_s, ours = median_time(lambda: fill_texture(texture8, mask, region, workers=workers), max(1, args.runs))
    serial_s, serial = median_time(lambda: fill_texture(texture8, mask, region, workers=1), max(1, args.runs))
    if not np.array_equal(serial, ours):
        raise SystemExit("threads changed the result")
    unbaked = mask == 0
    needed = unbaked & region & (truth.any(-1))
    valid = ~unbaked
    if not np.array_equal(ours[valid], texture8[valid]):
        raise SystemExit("baked texels changed")
    diff = np.abs(ours[needed].astype(np.int16) - full[needed].astype(np.int16))
    truth8 = truth[needed] * 255
    print(f"texture={mask.shape[0]} unbaked={int(unbaked.sum())} filled_in_charts={int(needed.sum())}")
    print(
        f"full_frame_s={full_s:.3f} ours_s={ours_s:.3f} ({workers} threads) ours_1_thread_s={serial_s:.3f} "
        f"(medians of {max(1, args.runs)})"
    )
    print(f"ours_vs_full: mean_abs={diff.mean():.3f} p99={np.percentile(diff, 99):.0f} max={diff.max()} (uint8 levels)")
    print(
        f"error_vs_truth: full_frame={np.abs(full[needed] - truth8).mean():.2f} "
        f"ours={np.abs(ours[needed] - truth8).mean():.2f} (mean abs, uint8 levels)"
    )
    ratio = full_s / ours_s
    print(f"fill_ratio={ratio:.1f}")
    return ratio


if __name__ == "__main__":
    main()
