"""The worker through RunPod's own local tooling: the API server and --test_input."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import trimesh

from fakes.worker_api import worker_api_server

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)  # local mode
    env.update({"HY3D_MODEL": "draft", "RUNPOD_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("worker") / "server.log"
    with worker_api_server(log_path.parent, worker_env(), log_path) as url:
        yield url


def check_glb_output(output: dict) -> None:
    assert output["format"] == "glb" and output["model"] == "draft"
    data = base64.b64decode(output["model_base64"])
    assert len(data) == output["file_size"]
    mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
    assert len(mesh.faces) == output["faces"]


def test_runsync(api_server, subject_b64):
    body = {"input": {"image": subject_b64, "max_faces": 4000, "remove_background": False}}
    response = requests.post(api_server + "/runsync", json=body, timeout=120)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "COMPLETED", result
    check_glb_output(result["output"])


def test_run_then_status(api_server, subject_b64):
    body = {"input": {"image": subject_b64, "max_faces": 4000, "remove_background": False, "seed": 3}}
    queued = requests.post(api_server + "/run", json=body, timeout=30).json()
    job_id = queued["id"]
    assert queued["status"] == "IN_PROGRESS"  # the local server has no queue state
    status = requests.post(f"{api_server}/status/{job_id}", timeout=120).json()
    assert status["status"] == "COMPLETED", status
    check_glb_output(status["output"])
    assert status["output"]["seed"] == 3


def test_bad_request_fails_cleanly_and_server_keeps_serving(api_server, subject_b64):
    bad = requests.post(api_server + "/runsync", json={"input": {"image": "%%%"}}, timeout=60).json()
    assert bad["status"] == "FAILED"
    assert "Field 'image' is not valid base64" in bad["error"]
    ok = requests.post(
        api_server + "/runsync",
        json={"input": {"image": subject_b64, "max_faces": 2000, "remove_background": False}},
        timeout=120,
    ).json()
    assert ok["status"] == "COMPLETED"


def test_test_input_flag(subject_b64, tmp_path):
    job = {"input": {"image": subject_b64, "max_faces": 2000, "remove_background": False}}
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--test_input", json.dumps(job)],
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "completed successfully" in (done.stdout + done.stderr)


def test_test_input_json_file_and_failure_exit_code(subject_b64, tmp_path):
    (tmp_path / "test_input.json").write_text(json.dumps({"input": {"image": "%%%"}}))
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1
    assert "not valid base64" in done.stdout + done.stderr

    (tmp_path / "test_input.json").write_text(
        json.dumps({"input": {"image": subject_b64, "max_faces": 2000, "remove_background": False}})
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_startup_without_weights_exits_with_one_clear_line(tmp_path):
    env = worker_env()
    env.pop("HY3D_MODEL")
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--rp_serve_api", "--rp_api_port", "9"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("worker start-up failed:")]
    assert len(lines) == 1
    assert "python -m pipeline.weights download" in lines[0] and "HY3D_MODEL=draft" in lines[0]
    assert "Traceback" not in done.stderr
