"""The app is safe to put on a network (issue 12): upload cap, result TTL,
a full disk, the auth gate and the login throttle, against the real app on
loopback with a real HTTP client (requests) and gradio_client."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

import app
from fakes.images import make_subject_png
from fakes.servers import running_app
from pipeline import app_guard
from pipeline.service import ImageTo3D

pytestmark = pytest.mark.slow

GENERATE_ARGS = dict(
    model="draft",
    profile=3,
    generate_texture=False,
    remove_background=False,
    seed=1234,
    randomize_seed=False,
    max_faces=2000,
    steps=None,
    guidance_scale=None,
    octree_resolution=None,
    num_chunks=None,
    texture_size=512,
    paint_model="hunyuan3d-paint-v2-0",
)


def generate(url: str, image: Path, auth=None):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, auth=auth)
    return client.predict(handle_file(str(image)), *GENERATE_ARGS.values(), api_name="/generate")


def upload(url: str, data: bytes, name: str = "subject.png", session=None) -> requests.Response:
    return (session or requests).post(url + "gradio_api/upload", files={"files": (name, data, "image/png")}, timeout=60)


class _Counting:
    name = "draft"

    def __init__(self, exc: Exception | None = None):
        self.calls, self.exc = 0, exc

    def generate(self, image, options, progress):
        self.calls += 1
        raise self.exc or AssertionError("the model ran")


def counting_pipeline(exc: Exception | None = None) -> tuple[ImageTo3D, _Counting]:
    pipe, backend = ImageTo3D(draft_fallback=True), _Counting(exc)
    pipe._backends["draft"] = backend
    return pipe, backend


# -- uploads ---------------------------------------------------------------------------


def test_upload_over_the_image_byte_limit_is_refused_with_a_sentence(monkeypatch):
    monkeypatch.setenv("HY3D_MAX_IMAGE_BYTES", "200000")
    with running_app() as url:
        small = upload(url, make_subject_png(64))
        assert small.status_code == 200, small.text
        streamed = upload(url, os.urandom(300_000))  # just over: Gradio's own cap trips while streaming
        assert streamed.status_code == 413
        assert streamed.text == app_guard.upload_limit_message(200000)
        assert "HY3D_MAX_IMAGE_BYTES" in streamed.text and "0.2 MiB" in streamed.text
        started = time.monotonic()
        huge = upload(url, b"\0" * (100 * 1024 * 1024))  # refused from its Content-Length
        assert huge.status_code == 413 and time.monotonic() - started < 20


def test_results_and_uploads_are_deleted_after_the_ttl(monkeypatch, tmp_path):
    monkeypatch.setenv("HY3D_RESULT_TTL_S", "6")
    outputs = app._output_dir()
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(96))
    with running_app() as url:
        before = set(outputs.iterdir())
        viewer_path, *_ = generate(url, image)
        made = set(outputs.iterdir()) - before
        assert any(p.suffix == ".glb" for p in made)  # the GLB this job wrote (and its preview PNG)
        cache_copies = [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("subject.png")]
        assert cache_copies, "the upload should be in Gradio's cache"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (any(p.exists() for p in made) or any(p.exists() for p in cache_copies)):
            time.sleep(0.5)
        assert not any(p.exists() for p in made), "result GLB outlived HY3D_RESULT_TTL_S"
        assert not any(p.exists() for p in cache_copies), "upload outlived HY3D_RESULT_TTL_S"


def test_results_are_deleted_at_shutdown(tmp_path):
    outputs = app._output_dir()
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(96))
    with running_app() as url:
        before = set(outputs.iterdir())
        generate(url, image)
        made = set(outputs.iterdir()) - before
        assert made
    assert not any(p.exists() for p in made)


# -- a full disk -------------------------------------------------------------------------


@contextmanager
def small_tmpfs(tmp_path: Path, size_mb: int):
    """A real, small filesystem (tmpfs) to fill up; needs root, as CI's container has."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_bytes: int = 0) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave_bytes + 64 * 1024:
                handle.write(b"\0" * (64 * 1024))
                handle.flush()
        except OSError:
            pass
    return filler


def test_full_gradio_temp_dir_is_one_sentence_without_a_path(tmp_path):
    """The app itself on a full GRADIO_TEMP_DIR (a real 8 MiB tmpfs): the
    upload is refused with one sentence, never a server path."""
    from fakes.servers import free_port

    port = free_port()
    with small_tmpfs(tmp_path, 8) as disk:
        env = dict(os.environ, GRADIO_TEMP_DIR=str(disk), HY3D_MODEL="draft", HY3D_PORT=str(port))
        log = open(tmp_path / "app.log", "wb")
        proc = subprocess.Popen(
            [os.sys.executable, str(Path(app.__file__))], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(200):
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.3)
            _fill(disk)
            image = tmp_path / "subject.png"
            image.write_bytes(make_subject_png(96))
            refused = upload(url, image.read_bytes())
            assert refused.status_code == 507 and refused.text == app_guard.DISK_FULL_MESSAGE
            with pytest.raises(Exception) as caught:
                generate(url, image)
            assert str(disk) not in str(caught.value) and "/tmp" not in str(caught.value)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            log.close()


def test_no_room_for_results_is_one_sentence_before_any_model_runs(monkeypatch, tmp_path):
    """The upload fits, but the disk results go to (a real tmpfs) has under the
    64 MiB a job needs: the job is refused before the model runs."""
    from gradio_client.exceptions import AppError

    pipe, backend = counting_pipeline()
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(96))
    with small_tmpfs(tmp_path, 8) as disk, running_app(pipe) as url:
        monkeypatch.setattr(app_guard, "temp_root", lambda: disk)
        with pytest.raises(AppError) as caught:
            generate(url, image)
        assert str(caught.value) == app_guard.DISK_FULL_MESSAGE
        assert backend.calls == 0


def test_unreadable_upload_never_shows_a_server_path(tmp_path):
    from gradio_client.exceptions import AppError

    bad = tmp_path / "truncated.png"
    bad.write_bytes(make_subject_png(96)[:40])
    with running_app() as url:
        with pytest.raises(AppError) as caught:
            generate(url, bad)
    message = str(caught.value)
    assert "Could not preprocess" not in message and "/" not in message.replace("JPEG or WebP", "")


def test_oom_outside_the_hunyuan_backends_is_the_oom_sentence(tmp_path):
    from gradio_client.exceptions import AppError

    from pipeline.errors import OOM_MESSAGE

    pipe, _ = counting_pipeline(RuntimeError("CUDA error: out of memory"))
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(96))
    with running_app(pipe) as url:
        with pytest.raises(AppError) as caught:
            generate(url, image)
    assert str(caught.value) == OOM_MESSAGE


# -- auth -------------------------------------------------------------------------------------

AUTH = ("qa", "s3cret")


@pytest.fixture
def auth_app(monkeypatch):
    monkeypatch.setenv("HY3D_LOGIN_ATTEMPTS", "5")
    monkeypatch.setenv("HY3D_LOGIN_WINDOW_S", "60")
    with running_app(auth=AUTH) as url:
        yield url


def test_unauthenticated_clients_get_nothing_of_the_api(auth_app):
    page = requests.get(auth_app, timeout=30)
    assert page.status_code == 200
    assert 'window.gradio_api_info = {"named_endpoints":{},"unnamed_endpoints":{}};' in page.text
    assert page.text.count("named_endpoints") == 2 and "/generate" not in page.text  # only the empty stand-in
    for path in (
        "openapi.json",
        "docs",
        "gradio_api/openapi.json",
        "gradio_api/info",
        "config",
        "gradio_api/info?all_endpoints=true",
        "gradio_api/app_id",
        "gradio_api/heartbeat/x",
    ):
        response = requests.get(auth_app + path, timeout=30)
        assert response.status_code in (401, 404), (path, response.status_code, response.text[:200])
        assert "named_endpoints" not in response.text and "generate" not in response.text, path
    assert upload(auth_app, make_subject_png(32)).status_code == 401
    queued = requests.post(auth_app + "gradio_api/queue/join", json={"fn_index": 0, "data": []}, timeout=30)
    assert queued.status_code == 401


def test_logged_in_clients_get_the_app(auth_app, tmp_path):
    session = requests.Session()
    login = session.post(auth_app + "login", data={"username": AUTH[0], "password": AUTH[1]}, timeout=30)
    assert login.status_code == 200, login.text
    page = session.get(auth_app, timeout=30)
    assert '"/generate"' in page.text
    assert session.get(auth_app + "gradio_api/info", timeout=30).status_code == 200
    assert upload(auth_app, make_subject_png(32), session=session).status_code == 200
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(96))
    viewer_path, *_ = generate(auth_app, image, auth=AUTH)
    assert Path(viewer_path).read_bytes()[:4] == b"glTF"


def test_failed_logins_are_throttled_per_address(auth_app):
    codes, started = [], time.monotonic()
    retry_after = None
    for attempt in range(50):
        response = requests.post(auth_app + "login", data={"username": "qa", "password": f"guess{attempt}"}, timeout=30)
        codes.append(response.status_code)
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After")
    assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}, codes
    assert retry_after is not None and 1 <= int(retry_after) <= 60
    # Locked out means locked out, even with the right password, until the window passes.
    right = requests.post(auth_app + "login", data={"username": AUTH[0], "password": AUTH[1]}, timeout=30)
    assert right.status_code == 429 and "try again in" in right.json()["detail"]
    assert time.monotonic() - started < 30


def test_throttle_window_and_addresses_are_separate():
    now = [0.0]
    throttle = app_guard.LoginThrottle(attempts=3, window_s=10, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10 and throttle.retry_after("10.0.0.2") == 0
    now[0] = 4.0
    assert throttle.retry_after("10.0.0.1") == 6
    now[0] = 10.5
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.2")
    throttle.succeeded("10.0.0.2")
    assert throttle.retry_after("10.0.0.2") == 0
