"""Hunyuan3D-2 through both faces: the worker handler and the Gradio /generate
endpoint run the real hy3dgen loading and sampling code on tiny checkpoints."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
import trimesh

import worker
from fakes.images import make_subject_png
from fakes.servers import running_app
from fakes.tiny_hunyuan import SHAPES, write_tiny_shape_model
from fakes.tiny_paint import write_tiny_texture_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hy3dgen-faces")
    write_tiny_shape_model(root, shape="sphere")
    return root


@pytest.fixture
def weights_present(models_root, monkeypatch, loopback_only_network):
    monkeypatch.setenv("HY3DGEN_MODELS", str(models_root))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    monkeypatch.setattr(worker, "_PIPELINE", None)

    return models_root


def check_sphere(mesh: trimesh.Trimesh, max_faces: int) -> None:
    shape = SHAPES["sphere"]
    assert mesh.is_watertight and len(mesh.faces) <= max_faces
    np.testing.assert_allclose(mesh.bounds, shape.bounds(), atol=0.02)
    assert mesh.volume == pytest.approx(shape.volume(), rel=0.04)


def test_worker_auto_picks_present_hunyuan_weights(weights_present):
    b64 = base64.b64encode(make_subject_png(160)).decode()
    response = worker.handler(
        {
            "id": "hy",
            "input": {
                "image": b64,
                "steps": 2,
                "octree_resolution": 64,
                "max_faces": 4000,
                "remove_background": False,
            },
        }
    )
    assert "error" not in response, response
    assert response["model"] == "hunyuan3d-2" and response["profile"] is None
    assert response["textured"] is False
    assert "profile 3 ignored on CPU; running float32" in response["warnings"]
    assert any("python -m pipeline.weights download --texture" in w for w in response["warnings"])
    assert response["texture_rasterizer"] is None
    glb = base64.b64decode(response["model_base64"])
    check_sphere(trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh"), 4000)
    assert {"hunyuan3d-2.diffusion", "hunyuan3d-2.decode"} <= set(response["timings"])


def test_worker_missing_variant_fails_fast_with_paths(weights_present):
    b64 = base64.b64encode(make_subject_png(64)).decode()
    started = time.monotonic()
    response = worker.handler({"id": "hy", "input": {"image": b64, "model": "hunyuan3d-2mini-turbo"}})
    assert time.monotonic() - started < 10
    message = response["error"]
    assert "hunyuan3d-2mini-turbo" in message and str(weights_present) in message
    assert "python -m pipeline.weights download --model hunyuan3d-2mini-turbo" in message


def test_gradio_generate_with_hunyuan(weights_present, tmp_path):
    from gradio_client import Client, handle_file

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(160))
    with running_app() as url:
        viewer_path, _, _, stats, _ = Client(url, verbose=False).predict(
            handle_file(str(image)),
            "hunyuan3d-2",
            3,
            False,
            False,
            1234,
            False,
            4000,
            2,
            None,
            64,
            None,
            2048,
            "hunyuan3d-paint-v2-0",
            api_name="/generate",
        )
    assert stats["model"] == "hunyuan3d-2"
    check_sphere(trimesh.load(viewer_path, file_type="glb", force="mesh"), 4000)


@pytest.fixture(scope="module")
def textured_root(tmp_path_factory):
    """Tiny shape and tiny delight/paint models side by side, as a deployment has them."""
    root = tmp_path_factory.mktemp("hy3dgen-textured")
    write_tiny_shape_model(root, shape="sphere")
    write_tiny_texture_models(root, paint_subfolders=("hunyuan3d-paint-v2-0",))
    return root


def glb_texture(glb: bytes):
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    material = gltf.materials[gltf.meshes[0].primitives[0].material]
    image = gltf.images[gltf.textures[material.pbrMetallicRoughness.baseColorTexture.index].source]
    return image.mimeType


def test_textured_job_through_worker_and_app(textured_root, monkeypatch, tmp_path):
    """The real texgen pipeline (delight, multiview paint, bake, inpaint) on CPU
    through both faces, with the PyTorch rasterizer standing in for the CUDA one."""
    from gradio_client import Client, handle_file
    from PIL import Image

    monkeypatch.setenv("HY3DGEN_MODELS", str(textured_root))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    monkeypatch.setattr(worker, "_PIPELINE", None)

    b64 = base64.b64encode(make_subject_png(128)).decode()
    response = worker.handler(
        {
            "id": "tex",
            "input": {
                "image": b64,
                "steps": 2,
                "octree_resolution": 64,
                "max_faces": 1500,
                "remove_background": False,
                "texture_size": 512,
            },
        }
    )
    assert "error" not in response, response
    assert response["textured"] is True and response["texture_rasterizer"] == "torch"
    assert {"texture.multiview", "texture.bake"} <= set(response["timings"])
    glb = base64.b64decode(response["model_base64"])
    assert glb_texture(glb) == "image/jpeg"
    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    texture = mesh.visual.material.baseColorTexture
    assert isinstance(texture, Image.Image) and texture.size == (512, 512)
    assert mesh.visual.uv.min() >= 0.0 and mesh.visual.uv.max() <= 1.0

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png(128))
    with running_app() as url:
        viewer_path, _, _, stats, _ = Client(url, verbose=False).predict(
            handle_file(str(image)),
            "hunyuan3d-2",
            3,
            True,
            False,
            1234,
            False,
            1500,
            2,
            None,
            64,
            None,
            512,
            "hunyuan3d-paint-v2-0",
            api_name="/generate",
        )
    assert stats["textured"] is True
    app_mesh = trimesh.load(viewer_path, file_type="glb", force="mesh")
    assert app_mesh.visual.material.baseColorTexture.size == (512, 512)
