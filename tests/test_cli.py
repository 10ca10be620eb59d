"""``python -m pipeline``: the command-line face over the same pipeline and schema."""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh

import worker
from fakes.images import make_subject_png
from pipeline import cli
from pipeline.options import FIELDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_worker(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    views = {f"view_{view}" for view in ("left", "back", "right")}
    dests = {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "output_dir")}
    assert views <= dests  # the views field's file flags, beside the schema's
    return dests - views


def test_every_request_field_is_a_flag():
    names = {f.name for f in FIELDS}
    assert _dests(cli._request_parser()) == names
    assert _dests(cli._generate_parser()) == names - set(cli.REQUEST_ONLY)
    args = cli._generate_parser().parse_args(
        [
            "x.png",
            "-o",
            "out",
            "--model",
            "draft",
            "--seed",
            "7",
            "--no-texture",
            "--max-faces",
            "3000",
            "--guidance_scale",
            "2.5",
            "--no-background",
        ]
    )
    assert cli.request_fields(args) == {
        "model": "draft",
        "seed": 7,
        "generate_texture": False,
        "max_faces": 3000,
        "guidance_scale": 2.5,
        "remove_background": False,
    }


def test_generate_writes_one_glb_per_image(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(make_subject_png(128))
    b.write_bytes(make_subject_png(96))
    out = tmp_path / "out"
    code = cli.main(
        [str(a), str(b), "-o", str(out), "--model", "draft", "--max_faces", "2000", "--no-texture", "--preview"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and "model=draft" in lines[0] and "textured=no" in lines[0] and "faces=" in lines[0]
    for name in ("a", "b"):
        mesh = trimesh.load(out / f"{name}.glb", file_type="glb", force="mesh")
        assert 0 < len(mesh.faces) <= 2000
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # --preview
    assert "warning:" in captured.err  # the GrabCut fallback says so, as in the worker's warnings
    assert "shape" in captured.err  # the per-stage progress bars


def test_bad_value_exits_nonzero_with_the_workers_sentence(tmp_path, capsys, subject_b64):
    image = tmp_path / "a.png"
    image.write_bytes(make_subject_png(64))
    expected = worker.handler({"input": {"image": subject_b64, "max_faces": 10}})["error"]
    assert cli.main([str(image), "-o", str(tmp_path / "o"), "--max_faces", "10"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {expected}"
    assert cli.main([str(image), "-o", str(tmp_path / "o"), "--model", "nope"]) == 1
    assert "Field 'model' must be one of" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # rejected before anything ran


def test_unreadable_image_fails_and_the_rest_still_run(tmp_path, capsys):
    good = tmp_path / "good.png"
    good.write_bytes(make_subject_png(64))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code = cli.main([str(bad), str(good), "-o", str(tmp_path / "o"), "--model", "draft", "--no-background"])
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "o" / "good.glb").is_file()
    assert f"error: {bad}: " in err


def test_request_body_runs_in_the_worker(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    image = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).save(image)  # a real photo, ~500 KB
    assert (
        cli.main(
            ["request", str(image), "--model", "draft", "--seed", "5", "--no-remove-background", "--max_faces", "2000"]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)
    # Far over the 128 KiB one command-line argument may hold: the reason for a file.
    assert list(body["input"])[0] == "image" and len(body["input"]["image"]) > 128 * 1024
    assert {k: v for k, v in body["input"].items() if k != "image"} == {
        "model": "draft",
        "seed": 5,
        "remove_background": False,
        "max_faces": 2000,
    }
    response = worker.handler({"id": "cli", **body})
    assert "error" not in response and response["seed"] == 5


def test_request_refuses_what_the_worker_would(tmp_path, capsys):
    image = tmp_path / "notes.png"
    image.write_text("hello")
    assert cli.main(["request", str(image)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert cli.main(["request", str(tmp_path / "missing.png")]) == 1
    assert "Cannot read image file" in capsys.readouterr().err


def test_shipped_test_input_is_a_small_draft_request():
    body = json.loads((ROOT / "test_input.json").read_text())
    assert body["input"]["model"] == "draft"
    assert (ROOT / "test_input.json").stat().st_size < 20_000
    response = worker.handler({"id": "shipped", **body})
    assert "error" not in response, response


@pytest.mark.slow
def test_module_entry_points(tmp_path):
    """``python -m pipeline --help`` answers without loading the stack, and
    ``python -m pipeline.weights`` still runs its own CLI."""
    helped = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "--no-texture" in helped.stdout and "--max_faces" in helped.stdout
    assert not any(f" {lib}\n" in helped.stderr for lib in ("torch", "trimesh", "cv2", "gradio"))
    weights = subprocess.run(
        [sys.executable, "-m", "pipeline.weights", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert weights.returncode == 0 and "Searched, in order" in weights.stdout


@pytest.mark.slow
def test_python_worker_runs_the_shipped_test_input():
    """RunPod's local mode picks up test_input.json from the working folder;
    out of the box, with no weights and no HY3D_MODEL, its draft job runs."""
    import os

    env = dict(os.environ)
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    env.pop("HY3D_MODEL", None)
    done = subprocess.run([sys.executable, "worker.py"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "HY3D_MODEL is auto but no Hunyuan3D weights" in done.stdout  # said once, then the job ran


# -- multi-view input: --view-left/--view-back/--view-right ----------------------------


def _view_files(tmp_path: Path, *views: str) -> dict[str, Path]:
    from tests.test_model_family import view_png

    paths = {}
    for view in ("front", *views):
        paths[view] = tmp_path / f"{view}.png"
        paths[view].write_bytes(view_png(view, 128 if view == "front" else 96))
    return paths


def test_views_are_flags_of_both_subcommands():
    for parser, first in ((cli._generate_parser(), ["x.png", "-o", "o"]), (cli._request_parser(), ["x.png"])):
        args = parser.parse_args([*first, "--view-left", "l.png", "--view_back", "b.png"])
        assert cli.view_paths(args) == {"left": Path("l.png"), "back": Path("b.png")}
        assert cli.request_fields(args) == {}  # views are not schema fields


def test_view_errors_are_the_workers_sentences(tmp_path, capsys, subject_b64):
    paths = _view_files(tmp_path, "left")
    front, left, out = str(paths["front"]), str(paths["left"]), tmp_path / "o"
    # several IMAGEs: which one would the views belong to?
    assert cli.main([front, front, "-o", str(out), "--view-left", left]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: Views (--view-left/--view-back/--view-right) go with exactly one IMAGE, the front; got 2 images."
    )
    # a single-view model: the worker's own sentence
    expected = worker.handler({"input": {"image": subject_b64, "model": "draft", "views": {"left": subject_b64}}})
    for command in ([front, "-o", str(out)], ["request", front]):
        assert cli.main([*command, "--model", "draft", "--view-left", left]) == 1
        assert capsys.readouterr().err.strip() == f"error: {expected['error']}"
    # a missing view file, and one that is not an image (named as the worker names it)
    assert cli.main([front, "-o", str(out), "--model", "hunyuan3d-2mv", "--view-back", str(tmp_path / "no.png")]) == 1
    assert "Cannot read image file" in capsys.readouterr().err
    (tmp_path / "notes.png").write_text("hello")
    assert cli.main(["request", front, "--model", "hunyuan3d-2mv", "--view-right", str(tmp_path / "notes.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Field 'views.right' ") and err.count("\n") == 1, err
    assert not out.exists()  # every refusal came before anything ran


def test_request_body_carries_the_views_object(tmp_path, capsys):
    paths = _view_files(tmp_path, "left", "back")
    assert (
        cli.main(
            [
                "request",
                str(paths["front"]),
                "--model",
                "hunyuan3d-2mv",
                "--view-back",
                str(paths["back"]),
                "--view-left",
                str(paths["left"]),
            ]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)["input"]
    assert list(body["views"]) == ["left", "back"]  # hy3dgen's order, as check_views gives it
    assert {view: base64.b64decode(data) for view, data in body["views"].items()} == {
        "left": paths["left"].read_bytes(),
        "back": paths["back"].read_bytes(),
    }
    assert body["model"] == "hunyuan3d-2mv" and base64.b64decode(body["image"]) == paths["front"].read_bytes()


@pytest.fixture(scope="module")
def multiview_root(tmp_path_factory):
    from fakes.tiny_hunyuan import write_model

    root = tmp_path_factory.mktemp("hy3dgen-mv")
    write_model(root, "hunyuan3d-2mv")
    return root


@pytest.mark.slow
def test_views_reach_the_multiview_model_from_both_subcommands(tmp_path, capsys, monkeypatch, multiview_root):
    """The tiny random-weight hunyuan3d-2mv: the GLB records the views it was
    made from, and the request body runs in the worker alike."""
    from pipeline.export import glb_stats

    monkeypatch.setenv("HY3DGEN_MODELS", str(multiview_root))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    paths = _view_files(tmp_path, "left", "right")
    fields = [
        "--model",
        "hunyuan3d-2mv",
        "--steps",
        "2",
        "--octree_resolution",
        "64",
        "--max_faces",
        "3000",
        "--no-texture",
        "--no-background",
    ]
    views = ["--view-right", str(paths["right"]), "--view-left", str(paths["left"])]
    code = cli.main([str(paths["front"]), "-o", str(tmp_path / "out"), *fields, *views])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "model=hunyuan3d-2mv" in captured.out
    stats = glb_stats((tmp_path / "out" / "front.glb").read_bytes())
    assert stats["extras"]["views"] == ["front", "left", "right"]

    assert cli.main(["request", str(paths["front"]), *fields, *views]) == 0
    body = json.loads(capsys.readouterr().out)
    response = worker.handler({"id": "cli-views", **body})
    assert "error" not in response, response
    assert glb_stats(base64.b64decode(response["model_base64"]))["extras"]["views"] == ["front", "left", "right"]
