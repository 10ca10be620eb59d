"""Remote mode: the app's client against a loopback stand-in of RunPod's
endpoint API that runs the real worker handler (draft model, no weights)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trimesh

import worker
from fakes.fake_runpod import FakeRunPod
from fakes.images import make_subject_png
from fakes.s3 import moto_s3
from fakes.servers import free_port, running_app
from pipeline.errors import ImageError, OptionsError, PipelineError
from pipeline.options import GenerationOptions, parse_options
from pipeline.runpod.remote import (
    DEFAULT_BASE_URL,
    RemoteGenerator,
    RemoteSettings,
    build_input,
    decode_model,
    download_model,
    failure_message,
)

BUCKET_VARS = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME")


@pytest.fixture(autouse=True)
def draft_worker(monkeypatch):
    """The worker side serves the draft model and starts from a fresh pipeline."""
    monkeypatch.setenv("HY3D_MODEL", "draft")
    monkeypatch.setattr(worker, "_PIPELINE", None)
    for name in (*BUCKET_VARS, "HY3D_INLINE_BUDGET_MB", "RUNPOD_WEBHOOK_GET_JOB"):
        monkeypatch.delenv(name, raising=False)


class Recorder:
    """A progress callback that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, str]] = []

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        self.calls.append((stage, fraction, message))

    @property
    def stages(self) -> list[str]:
        return [stage for stage, _, _ in self.calls]


def generator(fake: FakeRunPod, **env: str) -> RemoteGenerator:
    settings = RemoteSettings.from_env({**fake.env(), "HY3D_REMOTE_POLL_S": "0.05", **env})
    assert settings is not None
    return RemoteGenerator(settings)


def draft_options(**fields) -> GenerationOptions:
    return parse_options({"model": "draft", "remove_background": False, "max_faces": 4000, **fields})


def only_job(fake: FakeRunPod):
    assert len(fake.jobs) == 1, fake.jobs
    return next(iter(fake.jobs.values()))


def glb_mesh(glb: bytes) -> trimesh.Trimesh:
    return trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")


# -- settings -----------------------------------------------------------------
def test_local_mode_without_endpoint():
    assert RemoteSettings.from_env({}) is None
    assert RemoteSettings.from_env({"RUNPOD_API_KEY": "k", "HY3D_REMOTE_ENDPOINT": "  "}) is None


def test_base_url_stays_with_the_client():
    """Remote mode points only its own client at HY3D_REMOTE_BASE_URL."""
    import runpod

    before = runpod.endpoint_url_base
    with FakeRunPod() as fake:
        assert generator(fake).health()["workers"]["ready"] == 1
    assert runpod.endpoint_url_base == before
    assert [(r.method, r.path) for r in fake.requests] == [("GET", f"/v2/{fake.endpoint_id}/health")]


def test_settings_from_env_and_banner():
    settings = RemoteSettings.from_env(
        {"HY3D_REMOTE_ENDPOINT": "abc123", "RUNPOD_API_KEY": "secret-key", "HY3D_REMOTE_TIMEOUT_S": "90"}
    )
    assert settings.endpoint_id == "abc123" and settings.base_url == DEFAULT_BASE_URL
    assert settings.timeout_s == 90 and settings.poll_interval_s == 1.0
    assert "secret-key" not in repr(settings)
    assert settings.describe() == "Remote mode: jobs go to RunPod endpoint abc123 (https://api.runpod.ai/v2)"
    assert RemoteGenerator(settings).choose_model("auto").notice == settings.describe()


def test_missing_api_key_names_the_variable():
    with pytest.raises(OptionsError, match="RUNPOD_API_KEY is not set") as info:
        RemoteSettings.from_env({"HY3D_REMOTE_ENDPOINT": "abc123"})
    assert "HY3D_REMOTE_ENDPOINT" in str(info.value)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HY3D_REMOTE_ENDPOINT": "https://api.runpod.ai/v2/abc/run"}, "must be a RunPod endpoint id"),
        ({"HY3D_REMOTE_TIMEOUT_S": "soon"}, "HY3D_REMOTE_TIMEOUT_S must be a number of seconds"),
        ({"HY3D_REMOTE_TIMEOUT_S": "0"}, "HY3D_REMOTE_TIMEOUT_S must be a positive number"),
        ({"HY3D_REMOTE_BASE_URL": "api.runpod.ai"}, "HY3D_REMOTE_BASE_URL must be an http"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(OptionsError, match=message):
        RemoteSettings.from_env({"HY3D_REMOTE_ENDPOINT": "abc123", "RUNPOD_API_KEY": "k", **env})


def test_input_leaves_out_unset_fields_and_asks_for_auto_output():
    image = make_subject_png(64)
    payload = build_input(image, draft_options(output="inline", steps=None, guidance_scale=4.5))
    assert base64.b64decode(payload["image"]) == image
    assert payload["output"] == "auto" and payload["guidance_scale"] == 4.5
    assert not {"steps", "octree_resolution", "num_chunks"} & set(payload)
    assert None not in payload.values()
    # The worker's own parser accepts exactly what the app sends.
    assert worker.parse_options(payload, ignore=("image",)).seed == 1234


def test_failure_message_unwraps_raised_exceptions():
    blob = json.dumps({"error_type": "<class 'ValueError'>", "error_message": "boom", "error_traceback": "..."})
    assert failure_message(blob) == "ValueError: boom"
    assert failure_message("Field 'seed' is bad.") == "Field 'seed' is bad."
    assert failure_message(None) == "no error message was given"


# -- the stand-in itself, through runpod's own client -------------------------
def test_fake_speaks_runpods_client_protocol(subject_b64, monkeypatch):
    import runpod

    with FakeRunPod(queue_delay_s=0.2) as fake:
        monkeypatch.setattr(runpod, "endpoint_url_base", fake.base_url)
        endpoint = runpod.Endpoint(fake.endpoint_id, api_key=fake.api_key)
        job = endpoint.run({"image": subject_b64, "model": "draft", "max_faces": 2000, "remove_background": False})
        assert job.status() == "IN_QUEUE"
        output = job.output(timeout=60)
        assert job.status() == "COMPLETED" and output["model"] == "draft" and output["faces"] <= 2000
        assert endpoint.health()["jobs"]["completed"] == 1
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        unknown = requests.get(f"{fake.base_url}/{fake.endpoint_id}/status/nope", headers=headers, timeout=5)
        assert unknown.status_code == 404
        anonymous = requests.post(f"{fake.base_url}/{fake.endpoint_id}/run", json={"input": {}}, timeout=5)
        assert anonymous.status_code == 401


# -- remote jobs end to end ---------------------------------------------------
def test_remote_job_returns_the_workers_glb_with_progress_from_status():
    image = make_subject_png()
    with FakeRunPod(queue_delay_s=0.3, progress_hold_s=0.05) as fake:
        progress = Recorder()
        result = generator(fake).generate(image, draft_options(seed=77), progress)
        job = only_job(fake)

    mesh = glb_mesh(result.glb)
    assert len(mesh.faces) == result.faces <= 4000 and len(mesh.vertices) == result.vertices
    assert result.model == "draft" and result.seed == 77 and result.textured is True
    assert result.glb == base64.b64decode(job.output["model_base64"])
    assert result.warnings == job.output["warnings"]
    assert result.timings["remote.queue"] >= 0.3 and "shape" in result.timings
    assert result.options["seed"] == 77

    # The app saw the queue, then the worker's own stages, in order.
    stages = progress.stages
    for stage in ("queue", "shape", "export"):
        assert stage in stages
    assert stages.index("queue") < stages.index("shape") < stages.index("export")
    assert ("queue", 0.0, "Waiting for a RunPod worker (0 s)") in progress.calls
    sent = {(p["stage"], p["progress"], p["message"]) for p in job.progress}
    relayed = [call for call in progress.calls if call[0] != "queue"]
    assert relayed and set(relayed) <= sent  # every relayed update came from /status
    assert all(0.0 <= fraction <= 1.0 for _, fraction, _ in progress.calls)

    # The panel's contract on the wire: POST /run once, then GET /status polls.
    assert job.input["image"] == base64.b64encode(image).decode()
    assert job.input["output"] == "auto" and "steps" not in job.input
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls[0] == ("POST", f"/v2/{fake.endpoint_id}/run")
    assert set(calls[1:]) == {("GET", f"/v2/{fake.endpoint_id}/status/{job.id}")}
    assert all(r.authorized for r in fake.requests)


def test_remote_preview_reaches_the_app():
    """The app asks for a preview (its history gallery); the worker's PNG comes back as bytes."""
    with FakeRunPod() as fake:
        result = generator(fake).generate(make_subject_png(), draft_options(preview=True), Recorder())
        job = only_job(fake)
    assert job.input["preview"] is True
    assert result.preview_png == base64.b64decode(job.output["preview_png_base64"])
    assert result.preview_png.startswith(b"\x89PNG")


def test_worker_rejection_is_the_workers_sentence():
    with FakeRunPod() as fake:
        remote = generator(fake)
        with pytest.raises(PipelineError) as info:
            remote.generate(b"this is not an image", draft_options())
        assert str(info.value) == "Remote worker failed: Field 'image' is not a PNG, JPEG or WebP image."
        # Options the app could never send still get the worker's own check.
        rule = r"^Remote worker failed: Field 'profile' must be an integer from 1 to 5"
        with pytest.raises(PipelineError, match=rule):
            remote.generate(make_subject_png(64), GenerationOptions(model="draft", profile=9))
        assert [job.status for job in fake.jobs.values()] == ["FAILED", "FAILED"]


def test_handler_exception_is_unwrapped():
    def broken(job):
        raise ValueError("texture atlas overflow")

    with FakeRunPod(handler=broken) as fake:
        with pytest.raises(PipelineError, match=r"^Remote worker failed: ValueError: texture atlas overflow$"):
            generator(fake).generate(make_subject_png(64), draft_options())


def test_wrong_api_key_is_clear():
    with FakeRunPod() as fake:
        remote = generator(fake, RUNPOD_API_KEY="wrong-key")
        with pytest.raises(PipelineError, match=r"rejected the API key \(401 Unauthorized\).*check RUNPOD_API_KEY"):
            remote.generate(make_subject_png(64), draft_options())
        with pytest.raises(PipelineError, match="401"):
            remote.health()
        assert not fake.jobs


def test_unknown_endpoint_is_clear():
    with FakeRunPod() as fake:
        with pytest.raises(PipelineError, match=r"no endpoint other-id .*HTTP 404.*check HY3D_REMOTE_ENDPOINT"):
            generator(fake, HY3D_REMOTE_ENDPOINT="other-id").generate(make_subject_png(64), draft_options())


def test_unreachable_base_url_is_clear():
    closed = f"http://127.0.0.1:{free_port()}/v2"
    env = {"HY3D_REMOTE_ENDPOINT": "abc", "RUNPOD_API_KEY": "k", "HY3D_REMOTE_BASE_URL": closed}
    settings = RemoteSettings.from_env(env)
    started = time.monotonic()
    with pytest.raises(PipelineError, match="Could not connect to RunPod when submitting the job"):
        RemoteGenerator(settings).generate(make_subject_png(64), draft_options())
    assert time.monotonic() - started < 5  # no hidden 30 s of connection retries


def test_oversized_image_fails_before_sending():
    with FakeRunPod() as fake:
        with pytest.raises(ImageError, match="RunPod's /run limit"):
            generator(fake).generate(b"\x89PNG" + bytes(8 * 1024 * 1024), draft_options())
        assert not fake.requests


class StuckHandler:
    """A handler that never finishes on its own; leaving its context releases it
    (use it as the inner context, so the fake's workers can stop)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, job):
        self.release.wait(30)
        return {"late": True}

    def __enter__(self) -> StuckHandler:
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()


@pytest.mark.parametrize("where", ["IN_QUEUE", "IN_PROGRESS"])
def test_total_time_is_bounded_and_the_job_cancelled(where):
    stuck = StuckHandler()
    workers = 0 if where == "IN_QUEUE" else 1  # no worker: queued forever
    with FakeRunPod(handler=stuck, workers=workers) as fake:
        with stuck:
            progress = Recorder()
            started = time.monotonic()
            message = rf"did not finish within 0.6 s \(HY3D_REMOTE_TIMEOUT_S\); it was still {where}"
            with pytest.raises(PipelineError, match=message):
                generator(fake, HY3D_REMOTE_TIMEOUT_S="0.6").generate(make_subject_png(64), draft_options(), progress)
            elapsed = time.monotonic() - started
            assert 0.6 <= elapsed < 2.0
            assert only_job(fake).status == "CANCELLED"
            assert fake.requests[-1].path.startswith(f"/v2/{fake.endpoint_id}/cancel/")
            assert "queue" in progress.stages


def test_failing_progress_callback_cancels_the_remote_job():
    def explode(stage, fraction, message=""):
        if stage == "shape":
            raise KeyboardInterrupt

    with FakeRunPod(progress_hold_s=0.2) as fake:
        with pytest.raises(KeyboardInterrupt):
            generator(fake).generate(make_subject_png(64), draft_options(), explode)
        assert only_job(fake).status == "CANCELLED"


def test_endpoint_execution_timeout_and_outside_cancel():
    stuck = StuckHandler()
    with FakeRunPod(handler=stuck, execution_timeout_s=0.3) as fake, stuck:
        with pytest.raises(PipelineError, match="ran past the endpoint's execution timeout on RunPod"):
            generator(fake).generate(make_subject_png(64), draft_options())
    with FakeRunPod(workers=0) as fake:
        remote = generator(fake)
        threading.Timer(0.3, lambda: fake.purge_queue()).start()
        with pytest.raises(PipelineError, match="was cancelled on RunPod before it finished"):
            remote.generate(make_subject_png(64), draft_options())


def test_status_blips_are_retried():
    with FakeRunPod(queue_delay_s=0.2) as fake:
        fake.fail_next_status = 2
        result = generator(fake).generate(make_subject_png(64), draft_options())
        assert glb_mesh(result.glb).faces.shape[0] == result.faces
        fake.fail_next_status = 10
        with pytest.raises(PipelineError, match=r"HTTP 503 when checking job"):
            generator(fake).generate(make_subject_png(64), draft_options())


def test_oversized_result_completed_without_output():
    with FakeRunPod(result_limit_bytes=1000) as fake:
        with pytest.raises(PipelineError, match="COMPLETED but returned no output.*10 MB /run limit"):
            generator(fake).generate(make_subject_png(64), draft_options())
        assert only_job(fake).status == "COMPLETED"


# -- model_url delivery --------------------------------------------------------
@contextmanager
def serve_bytes(files: dict[str, bytes]) -> Iterator[str]:
    """A loopback file server standing in for a bucket's presigned URLs."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            data = files.get(self.path.split("?", 1)[0])
            self.send_response(200 if data is not None else 403)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_model_url_is_downloaded_and_checked():
    glb = worker.handler(
        {
            "id": "u",
            "input": {
                "image": base64.b64encode(make_subject_png(64)).decode(),
                "model": "draft",
                "remove_background": False,
                "max_faces": 2000,
            },
        }
    )
    data = base64.b64decode(glb["model_base64"])
    with serve_bytes({"/models/a.glb": data, "/models/short.glb": data[:-10]}) as host:
        base = {"output": "url", "file_size": len(data)}
        assert decode_model({**base, "model_url": f"{host}/models/a.glb?X-Amz-Signature=s"}, "j", 10) == data
        with pytest.raises(PipelineError, match=r"cut short"):
            decode_model({**base, "model_url": f"{host}/models/short.glb"}, "j", 10)
        with pytest.raises(PipelineError, match=r"HTTP 403; the link may have expired") as info:
            download_model(f"{host}/models/gone.glb?X-Amz-Signature=secret", 10)
        assert "secret" not in str(info.value)
    with pytest.raises(PipelineError, match="without model_base64 or model_url"):
        decode_model({"output": "url"}, "j", 10)


def test_remote_job_with_model_url_output():
    glb = worker.handler(
        {
            "id": "u",
            "input": {
                "image": base64.b64encode(make_subject_png(64)).decode(),
                "model": "draft",
                "remove_background": False,
                "max_faces": 2000,
            },
        }
    )
    data = base64.b64decode(glb.pop("model_base64"))
    with serve_bytes({"/bucket/job.glb": data}) as host:

        def url_handler(job):
            return {
                **glb,
                "output": "url",
                "model_url": f"{host}/bucket/job.glb?sig=1",
                "model_url_expires_at": "2030-01-01T00:00:00+00:00",
                "warnings": ["uploaded"],
            }

        with FakeRunPod(handler=url_handler) as fake:
            result = generator(fake).generate(make_subject_png(64), draft_options())
    assert result.glb == data and result.warnings == ["uploaded"] and result.faces == glb["faces"]


@pytest.mark.slow
def test_bucket_delivery_through_real_worker_and_moto(monkeypatch):
    """Worker over its inline budget uploads to S3 (moto); the app downloads the presigned URL."""
    with moto_s3() as bucket:
        endpoint = bucket["BUCKET_ENDPOINT_URL"]
        for name, value in bucket.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.01")
        with FakeRunPod() as fake:
            result = generator(fake).generate(make_subject_png(), draft_options())
            output = only_job(fake).output
        assert output["output"] == "url" and output["model_url"].startswith(endpoint + "/models/")
        assert len(result.glb) == output["file_size"] > 10_000
        assert len(glb_mesh(result.glb).faces) == result.faces


# -- the Gradio app over a RemoteGenerator -------------------------------------
def app_generate(generator: RemoteGenerator, image_path, progress) -> tuple[str, dict]:
    """What app.generate does with whatever pipeline object it was given."""
    result = generator.generate(image_path.read_bytes(), parse_options({"model": "draft", "max_faces": 3000}), progress)
    out = image_path.with_suffix(".glb")
    out.write_bytes(result.glb)
    return str(out), {"faces": result.faces, "model": result.model}


def test_app_style_call(tmp_path):
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(128, transparent=True))
    with FakeRunPod() as fake:
        path, stats = app_generate(generator(fake), image, Recorder())
    assert stats["model"] == "draft" and len(glb_mesh(open(path, "rb").read()).faces) == stats["faces"]


@pytest.mark.slow
def test_gradio_app_in_remote_mode(tmp_path):
    """``app.build_demo`` given a RemoteGenerator: banner and /generate go remote."""
    from gradio_client import Client, handle_file

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png())
    with FakeRunPod(progress_hold_s=0.02) as fake:
        with running_app(generator(fake)) as url:
            assert f"Remote mode: jobs go to RunPod endpoint {fake.endpoint_id}" in requests.get(url, timeout=10).text
            client = Client(url, verbose=False)
            viewer, _, _, stats, seed = client.predict(
                handle_file(str(image)),
                "draft",
                3,
                True,
                False,
                4321,
                False,
                3000,
                None,
                None,
                None,
                None,
                2048,
                "hunyuan3d-paint-v2-0",
                api_name="/generate",
            )
            from gradio_client.exceptions import AppError

            # Gradio hands SVG uploads through untouched; the worker refuses them.
            logo = tmp_path / "logo.svg"
            logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
            with pytest.raises(AppError, match=r"Remote worker failed: Field 'image' is not a PNG, JPEG or WebP"):
                client.predict(
                    handle_file(str(logo)),
                    "draft",
                    3,
                    True,
                    False,
                    1,
                    False,
                    3000,
                    None,
                    None,
                    None,
                    None,
                    2048,
                    "hunyuan3d-paint-v2-0",
                    api_name="/generate",
                )
        job = next(iter(fake.jobs.values()))  # the first, successful job
    assert seed == 4321 and stats["model"] == "draft" and job.input["seed"] == 4321
    assert len(glb_mesh(open(viewer, "rb").read()).faces) == stats["faces"]
