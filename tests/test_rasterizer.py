"""The PyTorch stand-in for Hunyuan3D's ``custom_rasterizer``.

The reference below is a scalar, per-pixel transcription of what the compiled
kernel does (bounding-box loop, pixel-centre barycentrics, packed z-buffer
keys, then perspective-corrected barycentrics of the winner), computed with
numpy float32 scalars. The vectorised version must agree with it exactly.
The analytic tests pin the same conventions without the reference.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.texture import rasterizer as rast
from pipeline.texture.rasterizer import TORCH_RASTERIZER, install_rasterizer, interpolate, rasterize

F32 = np.float32
MAXINT = 2147483647


# --- scalar reference of the kernel ---------------------------------------------------------------------------


def _ref_screen(p: np.ndarray, height: int, width: int) -> tuple[F32, F32, F32]:
    x, y, z, w = (F32(c) for c in p)
    sx = (x / w * F32(0.5) + F32(0.5)) * F32(width - 1) + F32(0.5)
    sy = (F32(0.5) + F32(0.5) * y / w) * F32(height - 1) + F32(0.5)
    return sx, sy, z / w * F32(0.49999) + F32(0.5)


def _ref_area2(a, b, c) -> F32:
    return (c[0] - a[0]) * (b[1] - a[1]) - (b[0] - a[0]) * (c[1] - a[1])


def _ref_bary(a, b, c, p) -> list[F32]:
    area = _ref_area2(a, b, c)
    if area == 0:
        return [F32(-1)] * 3
    inv = F32(1.0 / float(area))
    beta, gamma = _ref_area2(a, p, c) * inv, _ref_area2(a, b, p) * inv
    return [F32(1.0 - float(beta) - float(gamma)), beta, gamma]


def reference_rasterize(pos: np.ndarray, tri: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=np.float32)
    empty = MAXINT * MAXINT + MAXINT - 1
    zbuf = [empty] * (height * width)
    screen = [_ref_screen(p, height, width) for p in pos]
    for face, (a, b, c) in enumerate(tri):
        v0, v1, v2 = screen[a], screen[b], screen[c]
        x_min, x_max = min(v0[0], v1[0], v2[0]), max(v0[0], v1[0], v2[0])
        y_min, y_max = min(v0[1], v1[1], v2[1]), max(v0[1], v1[1], v2[1])
        px = int(x_min)
        while px < x_max + F32(1):
            py = int(y_min)
            while 0 <= px < width and py < y_max + F32(1):
                if 0 <= py < height:
                    bc = _ref_bary(v0, v1, v2, (F32(px + 0.5), F32(py + 0.5)))
                    if all(0 <= t <= 1 for t in bc):
                        depth = bc[0] * v0[2] + bc[1] * v1[2] + bc[2] * v2[2]
                        if not depth < 0:
                            token = int(depth * F32(262144)) * MAXINT + face + 1
                            zbuf[py * width + px] = min(zbuf[py * width + px], token)
                py += 1
            px += 1
    findices = np.zeros(height * width, dtype=np.int32)
    bary = np.zeros((height * width, 3), dtype=np.float32)
    for pix, token in enumerate(zbuf):
        if token % MAXINT == MAXINT - 1:
            continue
        face = token % MAXINT - 1
        findices[pix] = face + 1
        a, b, c = tri[face]
        bc = _ref_bary(screen[a], screen[b], screen[c], (F32(pix % width) + F32(0.5), F32(pix // width) + F32(0.5)))
        bc = [bc[0] / pos[a][3], bc[1] / pos[b][3], bc[2] / pos[c][3]]
        norm = F32(1) / (bc[0] + bc[1] + bc[2])
        bary[pix] = [bc[0] * norm, bc[1] * norm, bc[2] * norm]
    return findices.reshape(height, width), bary.reshape(height, width, 3)


def _run(pos: np.ndarray, tri: np.ndarray, height: int, width: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    findices, bary = rasterize(
        torch.from_numpy(np.asarray(pos, np.float32))[None],
        torch.from_numpy(np.asarray(tri, np.int32)),
        (height, width),
        **kwargs,
    )
    assert findices.dtype == torch.int32 and bary.dtype == torch.float32
    assert findices.shape == (height, width) and bary.shape == (height, width, 3)
    return findices.numpy(), bary.numpy()


@pytest.mark.parametrize("seed", range(12))
def test_matches_kernel_reference_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(s) for s in rng.integers(5, 22, 2))
    n = 9
    pos = rng.uniform(-1.3, 1.3, (n, 4)).astype(np.float32)
    pos[:, 3] = rng.uniform(0.5, 2.0, n) if seed % 2 else 1.0
    if seed % 3 == 0:  # edges through pixel centres, shared vertices: exercises the inclusive test and ties
        pos[:, :2] = np.round(pos[:, :2] * 4) / 4
    tri = rng.integers(0, n, (7, 3))
    expected = reference_rasterize(pos, tri, height, width)
    got = _run(pos, tri, height, width, budget=5)  # tiny chunks: every face boundary case
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# --- analytic conventions -------------------------------------------------------------------------------------


def _ndc(col: float, row: float, height: int, width: int) -> tuple[float, float]:
    """ndc (x, y) whose pixel centre is (col, row): centres span [-1, 1] inclusive, row 0 at y = -1."""
    return 2 * col / (width - 1) - 1, 2 * row / (height - 1) - 1


def test_single_triangle_ids_and_barycentrics() -> None:
    # 17 x 17 pixels and legs of 8 keep every coordinate and 1 / area exact in float32, so the hypotenuse,
    # which runs through pixel centres, must be covered (the kernel's test is inclusive).
    height = width = 17
    corners = [(2, 2), (10, 2), (2, 10)]  # (col, row) pixel centres
    pos = np.array([[*_ndc(c, r, height, width), 0.0, 1.0] for c, r in corners], dtype=np.float32)
    findices, bary = _run(pos, [[0, 1, 2]], height, width)
    rows, cols = np.mgrid[0:height, 0:width]
    inside = (cols >= 2) & (rows >= 2) & (cols + rows <= 12)
    np.testing.assert_array_equal(findices, inside.astype(np.int32))
    beta, gamma = (cols - 2) / 8, (rows - 2) / 8
    expected = np.stack([1 - beta - gamma, beta, gamma], axis=-1)
    np.testing.assert_array_equal(bary[inside], expected[inside].astype(np.float32))
    assert not bary[~inside].any()


def test_no_y_flip_and_corner_aligned_pixel_centres() -> None:
    height, width = 6, 8
    # A small triangle around ndc (-1, -1): it must land in row 0, column 0 (no y flip).
    pos = np.array([[-1.05, -1.05, 0, 1], [-0.95, -1.05, 0, 1], [-1.05, -0.95, 0, 1]], dtype=np.float32)
    findices, _ = _run(pos, [[0, 1, 2]], height, width)
    assert findices[0, 0] == 1 and findices.sum() == 1
    # Around ndc (+1, +1): the last row and column, i.e. the outermost centres sit exactly on +-1.
    findices, _ = _run(-pos * [1, 1, 1, -1], [[0, 1, 2]], height, width)
    assert findices[height - 1, width - 1] == 1 and findices.sum() == 1


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearer_triangle_wins_in_either_order(order: tuple[int, int]) -> None:
    height = width = 16
    square = [(-0.9, -0.9), (0.9, -0.9), (-0.9, 0.9)]
    depths = {0: 0.3, 1: -0.4}  # ndc z; smaller is nearer
    pos = np.array([[x, y, depths[k], 1.0] for k in order for x, y in square], dtype=np.float32)
    tri = np.arange(6).reshape(2, 3)
    findices, _ = _run(pos, tri, height, width)
    nearer = order.index(1) + 1
    covered = findices > 0
    assert covered.sum() > 50
    assert (findices[covered] == nearer).all()


def test_equal_depth_goes_to_lower_face_and_near_clip_drops() -> None:
    height = width = 12
    square = [(-0.9, -0.9), (0.9, -0.9), (-0.9, 0.9)]
    pos = np.array([[x, y, 0.1, 1.0] for _ in range(2) for x, y in square], dtype=np.float32)
    findices, _ = _run(pos, np.arange(6).reshape(2, 3), height, width)
    assert set(np.unique(findices)) == {0, 1}  # UV rasterization relies on this tie rule
    pos[:3, 2] = -1.01  # depth = z * 0.49999 + 0.5 < 0: dropped, so face 2 shows through
    findices, _ = _run(pos, np.arange(6).reshape(2, 3), height, width)
    assert set(np.unique(findices)) == {0, 2}


def _cube() -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    faces = np.array(faces)
    normals = np.cross(corners[faces[:, 1]] - corners[faces[:, 0]], corners[faces[:, 2]] - corners[faces[:, 0]])
    outward = (normals * corners[faces].mean(1)).sum(1) > 0
    faces[~outward] = faces[~outward][:, ::-1]
    return corners, faces


def _orthographic_clip(points: np.ndarray, rotation: np.ndarray, scale: float) -> np.ndarray:
    """Camera on +z of the rotated frame looking down -z; nearer points get smaller ndc z."""
    cam = points @ rotation.T
    return np.concatenate([cam[:, :2] / scale, -cam[:, 2:] / 4, np.ones((len(cam), 1))], axis=1).astype(np.float32)


def test_cube_front_view_covers_the_analytic_square() -> None:
    size, scale = 64, 0.8
    corners, faces = _cube()
    findices, _ = _run(_orthographic_clip(corners, np.eye(3), scale), faces, size, size)
    front = {i + 1 for i, f in enumerate(faces) if np.allclose(corners[f][:, 2], 0.5)}
    assert set(np.unique(findices)) - {0} == front
    centres = 2 * np.arange(size) / (size - 1) - 1
    per_axis = int((np.abs(centres) <= 0.5 / scale + 1e-6).sum())
    assert (findices > 0).sum() == per_axis**2


def test_cube_oblique_view_shows_only_front_faces_with_analytic_area() -> None:
    size, scale = 128, 1.0
    a, b = math.radians(35), math.radians(25)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rotation = rx @ ry
    corners, faces = _cube()
    findices, _ = _run(_orthographic_clip(corners, rotation, scale), faces, size, size)
    cam = corners @ rotation.T
    normals = np.cross(cam[faces[:, 1]] - cam[faces[:, 0]], cam[faces[:, 2]] - cam[faces[:, 0]])
    facing = {i + 1 for i in np.flatnonzero(normals[:, 2] > 1e-9)}
    assert set(np.unique(findices)) - {0} == facing
    # Silhouette area: the three visible faces' projected areas, in pixels (pixel pitch 2 / (size - 1)).
    area_ndc = 0.5 * np.abs(normals[:, 2][normals[:, 2] > 0]).sum() / scale**2
    expected = area_ndc / (2 / (size - 1)) ** 2
    assert abs((findices > 0).sum() - expected) < 0.03 * expected


def test_barycentrics_are_perspective_correct() -> None:
    size, focal = 32, 1.5
    tri_cam = np.array([[-0.6, -0.5, -1.5], [0.7, -0.4, -3.0], [-0.2, 0.8, -2.2]])  # camera looks down -z
    w = -tri_cam[:, 2]
    clip = np.stack([focal * tri_cam[:, 0], focal * tri_cam[:, 1], (w - 2) / 2, w], axis=1).astype(np.float32)
    findices, bary = _run(clip, [[0, 1, 2]], size, size)
    rows, cols = np.nonzero(findices)
    assert len(rows) > 40
    point = bary[rows, cols] @ tri_cam  # the interpolated 3-D point must lie on the pixel's ray
    x_ndc, y_ndc = _ndc(cols, rows, size, size)
    np.testing.assert_allclose(focal * point[:, 0] / -point[:, 2], x_ndc, atol=2e-5)
    np.testing.assert_allclose(focal * point[:, 1] / -point[:, 2], y_ndc, atol=2e-5)


def test_interpolate_matches_hand_values_and_zeros_empty_pixels() -> None:
    height = width = 17
    pos = np.array([[*_ndc(c, r, height, width), 0.0, 1.0] for c, r in [(2, 2), (10, 2), (2, 10)]], dtype=np.float32)
    uv = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    findices, bary = rasterize(
        torch.from_numpy(pos)[None], torch.tensor([[0, 1, 2]], dtype=torch.int32), (height, width)
    )
    out = interpolate(uv, findices, bary, torch.tensor([[0, 1, 2]], dtype=torch.int32))
    assert out.shape == (1, height, width, 2)
    rows, cols = np.mgrid[0:height, 0:width]
    inside = findices.numpy() > 0
    np.testing.assert_allclose(out[0, ..., 0].numpy()[inside], ((cols - 2) / 8)[inside], atol=1e-7)
    np.testing.assert_allclose(out[0, ..., 1].numpy()[inside], ((rows - 2) / 8)[inside], atol=1e-7)
    assert not out[0].numpy()[~inside].any()
    # mesh_render passes findices as float (sliced out of a float tensor), and attributes may differ from positions.
    positions = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]]])
    as_float = interpolate(positions, findices.float(), bary, torch.tensor([[0, 1, 2]]))
    expected = bary.numpy() @ positions[0].numpy()
    np.testing.assert_allclose(as_float[0].numpy(), np.where(inside[..., None], expected, 0), atol=1e-5)


def test_chunk_budget_does_not_change_the_result() -> None:
    rng = np.random.default_rng(7)
    pos = np.concatenate([rng.uniform(-1, 1, (60, 3)), np.ones((60, 1))], axis=1).astype(np.float32)
    tri = rng.integers(0, 60, (80, 3))
    small = _run(pos, tri, 40, 48, budget=97)
    large = _run(pos, tri, 40, 48, budget=1 << 24)
    np.testing.assert_array_equal(small[0], large[0])
    np.testing.assert_array_equal(small[1], large[1])


def test_depth_prior_keeps_only_fragments_behind_it() -> None:
    height = width = 10
    pos = np.array([[-0.9, -0.9, 0.0, 1], [0.9, -0.9, 0.0, 1], [-0.9, 0.9, 0.0, 1]], dtype=np.float32)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    prior = torch.full((height, width), -0.5)  # ndc z of a surface in front of the triangle (z = 0) ...
    prior[: height // 2] = 0.5  # ... except in the lower rows, where it lies behind
    findices, _ = rasterize(torch.from_numpy(pos)[None], tri, (height, width), clamp_depth=prior, use_depth_prior=1)
    plain, _ = rasterize(torch.from_numpy(pos)[None], tri, (height, width))
    assert not findices[: height // 2].any()  # upstream drops fragments nearer than prior + truncation
    assert findices[height // 2 :].any() and torch.equal(findices[height // 2 :], plain[height // 2 :])
    # A prior far in front lets a triangle behind the near plane through the test, but its negative
    # quantised depth wraps to a huge unsigned key in the kernel and never lands.
    behind = torch.from_numpy(pos.copy())
    behind[:, 2] = -1.05
    findices, _ = rasterize(
        behind[None], tri, (height, width), clamp_depth=torch.full((height, width), -2.0), use_depth_prior=1
    )
    assert not findices.any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(3)
    pos = torch.from_numpy(np.concatenate([rng.uniform(-1, 1, (500, 3)), rng.uniform(0.8, 1.2, (500, 1))], 1))
    tri = torch.from_numpy(rng.integers(0, 500, (900, 3))).int()
    cpu = rasterize(pos.float()[None], tri, (128, 96))
    gpu = rasterize(pos.float().cuda()[None], tri.cuda(), (128, 96))
    assert gpu[0].is_cuda and gpu[1].is_cuda
    assert (gpu[0].cpu() != cpu[0]).float().mean() < 1e-3
    same = gpu[0].cpu() == cpu[0]
    torch.testing.assert_close(gpu[1].cpu()[same], cpu[1][same], atol=1e-5, rtol=0)


# --- installation and texgen integration ----------------------------------------------------------------------


def test_install_rasterizer_registers_the_torch_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # An earlier test may have installed our module already; look past it for a compiled one.
    monkeypatch.delitem(sys.modules, "custom_rasterizer", raising=False)
    if importlib.util.find_spec("custom_rasterizer") is not None:
        pytest.skip("the compiled extension is installed here")
    assert install_rasterizer() == "torch"
    import custom_rasterizer

    assert custom_rasterizer is TORCH_RASTERIZER
    assert custom_rasterizer.rasterize is rast.rasterize and custom_rasterizer.interpolate is rast.interpolate
    assert install_rasterizer() == "torch"  # idempotent: our own module is not mistaken for the compiled one


def test_install_rasterizer_prefers_a_compiled_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = types.ModuleType("custom_rasterizer")
    monkeypatch.setitem(sys.modules, "custom_rasterizer", compiled)
    assert install_rasterizer() == "compiled"
    assert sys.modules["custom_rasterizer"] is compiled


def load_texgen_renderer(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """texgen's ``mesh_render`` module; without paying for (or needing) the diffusers that its package imports."""
    if "hy3dgen.texgen" in sys.modules:
        return importlib.import_module("hy3dgen.texgen.differentiable_renderer.mesh_render")
    spec = importlib.util.find_spec("hy3dgen")
    if spec is None:
        pytest.skip("hy3dgen is not installed")
    before = {name for name in sys.modules if name.startswith("hy3dgen.texgen")}
    package = types.ModuleType("hy3dgen.texgen")
    package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "texgen")]
    monkeypatch.setitem(sys.modules, "hy3dgen.texgen", package)
    module = importlib.import_module("hy3dgen.texgen.differentiable_renderer.mesh_render")
    for name in {n for n in sys.modules if n.startswith("hy3dgen.texgen.")} - before:
        monkeypatch.setitem(sys.modules, name, sys.modules[name])  # removed again after the test
    return module


def _uv_sphere(n_lat: int = 24, n_lon: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon + 1)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pos = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1).reshape(-1, 3)
    uv = np.stack([lo / (2 * np.pi), 1 - la / np.pi], -1).reshape(-1, 2) * 0.9 + 0.05
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a = (i * (n_lon + 1) + j).reshape(-1)
    b, c, d = a + n_lon + 1, a + n_lon + 2, a + 1
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return pos.astype(np.float32), faces.astype(np.int64), uv.astype(np.float32)


def test_texgen_mesh_render_runs_on_the_torch_rasterizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "custom_rasterizer", TORCH_RASTERIZER)
    mesh_render = load_texgen_renderer(monkeypatch)
    render = mesh_render.MeshRender(default_resolution=64, texture_size=64, device="cpu")
    pos, faces, uv = _uv_sphere()
    render.set_mesh(pos, faces, vtx_uv=uv, uv_idx=faces)

    position = render.render_position(0, 0, return_type="th")  # texgen's position-map convention
    assert position.shape == (64, 64, 3)
    covered = (position != 1).any(-1)
    radius_px = render.scale_factor / 2 / (render.ortho_scale / 2) * 31.5  # sphere radius in pixel pitches
    assert abs(covered.sum().item() - math.pi * radius_px**2) < 0.05 * math.pi * radius_px**2
    assert (position[covered] >= -1e-4).all() and (position[covered] <= 1 + 1e-4).all()

    normal = render.render_normal(0, 0, use_abs_coor=True, return_type="np")
    assert normal.shape == (64, 64, 3) and np.isfinite(normal).all()

    uv_map = render.uv_feature_map(render.vtx_pos * 0.5 + 0.5)
    assert uv_map.shape == (64, 64, 3) and (uv_map.abs().sum(-1) > 0).float().mean() > 0.7

    image = torch.full((64, 64, 3), 0.25)
    texture, cos_map, _ = render.back_project(image, 0, 0)
    baked = cos_map[..., 0] > 0
    assert baked.sum() > 50
    torch.testing.assert_close(texture[baked], torch.full_like(texture[baked], 0.25), atol=1e-5, rtol=0)
