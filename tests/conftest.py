"""Test-wide isolation: no network, no real weight folders, single-threaded math.

Environment variables are set at import time, before any test module imports
rembg, numba, gradio or huggingface_hub, because those read them on import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from fakes import SINGLE_THREAD_ENV

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="hy3d-tests-"))
for _name in ("hy3dgen", "u2net", "hf_home", "runpod_cache", "gradio", "hf_modules"):
    (_SESSION_DIR / _name).mkdir()

_ENV = {
    **SINGLE_THREAD_ENV,
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


@pytest.fixture
def subject_png() -> bytes:
    from fakes.images import make_subject_png  # after the environment above is set

    return make_subject_png()


@pytest.fixture
def subject_b64(subject_png: bytes) -> str:
    import base64

    return base64.b64encode(subject_png).decode()


@pytest.fixture
def loopback_only_network(monkeypatch):
    """Any socket connection beyond loopback fails the test (proof that nothing reaches for the network)."""
    import socket

    real = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"tried to open a network connection to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
