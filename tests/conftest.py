"""Test-wide isolation: no network, no real weight folders, single-threaded math.

Environment variables are set at import time, before any test module imports
rembg, numba, gradio or huggingface_hub, because those read them on import.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="hy3d-tests-"))
for _name in ("hy3dgen", "u2net", "hf_home", "runpod_cache", "gradio", "hf_modules"):
    (_SESSION_DIR / _name).mkdir()

_ENV = {
    # A busy-waiting OpenMP/numba thread on 2 cores made tests 5-10x slower.
    "OMP_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    # Never reach for the network or the developer's real caches.
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HY3DGEN_MODELS": str(_SESSION_DIR / "hy3dgen"),
    "U2NET_HOME": str(_SESSION_DIR / "u2net"),
    "HF_HOME": str(_SESSION_DIR / "hf_home"),
    "RUNPOD_HF_CACHE": str(_SESSION_DIR / "runpod_cache"),
    "GRADIO_TEMP_DIR": str(_SESSION_DIR / "gradio"),
    "HF_MODULES_CACHE": str(_SESSION_DIR / "hf_modules"),
    "RUNPOD_LOG_LEVEL": "INFO",
}
os.environ.update(_ENV)
for _name in ("HY3D_MODEL", "HY3D_PROFILE", "HY3D_DEVICE", "HY3D_REMOTE_ENDPOINT", "HF_HUB_CACHE", "REMBG_HOME"):
    os.environ.pop(_name, None)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower end-to-end tests (run in CI too)")
    config.addinivalue_line("markers", "browser: drives headless Chromium")
    config.addinivalue_line("markers", "docker: builds the worker image and runs it (needs a Docker engine)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(pipeline=None, auth: tuple[str, str] | None = None) -> Iterator[str]:
    """The real Gradio app on a free loopback port, launched as ``app.main``
    launches it (upload cap, guard middleware); yields its URL, closes it after."""
    import app

    demo = app.build_demo(pipeline)
    port = free_port()
    demo.launch(
        prevent_thread_lock=True,
        show_error=True,
        server_name="127.0.0.1",
        server_port=port,
        quiet=True,
        **app.launch_kwargs(auth),
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def make_subject_png(size: int = 256, transparent: bool = False) -> bytes:
    """A red ball with a blue stripe on a white background (or transparent)."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size]
    centre, radius = size / 2, size * 0.32
    inside = (xx - centre) ** 2 + (yy - centre) ** 2 <= radius**2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 0 if transparent else 255
    rgba[inside] = (220, 30, 30, 255)
    stripe = inside & (np.abs(yy - centre) < size * 0.05)
    rgba[stripe] = (30, 30, 220, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def subject_png() -> bytes:
    return make_subject_png()


@pytest.fixture
def subject_b64(subject_png: bytes) -> str:
    import base64

    return base64.b64encode(subject_png).decode()
