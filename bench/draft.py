"""Benchmark the draft backend's silhouette inflation.

Run from the repository root: ``python bench/draft.py [--quick]``. It draws a
deterministic stick figure (head, torso, limbs, a gap between arm and body)
at several sizes, inflates it textured at 40,000 faces, and prints the median
time per size. The last line is ``draft_1024_median_s=<seconds>`` so scripts
can read it; ``--quick`` runs each of 256 and 1024 once.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.mesh.inflate import inflate_silhouette

MAX_FACES = 40000


def figure_image(size: int) -> np.ndarray:
    """A size x size RGBA stick figure with a colour gradient, drawn at any scale."""
    s = size / 512.0
    alpha = np.zeros((size, size), np.uint8)

    def pt(x: float, y: float) -> tuple[int, int]:
        return round(x * s), round(y * s)

    cv2.circle(alpha, pt(256, 90), round(48 * s), 255, -1, cv2.LINE_AA)  # head
    cv2.ellipse(alpha, pt(256, 230), (round(62 * s), round(95 * s)), 0, 0, 360, 255, -1, cv2.LINE_AA)  # torso
    limbs = [
        ((215, 170), (120, 230), (90, 320)),  # left arm, bent
        ((297, 170), (400, 150), (450, 80)),  # right arm, raised
        ((230, 300), (200, 400), (190, 480)),  # left leg
        ((282, 300), (330, 390), (370, 470)),
    ]  # right leg
    for joints in limbs:
        for a, b in itertools.pairwise(joints):
            cv2.line(alpha, pt(*a), pt(*b), 255, max(1, round(34 * s)), cv2.LINE_AA)
    cv2.circle(alpha, pt(90, 330), round(22 * s), 255, -1, cv2.LINE_AA)  # hand
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([255 * xs, 255 * ys, 255 * (1 - xs) * (1 - ys)], axis=-1).astype(np.uint8)
    return np.dstack([rgb, alpha])


def bench(size: int, repeats: int) -> tuple[float, int]:
    """Median seconds of ``repeats`` inflations, and the face count."""
    image = figure_image(size)
    times, faces = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        mesh = inflate_silhouette(image, MAX_FACES, textured=True)
        times.append(time.perf_counter() - start)
        faces = len(mesh.faces)
    return statistics.median(times), faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, small sizes (for tests)")
    args = parser.parse_args()
    sizes, repeats = ((256, 1024), 1) if args.quick else ((512, 1024, 2048), 7)
    bench(sizes[0], 1)  # warm-up: imports, allocator
    results = {}
    for size in sizes:
        median, faces = bench(size, repeats)
        results[size] = median
        print(f"size={size} median_s={median:.3f} faces={faces} repeats={repeats}")
    print(f"draft_1024_median_s={results[1024]:.3f}")


if __name__ == "__main__":
    main()
