"""Hardening at the seams (issue 12): results that are never lost, outside
calls that are bounded, damaged weights that are named, one notion of OOM.

Each test starts the real thing where there is one: the worker's handler and
RunPod's local API server, moto's S3 server, loopback sockets that never
answer or answer 500, and tiny real Hunyuan3D checkpoints on disk. The app's
own seams (uploads, disk, auth) are in tests/test_app_hardening.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trimesh
from PIL import Image

import worker
from fakes.hostile import (
    BUCKET_ENV,
    PlainShapeBackend,
    RaisingBackend,
    bucket_env,
    check_response,
    corrupt_tensor_bytes,
    failing_endpoint,
    one_sentence,
    payloads,
    sendable,
    silent_endpoint,
)
from fakes.images import make_subject_png
from fakes.s3 import moto_s3
from fakes.worker_api import worker_api_server
from pipeline.errors import MAX_MESSAGE_CHARS, bound_message, echo, is_out_of_memory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)
    for name in (*BUCKET_ENV, "HY3D_UPLOAD_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def small_b64() -> str:
    return base64.b64encode(make_subject_png(64)).decode()


def run(payload) -> dict:
    return worker.handler({"id": "hardening", "input": payload})


# -- 1. results that can always be sent ---------------------------------------------------


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "\udc00" * 500])
def test_lone_surrogate_field_name_gives_a_sendable_error(small_b64, key):
    response = run({"image": small_b64, key: 1})
    sendable(response)
    one_sentence(response["error"])
    assert "\\ud" in response["error"] and "Unknown field" in response["error"]


def test_surrogates_in_values_and_warnings_are_sendable(small_b64):
    response = run({"image": small_b64, "model": "\ud800draft"})
    sendable(response)
    assert "\\ud800" in response["error"]


@pytest.mark.slow
def test_surrogate_job_through_runpods_local_api_server_is_not_lost(tmp_path):
    """The SDK posts the result itself; before, it failed to encode and the job had no result."""
    import requests

    env = dict(os.environ, HY3D_MODEL="draft", RUNPOD_LOG_LEVEL="INFO")
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    with worker_api_server(tmp_path, env, tmp_path / "server.log") as url:
        body = '{"input": {"image": "' + base64.b64encode(make_subject_png(64)).decode() + '", "\\ud800": 1}}'
        reply = requests.post(
            url + "/runsync", data=body.encode(), headers={"Content-Type": "application/json"}, timeout=60
        )
    assert reply.status_code == 200, reply.text[:500]
    result = reply.json()
    assert result["status"] == "FAILED" and "Unknown field '\\ud800'" in result["error"], result


# -- 2. bounded echoes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"model": 10**4299},
        {"generate_texture": 10**4299},
        {"output": -(10**4299)},
        {"texture_size": 10**5000},  # str() of this raises ValueError in Python 3.11+
        {"seed": 10**5000},
        {"model": "x" * 5000},
        {"paint_model": "\x00\x01" * 3000},
        {"guidance_scale": 10**400},
        {"z" * 5000: 1},
    ],
)
def test_every_echo_is_short_and_escaped(small_b64, payload):
    response = run({"image": small_b64, **payload})
    one_sentence(response["error"])
    sendable(response)
    assert (
        "\x00" not in response["error"]
        and "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in response["error"]
    )


def test_control_character_mime_type_is_bounded():
    response = run({"image": "data:" + "\x07" * 240 + ";base64,AAAA"})
    one_sentence(response["error"])
    assert "\x07" not in response["error"]


def test_raw_exception_text_is_cut_and_the_stage_named(small_b64):
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = RaisingBackend(ValueError("y" * 5029 + "\ud800"))
    response = run({"image": small_b64, "model": "draft", "remove_background": False})
    one_sentence(response["error"])
    sendable(response)
    assert response["error"].startswith("The shape stage failed with an internal error (ValueError: 'yyy")


def test_internal_errors_never_show_server_paths(small_b64, tmp_path):
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = RaisingBackend(FileNotFoundError(2, "No such file", str(tmp_path / "secret" / "x.bin")))
    response = run({"image": small_b64, "model": "draft", "remove_background": False})
    assert str(tmp_path) not in response["error"] and "<path>" in response["error"]


def test_weights_missing_sentence_fits_the_toast(small_b64, monkeypatch, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("HY3DGEN_MODELS", str(deep))
    for model in ("auto", "hunyuan3d-2-turbo", "hunyuan3d-2mini-turbo"):
        response = run({"image": small_b64, "model": model})
        one_sentence(response["error"])
        assert "python -m pipeline.weights download" in response["error"]


def test_echo_and_bound_helpers():
    assert echo("\ud800") == "'\\ud800'"
    assert len(echo("q" * 1000)) <= 62 and echo("q" * 1000).endswith("...'")
    assert echo(10**4299) == "an integer of about 4300 digits"
    assert echo(-(2**70)).startswith("-an integer")
    assert bound_message("a\nb\ud800") == "a b\\ud800"
    assert len(bound_message("w " * 1000)) <= MAX_MESSAGE_CHARS


# -- 3. texture failures keep the shape ----------------------------------------------------


TEXTURE_STAGES = ("load", "delight", "uv", "render", "multiview", "bake", "inpaint")


@pytest.fixture
def texture_pipeline(monkeypatch, tmp_path):
    """The worker's pipeline with texture weights that count as present, and
    a real TextureBackend whose stages are made to fail one by one."""
    from pipeline.texture import backend as tb
    from tests.test_texture_backend import fake_folders

    models = tmp_path / "hy3dgen"
    fake_folders(models, "hunyuan3d-delight-v2-0", "hunyuan3d-paint-v2-0")
    monkeypatch.setenv("HY3DGEN_MODELS", str(models))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = PlainShapeBackend()
    return tb


def _break_stage(monkeypatch, tb, stage: str, exc: Exception) -> None:
    """Stub texgen and every stage before ``stage``; ``stage`` raises ``exc``."""
    import types

    import numpy as np

    def fail(*args, **kwargs):
        raise exc

    stubs = {
        "delight": lambda self, texgen, image, report: image,
        "render": lambda self, texgen, report: [],
        "multiview": lambda self, texgen, prompt, controls, report: [],
        "bake": lambda self, texgen, views, size, report: (None, None),
        "inpaint": lambda self, texgen, texture, mask: Image.new("RGB", (8, 8)),
    }
    render = types.SimpleNamespace(load_mesh=lambda mesh: None)
    texgen = types.SimpleNamespace(pipeline=None, render=render)

    def load(self):
        if stage == "load":
            raise exc
        self.texgen = texgen

    monkeypatch.setattr(tb.TextureBackend, "load", load)
    if hasattr(tb.TextureBackend, "_use_profile"):  # the CUDA path loads through the mmgp profile
        monkeypatch.setattr(tb.TextureBackend, "_use_profile", lambda self, profile=None: load(self))
    monkeypatch.setattr(tb, "apply_render_config", lambda pipeline, size: None)
    if stage == "uv":
        import pipeline.mesh

        monkeypatch.setattr(pipeline.mesh, "unwrap_uv", fail)
    for name, stub in stubs.items():
        method = "_render_controls" if name == "render" else f"_{name}"
        monkeypatch.setattr(tb.TextureBackend, method, fail if name == stage else stub)
    monkeypatch.setattr(tb, "textured_mesh", lambda mesh, atlas: mesh)
    del np


@pytest.mark.parametrize("stage", TEXTURE_STAGES)
def test_texture_failure_returns_the_untextured_shape(texture_pipeline, monkeypatch, small_b64, stage):
    _break_stage(monkeypatch, texture_pipeline, stage, RuntimeError(f"{stage} exploded " + "z" * 3000))
    response = run({"image": small_b64, "model": "draft", "remove_background": False, "texture_size": 512})
    assert "error" not in response, response
    assert response["textured"] is False and "refresh_worker" not in response
    warning = next(w for w in response["warnings"] if w.startswith("Texturing failed"))
    assert f"in the {stage} stage" in warning and "untextured" in warning
    one_sentence(warning)
    mesh = trimesh.load(io.BytesIO(base64.b64decode(response["model_base64"])), file_type="glb", force="mesh")
    assert len(mesh.faces) == response["faces"] > 0


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    ],
)
def test_texture_oom_returns_the_shape_and_asks_for_a_fresh_worker(texture_pipeline, monkeypatch, small_b64, error):
    _break_stage(monkeypatch, texture_pipeline, "multiview", error)
    response = run({"image": small_b64, "model": "draft", "remove_background": False, "texture_size": 512})
    assert "error" not in response and response["textured"] is False
    assert response["refresh_worker"] is True
    assert any("ran out of GPU memory in the multiview stage" in w for w in response["warnings"])
    # The next job on the same pipeline starts clean.
    monkeypatch.setattr(texture_pipeline.TextureBackend, "_multiview", lambda *a: [])
    again = run({"image": small_b64, "model": "draft", "remove_background": False, "texture_size": 512})
    assert "refresh_worker" not in again


def test_cuda_texture_oom_keeps_its_stage(texture_pipeline, monkeypatch, small_b64):
    """On CUDA the backend turns the OOM into OutOfMemoryError; the stage survives that."""
    import torch

    from pipeline.backends import lifecycle

    monkeypatch.setattr(lifecycle, "free_cuda_memory", lambda: None)
    real_init = texture_pipeline.TextureBackend.__init__

    def on_cuda(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.device = "cuda"

    monkeypatch.setattr(texture_pipeline.TextureBackend, "__init__", on_cuda)
    _break_stage(monkeypatch, texture_pipeline, "bake", torch.cuda.OutOfMemoryError("CUDA out of memory."))
    response = run({"image": small_b64, "model": "draft", "remove_background": False, "texture_size": 512})
    assert response["refresh_worker"] is True and response["textured"] is False
    assert any("in the bake stage" in w for w in response["warnings"])


# -- 8. one notion of out-of-memory -------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("CUDNN_STATUS_ALLOC_FAILED"),
    ],
)
def test_every_oom_spelling_asks_for_a_fresh_worker(small_b64, error):
    """Outside the Hunyuan backends (here: the draft slot) these were "Internal error" without refresh."""
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = RaisingBackend(error)
    response = run({"image": small_b64, "model": "draft", "remove_background": False})
    assert response["refresh_worker"] is True and "profile" in response["error"]


def test_one_oom_check_everywhere():
    import torch

    from pipeline import device

    assert device.is_oom is is_out_of_memory
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))


def test_oom_while_delivering_asks_for_a_fresh_worker(small_b64, monkeypatch):
    import pipeline.service

    def reexport(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(pipeline.service.ImageTo3D, "reexport", staticmethod(reexport))
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.001")
    response = run({"image": small_b64, "model": "draft", "remove_background": False})
    assert response["refresh_worker"] is True


# -- 4/5. bucket uploads are bounded and validated first ----------------------------------------


def use_bucket(monkeypatch, endpoint: str) -> None:
    for name, value in bucket_env(endpoint).items():
        monkeypatch.setenv(name, value)


def _timed_url_job(monkeypatch, endpoint: str, image_b64: str) -> tuple[dict, float]:
    """A draft job delivered as a URL to the bucket at ``endpoint``: the response and its seconds."""
    use_bucket(monkeypatch, endpoint)
    started = time.monotonic()
    response = run({"image": image_b64, "model": "draft", "remove_background": False, "output": "url"})
    return response, time.monotonic() - started


def test_silent_bucket_gives_up_within_the_upload_timeout(monkeypatch, small_b64):
    monkeypatch.setenv("HY3D_UPLOAD_TIMEOUT_S", "3")
    with silent_endpoint() as endpoint:
        response, elapsed = _timed_url_job(monkeypatch, endpoint, small_b64)
    one_sentence(response["error"])
    assert "HY3D_UPLOAD_TIMEOUT_S" in response["error"] and "3 s" in response["error"]
    assert elapsed < 3 + 2.5, elapsed  # the draft job itself takes well under a second


@pytest.mark.slow
def test_silent_bucket_default_bound_is_30_s(monkeypatch):
    from pipeline.runpod.delivery import BucketConfig, DeliveryError, upload_glb

    with silent_endpoint() as endpoint:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="30 s"):
            upload_glb(b"x" * 1000, BucketConfig(endpoint, "k", "s", "models"), "job")
        elapsed = time.monotonic() - started
    assert 20 < elapsed < 31, elapsed


def test_bucket_answering_500_fails_in_one_sentence(monkeypatch, small_b64):
    monkeypatch.setenv("HY3D_UPLOAD_TIMEOUT_S", "10")
    with failing_endpoint() as (endpoint, hits):
        response, elapsed = _timed_url_job(monkeypatch, endpoint, small_b64)
    one_sentence(response["error"])
    assert "500" in response["error"] and "InternalError" in response["error"]
    assert len(hits) == 2 and elapsed < 10  # bounded retry: two attempts, then the sentence


def test_upload_to_moto_still_works_with_the_bounded_client(monkeypatch, small_b64):
    import requests

    with moto_s3() as bucket:
        for name, value in bucket.items():
            monkeypatch.setenv(name, value)
        response = run({"image": small_b64, "model": "draft", "remove_background": False, "output": "url"})
        assert response.get("output") == "url", response
        assert requests.get(response["model_url"], timeout=10).content[:4] == b"glTF"


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://host/x", "http://", "http://:9000", "http://host:99999", "s3.example.com"]
)
def test_malformed_bucket_url_fails_before_any_model_runs(monkeypatch, small_b64, url):
    use_bucket(monkeypatch, url)
    counting = RaisingBackend(AssertionError("the model ran"))
    worker.get_pipeline()._backends["draft"] = counting
    for output in ("auto", "url", "inline"):
        response = run({"image": small_b64, "model": "draft", "remove_background": False, "output": output})
        one_sentence(response["error"])
        assert "BUCKET_ENDPOINT_URL" in response["error"]
    assert counting.calls == 0


@pytest.mark.parametrize("value", ["soon", "0", "-5", "1e9"])
def test_bad_upload_timeout_is_a_configuration_error(monkeypatch, small_b64, value):
    with silent_endpoint() as endpoint:
        use_bucket(monkeypatch, endpoint)
        monkeypatch.setenv("HY3D_UPLOAD_TIMEOUT_S", value)
        response = run({"image": small_b64, "model": "draft", "remove_background": False})
    assert "HY3D_UPLOAD_TIMEOUT_S" in response["error"]


def _worker_start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, RUNPOD_LOG_LEVEL="INFO", HY3D_DEVICE="cpu", **env)
    full.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=300
    )


def _hunyuan_start_up_failure(tmp_path: Path) -> str:
    """Start the worker on the hunyuan3d-2 weights under HY3DGEN_MODELS; it must exit 1
    with exactly one stderr line that is not a log record. Returns that line."""
    done = _worker_start(tmp_path, HY3D_MODEL="hunyuan3d-2", HY3DGEN_MODELS=os.environ["HY3DGEN_MODELS"])
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_malformed_bucket_url_stops_start_up_in_one_line(tmp_path):
    done = _worker_start(
        tmp_path,
        HY3D_MODEL="draft",
        BUCKET_ENDPOINT_URL="not a url",
        BUCKET_ACCESS_KEY_ID="k",
        BUCKET_SECRET_ACCESS_KEY="s",
        BUCKET_NAME="models",
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("worker start-up failed: BUCKET_ENDPOINT_URL must be") and len(lines) == 1, lines


# -- 6/7. damaged weights and config.yaml are named ----------------------------------------------


@pytest.fixture
def damaged_root(tmp_path, monkeypatch) -> Path:
    from fakes.tiny_hunyuan import write_tiny_shape_model

    root = tmp_path / "hy3dgen"
    folder = write_tiny_shape_model(root)
    corrupt_tensor_bytes(folder / "model.fp16.safetensors")
    monkeypatch.setenv("HY3DGEN_MODELS", str(root))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    return folder


def test_garbage_tensors_are_named_at_load_and_fail_fast_after(damaged_root, small_b64):
    weights_file = damaged_root / "model.fp16.safetensors"
    started = time.monotonic()
    first = run({"image": small_b64, "model": "hunyuan3d-2", "remove_background": False})
    first_s = time.monotonic() - started
    one_sentence(first["error"])
    assert first["error"].startswith(f"Weights file {weights_file} is damaged")
    assert "NaN or infinite" in first["error"] and "download --model hunyuan3d-2" in first["error"]
    started = time.monotonic()
    second = run({"image": small_b64, "model": "hunyuan3d-2", "remove_background": False})
    assert second["error"] == first["error"]
    assert time.monotonic() - started < max(0.5, first_s / 2)


def test_check_verify_names_the_damaged_file(damaged_root, tmp_path):
    env = dict(
        os.environ,
        HY3DGEN_MODELS=os.environ["HY3DGEN_MODELS"],
        RUNPOD_HF_CACHE=str(tmp_path / "runpod"),
        HF_HOME=str(tmp_path / "hf"),
    )
    plain = subprocess.run(
        [sys.executable, "-m", "pipeline.weights", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0  # sizes are right: only --verify reads the bytes
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.weights", "check", "--verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"damaged    {damaged_root / 'model.fp16.safetensors'}" in done.stdout
    assert "1 damaged" in done.stdout


def test_verify_compares_the_hf_cache_blob_sha256(tmp_path, monkeypatch):
    """The HF cache names an LFS blob by its sha256; a flipped byte is caught even where tensors stay finite."""
    import hashlib

    from fakes.tiny_hunyuan import write_tiny_shape_model
    from pipeline import weights

    staging = write_tiny_shape_model(tmp_path / "staging")
    repo = tmp_path / "hub" / "models--tencent--Hunyuan3D-2"
    snapshot = repo / "snapshots" / "rev1" / "hunyuan3d-dit-v2-0"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in staging.iterdir():
        data = file.read_bytes()
        blob = (
            repo
            / "blobs"
            / (
                hashlib.sha256(data).hexdigest()
                if file.suffix == ".safetensors"
                else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            )
        )
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path / "none"))
    assert {c.status for c in weights.verify_assets()} == {"ok"}
    target = (snapshot / "model.fp16.safetensors").resolve()
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01  # one bit of the last fp16 weight: still finite
    target.write_bytes(bytes(data))
    config = (snapshot / "config.yaml").resolve()
    config.write_text(config.read_text() + "\n# edited\n")
    checks = {Path(c.path).name: c for c in weights.verify_assets()}
    assert checks["model.fp16.safetensors"].status == "damaged" and "sha256" in checks["model.fp16.safetensors"].detail
    assert checks["config.yaml"].status == "damaged" and "git-sha1" in checks["config.yaml"].detail


def test_download_writes_a_manifest_that_verify_uses(tmp_path, monkeypatch):
    """``download`` records each file's sha256 (the hub's, where huggingface_hub kept it)."""
    from fakes.tiny_hunyuan import write_tiny_shape_model
    from pipeline import weights

    dest = tmp_path / "hy3dgen"
    monkeypatch.setenv("HY3DGEN_MODELS", str(dest))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def fake_snapshot(repo_id, subfolders, target, timeout):
        for sub in subfolders:
            write_tiny_shape_model(target, repo_id, sub)
        return target / repo_id

    monkeypatch.setattr(weights.fetch, "_snapshot_download", fake_snapshot)
    monkeypatch.setattr(weights.fetch, "require_network", lambda url, timeout: None)
    monkeypatch.setattr(weights.fetch, "_offline", lambda: False)
    weights.download("hunyuan3d-2", dest=dest, log=lambda line: None)
    folder = dest / "tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0"
    manifest = json.loads((folder / weights.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"config.yaml", "model.fp16.safetensors"}
    assert {c.status for c in weights.verify_assets()} == {"ok"}
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("target", "targe"))
    damaged = [c for c in weights.verify_assets() if c.status == "damaged"]
    assert [Path(c.path).name for c in damaged] == ["config.yaml"]


@pytest.mark.slow
def test_start_up_with_garbage_tensors_exits_with_one_line(damaged_root, tmp_path):
    line = _hunyuan_start_up_failure(tmp_path)
    assert line.startswith(f"worker start-up failed: Weights file {damaged_root / 'model.fp16.safetensors'}")


@pytest.fixture
def garbage_config(tmp_path, monkeypatch) -> Path:
    from fakes.tiny_hunyuan import write_tiny_shape_model

    root = tmp_path / "hy3dgen"
    folder = write_tiny_shape_model(root)
    (folder / "config.yaml").write_text("model: [unclosed\n  : {{{ garbage\n\x00")
    monkeypatch.setenv("HY3DGEN_MODELS", str(root))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    return folder / "config.yaml"


def test_garbage_config_yaml_is_one_sentence_in_a_request(garbage_config, small_b64):
    response = run({"image": small_b64, "model": "hunyuan3d-2", "remove_background": False})
    one_sentence(response["error"])
    assert response["error"].startswith(f"Model config {garbage_config} is not valid YAML")


@pytest.mark.slow
def test_garbage_config_yaml_stops_start_up_in_one_line(garbage_config, tmp_path):
    line = _hunyuan_start_up_failure(tmp_path)
    assert line.startswith(f"worker start-up failed: Model config {garbage_config} is not valid YAML")
    assert line.endswith("restore it or download the model again.")


# -- the property: any JSON in any field ------------------------------------------------------


def test_handler_property_any_json_in_any_field(small_b64, monkeypatch):
    """Hypothesis over the handler: a model or one bounded sentence, always sendable, never a raise."""
    from hypothesis import HealthCheck, given, settings

    monkeypatch.setenv("HY3D_MODEL", "draft")
    examples = int(os.environ.get("HY3D_FUZZ_EXAMPLES", "60"))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payloads(small_b64))
    def prop(payload):
        check_response(worker.handler({"id": "fuzz", "input": payload}))

    prop()


@pytest.mark.slow
def test_damaged_texture_weights_give_the_untextured_shape_naming_the_folder(tmp_path, monkeypatch, small_b64):
    from fakes.tiny_paint import DELIGHT_SUBFOLDER, REPO_ID, write_tiny_texture_models

    root = tmp_path / "hy3dgen"
    write_tiny_texture_models(root, ("hunyuan3d-paint-v2-0",))
    delight = root / REPO_ID / DELIGHT_SUBFOLDER
    corrupt_tensor_bytes(next((delight / "unet").glob("*.safetensors")))
    monkeypatch.setenv("HY3DGEN_MODELS", str(root))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    worker.get_pipeline()._backends["draft"] = PlainShapeBackend()
    response = run({"image": small_b64, "model": "draft", "remove_background": False, "texture_size": 512})
    assert "error" not in response and response["textured"] is False
    warning = next(w for w in response["warnings"] if w.startswith("Texturing failed"))
    one_sentence(warning)
    assert "in the load stage" in warning and "is damaged" in warning and DELIGHT_SUBFOLDER in warning
