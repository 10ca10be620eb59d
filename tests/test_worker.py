"""The RunPod handler called directly: the contract the After Effects panel relies on."""

from __future__ import annotations

import base64
import io

import pytest
import trimesh

import worker
from fakes.hostile import RaisingBackend
from fakes.images import make_subject_png
from pipeline.errors import OptionsError, OutOfMemoryError

RESPONSE_KEYS = {
    "model_base64",
    "output",
    "file_size",
    "format",
    "textured",
    "execution_time",
    "model",
    "seed",
    "profile",
    "faces",
    "vertices",
    "timings",
    "warnings",
    "texture_rasterizer",
}


@pytest.fixture(autouse=True)
def fresh_pipeline(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)
    yield


def run(payload) -> dict:
    return worker.handler({"id": "test-job", "input": payload})


def load_glb(response: dict) -> trimesh.Trimesh:
    data = base64.b64decode(response["model_base64"])
    assert len(data) == response["file_size"]
    return trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")


def test_draft_job_returns_textured_glb(subject_b64):
    response = run({"image": subject_b64, "model": "draft", "max_faces": 5000, "remove_background": False})
    assert "error" not in response, response
    assert set(response) == RESPONSE_KEYS
    assert response["format"] == "glb" and response["textured"] is True
    assert response["model"] == "draft" and response["seed"] == 1234 and response["profile"] is None
    mesh = load_glb(response)
    assert len(mesh.faces) == response["faces"] <= 5000
    assert len(mesh.vertices) > 0
    assert mesh.is_watertight
    for stage in ("decode", "background", "shape", "texture", "export"):
        assert stage in response["timings"]
    assert isinstance(response["warnings"], list)


def test_untextured_job(subject_b64):
    response = run({"image": subject_b64, "model": "draft", "generate_texture": False, "remove_background": False})
    assert response["textured"] is False
    material = getattr(load_glb(response).visual, "material", None)
    assert getattr(material, "baseColorTexture", None) is None


def test_data_url_prefix_accepted(subject_b64):
    response = run({"image": "data:image/png;base64," + subject_b64, "model": "draft", "remove_background": False})
    assert "error" not in response, response


def test_transparent_image_skips_background_with_warning():
    b64 = base64.b64encode(make_subject_png(transparent=True)).decode()
    response = run({"image": b64, "model": "draft"})
    assert "error" not in response, response
    assert any("transparen" in w.lower() for w in response["warnings"])


def test_progress_reports_every_stage(subject_b64, monkeypatch):
    import runpod

    seen = []
    monkeypatch.setenv("RUNPOD_WEBHOOK_GET_JOB", "https://api.runpod.example/job-take")  # production mode
    monkeypatch.setattr(runpod.serverless, "progress_update", lambda job, data: seen.append((job["id"], data)))
    run({"image": subject_b64, "model": "draft", "remove_background": False})
    stages = [data["stage"] for _, data in seen]
    assert {job_id for job_id, _ in seen} == {"test-job"}
    for stage in ("decode", "background", "shape", "texture", "export"):
        assert stage in stages
    assert stages.index("decode") < stages.index("shape") < stages.index("export")


@pytest.mark.parametrize(
    "payload,expected",
    [
        (None, "'input' must be a JSON object"),
        ([], "'input' must be a JSON object"),
        ({}, "Field 'image' is required"),
        ({"image": 42}, "Field 'image' must be a base64 string"),
        ({"image": "not base64 at all!!"}, "Field 'image' is not valid base64"),
        ({"image": base64.b64encode(b"hello, this is text").decode()}, "Field 'image' is not a PNG, JPEG or WebP"),
        ({"image": "AAAA", "model": "draft", "profile": 9}, "Field 'profile' must be an integer from 1 to 5"),
        ({"image": "AAAA", "generate_texture": "yes"}, "Field 'generate_texture' must be a boolean"),
        ({"image": "AAAA", "seeds": 3}, "Unknown field 'seeds'"),
    ],
)
def test_bad_input_gets_one_clear_error(payload, expected):
    response = worker.handler({"id": "bad", "input": payload})
    assert set(response) == {"error"}
    assert isinstance(response["error"], str)
    assert expected in response["error"]
    assert "Traceback" not in response["error"]


def test_oversized_image_rejected(subject_b64, monkeypatch):
    monkeypatch.setenv("HY3D_MAX_IMAGE_BYTES", "1000")
    response = run({"image": subject_b64, "model": "draft"})
    assert "HY3D_MAX_IMAGE_BYTES" in response["error"]


def test_too_many_pixels_rejected(subject_b64, monkeypatch):
    monkeypatch.setenv("HY3D_MAX_IMAGE_PIXELS", "10000")
    response = run({"image": subject_b64, "model": "draft"})
    assert "HY3D_MAX_IMAGE_PIXELS" in response["error"]


def test_auto_without_weights_is_a_clear_error(subject_b64):
    response = run({"image": subject_b64})
    assert "no Hunyuan3D weights were found" in response["error"]
    assert "python -m pipeline.weights download" in response["error"]
    assert "HY3D_MODEL=draft" in response["error"]


def test_env_model_draft_serves_auto_requests(subject_b64, monkeypatch):
    monkeypatch.setenv("HY3D_MODEL", "draft")
    response = run({"image": subject_b64, "remove_background": False})
    assert response["model"] == "draft"


def test_oom_asks_for_higher_profile_and_refresh(subject_b64, monkeypatch):
    class OutOfMemoryErrorLike(RuntimeError):
        pass

    OutOfMemoryErrorLike.__name__ = "OutOfMemoryError"
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = RaisingBackend(OutOfMemoryErrorLike("CUDA out of memory. Tried to allocate 2 GiB"))
    response = run({"image": subject_b64, "model": "draft", "remove_background": False})
    assert response["refresh_worker"] is True
    assert "profile" in response["error"]

    pipe._backends["draft"] = RaisingBackend(OutOfMemoryError("GPU out of memory while decoding; raise 'profile'."))
    response = run({"image": subject_b64, "model": "draft", "remove_background": False})
    assert response == {"error": "GPU out of memory while decoding; raise 'profile'.", "refresh_worker": True}


def test_worker_keeps_serving_after_failures(subject_b64):
    pipe = worker.get_pipeline()
    real = pipe.backend("draft")
    pipe._backends["draft"] = RaisingBackend(ValueError("boom"))
    failed = run({"image": subject_b64, "model": "draft", "remove_background": False})
    # One sentence naming the stage; the traceback goes to the log, not the caller.
    assert failed == {
        "error": "The shape stage failed with an internal error (ValueError: 'boom'); the server log has the details."
    }
    assert "error" in run({"image": "%%%"})
    pipe._backends["draft"] = real
    ok = run({"image": subject_b64, "model": "draft", "remove_background": False})
    assert "error" not in ok and ok["faces"] > 0


def test_same_seed_same_model(subject_b64):
    a = run({"image": subject_b64, "model": "draft", "remove_background": False, "seed": 7})
    b = run({"image": subject_b64, "model": "draft", "remove_background": False, "seed": 7})
    assert base64.b64decode(a["model_base64"]) == base64.b64decode(b["model_base64"])


def test_bad_env_model_is_a_sentence_not_a_crash(subject_b64, monkeypatch):
    monkeypatch.setenv("HY3D_MODEL", "bogus")
    response = run({"image": subject_b64})
    assert set(response) == {"error"} and "HY3D_MODEL" in response["error"]


def test_huge_numbers_name_the_field(subject_b64):
    response = run({"image": subject_b64, "seed": 10**400})
    assert response["error"].startswith("Field 'seed' must be an integer from 0 to 4294967295")


def _glb_attributes(response: dict) -> set[str]:
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(base64.b64decode(response["model_base64"]))
    return {name for name, value in vars(gltf.meshes[0].primitives[0].attributes).items() if value is not None}


def test_smooth_normals_by_default(subject_b64):
    """Default GLBs carry smooth normals (without them glTF viewers must shade
    flat); ``smooth_normals: false`` leaves them out; a re-encode keeps them."""
    base = {"image": subject_b64, "model": "draft", "max_faces": 5000, "remove_background": False}
    plain, smooth = run({**base, "smooth_normals": False}), run(base)
    assert _glb_attributes(plain) == {"POSITION", "TEXCOORD_0"}
    assert _glb_attributes(smooth) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    assert smooth["file_size"] - plain["file_size"] >= 12 * plain["vertices"]
    result = worker.get_pipeline().generate(
        subject_b64, worker.parse_options({**base, "smooth_normals": True}, ignore=("image",))
    )
    smaller = worker.get_pipeline().reexport(result, 60, 256)
    assert len(smaller) < len(result.glb)
    assert _glb_attributes({"model_base64": base64.b64encode(smaller)}) == {"POSITION", "NORMAL", "TEXCOORD_0"}


def test_startup_leaves_warm_up_to_the_pipeline(monkeypatch):
    """Start-up reads the delivery settings, then asks the pipeline to warm up; it
    warms no pipeline module itself (ImageTo3D.warm_up owns what that takes)."""
    from pipeline import mesh
    from pipeline.service import ModelChoice

    for name in ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)
    calls = []
    monkeypatch.setattr(mesh, "warm_up", lambda: calls.append("mesh"))
    monkeypatch.setattr(worker.ImageTo3D, "warm_up", lambda self: calls.append("pipeline") or ModelChoice("draft", ""))
    assert worker.startup_check().startswith("worker ready: model=draft")
    assert calls == ["pipeline"]
    monkeypatch.setenv("BUCKET_ENDPOINT_URL", "http://127.0.0.1:9")  # half-configured: stops before any loading
    calls.clear()
    with pytest.raises(OptionsError, match="half-configured"):
        worker.startup_check()
    assert calls == []


def test_runpod_shutdown_is_wrapped_once(monkeypatch):
    from runpod.serverless.modules import rp_scale

    monkeypatch.setattr(rp_scale.JobScaler, "handle_shutdown", rp_scale.JobScaler.handle_shutdown)
    worker.bound_runpod_shutdown()
    wrapped = rp_scale.JobScaler.handle_shutdown
    worker.bound_runpod_shutdown()
    assert rp_scale.JobScaler.handle_shutdown is wrapped and getattr(wrapped, "_hy3d_wrapped", False)
