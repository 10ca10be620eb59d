"""The real worker under RunPod's own local API server (``worker.py --rp_serve_api``), on loopback.

Tests that send jobs through ``/run`` or ``/runsync`` start it with
:func:`worker_api_server`; tests and benches that manage the process
themselves (signals, start-up timing) take the command line from
:func:`worker_api_command`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .servers import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0


def worker_api_command(port: int) -> list[str]:
    """``worker.py`` serving RunPod's local API on 127.0.0.1:``port``."""
    return [
        sys.executable,
        str(ROOT / "worker.py"),
        "--rp_serve_api",
        "--rp_api_host",
        "127.0.0.1",
        "--rp_api_port",
        str(port),
    ]


@contextmanager
def worker_api_server(cwd: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start the worker's API server (stdout and stderr to ``log_path``), wait
    until it answers, yield its URL; terminate it after (kill if it hangs).

    Raises RuntimeError, with the log's tail, if it exits or does not answer
    within :data:`START_TIMEOUT_S`.
    """
    import requests

    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(worker_api_command(port), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker API server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                requests.get(url + "/docs", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"worker API server did not start within {START_TIMEOUT_S:g} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
