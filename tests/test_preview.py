"""The response's preview image: a CPU render of the final model through our rasterizer."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import trimesh
from PIL import Image

import worker
from pipeline import preview


@pytest.fixture(autouse=True)
def fresh_pipeline(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (512, 512)
        return np.asarray(img.convert("RGBA"))


def model_share(rgba: np.ndarray) -> float:
    return float((rgba[..., 3] > 0).mean())


def run(subject_b64: str, **fields) -> dict:
    payload = {"image": subject_b64, "model": "draft", "remove_background": False, "max_faces": 5000, **fields}
    return worker.handler({"id": "preview-job", "input": payload})


def test_textured_job_preview_shows_the_model_in_colour(subject_b64):
    response = run(subject_b64, preview=True)
    assert "error" not in response, response
    assert response["textured"] is True
    rgba = decode(base64.b64decode(response["preview_png_base64"]))
    assert model_share(rgba) >= 0.05
    assert rgba[0, 0, 3] == 0 and rgba[-1, -1, 3] == 0  # transparent background
    model = rgba[rgba[..., 3] == 255][:, :3].astype(int)
    # The subject is a red ball with a blue stripe on white: both colours show.
    red = (model[:, 0] > model[:, 1] + 60) & (model[:, 0] > model[:, 2] + 60)
    blue = (model[:, 2] > model[:, 0] + 60) & (model[:, 2] > model[:, 1] + 60)
    assert red.mean() > 0.05 and blue.mean() > 0.005, (red.mean(), blue.mean())
    assert "preview" in response["timings"] and response["timings"]["preview"] > 0


def test_untextured_preview_is_grey_and_shaded(subject_b64):
    response = run(subject_b64, preview=True, generate_texture=False)
    rgba = decode(base64.b64decode(response["preview_png_base64"]))
    model = rgba[rgba[..., 3] == 255][:, :3].astype(int)
    assert model_share(rgba) >= 0.05
    assert np.abs(model[:, 0] - model[:, 2]).max() <= 2  # grey, no colour
    assert model[:, 0].std() > 10  # lit: not one flat tone


def test_no_preview_unless_asked(subject_b64):
    response = run(subject_b64)
    assert "preview_png_base64" not in response and "preview" not in response["timings"]


def test_preview_is_a_three_quarter_view():
    """A flat slab (wide, thin in depth) looks wide from the front (5:3) and
    narrow from the side; three-quarter on, its silhouette is in between."""
    slab = trimesh.creation.box(extents=(1.0, 0.6, 0.2))
    rgba = preview.render_preview_rgba(slab)
    ys, xs = np.nonzero(rgba[..., 3])
    ratio = (xs.max() - xs.min()) / (ys.max() - ys.min())
    assert 1.0 < ratio < 1.4, ratio
    assert xs.min() > 0 and xs.max() < 511 and ys.min() > 0 and ys.max() < 511  # fully in frame
    assert model_share(rgba) >= 0.05


def test_culling_keeps_the_picture():
    """Back faces of a closed mesh are dropped; the render matches drawing all of them."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    culled = preview.render_preview_rgba(sphere)
    open_mesh = trimesh.Trimesh(sphere.vertices, sphere.faces[:-1], process=False)  # not closed: nothing culled
    full = preview.render_preview_rgba(open_mesh)
    differs = np.abs(culled.astype(int) - full.astype(int)).max(axis=-1) > 2
    assert differs.mean() < 0.01


def test_noisy_texture_stays_under_the_size_target():
    """A texture of pure noise is the worst case for PNG; the palette fallback keeps it under 150 KB."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (512, 512, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    png = preview.encode_preview_png(rgba)
    assert len(png) <= preview.MAX_PREVIEW_BYTES
    assert decode(png).shape == (512, 512, 4)


def test_preview_counts_against_the_inline_budget(subject_b64, monkeypatch):
    """The preview's base64 shares the /run body with the GLB, so the GLB's budget shrinks by it."""
    monkeypatch.setenv("HY3D_INLINE_BUDGET_MB", "0.05")
    fields = {"generate_texture": False, "max_faces": 1000, "smooth_normals": False}
    alone = run(subject_b64, **fields)
    assert "error" not in alone and alone["file_size"] < 40_000, alone.get("error", alone.get("file_size"))
    # A preview whose base64 leaves less room than the GLB needs.
    fake_png = b"\x89PNG" + b"x" * ((50_000 - alone["file_size"]) + 1000)
    monkeypatch.setattr(preview, "render_preview_png", lambda mesh: fake_png)
    assert "inline limit" in run(subject_b64, preview=True, **fields)["error"]


def test_closed_surface_check_agrees_with_trimesh():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    faces = np.asarray(sphere.faces)
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    for candidate, expected in ((faces, True), (faces[:-1], False), (flipped, False)):
        mesh = trimesh.Trimesh(sphere.vertices, candidate, process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent or not expected
        assert preview._closed_and_consistent(candidate, len(sphere.vertices)) is expected
