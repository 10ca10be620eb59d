"""Tests of the draft backend (silhouette inflation) on synthetic images."""

from __future__ import annotations

import io
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image

from pipeline.backends.draft import DraftBackend
from pipeline.errors import InputError
from pipeline.mesh import inflate
from pipeline.mesh.inflate import DEPTH_RATIO, EXTENT, MAX_TEXTURE, inflate_silhouette
from pipeline.options import GenerationOptions
from pipeline.types import ShapeOutput

ROOT = Path(__file__).resolve().parent.parent
RED, GREEN, BLUE = (255, 0, 0), (0, 200, 0), (0, 0, 255)


def rgba(alpha: np.ndarray, colour: tuple[int, int, int] = (180, 120, 60)) -> np.ndarray:
    """An RGBA image of one colour whose alpha is ``alpha``."""
    rgb = np.empty(alpha.shape + (3,), np.uint8)
    rgb[:] = colour
    return np.dstack([rgb, alpha])


def disc(size: int = 512, radius: int = 200) -> np.ndarray:
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (size // 2, size // 2), radius, 255, -1, cv2.LINE_AA)
    return rgba(alpha)


def l_shape() -> np.ndarray:
    alpha = np.zeros((400, 400), np.uint8)
    alpha[40:360, 60:160] = 255  # the upright
    alpha[260:360, 60:340] = 255  # the foot
    return rgba(alpha)


def three_colours() -> np.ndarray:
    """An ellipse, red on top, blue bottom-left, green bottom-right, on a black background."""
    alpha = np.zeros((400, 600), np.uint8)
    cv2.ellipse(alpha, (300, 200), (260, 170), 0, 0, 360, 255, -1)
    image = rgba(alpha, (0, 0, 0))
    image[:200, :, :3] = RED
    image[200:, :300, :3] = BLUE
    image[200:, 300:, :3] = GREEN
    image[alpha == 0, :3] = 0
    return image


def assert_closed_body(mesh: trimesh.Trimesh, max_faces: int) -> None:
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.is_volume
    assert mesh.volume > 0
    assert mesh.body_count == 1
    assert len(mesh.faces) <= max_faces


def assert_normalised(mesh: trimesh.Trimesh) -> None:
    low, high = mesh.bounds
    assert np.allclose((low + high) / 2, 0.0, atol=1e-6)
    assert max(high - low) == pytest.approx(EXTENT, rel=1e-6)
    assert np.all(np.abs(mesh.bounds) <= 1.0)


@pytest.fixture(scope="module")
def colour_mesh() -> trimesh.Trimesh:
    return inflate_silhouette(three_colours(), 10000)


@pytest.mark.parametrize("max_faces", [2000, 10000, 40000])
def test_disc_is_a_closed_body_within_budget(max_faces: int) -> None:
    mesh = inflate_silhouette(disc(), max_faces)
    assert_closed_body(mesh, max_faces)
    assert_normalised(mesh)
    # The budget is used, not wasted: decimation lands on it.
    assert len(mesh.faces) > 0.9 * max_faces


@pytest.mark.parametrize("max_faces", [2000, 40000])
def test_disc_volume_matches_a_squashed_sphere(max_faces: int) -> None:
    # A disc of radius r inflated with a circular profile squashed to
    # DEPTH_RATIO is a spheroid: V = DEPTH_RATIO * 4/3 pi r^3. The grid puts the
    # outline within a quarter cell and the depth within about a cell of ~25
    # (the coarsest grid), i.e. 4% in depth; decimation shaves under 2% more.
    mesh = inflate_silhouette(disc(), max_faces)
    r = EXTENT / 2
    expected = DEPTH_RATIO * 4 / 3 * math.pi * r**3
    assert 0.92 * expected <= mesh.volume <= 1.02 * expected
    assert mesh.bounds[1, 2] == pytest.approx(DEPTH_RATIO * r, rel=0.06)


def _half_volumes(mesh: trimesh.Trimesh) -> tuple[float, float]:
    """Volumes above and below z = 0, by the divergence theorem with the field (0, 0, z)."""
    centres = mesh.triangles_center[:, 2]
    flux = centres * mesh.face_normals[:, 2] * mesh.area_faces
    return float(flux[centres > 0].sum()), float(flux[centres < 0].sum())


def test_depth_is_symmetric_front_to_back() -> None:
    mesh = inflate_silhouette(l_shape(), 10000)
    low, high = mesh.bounds
    assert low[2] == pytest.approx(-high[2], abs=1e-6)
    above, below = _half_volumes(mesh)
    assert above == pytest.approx(below, rel=0.01)
    assert above + below == pytest.approx(mesh.volume, rel=0.01)


def test_l_shape_is_one_genus_zero_body() -> None:
    mesh = inflate_silhouette(l_shape(), 10000)
    assert_closed_body(mesh, 10000)
    assert_normalised(mesh)
    assert mesh.euler_number == 2  # a sphere's topology: no tunnels, no handles
    # The corner between upright and foot (image top-right) stays empty.
    x, y = mesh.vertices[:, 0], mesh.vertices[:, 1]
    assert not ((x > 0.0) & (y > 0.0)).any()
    assert ((x > 0.5) & (y < -0.5)).any() and ((x < -0.5) & (y > 0.5)).any()


def test_thin_parts_get_round_cross_sections() -> None:
    # A ball with a long arm: the arm must be about as deep as it is wide
    # (times DEPTH_RATIO), not inflated like the ball, as a global sqrt(d) would.
    alpha = np.zeros((400, 800), np.uint8)
    cv2.circle(alpha, (200, 200), 180, 255, -1)
    alpha[180:220, 350:780] = 255  # arm, 40 px wide
    mesh = inflate_silhouette(rgba(alpha), 40000)
    px = EXTENT / (780 - 20)  # model units per pixel: the crop's longest side is 760 px
    arm = mesh.vertices[mesh.vertices[:, 0] > mesh.bounds[1, 0] - 250 * px]
    arm = arm[arm[:, 0] < mesh.bounds[1, 0] - 50 * px]
    arm_depth = arm[:, 2].max()
    assert arm_depth == pytest.approx(DEPTH_RATIO * 20 * px, rel=0.25)
    assert mesh.bounds[1, 2] == pytest.approx(DEPTH_RATIO * 180 * px, rel=0.08)


def test_large_holes_are_kept_and_pinholes_filled() -> None:
    alpha = np.zeros((500, 500), np.uint8)
    cv2.circle(alpha, (250, 250), 220, 255, -1)
    cv2.circle(alpha, (250, 250), 100, 0, -1)
    ring = inflate_silhouette(rgba(alpha), 5000)
    assert_closed_body(ring, 5000)
    assert ring.euler_number == 0  # a torus
    alpha = np.zeros((500, 500), np.uint8)
    cv2.circle(alpha, (250, 250), 220, 255, -1)
    cv2.circle(alpha, (250, 250), 5, 0, -1)
    assert inflate_silhouette(rgba(alpha), 5000).euler_number == 2


def test_only_the_largest_subject_is_kept() -> None:
    alpha = np.zeros((400, 400), np.uint8)
    cv2.circle(alpha, (150, 200), 120, 255, -1)
    cv2.circle(alpha, (350, 60), 20, 255, -1)  # a speck left by matting
    mesh = inflate_silhouette(rgba(alpha), 5000)
    assert mesh.body_count == 1
    # The speck is gone, so the kept disc fills the extent on both axes.
    extents = mesh.extents
    assert extents[0] == pytest.approx(extents[1], rel=0.02)


@pytest.mark.parametrize(("width", "height"), [(600, 300), (200, 500)])
def test_aspect_ratio_is_kept(width: int, height: int) -> None:
    alpha = np.zeros((height + 100, width + 100), np.uint8)
    cv2.ellipse(alpha, (50 + width // 2, 50 + height // 2), (width // 2, height // 2), 0, 0, 360, 255, -1)
    mesh = inflate_silhouette(rgba(alpha), 10000)
    assert_closed_body(mesh, 10000)
    assert_normalised(mesh)
    assert mesh.extents[0] / mesh.extents[1] == pytest.approx(width / height, rel=0.03)


def _front_colours(mesh: trimesh.Trimesh, region: np.ndarray) -> np.ndarray:
    """Texture colours at the vertices of ``region`` facing the viewer (+Z)."""
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    front = region & (mesh.vertex_normals[:, 2] > 0.7)
    assert front.sum() > 20
    return _sample(texture, mesh.visual.uv[front], v_up=True)


def _sample(texture: np.ndarray, uv: np.ndarray, v_up: bool) -> np.ndarray:
    h, w = texture.shape[:2]
    rows = (1.0 - uv[:, 1] if v_up else uv[:, 1]) * h
    cols = uv[:, 0] * w
    return texture[np.clip(rows.astype(int), 0, h - 1), np.clip(cols.astype(int), 0, w - 1)]


def _dominant(colours: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.median(colours, axis=0))


def test_front_shows_the_image_upright_and_unmirrored(colour_mesh: trimesh.Trimesh) -> None:
    x, y = colour_mesh.vertices[:, 0], colour_mesh.vertices[:, 1]
    assert _dominant(_front_colours(colour_mesh, y > 0.3)) == RED
    assert _dominant(_front_colours(colour_mesh, (y < -0.3) & (x < -0.3))) == BLUE
    assert _dominant(_front_colours(colour_mesh, (y < -0.3) & (x > 0.3))) == GREEN


def test_back_shows_the_projection_mirrored(colour_mesh: trimesh.Trimesh) -> None:
    texture = np.asarray(colour_mesh.visual.material.baseColorTexture.convert("RGB"))
    v, n = colour_mesh.vertices, colour_mesh.vertex_normals
    back_left = (n[:, 2] < -0.7) & (v[:, 1] < -0.3) & (v[:, 0] < -0.3)
    assert _dominant(_sample(texture, colour_mesh.visual.uv[back_left], v_up=True)) == BLUE


def _read_glb(data: bytes) -> tuple[dict, bytes]:
    """The JSON and binary chunks of a GLB, read by the spec, not by trimesh."""
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF"
    json_len, _ = struct.unpack_from("<II", data, 12)
    document = json.loads(data[20 : 20 + json_len])
    bin_len, _ = struct.unpack_from("<II", data, 20 + json_len)
    start = 28 + json_len
    return document, data[start : start + bin_len]


def _view(document: dict, binary: bytes, index: int) -> bytes:
    view = document["bufferViews"][index]
    offset = view.get("byteOffset", 0)
    return binary[offset : offset + view["byteLength"]]


def test_exported_glb_shows_the_image_upright(colour_mesh: trimesh.Trimesh) -> None:
    # glTF puts UV (0, 0) at the image's top-left; read the file as a viewer would.
    document, binary = _read_glb(colour_mesh.export(file_type="glb"))
    primitive = document["meshes"][0]["primitives"][0]

    def accessor(name: str, width: int) -> np.ndarray:
        acc = document["accessors"][primitive["attributes"][name]]
        assert acc["componentType"] == 5126  # float32
        raw = _view(document, binary, acc["bufferView"])
        return np.frombuffer(raw, np.float32, acc["count"] * width, acc.get("byteOffset", 0)).reshape(-1, width)

    positions, uv = accessor("POSITION", 3), accessor("TEXCOORD_0", 2)
    material = document["materials"][primitive["material"]]
    texture = document["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    image_info = document["images"][texture["source"]]
    image = np.asarray(Image.open(io.BytesIO(_view(document, binary, image_info["bufferView"]))).convert("RGB"))
    top = (positions[:, 1] > 0.3) & (np.abs(positions[:, 0]) < 0.3) & (positions[:, 2] > 0.1)
    bottom_right = (positions[:, 1] < -0.3) & (positions[:, 0] > 0.3) & (positions[:, 2] > 0.1)
    assert _dominant(_sample(image, uv[top], v_up=False)) == RED
    assert _dominant(_sample(image, uv[bottom_right], v_up=False)) == GREEN


def test_texture_background_takes_the_nearest_subject_colour(colour_mesh: trimesh.Trimesh) -> None:
    texture = np.asarray(colour_mesh.visual.material.baseColorTexture.convert("RGB"))
    h, w = texture.shape[:2]
    assert tuple(texture[0, 0]) == RED  # the top-left corner lies outside the ellipse
    assert tuple(texture[h - 1, w - 1]) == GREEN
    assert not (texture.sum(axis=2) == 0).any()  # no black background texels at all


def test_texture_is_capped() -> None:
    image = disc(size=2400, radius=1150)
    texture = inflate_silhouette(image, 2000).visual.material.baseColorTexture
    assert max(texture.size) == MAX_TEXTURE
    assert texture.mode == "RGB"


def test_untextured_mesh_has_no_uv() -> None:
    mesh = inflate_silhouette(disc(), 2000, textured=False)
    assert_closed_body(mesh, 2000)
    assert getattr(mesh.visual, "uv", None) is None


def test_same_input_gives_the_same_mesh() -> None:
    first, second = inflate_silhouette(l_shape(), 5000), inflate_silhouette(l_shape(), 5000)
    assert np.array_equal(first.vertices, second.vertices)
    assert np.array_equal(first.faces, second.faces)
    assert np.array_equal(first.visual.uv, second.visual.uv)
    assert first.visual.material.baseColorTexture.tobytes() == second.visual.material.baseColorTexture.tobytes()


def test_empty_mask_is_an_input_error() -> None:
    image = rgba(np.zeros((64, 64), np.uint8))
    with pytest.raises(InputError, match="no foreground subject"):
        inflate_silhouette(image, 2000)
    faint = rgba(np.full((64, 64), 100, np.uint8))  # all below the alpha threshold
    with pytest.raises(InputError, match="no foreground subject"):
        inflate_silhouette(faint, 2000)


def test_subject_touching_the_image_edge_is_closed() -> None:
    alpha = np.zeros((300, 300), np.uint8)
    cv2.circle(alpha, (0, 150), 140, 255, -1)  # cut in half by the left edge
    mesh = inflate_silhouette(rgba(alpha), 5000)
    assert_closed_body(mesh, 5000)
    assert mesh.extents[1] / mesh.extents[0] == pytest.approx(2.0, rel=0.05)


def test_thin_subject_gets_a_finer_grid_and_a_hairline_is_refused() -> None:
    alpha = np.zeros((900, 900), np.uint8)
    cv2.line(alpha, (10, 450), (890, 450), 255, 3)  # thinner than a cell of the first grid
    mesh = inflate_silhouette(rgba(alpha), 40000)
    assert_closed_body(mesh, 40000)
    assert mesh.extents[1] == pytest.approx(EXTENT * 3 / 880, rel=0.5)
    alpha[:] = 0
    cv2.line(alpha, (10, 450), (890, 450), 255, 1)
    with pytest.raises(InputError, match="too thin"):
        inflate_silhouette(rgba(alpha), 40000)


def test_failed_decimation_falls_back_to_a_coarser_closed_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    real = inflate.fast_simplification.simplify

    def leaky(points: np.ndarray, triangles: np.ndarray, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        small_points, small_faces = real(points, triangles, **kwargs)
        return small_points, small_faces[1:]  # a hole: no longer watertight

    monkeypatch.setattr(inflate.fast_simplification, "simplify", leaky)
    mesh = inflate_silhouette(disc(), 3000)
    assert_closed_body(mesh, 3000)
    assert len(mesh.faces) > 1000  # the coarser grid still uses a fair share of the budget


def test_tiny_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_faces"):
        inflate_silhouette(disc(), 10)


def test_backend_generates_a_draft_shape_output() -> None:
    calls: list[tuple[str, float]] = []
    image = Image.fromarray(l_shape(), "RGBA")
    backend = DraftBackend()
    output = backend.generate(image, GenerationOptions(max_faces=3000), lambda s, f, m="": calls.append((s, f)))
    assert backend.name == "draft"
    assert isinstance(output, ShapeOutput)
    assert (output.model, output.textured, output.profile) == ("draft", True, None)
    assert output.timings["shape"] > 0
    assert_closed_body(output.mesh, 3000)
    assert output.mesh.visual.uv is not None
    assert {stage for stage, _ in calls} == {"shape"}
    assert calls[0][1] == 0.0 and calls[-1][1] == 1.0


def test_backend_without_texture() -> None:
    output = DraftBackend().generate(
        Image.fromarray(disc(), "RGBA"), GenerationOptions(generate_texture=False, max_faces=1000), lambda *a: None
    )
    assert output.textured is False
    assert getattr(output.mesh.visual, "uv", None) is None
    assert_closed_body(output.mesh, 1000)


def test_benchmark_quick_run_reports_the_1024_median() -> None:
    result = subprocess.run(
        [sys.executable, "bench/draft.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"draft_1024_median_s=(\d+\.\d+)", last)
    assert match and 0 < float(match.group(1)) < 10
