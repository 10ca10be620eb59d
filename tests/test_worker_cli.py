"""worker.py's own usage, its flags, and messages that fit their context."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import worker
from pipeline.errors import WeightsMissingError
from pipeline.service import ImageTo3D
from pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_help_is_ours_and_immediate():
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "worker.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HY3D_MODEL": ""},
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    for text in ("--rp_serve_api", "--test_input", "test_input.json", "HY3D_MODEL", "BUCKET_NAME", "README"):
        assert text in done.stdout
    # Nothing heavy was imported: no model, no runpod, no torch.
    for lib in ("torch", "runpod", "trimesh", "cv2"):
        assert f" {lib}\n" not in done.stderr, lib
    assert "worker ready" not in done.stdout and elapsed < 60


def test_unknown_flag_is_an_error():
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--rp_serve-api"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unrecognized arguments: --rp_serve-api" in done.stderr


def test_flags_match_runpods_own():
    """Every flag runpod's SDK parses is accepted (and shown) by ours."""
    import runpod.serverless as serverless

    theirs = {s for a in serverless.parser._actions for s in a.option_strings} - {"-h", "--help"}
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    assert theirs and all(flag in help_text for flag in theirs), theirs
    assert worker.parse_args(["--rp_serve_api", "--rp_api_port", "9000"]).rp_api_port == 9000


def test_startup_message_names_the_setting_not_a_field():
    with pytest.raises(WeightsMissingError) as caught:
        ImageTo3D(load_settings(), draft_fallback=False).warm_up()
    message = str(caught.value)
    assert message.startswith("HY3D_MODEL is auto but no Hunyuan3D weights")
    assert "Field" not in message and "set HY3D_MODEL=draft" in message


def test_auto_request_with_draft_default_does_not_advise_what_is_set(monkeypatch, subject_b64):
    monkeypatch.setenv("HY3D_MODEL", "draft")
    monkeypatch.setattr(worker, "_PIPELINE", None)
    error = worker.handler({"input": {"image": subject_b64, "model": "auto"}})["error"]
    assert error.startswith("Field 'model' is auto but no Hunyuan3D weights")
    assert "set HY3D_MODEL=draft" not in error and "send model 'draft'" in error


# README "Configuration" variables that the worker never reads: the app's, the
# weights download command's, and the build and test scripts'. Everything else
# in that table must be in `worker.py --help`.
NOT_THE_WORKERS = {
    "HY3D_HOST",
    "HY3D_PORT",
    "GRADIO_SERVER_NAME",
    "GRADIO_SERVER_PORT",
    "HY3D_WARM_UP",
    "HY3D_AUTH",
    "HY3D_QUEUE_SIZE",
    "HY3D_REMOTE_ENDPOINT",
    "RUNPOD_API_KEY",
    "HY3D_REMOTE_BASE_URL",
    "HY3D_REMOTE_TIMEOUT_S",
    "HY3D_REMOTE_POLL_S",
    "GRADIO_TEMP_DIR",
    "HY3D_RESULT_TTL_S",
    "HY3D_LOGIN_ATTEMPTS",
    "HY3D_LOGIN_WINDOW_S",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_ENDPOINT",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "HY3D_TEST_IMAGE_TAG",
    "HY3D_IMAGE_TAG",
    "HY3D_DEBIAN_MIRROR",
}


def readme_configuration_variables() -> set[str]:
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration (environment variables)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_help_lists_every_worker_variable_in_the_readme():
    table = readme_configuration_variables()
    assert {"HY3D_MODEL", "HY3D_ALLOW_PRIVATE_URLS", "HY3D_UPLOAD_TIMEOUT_S"} <= table  # the parse found the table
    assert NOT_THE_WORKERS <= table, NOT_THE_WORKERS - table  # a renamed variable must be reclassified here
    missing = sorted(name for name in table - NOT_THE_WORKERS if name not in worker.WORKER_ENV_HELP)
    assert not missing, f"worker.py --help lacks {missing}"
    import re

    listed = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", worker.WORKER_ENV_HELP))
    assert listed <= table, f"--help names variables the README does not document: {sorted(listed - table)}"
