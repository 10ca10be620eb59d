"""The compiled vertex inpaint against texgen's own pure-Python ``meshVerticeInpaint``: bit-identical outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bench import inpaint as bench
from pipeline.texture import inpaint as inp
from pipeline.texture.inpaint import install_inpaint, mesh_vertex_inpaint
from tests.test_rasterizer import load_texgen_renderer

ROOT = Path(__file__).resolve().parents[1]
original = bench.load_original().meshVerticeInpaint


def assert_same(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Ours must return exactly the original's texture and mask, and leave the inputs alone."""
    inputs = {k: v.copy() for k, v in case.items()}
    old_texture, old_mask = original(**{k: v.copy() for k, v in case.items()})
    new_texture, new_mask = mesh_vertex_inpaint(**inputs)
    for key, value in case.items():
        np.testing.assert_array_equal(inputs[key], value, err_msg=f"{key} was modified")
    assert new_texture.dtype == old_texture.dtype and new_mask.dtype == old_mask.dtype
    np.testing.assert_array_equal(new_mask, old_mask)
    np.testing.assert_array_equal(new_texture, old_texture)
    return new_texture, new_mask


def passes_needed(case: dict) -> int:
    """How many smoothing passes the original runs on ``case`` (white-box, to prove a test covers many)."""
    return inp.vertex_colours(**case).passes


def random_case(
    seed: int, subdivisions: int = 2, per_corner_uv: bool = False, density: float = 0.6, size: int = 48
) -> dict:
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    faces = sphere.faces.astype(np.int32)
    if per_corner_uv:  # every corner its own UV: vertices end up with both baked and unbaked corners
        uv_idx = np.arange(faces.size, dtype=np.int32).reshape(-1, 3)
        vtx_uv = rng.random((faces.size, 2)).astype(np.float32)
    else:
        uv_idx = faces.copy()
        vtx_uv = rng.random((len(sphere.vertices), 2)).astype(np.float32)
    return {
        "texture": rng.random((size, size, 3), dtype=np.float32),
        "mask": np.where(rng.random((size, size)) < density, 255, 0).astype(np.uint8),
        "vtx_pos": (sphere.vertices * rng.uniform(0.5, 1.5, (len(sphere.vertices), 1))).astype(np.float32),
        "vtx_uv": vtx_uv,
        "pos_idx": faces,
        "uv_idx": uv_idx,
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_corner_uv", [False, True])
def test_random_icospheres_match_the_original(seed: int, per_corner_uv: bool) -> None:
    density = [0.15, 0.4, 0.7, 0.9, 0.05, 0.5][seed]
    assert_same(random_case(seed, per_corner_uv=per_corner_uv, density=density))


def test_slow_propagation_over_many_passes_matches() -> None:
    # Only the texels near one UV corner are baked: colour must crawl across the sphere, against the face
    # order as often as with it, so the original needs many Gauss-Seidel passes.
    case = random_case(11, subdivisions=3, density=0.0, size=64)
    unit = case["vtx_pos"] / np.linalg.norm(case["vtx_pos"], axis=1, keepdims=True)
    case["vtx_uv"] = (unit[:, :2] * 0.45 + 0.5).astype(np.float32)  # per-vertex UVs: a projection along z
    case["mask"][:, :6] = 255  # only u < 0.1 is baked: a small cap around x = -1
    case["pos_idx"] = case["uv_idx"] = case["pos_idx"][::-1].copy()  # sweep away from the cap
    assert passes_needed(case) >= 8
    texture, mask = assert_same(case)
    assert (mask != case["mask"]).sum() > 100


def test_realistic_torus_with_bake_views_mask_matches() -> None:
    case = bench.make_case(quick=True)
    texture, mask = assert_same(case)
    assert (mask != case["mask"]).any()


def test_trimesh_capsule_with_seamed_uvs_matches() -> None:
    capsule = trimesh.creation.capsule(height=1.0, radius=0.4, count=[24, 24])
    v = capsule.vertices
    u = np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi) + 0.5
    w = (v[:, 2] - v[:, 2].min()) / np.ptp(v[:, 2])
    faces = capsule.faces.astype(np.int32)
    corner_u = u[faces]
    wrap = (corner_u.max(1, keepdims=True) - corner_u) > 0.5  # faces across the seam get u + 1 on the low side
    corner_u = np.where(wrap, corner_u + 1, corner_u)
    corner_u = corner_u / corner_u.max() * 0.96 + 0.02
    vtx_uv = np.stack([corner_u.reshape(-1), w[faces].reshape(-1) * 0.96 + 0.02], 1).astype(np.float32)
    uv_idx = np.arange(faces.size, dtype=np.int32).reshape(-1, 3)  # per-corner UVs: the seam splits vertices
    baked = bench.baked_faces(v.astype(np.float32), faces, 96)
    size = 128
    case = {
        "texture": np.random.default_rng(2).random((size, size, 3), dtype=np.float32),
        "mask": bench.texel_mask(vtx_uv, uv_idx, baked, size),
        "vtx_pos": v.astype(np.float32),
        "vtx_uv": vtx_uv,
        "pos_idx": faces,
        "uv_idx": uv_idx,
    }
    assert_same(case)


def test_float64_and_uint8_inputs() -> None:
    case = random_case(3, per_corner_uv=True, density=0.5)
    wide = dict(
        case,
        texture=case["texture"].astype(np.float64),
        vtx_pos=case["vtx_pos"].astype(np.float64),
        vtx_uv=case["vtx_uv"].astype(np.float64),
    )
    assert_same(wide)
    # uint8 colours: averages are float32, truncated when written back, as numpy's assignment does.
    assert_same(dict(case, texture=(case["texture"] * 255).astype(np.uint8)))
    # Mixed: float32 colours with float64 positions make float64 weights and averages in the original.
    assert_same(dict(case, vtx_pos=case["vtx_pos"].astype(np.float64)))


def test_degenerate_geometry_matches() -> None:
    case = random_case(5, density=0.4)
    pos = case["vtx_pos"].copy()
    pos[1] = pos[0]  # coincident vertices: the original clamps the distance to 1e-4 (weight 1e8)
    pos[2] = pos[0] + 1e-6
    faces = case["pos_idx"].copy()
    faces[:5, 2] = faces[:5, 1]  # faces that repeat a vertex, so G lists it twice
    faces[5] = [7, 7, 7]
    assert_same(dict(case, vtx_pos=pos, pos_idx=faces))


def test_unreachable_vertices_stay_unwritten() -> None:
    case = random_case(4, density=0.5)
    n = len(case["vtx_pos"])
    island = np.array([[0, 1, 2]], dtype=np.int32) + n  # a separate triangle whose corners are all unbaked
    case["vtx_pos"] = np.concatenate([case["vtx_pos"], np.eye(3, dtype=np.float32) * 3])
    case["vtx_uv"] = np.concatenate([case["vtx_uv"], np.full((3, 2), 0.5, dtype=np.float32)])
    case["pos_idx"] = np.concatenate([case["pos_idx"], island])
    case["uv_idx"] = np.concatenate([case["uv_idx"], island])
    case["mask"][23:26, 23:26] = 0
    texture, mask = assert_same(case)
    assert mask[24, 24] == 0 and texture[24, 24].tolist() == case["texture"][24, 24].tolist()


@pytest.mark.parametrize("fill", [0, 255])
def test_all_or_nothing_masks(fill: int) -> None:
    case = random_case(6, per_corner_uv=True)
    case["mask"][:] = fill
    texture, mask = assert_same(case)
    if fill == 0:  # nothing is baked: nothing can be coloured
        np.testing.assert_array_equal(texture, case["texture"])
        np.testing.assert_array_equal(mask, case["mask"])


def test_channel_last_mask_and_negative_uvs_match() -> None:
    """An [H, W, 1] mask works as in the original, and slightly negative UVs wrap like numpy indices."""
    case = random_case(7, per_corner_uv=True, density=0.5)
    case["vtx_uv"][:10] -= 0.02
    assert (np.rint(case["vtx_uv"][:10] * 47) < 0).any()
    assert_same(dict(case, mask=case["mask"][..., None]))


def test_uvs_beyond_the_texture_raise_like_the_original() -> None:
    case = random_case(8)
    case["vtx_uv"][0] = [1.2, 0.5]
    with pytest.raises(IndexError):
        original(**case)
    with pytest.raises(IndexError, match="outside the texture"):
        mesh_vertex_inpaint(**case)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda c: c.update(pos_idx=c["pos_idx"] + len(c["vtx_pos"])), IndexError, r"pos_idx refers to rows"),
        (lambda c: c.update(uv_idx=-c["uv_idx"] - 1), IndexError, r"uv_idx refers to rows"),
        (lambda c: c.update(uv_idx=c["uv_idx"][:-1]), ValueError, r"same shape"),
        (lambda c: c.update(pos_idx=c["pos_idx"].astype(np.float32)), ValueError, r"pos_idx must be an integer"),
        (lambda c: c.update(mask=c["mask"][:-1]), ValueError, r"mask shape"),
        (lambda c: c.update(texture=c["texture"][..., 0]), ValueError, r"texture must be \[H, W, C\]"),
    ],
)
def test_malformed_inputs_get_a_clear_error(change, error, message) -> None:
    """Checked before the compiled loop, which does no bounds checks of its own."""
    case = random_case(9)
    change(case)
    with pytest.raises(error, match=message):
        mesh_vertex_inpaint(**case)


def test_warm_up_compiles_the_kernels_for_texgens_types() -> None:
    """In a fresh process, nothing is compiled until ``warm_up``; after it, texgen's float32/uint8 call is."""
    script = (
        "import numba, pipeline.texture.inpaint as inp\n"
        "assert not inp._vertex_colours_kernel.signatures\n"
        "inp.warm_up()\n"
        "texture, mask = inp._vertex_colours_kernel.signatures[0][:2]\n"
        "assert (texture.dtype, texture.ndim, mask.dtype, mask.ndim) == (numba.float32, 3, numba.uint8, 2)\n"
        "assert inp._paint.signatures\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=120)


def test_no_writable_numba_cache_still_compiles() -> None:
    """A read-only install with an unwritable home: numba finds no cache locator and we compile in memory."""
    script = (
        "import pipeline.texture.inpaint as inp\n"
        "assert type(inp._vertex_colours_kernel._cache).__name__ == 'NullCache'\n"
        "inp.warm_up()\n"
    )
    # The only locator left applies to IPython cells, so numba finds none for a file, as with no writable place.
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="IPythonCacheLocator")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "numba cannot cache _vertex_colours_kernel" in done.stderr


def test_unknown_method_is_rejected() -> None:
    case = random_case(0)
    with pytest.raises(ValueError):
        mesh_vertex_inpaint(**case, method="forward")


def test_install_inpaint_patches_texgen(monkeypatch: pytest.MonkeyPatch) -> None:
    mesh_render = load_texgen_renderer(monkeypatch)
    processor = sys.modules["hy3dgen.texgen.differentiable_renderer.mesh_processor"]
    monkeypatch.setattr(mesh_render, "meshVerticeInpaint", mesh_render.meshVerticeInpaint)
    monkeypatch.setattr(processor, "meshVerticeInpaint", processor.meshVerticeInpaint)
    patched = install_inpaint()
    assert set(patched) == {processor.__name__, mesh_render.__name__}
    assert mesh_render.meshVerticeInpaint is mesh_vertex_inpaint
    assert processor.meshVerticeInpaint is mesh_vertex_inpaint


def test_bench_quick_mode_reports_the_ratio_last(capsys: pytest.CaptureFixture[str]) -> None:
    ratio = bench.main(["--quick", "--new-runs", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"inpaint_ratio=\d+(\.\d+)?", lines[-1])
    assert ratio > 1 and "masks_equal=True" in "\n".join(lines)


def _inpaint_in_child(case: dict, queue) -> None:
    texture, mask = mesh_vertex_inpaint(**case)
    queue.put((texture, mask))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_works_in_a_forked_child_after_use_in_the_parent() -> None:
    """The helper thread belongs to the call, so a child forked after a call (as a
    forking server would) runs the inpaint instead of waiting on a thread it never inherited."""
    import multiprocessing

    case = random_case(5)
    expected = mesh_vertex_inpaint(**case)  # the parent has used the helper
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_inpaint_in_child, args=(case, queue))
    child.start()
    try:
        texture, mask = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(mask, expected[1])
    np.testing.assert_array_equal(texture, expected[0])
