"""The Gradio app on a real loopback server, driven by gradio_client like a QA script."""

from __future__ import annotations

import pytest
import trimesh
from PIL import Image

from fakes.images import make_subject_png
from fakes.servers import running_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def generate(client, image_path, **overrides):
    from gradio_client import handle_file

    args = dict(
        model="draft",
        profile=3,
        generate_texture=True,
        remove_background=False,
        seed=1234,
        randomize_seed=False,
        max_faces=5000,
        steps=None,
        guidance_scale=None,
        octree_resolution=None,
        num_chunks=None,
        texture_size=2048,
        paint_model="hunyuan3d-paint-v2-0",
    )
    args.update(overrides)
    return client.predict(handle_file(str(image_path)), *args.values(), api_name="/generate")


def test_only_generate_is_public(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == ["/generate"]
    assert not info["unnamed_endpoints"]


def test_generate_textured_glb(client, tmp_path):
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png())
    viewer_path, download_path, stats_md, stats_json, seed = generate(client, image)
    stats = stats_json
    mesh = trimesh.load(viewer_path, file_type="glb", force="mesh")
    assert len(mesh.faces) == stats["faces"] <= 5000
    assert stats["textured"] is True
    texture = mesh.visual.material.baseColorTexture
    assert isinstance(texture, Image.Image) and min(texture.size) >= 16
    assert open(download_path, "rb").read() == open(viewer_path, "rb").read()
    assert "Faces" in stats_md and seed == 1234
    assert stats["timings"]["preview"] > 0  # rendered for the history gallery, which is not part of the API


def test_randomized_seed_is_reported(client, tmp_path):
    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png())
    *_, stats_json, seed = generate(client, image, randomize_seed=True, generate_texture=False)
    assert stats_json["seed"] == seed


def test_invalid_input_is_an_app_error(client, tmp_path):
    from gradio_client.exceptions import AppError

    image = tmp_path / "subject.png"
    image.write_bytes(make_subject_png())
    with pytest.raises(AppError, match="Field 'octree_resolution'"):
        generate(client, image, octree_resolution=16)
    not_image = tmp_path / "notes.png"
    not_image.write_bytes(b"definitely not an image")
    with pytest.raises(AppError):
        generate(client, not_image)


def test_app_notice_names_backend(app_url):
    import requests

    page = requests.get(app_url, timeout=10).text
    assert "serving draft models" in page


def test_request_fields_translation():
    import app

    fields = app.request_fields(
        "draft", 3.0, True, False, 12.0, 40000.0, None, 5.0, 256.0, None, "1024", "hunyuan3d-paint-v2-0", True
    )
    assert fields == {
        "model": "draft",
        "profile": 3,
        "generate_texture": True,
        "remove_background": False,
        "seed": 12,
        "max_faces": 40000,
        "guidance_scale": 5.0,
        "octree_resolution": 256,
        "texture_size": 1024,
        "paint_model": "hunyuan3d-paint-v2-0",
        "smooth_normals": True,
    }


def test_transparent_upload_keeps_its_alpha(client, tmp_path):
    image = tmp_path / "cutout.png"
    image.write_bytes(make_subject_png(transparent=True))
    *_, stats, _ = generate(client, image, remove_background=True, generate_texture=False)
    assert any("transparen" in w.lower() for w in stats["warnings"]), stats["warnings"]
