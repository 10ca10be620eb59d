"""Results that always arrive: inline budget, texture shrinking and bucket upload
against a real S3 API (moto's server) on loopback."""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

import worker
from fakes.s3 import moto_s3
from fakes.worker_api import worker_api_server
from pipeline.errors import OptionsError
from pipeline.runpod.delivery import BUCKET_VARS, BucketConfig, DeliveryError, deliver

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def noisy_b64() -> str:
    """A disc of random colours: its JPEG texture barely compresses, like a detailed photo."""
    n = 1024
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 255, (n, n, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    yy, xx = np.mgrid[0:n, 0:n]
    rgba[((xx - n / 2) ** 2 + (yy - n / 2) ** 2) > (0.45 * n) ** 2] = (255, 255, 255, 0)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port, with one bucket."""
    with moto_s3() as bucket:
        yield bucket


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)
    for name in ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)


def job(image_b64: str, **fields) -> dict:
    payload = {"image": image_b64, "model": "draft", "remove_background": False, "max_faces": 5000, **fields}
    return worker.handler({"id": "delivery-job", "input": payload})


def use_bucket(monkeypatch, env: dict) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_url_job_uploads_exact_bytes(s3, monkeypatch, subject_b64):
    use_bucket(monkeypatch, s3)
    produced = []
    real_deliver = worker.deliver

    def spy(glb, *args, **kwargs):
        produced.append(glb)
        return real_deliver(glb, *args, **kwargs)

    monkeypatch.setattr(worker, "deliver", spy)
    response = job(subject_b64, output="url")
    assert "error" not in response, response
    assert response["output"] == "url" and "model_base64" not in response
    assert response["model_url"].startswith(s3["BUCKET_ENDPOINT_URL"] + "/models/delivery-job/")
    assert "X-Amz-Signature" in response["model_url"]
    assert response["model_url_expires_at"] > time.strftime("%Y-%m-%d")
    downloaded = requests.get(response["model_url"], timeout=10).content
    assert downloaded == produced[0]
    assert len(downloaded) == response["file_size"]


def test_auto_shrinks_inline_before_it_uploads(s3, monkeypatch, noisy_b64, subject_b64):
    """The panel's shipped client reads only model_base64: with a bucket
    configured, a result that fits once its texture shrinks still comes inline."""
    use_bucket(monkeypatch, s3)
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.3")
    shrunk = job(noisy_b64)
    assert shrunk["output"] == "inline", shrunk.get("error")
    assert "model_url" not in shrunk and shrunk["file_size"] <= 300_000
    assert any("re-encoded the texture" in w for w in shrunk["warnings"])
    small = job(subject_b64, max_faces=2000, generate_texture=False)
    assert small["output"] == "inline" and small["file_size"] <= 300_000
    assert "model_url" not in small


def test_auto_uploads_the_full_glb_when_nothing_inline_fits(s3, monkeypatch, noisy_b64):
    use_bucket(monkeypatch, s3)
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.05")
    produced = []
    real_deliver = worker.deliver
    monkeypatch.setattr(worker, "deliver", lambda glb, *a, **k: produced.append(glb) or real_deliver(glb, *a, **k))
    big = job(noisy_b64)
    assert big["output"] == "url", big.get("error")
    downloaded = requests.get(big["model_url"], timeout=10).content
    assert downloaded == produced[0] and len(downloaded) == big["file_size"] > 50_000  # full quality, not shrunk
    assert [w for w in big["warnings"] if "inline budget" in w] == [
        w for w in big["warnings"] if "returned it as model_url" in w
    ]


def test_over_budget_without_bucket_shrinks_until_it_fits(monkeypatch, noisy_b64):
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.3")
    response = job(noisy_b64)
    assert "error" not in response, response
    glb = base64.b64decode(response["model_base64"])
    assert len(glb) == response["file_size"] <= 300_000
    shrinks = [w for w in response["warnings"] if "inline budget" in w]
    assert len(shrinks) >= 2, response["warnings"]
    assert "JPEG quality" in shrinks[0]
    # The shrunk GLB still carries a decodable texture.
    import trimesh

    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    assert isinstance(mesh.visual.material.baseColorTexture, Image.Image)


def test_over_budget_that_cannot_fit_is_a_clear_error(monkeypatch, noisy_b64):
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.05")
    response = job(noisy_b64)
    assert set(response) == {"error"}
    message = response["error"]
    assert "over the 0.05 MB inline limit (HY3D_INLINE_BUDGET_MB)" in message
    assert "BUCKET_ENDPOINT_URL" in message


def test_inline_mode_never_uploads(s3, monkeypatch, noisy_b64):
    use_bucket(monkeypatch, s3)
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.05")
    assert "inline limit" in job(noisy_b64, output="inline")["error"]


def test_url_without_bucket_fails_before_generating(monkeypatch, subject_b64):
    calls = []
    monkeypatch.setattr(worker.ImageTo3D, "generate", lambda *a, **k: calls.append(1))
    response = job(subject_b64, output="url")
    assert "no bucket is configured" in response["error"] and not calls


def test_half_configured_bucket_is_named(monkeypatch):
    monkeypatch.setenv("BUCKET_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(OptionsError, match="BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY, BUCKET_NAME are not set"):
        BucketConfig.from_env()


@pytest.mark.parametrize("value", ["abc", "0", "7.9", "16"])
def test_bad_budget_env(monkeypatch, value, subject_b64):
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", value)
    assert "HY3D_INLINE_BUDGET_MB" in job(subject_b64)["error"]


def test_upload_failure_is_reported(monkeypatch):
    bucket = BucketConfig("http://127.0.0.1:9", "k", "s", "models")  # nothing listens on port 9
    with pytest.raises(DeliveryError, match="Uploading the GLB to bucket 'models' at 'http://127.0.0.1:9' failed"):
        deliver(b"x" * 10, "url", reexport=None, budget=100, bucket=bucket, prefix="j")


def test_no_s3_client_is_never_a_url_or_a_local_file(monkeypatch, tmp_path):
    """runpod's rp_upload saves to local disk and returns a path without boto3;
    our upload has no such fallback: it fails in one sentence."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "boto3", None)
    bucket = BucketConfig("http://127.0.0.1:9", "k", "s", "models")
    with pytest.raises(DeliveryError, match="boto3 is not installed"):
        deliver(b"x" * 10, "url", reexport=None, budget=100, bucket=bucket, prefix="j")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_large_job_through_local_api_server_stays_under_run_limit(noisy_b64, tmp_path):
    import os

    env = dict(os.environ, HY3D_MODEL="draft", HY3D_INLINE_BUDGET_MB="0.3", RUNPOD_LOG_LEVEL="INFO")
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    with worker_api_server(tmp_path, env, tmp_path / "server.log") as url:
        body = {"input": {"image": noisy_b64, "max_faces": 5000, "remove_background": False}}
        raw = requests.post(url + "/runsync", json=body, timeout=180).content
    result = json.loads(raw)
    assert result["status"] == "COMPLETED", result
    assert result["output"]["file_size"] <= 300_000
    # base64 of the budget plus under 10 kB of JSON, and far below RunPod's 10 MiB /run cap.
    assert len(raw) <= 300_000 * 4 / 3 + 10_000
    assert len(raw) < 10 * 1024 * 1024


def test_one_sentence_for_url_without_a_bucket_wherever_it_is_found(monkeypatch):
    """The worker's early check and deliver()'s own are one check, with one sentence."""
    from pipeline.runpod.delivery import delivery_for

    with pytest.raises(DeliveryError) as early:
        delivery_for("url")
    with pytest.raises(DeliveryError) as late:
        deliver(b"glTF", "url", reexport=None, budget=10, bucket=None, prefix="job")
    assert str(early.value) == str(late.value)
    assert str(early.value).endswith("BUCKET_SECRET_ACCESS_KEY and BUCKET_NAME.")


def test_delivery_config_reads_the_budget_and_bucket_once(monkeypatch):
    from pipeline.runpod.delivery import DeliveryConfig, delivery_for

    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.5")
    assert delivery_for("auto") == DeliveryConfig(500_000, None)
    values = ("http://127.0.0.1:9", "key", "secret", "models")
    use_bucket(monkeypatch, dict(zip(BUCKET_VARS, values, strict=True)))
    assert delivery_for("url") == DeliveryConfig(500_000, BucketConfig(*values))
    monkeypatch.delenv("BUCKET_NAME")
    with pytest.raises(OptionsError, match="BUCKET_NAME is not set"):
        DeliveryConfig.from_env()
