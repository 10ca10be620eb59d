"""The app's first draft job against a warm one, with and without the
start-up warm-up, through gradio_client like a QA script.

For each mode a fresh ``app.py`` process starts on a loopback port (with
``HY3D_WARM_UP=1`` or ``0``); once it answers, the same draft job (a 256 px
subject, background removal on, texture on, 40k faces; ``--photo``: a 512 px photo) is sent ``--jobs`` times and
each is timed end to end at the client. Target: first job within twice a warm
one with the warm-up on.

    python -m bench.app_warmup [--jobs 4] [--photo]

Last line: ``first_over_warm_on=<ratio> first_over_warm_off=<ratio>``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _subject(folder: Path, photo: bool) -> str:
    """A 256 px shaded ball on a light background (a warm job of a few tenths
    of a second, like the issue's 0.3 s), or skimage's astronaut photo."""
    import numpy as np
    from PIL import Image

    path = folder / "subject.png"
    if photo:
        from skimage import data

        Image.fromarray(data.astronaut()).save(path)
        return str(path)
    from bench.cutout import _ball

    rgb, alpha = _ball(160)
    canvas = np.full((256, 256, 3), 240, np.uint8)
    canvas[48:208, 48:208][alpha] = rgb[alpha]
    Image.fromarray(canvas).save(path)
    return str(path)


def run_mode(warm_up: bool, jobs: int, image: str, timeout: float = 300.0) -> tuple[list[float], list[float]]:
    """Client-side seconds per job, and the pipeline's own execution_time."""
    import requests
    from gradio_client import Client, handle_file

    port = _free_port()
    env = {
        **os.environ,
        "HY3D_WARM_UP": "1" if warm_up else "0",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HY3D_MODEL": "draft",
    }
    with tempfile.TemporaryDirectory() as tmp:
        env["GRADIO_TEMP_DIR"] = tmp
        log = open(Path(tmp) / "app.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"app did not start: {(Path(tmp) / 'app.log').read_text()[-2000:]}")
                try:
                    if requests.get(url, timeout=2).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.3)
            client = Client(url, verbose=False)
            seconds, pipeline = [], []
            for _ in range(jobs):
                start = time.perf_counter()
                *_, stats, _seed = client.predict(
                    image=handle_file(image), model="draft", max_faces=40000, api_name="/generate"
                )
                seconds.append(time.perf_counter() - start)
                pipeline.append(stats["execution_time"])
            return seconds, pipeline
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.app_warmup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs per app process (the first is the cold one)")
    parser.add_argument("--photo", action="store_true", help="use the 512 px astronaut photo instead (slower jobs)")
    args = parser.parse_args(argv)
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        image = _subject(Path(tmp), args.photo)
        for mode, on in (("off", False), ("on", True)):
            seconds, pipeline = run_mode(on, max(2, args.jobs), image)
            warm = statistics.median(seconds[1:])
            ratios[mode] = seconds[0] / warm
            print(
                f"warm-up {mode:<3} first {seconds[0]:.2f} s, warm median {warm:.2f} s "
                f"(runs: {', '.join(f'{s:.2f}' for s in seconds)}; pipeline's own: "
                f"{', '.join(f'{s:.2f}' for s in pipeline)}), first/warm {ratios[mode]:.2f}"
            )
    print(f"first_over_warm_on={ratios['on']:.2f} first_over_warm_off={ratios['off']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
