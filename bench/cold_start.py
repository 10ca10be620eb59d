"""Worker cold start on CPU with tiny Hunyuan3D checkpoints.

Prints, as medians over --repeats fresh processes:
  * import_s: ``import worker`` alone (what RunPod pays before any model work);
  * ready_s: process start until the local API server answers, with the
    configured model loaded (models load before ``runpod.serverless.start``);
  * load_s: the worker's own figure for loading the model and warm-ups;
  * baseline: a process that imports everything eagerly (torch, hy3dgen,
    rembg, gradio), as a worker without lazy imports would;
  * floor: a process that only imports what loading the shape model needs
    (``hy3dgen.shapegen``: torch, diffusers, transformers, trimesh), the
    part of ready_s no worker code can remove.
The last line is ``ready_s=<seconds> import_s=<seconds>``.
Tiny weights make reading weights negligible, so ready_s is the worker's own
overhead (target: under 5 s on this 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_python(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def ready_time(env: dict, timeout: float = 120.0) -> tuple[float, float]:
    """Seconds until the API server answers, and the worker's reported load_s."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "worker.py"),
            "--rp_serve_api",
            "--rp_api_host",
            "127.0.0.1",
            "--rp_api_port",
            str(port),
        ],
        cwd=env["HY3DGEN_MODELS"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: {proc.stdout.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("worker not ready in time")
        ready = time.perf_counter() - start
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    match = re.search(r"worker ready: model=(\S+) load_s=([\d.]+)", out)
    if not match:
        raise RuntimeError(f"no ready line in worker output: {out[-2000:]}")
    return ready, float(match.group(2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="hunyuan3d-2", help="hunyuan3d-2 (tiny checkpoint) or draft")
    args = parser.parse_args(argv)

    from fakes.tiny_hunyuan import write_tiny_shape_model

    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_shape_model(Path(tmp), shape="sphere")
        env = dict(
            os.environ,
            HY3DGEN_MODELS=tmp,
            HY3D_MODEL=args.model,
            HY3D_DEVICE="cpu",
            RUNPOD_LOG_LEVEL="INFO",
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(ROOT),
        )
        env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
        timed_python("import worker", env)  # warm the OS file cache and .pyc files once
        imports, eager, floors, readies, loads = [], [], [], [], []
        for _ in range(args.repeats):
            imports.append(timed_python("import worker", env))
            eager.append(timed_python("import torch, hy3dgen.shapegen, rembg, gradio, runpod", env))
            floors.append(timed_python("import hy3dgen.shapegen", env))
            ready, load = ready_time(env)
            readies.append(ready)
            loads.append(load)

    med = statistics.median
    print(f"model: {args.model} (tiny random checkpoint on CPU), repeats: {args.repeats}")
    print(f"import worker              median {med(imports):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in imports)})")
    print(f"baseline: eager imports    median {med(eager):.2f} s  (torch, hy3dgen, rembg, gradio, runpod)")
    print(f"model load + warm-ups      median {med(loads):.2f} s  (worker's own load_s)")
    print(f"process start -> ready     median {med(readies):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in readies)})")
    print(
        f"floor: import hy3dgen      median {med(floors):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in floors)}; "
        f"python start included)"
    )
    print(
        f"worker's share of ready    {med(readies) - med(floors):.2f} s  (ready minus floor: our code, VTK warm-up, "
        f"reading the tiny weights)"
    )
    print(f"import speed-up vs eager   {med(eager) / med(imports):.1f}x")
    print(f"ready_s={med(readies):.2f} import_s={med(imports):.2f}")


if __name__ == "__main__":
    main()
