"""The local texture fill against texgen's full-frame ``cv2.inpaint``."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from bench import texture_fill as bench
from bench.inpaint import bumpy_torus
from pipeline.texture.fill import fill_texture, fill_zone, pull_push, uv_coverage
from pipeline.texture.rasterizer import rasterize


@pytest.fixture(scope="module")
def torus_case() -> dict:
    """The quick benchmark case: bumpy torus atlas, bake-view mask, smooth colour field, vertex inpaint applied."""
    return bench.make_fill_case(quick=True)


def texgen_fill(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return cv2.inpaint((texture * 255).astype(np.uint8), 255 - mask, 3, cv2.INPAINT_NS)


def test_without_region_it_is_texgens_full_frame_fill(torus_case: dict) -> None:
    texture, mask = torus_case["texture"], torus_case["mask"]
    ours = fill_texture((texture * 255).astype(np.uint8), mask)
    np.testing.assert_array_equal(ours, texgen_fill(texture, mask))


def test_fills_like_texgen_where_a_render_looks(torus_case: dict) -> None:
    texture, mask, region, truth = (torus_case[k] for k in ("texture", "mask", "region", "truth"))
    texture8 = (texture * 255).astype(np.uint8)
    ours = fill_texture(texture8, mask, region)
    full = texgen_fill(texture, mask)
    needed, zone = fill_zone(mask > 0, region)
    assert needed.sum() > 1000 and zone.sum() < (mask == 0).sum()  # the test exercises a real partial fill
    diff = np.abs(ours[needed].astype(int) - full[needed].astype(int))
    # At 512 the gutters are thin, so the pad ring is what keeps the two close (at 2048: mean 0.08, p99 2).
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 20
    # Against the true colours ours is no worse.
    in_charts = needed & truth.any(-1)
    truth8 = truth[in_charts] * 255
    assert np.abs(ours[in_charts] - truth8).mean() <= np.abs(full[in_charts] - truth8).mean() + 0.5
    valid = mask > 0
    np.testing.assert_array_equal(ours[valid], texture8[valid])


def test_float_input_keeps_baked_texels_and_dtype(torus_case: dict) -> None:
    texture, mask, region = (torus_case[k] for k in ("texture", "mask", "region"))
    ours = fill_texture(texture, mask, region)
    assert ours.dtype == texture.dtype and ours.shape == texture.shape
    valid = mask > 0
    np.testing.assert_array_equal(ours[valid], texture[valid])
    from_uint8 = fill_texture((texture * 255).astype(np.uint8), mask, region)
    np.testing.assert_allclose(ours[~valid], from_uint8[~valid] / 255, atol=1e-6)


def test_background_gets_plausible_colours_not_black(torus_case: dict) -> None:
    texture, mask, region = (torus_case[k] for k in ("texture", "mask", "region"))
    ours = fill_texture((texture * 255).astype(np.uint8), mask, region)
    _, zone = fill_zone(mask > 0, region)
    background = (mask == 0) & ~zone
    assert background.sum() > 500
    baked_mean = ours[mask > 0].mean(0)
    assert np.abs(ours[background].mean(0) - baked_mean).max() < 40  # a pull-push average, no dark bleed


def test_pull_push_fills_from_the_nearest_data() -> None:
    image = np.zeros((64, 80, 3), dtype=np.uint8)
    valid = np.zeros((64, 80), dtype=bool)
    image[:, :40], valid[:, :40] = (200, 100, 50), True
    filled = pull_push(image, valid)
    np.testing.assert_array_equal(filled[valid], image[valid])
    assert (np.abs(filled[~valid].astype(int) - (200, 100, 50)) <= 1).all()  # one colour in, one colour out
    ramp = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (64, 1))[..., None].repeat(3, -1)
    holes = np.random.default_rng(0).random((64, 80)) < 0.3
    filled = pull_push(ramp, ~holes)
    np.testing.assert_array_equal(filled[~holes], ramp[~holes])
    assert np.abs(filled[holes] - ramp[holes]).max() < 0.1


def test_uv_coverage_matches_texgens_uv_raster() -> None:
    _, _, vtx_uv, uv_idx = bumpy_torus(40, 20)
    size = 128
    # texgen flips v and rasterizes uv * 2 - 1: texel row r <-> v = 1 - r / (size - 1).
    n = len(vtx_uv)
    clip = np.concatenate([vtx_uv[:, :1] * 2 - 1, (1 - vtx_uv[:, 1:]) * 2 - 1, np.zeros((n, 1)), np.ones((n, 1))], 1)
    findices, _ = rasterize(torch.from_numpy(clip.astype(np.float32))[None], torch.from_numpy(uv_idx), (size, size))
    raster = findices.numpy() > 0
    covered = uv_coverage(vtx_uv, uv_idx, (size, size), margin=0)
    assert (raster & ~covered).sum() <= 0.02 * raster.sum()  # edge rules differ by at most a boundary texel
    assert not (raster & ~uv_coverage(vtx_uv, uv_idx, (size, size), margin=1)).any()
    near_raster = cv2.dilate(raster.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not (covered & ~near_raster).any()  # cv2 draws polygon edges inclusively: at most a texel wider


def test_fully_baked_texture_is_returned_unchanged() -> None:
    texture = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = fill_texture(texture, np.full((16, 16), 255, np.uint8))
    np.testing.assert_array_equal(out, texture)
    assert out is not texture


def test_bench_quick_mode_reports_the_ratio_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--runs", "1", "--workers", "2"]) > 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"fill_ratio=\d+(\.\d+)?", lines[-1])


def test_recipe_for_texgens_uv_inpaint(monkeypatch: pytest.MonkeyPatch) -> None:
    """How the texture backend swaps ``MeshRender.uv_inpaint``: texgen's own UVs give the region."""
    from pipeline.texture.inpaint import mesh_vertex_inpaint
    from pipeline.texture.rasterizer import TORCH_RASTERIZER
    from tests.test_rasterizer import _uv_sphere, load_texgen_renderer

    monkeypatch.setitem(__import__("sys").modules, "custom_rasterizer", TORCH_RASTERIZER)
    mesh_render = load_texgen_renderer(monkeypatch)
    pos, faces, uv = _uv_sphere()

    def sphere_render():  # a fresh renderer: on CPU, MeshRender.get_mesh() flips the renderer's own tensors
        render = mesh_render.MeshRender(default_resolution=256, texture_size=256, device="cpu")
        render.set_mesh(pos, faces, vtx_uv=uv, uv_idx=faces)
        return render

    render = sphere_render()
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    view = torch.from_numpy(np.stack([xx, yy, 0.5 + 0 * xx], -1)).float()
    texture, cos_map, _ = render.back_project(view, 0, 0)
    mask = (cos_map[..., 0] > 0).numpy().astype(np.uint8) * 255

    expected = render.uv_inpaint(texture, mask)  # texgen: Python vertex inpaint + full-frame cv2.inpaint
    vtx_pos, pos_idx, vtx_uv, uv_idx = sphere_render().get_mesh()
    texture_np, filled_mask = mesh_vertex_inpaint(texture.numpy(), mask, vtx_pos, vtx_uv, pos_idx, uv_idx)
    region = uv_coverage(vtx_uv, uv_idx, filled_mask.shape)
    # One view leaves half the chart unbaked: holes far wider than the default ring, so size it per hole.
    ours = fill_texture((texture_np * 255).astype(np.uint8), filled_mask, region, pad=None)

    needed, zone = fill_zone(filled_mask > 0, region, pad=None)
    assert needed.sum() > 1000 and zone.sum() < (filled_mask == 0).sum()
    diff = np.abs(ours[needed].astype(int) - expected[needed].astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2
    np.testing.assert_array_equal(ours[mask > 0], expected[mask > 0])
    # Vertex texels hold float64-solved colours; truncating x * 255 to uint8 may differ by one level.
    vertex_texels = (filled_mask > 0) & (mask == 0)
    assert np.abs(ours[vertex_texels].astype(int) - expected[vertex_texels].astype(int)).max() <= 1
