"""Benchmark: numba code compiled for this host's CPU against ``NUMBA_CPU_NAME=generic``.

numba keys its on-disk cache by CPU name and features, so a cache compiled
into the image at build time is used on a RunPod host only when both match.
``generic`` (numba then uses no CPU features) makes one cache that every
x86-64 host uses; the price is code without AVX and friends. This measures
that price on what runs at request time:

- the texture stage's vertex inpaint (``pipeline.texture.inpaint``: the whole
  call, and the compiled loop alone) on ``bench.inpaint``'s 40k-face, 2048 case;
- rembg's numba helpers (pymatting), through ``rembg.bg.alpha_matting_cutout``
  on a real photo: only used by rembg's alpha matting, which the service does
  not turn on, so this is the upper bound of what generic code could cost there.

It also times the first ``import rembg`` in a fresh process against an empty
cache (what a host whose CPU misses the image's cache pays once) and against
a filled one. Each CPU name gets its own cache folder; the timed runs of the
names alternate, so a noisy machine's drift hits both.

    python -m bench.numba_cpu [--repeats 3] [--runs 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median_seconds

ROOT = Path(__file__).resolve().parent.parent
HOST = "host"


def _child_env(cpu: str, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NUMBA_CPU_FEATURES", None)
    env.pop("NUMBA_CPU_NAME", None)
    if cpu != HOST:
        env["NUMBA_CPU_NAME"] = cpu
    env.update(
        {"NUMBA_CACHE_DIR": str(cache), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    )
    return env


def _run_child(cpu: str, cache: Path, mode: str, runs: int, quick: bool) -> dict:
    argv = [sys.executable, "-m", "bench.numba_cpu", "--child", mode, "--runs", str(runs)] + (
        ["--quick"] if quick else []
    )
    done = subprocess.run(argv, cwd=ROOT, env=_child_env(cpu, cache), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{cpu} {mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _photo_and_mask(quick: bool):
    """skimage's astronaut photo (512 px), with a rough subject mask as rembg's U2-Net would give."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    if quick:
        photo = photo[::4, ::4].copy()
    h, w = photo.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (((xx - 0.45 * w) / (0.32 * w)) ** 2 + ((yy - 0.55 * h) / (0.5 * h)) ** 2 <= 1).astype(np.uint8) * 255
    return Image.fromarray(photo), Image.fromarray(mask)


def child(mode: str, runs: int, quick: bool) -> dict:
    import numba

    start = time.perf_counter()
    import rembg.bg

    out = {
        "import_rembg_s": time.perf_counter() - start,
        "cpu_name": numba.config.CPU_NAME or "host",
        "cpu_features": numba.config.CPU_FEATURES,
    }
    if mode == "import":
        return out
    from bench.inpaint import make_case
    from pipeline.texture.inpaint import mesh_vertex_inpaint, vertex_colours

    case = make_case(quick)
    start = time.perf_counter()
    mesh_vertex_inpaint(**case)
    out["inpaint_first_call_s"] = time.perf_counter() - start
    out["inpaint_s"] = median_seconds(lambda: mesh_vertex_inpaint(**case), runs)
    out["inpaint_loop_s"] = median_seconds(lambda: vertex_colours(**case), runs)
    photo, mask = _photo_and_mask(quick)
    cutout = lambda: rembg.bg.alpha_matting_cutout(photo, mask, 240, 10, 10)  # noqa: E731 - rembg's defaults
    cutout()
    out["alpha_matting_s"] = median_seconds(cutout, max(1, runs // 2))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="+", default=[HOST, "generic"], help="NUMBA_CPU_NAME values ('host' = unset)")
    parser.add_argument("--repeats", type=int, default=3, help="timed processes per CPU name, alternating")
    parser.add_argument("--runs", type=int, default=7, help="timed calls per process (median)")
    parser.add_argument("--quick", action="store_true", help="small inputs, for tests")
    parser.add_argument("--child", choices=["import", "time"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.runs, args.quick)))
        return {}

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="numba-cpu-") as tmp:
        caches = {cpu: Path(tmp) / cpu for cpu in args.cpus}
        for cpu in args.cpus:
            cold = _run_child(cpu, caches[cpu], "import", args.runs, args.quick)
            warm = _run_child(cpu, caches[cpu], "import", args.runs, args.quick)
            results[cpu] = {
                "import_cold_s": cold["import_rembg_s"],
                "import_cached_s": warm["import_rembg_s"],
                "runs": [],
            }
            print(
                f"{cpu}: first import rembg, empty cache {cold['import_rembg_s']:.1f} s, "
                f"filled cache {warm['import_rembg_s']:.2f} s",
                flush=True,
            )
        for repeat in range(args.repeats):
            for cpu in args.cpus:
                row = _run_child(cpu, caches[cpu], "time", args.runs, args.quick)
                results[cpu]["runs"].append(row)
                print(
                    f"{cpu} #{repeat + 1}: inpaint {row['inpaint_s'] * 1e3:.1f} ms (loop alone "
                    f"{row['inpaint_loop_s'] * 1e3:.1f} ms), alpha matting {row['alpha_matting_s']:.2f} s, "
                    f"first inpaint call {row['inpaint_first_call_s'] * 1e3:.0f} ms",
                    flush=True,
                )
    keys = ("inpaint_s", "inpaint_loop_s", "alpha_matting_s")
    summary = {cpu: {k: statistics.median(r[k] for r in results[cpu]["runs"]) for k in keys} for cpu in args.cpus}
    base = args.cpus[0]
    for cpu in args.cpus[1:]:
        ratios = " ".join(f"{k}={summary[cpu][k] / summary[base][k]:.2f}x" for k in keys)
        print(f"{cpu} vs {base} (median of {args.repeats} processes, ratio > 1 = slower): {ratios}")
    print(
        "summary "
        + json.dumps(
            {
                "results": summary,
                "import": {c: {k: results[c][k] for k in ("import_cold_s", "import_cached_s")} for c in args.cpus},
            }
        )
    )
    return summary


if __name__ == "__main__":
    main()
