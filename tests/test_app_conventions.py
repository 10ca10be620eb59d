"""The app follows Gradio's conventions: GRADIO_SERVER_NAME/PORT, widget
ranges from the schema with the worker's sentences, gradio_client's keyword
form, a self-describing --help, and a start-up warm-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import app
from fakes.images import make_subject_png
from fakes.servers import free_port, running_app
from pipeline.errors import PipelineError
from pipeline.options import FIELDS_BY_NAME

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ((None, None), {}, ("127.0.0.1", 7860)),
        ((None, None), {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8080"}, ("0.0.0.0", 8080)),
        (
            (None, None),
            {
                "GRADIO_SERVER_NAME": "0.0.0.0",
                "HY3D_HOST": "10.0.0.1",
                "GRADIO_SERVER_PORT": "8080",
                "HY3D_PORT": "9000",
            },
            ("10.0.0.1", 9000),
        ),
        (
            ("127.0.0.2", 7000),
            {"HY3D_HOST": "10.0.0.1", "HY3D_PORT": "9000", "GRADIO_SERVER_PORT": "8080"},
            ("127.0.0.2", 7000),
        ),
        ((None, None), {"HY3D_HOST": " ", "GRADIO_SERVER_NAME": "0.0.0.0"}, ("0.0.0.0", 7860)),
    ],
)
def test_bind_precedence(flags, env, expected):
    assert app.resolve_bind(*flags, env=env) == expected


def test_bad_port_variable_is_one_sentence():
    with pytest.raises(PipelineError, match=r"GRADIO_SERVER_PORT must be a port from 1 to 65535, got 'abc'\."):
        app.resolve_bind(None, None, env={"GRADIO_SERVER_PORT": "abc"})


def test_help_shows_defaults_and_variables():
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for piece in (
        "default 127.0.0.1; env HY3D_HOST, else GRADIO_SERVER_NAME",
        "default 7860; env HY3D_PORT, else GRADIO_SERVER_PORT",
        "env HY3D_AUTH",
        "HY3D_WARM_UP",
    ):
        assert piece in text, piece


def _component(demo, label):
    return next(b for b in demo.blocks.values() if getattr(b, "label", None) == label)


def test_widget_ranges_come_from_the_schema():
    demo = app.build_demo()
    for label, field in (
        ("Max faces", "max_faces"),
        ("Seed", "seed"),
        ("Memory profile (mmgp)", "profile"),
        ("Steps", "steps"),
        ("Guidance scale", "guidance_scale"),
        ("Octree resolution", "octree_resolution"),
        ("Num chunks", "num_chunks"),
    ):
        widget, spec = _component(demo, label), FIELDS_BY_NAME[field]
        assert (widget.minimum, widget.maximum) == (spec.minimum, spec.maximum), label
    assert _component(demo, "Max faces").maximum == 500000 and _component(demo, "Seed").maximum == 2**32 - 1


@pytest.mark.slow
class TestThroughGradioClient:
    @pytest.fixture(scope="class")
    def client(self):
        from gradio_client import Client

        with running_app() as url:
            yield Client(url, verbose=False)

    @pytest.fixture
    def image(self, tmp_path):
        path = tmp_path / "subject.png"
        path.write_bytes(make_subject_png(128))
        return str(path)

    def test_keyword_form(self, client, image):
        from gradio_client import handle_file

        viewer, download, markdown, stats, seed = client.predict(
            image=handle_file(image),
            model="draft",
            remove_background=False,
            max_faces=2000,
            seed=2**32 - 1,
            api_name="/generate",
        )
        assert stats["model"] == "draft" and stats["faces"] <= 2000 and seed == 2**32 - 1  # the schema's top seed
        assert Path(viewer).read_bytes()[:4] == b"glTF"

    @pytest.mark.parametrize(
        "field, value", [("max_faces", 600000), ("seed", 2**32), ("steps", 0), ("profile", 9), ("guidance_scale", 25.0)]
    )
    def test_out_of_range_gets_the_workers_sentence(self, client, image, field, value):
        from gradio_client import handle_file
        from gradio_client.exceptions import AppError

        import worker

        worker._PIPELINE = None
        expected = worker.handler({"input": {"image": "x", "model": "draft", field: value}})["error"]
        assert expected.startswith(f"Field '{field}'")
        with pytest.raises(AppError) as caught:
            client.predict(image=handle_file(image), model="draft", api_name="/generate", **{field: value})
        assert str(caught.value) == expected


@pytest.mark.slow
def test_gradio_server_variables_are_honoured(tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HY3D_WARM_UP": "0"}
    for name in ("HY3D_HOST", "HY3D_PORT"):
        env.pop(name, None)
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer on GRADIO_SERVER_PORT within 120 s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_warm_up_runs_a_draft_job_through_every_stage():
    from pipeline.service import ImageTo3D

    pipeline = ImageTo3D(draft_fallback=True)
    seconds = app.warm_up(pipeline)
    assert seconds > 0 and "draft" in pipeline._backends
