"""GLB export: structure, texture format, extras, and the Khronos glTF validator."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial, SimpleMaterial

from bench.common import detailed_texture
from pipeline import __version__
from pipeline.export import export_glb, glb_stats
from pipeline.mesh import decimate, unwrap_uv

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def uv_mesh() -> trimesh.Trimesh:
    """A closed 1500-face mesh with xatlas UVs, like the pipeline's reduced mesh."""
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25, major_sections=64, minor_sections=32)
    mesh, _ = unwrap_uv(decimate(torus, 1500))
    return mesh


def _textured(mesh: trimesh.Trimesh, image: Image.Image, simple: bool = False) -> trimesh.Trimesh:
    textured = mesh.copy()
    material = SimpleMaterial(image=image) if simple else PBRMaterial(baseColorTexture=image)
    textured.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=material)
    return textured


def _json_chunk(glb: bytes) -> dict:
    length = int.from_bytes(glb[12:16], "little")
    assert glb[16:20] == b"JSON"
    return json.loads(glb[20 : 20 + length])


def _attribute(glb: bytes, name: str) -> np.ndarray:
    """A float VEC3 vertex attribute exactly as written (trimesh's loader may
    reorder vertices or recompute normals)."""
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    accessor = gltf.accessors[getattr(gltf.meshes[0].primitives[0].attributes, name)]
    view = gltf.bufferViews[accessor.bufferView]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    return np.frombuffer(gltf.binary_blob(), np.float32, accessor.count * 3, start).reshape(-1, 3)


def _load(glb: bytes) -> trimesh.Trimesh:
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    (geometry,) = scene.geometry.values()
    return geometry


# -- untextured ----------------------------------------------------------


def test_untextured_export_has_geometry_normals_and_a_grey_material():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    glb = export_glb(sphere, include_normals=True)
    tree = _json_chunk(glb)
    (primitive,) = tree["meshes"][0]["primitives"]
    assert {"POSITION", "NORMAL"} <= set(primitive["attributes"])
    assert "images" not in tree and "extensionsUsed" not in tree  # plain geometry, no Draco/meshopt
    pbr = tree["materials"][primitive["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and 0.9 <= pbr["roughnessFactor"] <= 1.0
    r, g, b, a = pbr["baseColorFactor"]
    assert r == g == b and 0.5 < r < 1.0 and a == 1.0
    loaded = _load(glb)
    assert len(loaded.faces) == len(sphere.faces) and loaded.is_watertight
    assert np.allclose(np.sort(loaded.vertices, axis=0), np.sort(sphere.vertices, axis=0), atol=1e-6)


def test_indices_are_uint16_when_they_fit_and_uint32_otherwise():
    small = _json_chunk(export_glb(trimesh.creation.icosphere(subdivisions=3)))
    big_mesh = trimesh.creation.icosphere(subdivisions=7)  # 163842 vertices
    big = _json_chunk(export_glb(big_mesh))
    for tree, component in ((small, 5123), (big, 5125)):
        (primitive,) = tree["meshes"][0]["primitives"]
        assert tree["accessors"][primitive["indices"]]["componentType"] == component
    assert len(_load(export_glb(big_mesh)).faces) == len(big_mesh.faces)


def test_normals_are_left_out_unless_asked_for():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    plain, smooth = export_glb(sphere), export_glb(sphere, include_normals=True)
    assert set(_json_chunk(plain)["meshes"][0]["primitives"][0]["attributes"]) == {"POSITION"}
    assert "NORMAL" in _json_chunk(smooth)["meshes"][0]["primitives"][0]["attributes"]
    extra = len(smooth) - len(plain)  # the price of smooth shading: 12 bytes a vertex plus its accessor's JSON
    assert 12 * len(sphere.vertices) <= extra <= 12 * len(sphere.vertices) + 300
    assert np.array_equal(_attribute(plain, "POSITION"), _attribute(smooth, "POSITION"))


def test_extras_and_generator_round_trip():
    extras = {"options": {"seed": 7, "octree_resolution": 256, "texture": False}, "model": "draft"}
    glb = export_glb(trimesh.creation.box(), extras=extras)
    asset = _json_chunk(glb)["asset"]
    assert asset["generator"] == f"hy3d-service {__version__}"
    assert asset["extras"] == {**extras, "generator": f"hy3d-service {__version__}"}
    stats = glb_stats(glb)
    assert stats["extras"]["options"]["seed"] == 7 and stats["generator"] == asset["generator"]
    custom = _json_chunk(export_glb(trimesh.creation.box(), extras={"generator": "hy3d-service 9.9"}))["asset"]
    assert custom["generator"] == "hy3d-service 9.9" == custom["extras"]["generator"]


def test_export_rejects_non_json_extras_and_empty_meshes():
    with pytest.raises(TypeError):
        export_glb(trimesh.creation.box(), extras={"bad": object()})
    with pytest.raises(ValueError):
        export_glb(trimesh.Trimesh())


# -- textured ------------------------------------------------------------


def test_textured_export_stores_a_jpeg_base_colour_texture(uv_mesh):
    image = Image.fromarray(detailed_texture(512))
    glb = export_glb(_textured(uv_mesh, image), jpeg_quality=90, include_normals=True)
    tree = _json_chunk(glb)
    (primitive,) = tree["meshes"][0]["primitives"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(primitive["attributes"])
    pbr = tree["materials"][primitive["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and 0.9 <= pbr["roughnessFactor"] <= 1.0
    (gltf_image,) = tree["images"]
    assert tree["textures"][pbr["baseColorTexture"]["index"]]["source"] == 0
    assert gltf_image["mimeType"] == "image/jpeg"

    stats = glb_stats(glb)
    assert stats["has_texture"] and stats["texture_mime"] == "image/jpeg"
    assert (stats["texture_width"], stats["texture_height"]) == (512, 512)
    assert stats["faces"] == len(uv_mesh.faces) and stats["vertices"] == len(uv_mesh.vertices)

    loaded = _load(glb)
    assert len(loaded.faces) == len(uv_mesh.faces)
    texture = loaded.visual.material.baseColorTexture
    assert texture.format == "JPEG" and texture.size == (512, 512)
    # the same picture: compare at 1/4 scale, where JPEG's loss of the grain averages out
    decoded = np.asarray(texture.convert("RGB").reduce(4), np.float32)
    assert np.abs(decoded - np.asarray(image.reduce(4), np.float32)).mean() < 3
    uv = loaded.visual.uv
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    # the written normals are unwrap_uv's: copies of a vertex along a UV seam agree
    normals, positions = _attribute(glb, "NORMAL"), _attribute(glb, "POSITION")
    _, first, group = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    assert len(first) < len(positions)
    assert np.allclose(normals, normals[first][group.reshape(-1)], atol=1e-6)
    assert np.allclose(np.sort(uv, axis=0), np.sort(uv_mesh.visual.uv, axis=0), atol=1e-6)


def test_jpeg_is_much_smaller_than_hy3dgen_png(uv_mesh):
    textured = _textured(uv_mesh, Image.fromarray(detailed_texture(1024)))
    ours = export_glb(textured)
    theirs = textured.export(file_type="glb")  # trimesh's default, as hy3dgen writes it: PNG
    assert b"image/png" in theirs
    assert len(ours) < 0.35 * len(theirs)


def test_texture_downscale_rgba_and_simple_material_sources(uv_mesh):
    rgba = Image.fromarray(detailed_texture(1024)).convert("RGBA")
    glb = export_glb(_textured(uv_mesh, rgba, simple=True), max_texture_size=256, jpeg_quality=80)
    stats = glb_stats(glb)
    assert stats["texture_mime"] == "image/jpeg"
    assert (stats["texture_width"], stats["texture_height"]) == (256, 256)
    wide = Image.fromarray(detailed_texture(512)).resize((512, 256))
    stats = glb_stats(export_glb(_textured(uv_mesh, wide), max_texture_size=128))
    assert (stats["texture_width"], stats["texture_height"]) == (128, 64)


def test_export_leaves_the_callers_mesh_alone(uv_mesh):
    image = Image.fromarray(detailed_texture(64))
    textured = _textured(uv_mesh, image)
    before = textured.vertices.copy()
    export_glb(textured)
    assert textured.visual.material.baseColorTexture is image
    assert np.array_equal(textured.vertices, before)


# -- Khronos validator ---------------------------------------------------


def _validator() -> list[str]:
    """The command that validates a GLB, or fail (CI) / skip (elsewhere) when absent."""
    node = shutil.which("node")
    if node and (JS_DIR / "node_modules" / "gltf-validator").is_dir():
        return [node, str(JS_DIR / "validate.mjs")]
    message = "gltf-validator is not installed: run `npm ci --prefix tests/js` (needs Node 18+)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _validate(glb: bytes, tmp_path: Path, name: str) -> dict:
    path = tmp_path / f"{name}.glb"
    path.write_bytes(glb)
    done = subprocess.run([*_validator(), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_glbs_pass_the_khronos_validator_without_warnings(uv_mesh, tmp_path):
    plain = export_glb(trimesh.creation.icosphere(subdivisions=3), extras={"model": "draft"})
    textured = export_glb(_textured(uv_mesh, Image.fromarray(detailed_texture(256))), extras={"model": "x"})
    for name, glb in (("plain", plain), ("textured", textured)):
        report = _validate(glb, tmp_path, name)
        issues = report["issues"]
        messages = [(m["code"], m.get("pointer")) for m in issues["messages"]]
        assert issues["numErrors"] == 0, messages
        # hy3dgen's GLBs get BUFFER_VIEW_TARGET_MISSING; ours set the targets
        assert issues["numWarnings"] == 0, messages
        assert report["info"]["generator"] == f"hy3d-service {__version__}"
    assert report["info"]["resources"][-1]["mimeType"] == "image/jpeg"
