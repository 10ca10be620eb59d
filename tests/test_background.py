"""Background removal (pipeline.background): rembg with a tiny real ONNX graph,
and the GrabCut fallback when the weights are absent. Nothing here may touch
the network."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fakes  # noqa: F401  (pins thread counts before rembg is imported)
from fakes.images import cutout_rgba, iou, object_scene
from fakes.tiny_onnx import write_tiny_u2net
from pipeline import background
from pipeline.background import BackgroundRemover, find_weights, grabcut_cutout
from pipeline.settings import Settings


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test loudly instead of waiting on a timeout."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty rembg home folder chosen by U2NET_HOME."""
    folder = tmp_path / "u2net-home"
    folder.mkdir()
    monkeypatch.setenv("U2NET_HOME", str(folder))
    monkeypatch.delenv("REMBG_HOME", raising=False)
    monkeypatch.delenv("REMBG_MODEL_PATH", raising=False)
    return folder


def alpha_of(img: Image.Image) -> np.ndarray:
    return np.asarray(img.getchannel("A")).astype(float)


def assert_separates(img: Image.Image, mask: np.ndarray) -> None:
    alpha = alpha_of(img)
    assert alpha[mask].mean() > 230, alpha[mask].mean()
    assert alpha[~mask].mean() < 25, alpha[~mask].mean()


# --- rembg with the tiny model --------------------------------------------------


@pytest.mark.parametrize("layout", ["u2net.onnx", "models/u2net/u2net.onnx"])
def test_rembg_runs_the_tiny_u2net(home, layout):
    write_tiny_u2net(home / layout)
    scene = object_scene((200, 160))
    result = BackgroundRemover(Settings()).remove(scene.image.convert("RGBA"))
    assert result.method == "rembg:u2net" and result.warnings == []
    assert result.image.mode == "RGBA" and result.image.size == (200, 160)
    assert_separates(result.image, scene.mask)
    # putalpha keeps the object's colour instead of darkening it
    centre = result.image.getpixel((100, 80))
    assert centre[:3] == scene.image.getpixel((100, 80))


def test_session_is_created_once_and_reused(home, monkeypatch):
    import rembg

    write_tiny_u2net(home / "u2net.onnx")
    created = []
    real_new_session = rembg.new_session

    def counting(*args, **kwargs):
        created.append(args)
        return real_new_session(*args, **kwargs)

    monkeypatch.setattr(rembg, "new_session", counting)
    remover = BackgroundRemover(Settings())
    scene = object_scene((96, 96))
    first = remover.remove(scene.image)
    second = remover.remove(object_scene((64, 80)).image)
    assert created == [("u2net",)]  # named explicitly: rembg's own default is bria-rmbg
    assert remover.session_loads == 1
    assert first.method == second.method == "rembg:u2net"
    assert second.image.size == (64, 80)


def test_u2net_custom_with_explicit_path(home):
    model = write_tiny_u2net(home / "custom" / "tiny.onnx")
    scene = object_scene((120, 120), shape="rectangle")
    result = BackgroundRemover(Settings(rembg_model="u2net_custom"), model_path=model).remove(scene.image)
    assert result.method == "rembg:u2net_custom"
    assert_separates(result.image, scene.mask)


def test_u2net_custom_from_env(home, monkeypatch):
    monkeypatch.setenv("REMBG_MODEL_PATH", str(write_tiny_u2net(home / "env.onnx")))
    scene = object_scene((120, 120))
    result = BackgroundRemover(Settings(rembg_model="u2net_custom")).remove(scene.image)
    assert result.method == "rembg:u2net_custom"
    assert_separates(result.image, scene.mask)


def test_u2net_custom_outside_home_falls_back_with_reason(home, tmp_path):
    model = write_tiny_u2net(tmp_path / "elsewhere" / "tiny.onnx")
    result = BackgroundRemover(Settings(rembg_model="u2net_custom"), model_path=model).remove(
        object_scene((64, 64)).image
    )
    assert result.method == "grabcut"
    assert str(home) in result.warnings[0] and "outside" in result.warnings[0]


def test_corrupt_weights_fall_back_to_grabcut(home):
    (home / "u2net.onnx").write_bytes(b"not an onnx file")
    scene = object_scene((128, 128))
    result = BackgroundRemover(Settings()).remove(scene.image)
    assert result.method == "grabcut"
    assert "Could not load rembg model u2net" in result.warnings[0]
    assert iou(alpha_of(result.image) > 127, scene.mask) > 0.8


# --- weights absent: GrabCut fallback ------------------------------------------------


def test_missing_weights_use_grabcut_fast_without_rembg(home, monkeypatch):
    def must_not_load(self, lookup):
        raise AssertionError("tried to build a rembg session without weights")

    monkeypatch.setattr(BackgroundRemover, "_load", must_not_load)
    scene = object_scene((512, 512), background="gradient")
    started = time.perf_counter()
    result = BackgroundRemover(Settings()).remove(scene.image.convert("RGBA"))
    assert time.perf_counter() - started < 5.0
    assert result.method == "grabcut"
    (warning,) = result.warnings
    assert "u2net.onnx not found in" in warning and str(home) in warning and "(U2NET_HOME)" in warning
    assert "python -m pipeline.weights download --rembg" in warning
    assert f"place the file at {home / 'u2net.onnx'}" in warning
    assert iou(alpha_of(result.image) > 127, scene.mask) > 0.8


@pytest.mark.parametrize("background_colour", [(255, 255, 255), "gradient", (30, 90, 40)])
def test_grabcut_cutout_covers_the_object(background_colour):
    scene = object_scene((400, 300), color=(200, 180, 40), background=background_colour, shape="rectangle")
    cutout, notes = grabcut_cutout(scene.image)
    assert notes == []
    assert iou(alpha_of(cutout) > 127, scene.mask) > 0.8
    assert np.asarray(cutout)[..., :3].tolist() == np.asarray(scene.image).tolist()  # colours untouched


def test_grabcut_on_1024_is_quick():
    scene = object_scene((1024, 1024))
    grabcut_cutout(scene.image)  # warm OpenCV up
    started = time.process_time()
    cutout, _ = grabcut_cutout(scene.image)
    assert time.process_time() - started < 1.5  # ~0.2 s measured; generous for shared CI cores
    assert iou(alpha_of(cutout) > 127, scene.mask) > 0.9


def test_tiny_image_is_kept_whole():
    cutout, notes = grabcut_cutout(Image.new("RGB", (1, 1), (9, 9, 9)))
    assert cutout.size == (1, 1) and cutout.getpixel((0, 0)) == (9, 9, 9, 255)
    assert "too small" in notes[0]


def test_weights_lookup_follows_rembg_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "rembg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    missing = find_weights("u2net")
    assert missing.path is None and missing.source == "REMBG_HOME"
    assert missing.searched == (tmp_path / "rembg/models/u2net/u2net.onnx", tmp_path / "xdg/.u2net/u2net.onnx")
    flat = write_tiny_u2net(tmp_path / "xdg/.u2net/u2net.onnx")  # rembg's legacy flat folder
    assert find_weights("u2net").path == flat


def test_lookup_agrees_with_rembg(home):
    import rembg

    write_tiny_u2net(home / "models/u2net/u2net.onnx")
    ours = find_weights("u2net").path
    assert ours is not None
    assert Path(rembg.sessions.sessions["u2net"].resolve_existing("u2net.onnx")) == ours


# --- inputs that skip removal ---------------------------------------------------------


def test_transparent_input_is_skipped_unchanged(home):
    cut = cutout_rgba(object_scene((80, 80)))
    result = BackgroundRemover(Settings()).remove(cut)
    assert result.method == "skipped"
    assert result.image is cut
    assert "transparency" in result.warnings[0]


def test_callers_image_is_not_modified(home):
    write_tiny_u2net(home / "u2net.onnx")
    original = object_scene((64, 64)).image.convert("RGBA")
    before = np.asarray(original).copy()
    BackgroundRemover(Settings()).remove(original)
    np.testing.assert_array_equal(np.asarray(original), before)


def test_module_import_does_not_import_rembg():
    import subprocess
    import sys

    code = "import sys, pipeline.background; print('rembg' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(background.__file__).parents[1],
    )
    assert out.stdout.split() == ["False", "False"]
