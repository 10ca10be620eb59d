"""clients/panel/api.js under Node's test runner, against loopback RunPod stand-ins
that run the real worker handler, with a moto S3 bucket for model_url results.

The stand-ins live in this process (fakes/fake_runpod.py); the Node
tests (clients/panel/test/api.test.js) get their URLs in PANEL_TEST_CONFIG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import worker
from fakes.fake_runpod import FakeRunPod
from fakes.images import make_subject_png
from fakes.s3 import moto_s3

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing; scripts/run_tests.sh installs Debian's nodejs")
        pytest.skip("node is not installed")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        message = f"node {version} is too old: the panel client's tests mock Date with node:test (Node 20+)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return path


@pytest.fixture
def bucket(monkeypatch):
    with moto_s3() as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env["BUCKET_ENDPOINT_URL"]


def describe(fake: FakeRunPod) -> dict:
    return {"base_url": fake.base_url, "endpoint_id": fake.endpoint_id, "api_key": fake.api_key}


def test_panel_client_under_node(node, bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("HY3D_MODEL", "draft")
    monkeypatch.setattr(worker, "_PIPELINE", None)
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(256))
    # main: one worker, each progress update held 50 ms so 20 ms polls see the stages;
    # idle: no worker (jobs stay queued: cancel, maxWaitMs); long: a job that
    # starts only after 100 polls, 200 s at the shipped client's 2 s interval.
    with (
        FakeRunPod(progress_hold_s=0.05) as main,
        FakeRunPod(workers=0, endpoint_id="idle") as idle,
        FakeRunPod(start_after_polls=100, endpoint_id="long") as long,
    ):
        config = {
            "main": describe(main),
            "idle": describe(idle),
            "long": describe(long),
            "image_path": str(image),
            "bucket_endpoint": bucket,
        }
        env = dict(os.environ, PANEL_TEST_CONFIG=json.dumps(config), NODE_NO_WARNINGS="1")
        proc = subprocess.run(
            [node, "--test", "--test-reporter=spec", str(ROOT / "clients" / "panel" / "test")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        long_polls = [job.polls for job in long.jobs.values()]
        main_jobs = list(main.jobs.values())
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    counts = {name: int(n) for name, n in re.findall(r"^\S+ (tests|pass|fail|skipped|cancelled) (\d+)$", report, re.M)}
    assert counts.get("tests", 0) >= 10 and counts["pass"] == counts["tests"], report[-3000:]
    assert counts["fail"] == counts["skipped"] == counts["cancelled"] == 0, report[-3000:]
    # What the stand-ins saw agrees with what the client claims.
    assert long_polls and max(long_polls) > 90
    assert any(job.input.get("output") == "url" and job.status == "COMPLETED" for job in main_jobs)
    assert any(job.input.get("max_faces") == 10 and job.status == "FAILED" for job in main_jobs)
