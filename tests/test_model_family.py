"""The rest of the Hunyuan3D-2 family: the guidance-distilled fast variants and
the multi-view models, with the ``views`` request field, through the pipeline,
the worker handler and the app's ``/generate``.

The slow tests run hy3dgen's real loading and sampling code on tiny
checkpoints written by ``fakes/tiny_hunyuan.py`` (the multi-view ones
with hy3dgen's DinoImageEncoderMV conditioner and MVImageProcessorV2).
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

import worker
from fakes.images import make_subject_png
from fakes.servers import running_app
from fakes.tiny_hunyuan import SHAPES, write_model
from pipeline import image_io, weights
from pipeline.errors import ImageError, OptionsError, WeightsMissingError
from pipeline.models import (
    AUTO_MULTIVIEW_PREFERENCE,
    AUTO_PREFERENCE,
    HUNYUAN_MODELS,
    MODEL_CHOICES,
    MULTIVIEW_MODELS,
    VIEW_NAMES,
)
from pipeline.options import parse_options
from pipeline.runpod.remote import build_input
from pipeline.service import ImageTo3D
from pipeline.settings import load_settings
from pipeline.types import ShapeOutput
from pipeline.views import check_views, require_multiview

NEW_MODELS = ("hunyuan3d-2-fast", "hunyuan3d-2mini-fast", "hunyuan3d-2mv", "hunyuan3d-2mv-fast", "hunyuan3d-2mv-turbo")
OCTREE = 64
PATCHES = (56 // 14) ** 2 + 1  # tiny DINO: 56 px at patch 14, plus the CLS token


def present(root, name: str) -> None:
    """Placeholder folders that count as complete for ``name`` (resolution
    only: nothing loads them), without building the model."""
    from safetensors.numpy import save_file

    for repo, sub in weights.model_folders(HUNYUAN_MODELS[name]):
        folder = root / repo / sub
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text("model: {target: x}\n")
        save_file({"model.w": np.ones((2, 2), np.float16)}, str(folder / "model.fp16.safetensors"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def view_png(kind: str, size: int = 96) -> bytes:
    """Distinct subjects per view on white (so background removal has work)."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = {"left": (20, 10, 60, 86), "back": (10, 20, 86, 76), "right": (36, 10, 76, 86)}.get(kind, (16, 16, 80, 80))
    draw.ellipse(
        box, fill={"left": (30, 160, 30), "back": (30, 30, 200), "right": (200, 160, 0)}.get(kind, (220, 30, 30))
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# -- the catalogue ------------------------------------------------------------------


def test_catalogue_has_the_whole_family_with_upstream_defaults():
    assert set(NEW_MODELS) <= set(MODEL_CHOICES)
    assert MULTIVIEW_MODELS == ("hunyuan3d-2mv", "hunyuan3d-2mv-fast", "hunyuan3d-2mv-turbo")
    for name, repo, subfolder in (
        ("hunyuan3d-2-fast", "tencent/Hunyuan3D-2", "hunyuan3d-dit-v2-0-fast"),
        ("hunyuan3d-2mini-fast", "tencent/Hunyuan3D-2mini", "hunyuan3d-dit-v2-mini-fast"),
        ("hunyuan3d-2mv", "tencent/Hunyuan3D-2mv", "hunyuan3d-dit-v2-mv"),
        ("hunyuan3d-2mv-fast", "tencent/Hunyuan3D-2mv", "hunyuan3d-dit-v2-mv-fast"),
        ("hunyuan3d-2mv-turbo", "tencent/Hunyuan3D-2mv", "hunyuan3d-dit-v2-mv-turbo"),
    ):
        spec = HUNYUAN_MODELS[name]
        assert (spec.repo_id, spec.subfolder) == (repo, subfolder)
        # upstream's app: 5 steps for -turbo subfolders, 30 otherwise; guidance 5.0; octree 256
        assert (spec.steps, spec.guidance_scale, spec.octree_resolution) == ((5 if spec.turbo else 30), 5.0, 256)
        assert spec.guidance_distilled == (name.endswith("-fast") or name.endswith("-turbo"))
        assert spec.multiview == ("2mv" in name)
    turbo = HUNYUAN_MODELS["hunyuan3d-2mv-turbo"]
    # hy3dgen's enable_flashvdm maps Hunyuan3D-2mv to tencent/Hunyuan3D-2's v2-0 turbo VAE
    assert (turbo.vae_repo, turbo.vae_subfolder) == ("tencent/Hunyuan3D-2", "hunyuan3d-vae-v2-0-turbo")
    assert HUNYUAN_MODELS["hunyuan3d-2mv-fast"].vae_subfolder is None
    assert not set(AUTO_PREFERENCE) & set(MULTIVIEW_MODELS)
    assert AUTO_MULTIVIEW_PREFERENCE == MULTIVIEW_MODELS
    assert VIEW_NAMES == ("left", "back", "right")


def test_download_plan_fetches_the_turbo_vae_from_its_own_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    plan = weights.plan_download("hunyuan3d-2mv-turbo", texture=False, rembg=None)
    assert plan.repos == {
        "tencent/Hunyuan3D-2mv": ["hunyuan3d-dit-v2-mv-turbo"],
        "tencent/Hunyuan3D-2": ["hunyuan3d-vae-v2-0-turbo"],
    }
    assert weights.plan_download("hunyuan3d-2mini-fast", texture=False, rembg=None).repos == {
        "tencent/Hunyuan3D-2mini": ["hunyuan3d-dit-v2-mini-fast"]
    }
    with pytest.raises(WeightsMissingError) as caught:
        weights.resolve_model("hunyuan3d-2mv-turbo")
    message = str(caught.value)
    assert "tencent/Hunyuan3D-2mv: hunyuan3d-dit-v2-mv-turbo; tencent/Hunyuan3D-2: hunyuan3d-vae-v2-0-turbo" in message
    # The sentence names the roots (400-character cap); every folder searched is on the exception.
    assert str(tmp_path / "tencent/Hunyuan3D-2/hunyuan3d-vae-v2-0-turbo") in caught.value.searched
    assert "`python -m pipeline.weights download --model hunyuan3d-2mv-turbo`" in message


def test_weights_check_and_download_cli_know_the_new_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    assert weights.main(["check", "--require", "hunyuan3d-2mv"]) == 1
    out = capsys.readouterr().out
    for name in NEW_MODELS:
        assert f"missing  shape:{name}" in out and f"download --model {name}" in out
    present(tmp_path, "hunyuan3d-2mv-turbo")
    assert weights.main(["check", "--require", "hunyuan3d-2mv-turbo"]) == 0
    out = capsys.readouterr().out
    assert "present  shape:hunyuan3d-2mv-turbo" in out
    assert str(tmp_path / "tencent/Hunyuan3D-2/hunyuan3d-vae-v2-0-turbo") in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.main(["download", "--model", "hunyuan3d-2mv-fast"]) == 1  # offline: fails at once
    assert "hunyuan3d-dit-v2-mv-fast" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        weights.main(["download", "--model", "hunyuan3d-2mv-ultra"])


def test_auto_prefers_single_view_and_picks_the_best_multiview_present(tmp_path, monkeypatch):
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    assert weights.resolve_auto_model() is None and weights.resolve_auto_model(multiview=True) is None
    present(tmp_path, "hunyuan3d-2mv-turbo")
    # with no single-view model present, a multi-view one takes the lone front image
    assert weights.resolve_auto_model() == "hunyuan3d-2mv-turbo"
    assert weights.resolve_auto_model(multiview=True) == "hunyuan3d-2mv-turbo"
    present(tmp_path, "hunyuan3d-2mv-fast")
    present(tmp_path, "hunyuan3d-2mini-fast")
    assert weights.resolve_auto_model(multiview=True) == "hunyuan3d-2mv-fast"
    assert weights.resolve_auto_model() == "hunyuan3d-2mini-fast"
    pipe = ImageTo3D(draft_fallback=True)
    assert pipe.choose_model("auto").name == "hunyuan3d-2mini-fast"
    assert pipe.choose_model("auto", multiview=True).name == "hunyuan3d-2mv-fast"


# -- the views field ------------------------------------------------------------------


def test_check_views_shape():
    assert check_views(None) == {} and check_views({}) == {}
    assert list(check_views({"right": "r", "left": "l", "back": None})) == ["left", "right"]  # hy3dgen's order
    with pytest.raises(OptionsError, match=r"unknown view 'front'; allowed views are left, back, right"):
        check_views({"front": "x"})
    with pytest.raises(OptionsError, match=r"Field 'views' must be an object .* got a value of type list"):
        check_views(["left"])


def test_views_need_a_multiview_model():
    for model in ("hunyuan3d-2", "hunyuan3d-2-fast", "hunyuan3d-2mini-turbo", "draft"):
        with pytest.raises(OptionsError) as caught:
            require_multiview(model, {"left": "x"})
        message = str(caught.value)
        assert all(name in message for name in MULTIVIEW_MODELS) and f"'{model}' takes a single image" in message
    for model in (*MULTIVIEW_MODELS, "auto"):
        require_multiview(model, {"left": "x"})
    require_multiview("hunyuan3d-2", {})


def test_image_io_names_the_field():
    settings = load_settings()
    with pytest.raises(ImageError, match=r"^Field 'views\.left' is not valid base64"):
        image_io.decode_base64_image("a", settings, "views.left")
    with pytest.raises(ImageError, match=r"^Field 'views\.back' is a GIF image"):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, "GIF")
        image_io.load_image(buffer.getvalue(), settings, "views.back")
    with pytest.raises(ImageError, match=r"^Field 'image' is empty"):
        image_io.load_image(b"", settings)


def run(payload: dict) -> dict:
    return worker.handler({"id": "mv", "input": payload})


@pytest.fixture
def fresh_worker(monkeypatch):
    monkeypatch.setattr(worker, "_PIPELINE", None)
    monkeypatch.setenv("HY3D_DEVICE", "cpu")


def test_worker_rejects_bad_views_before_any_model(fresh_worker, subject_b64):
    started = time.monotonic()
    response = run({"image": subject_b64, "model": "hunyuan3d-2", "views": {"left": subject_b64}})
    assert (
        "Field 'views' needs a multi-view model (hunyuan3d-2mv, hunyuan3d-2mv-fast, hunyuan3d-2mv-turbo"
        in response["error"]
    )
    response = run({"image": subject_b64, "model": "draft", "views": {"left": subject_b64}})
    assert "'draft' takes a single image" in response["error"]
    # checked before an image_url would be fetched (a loopback URL: refused, never contacted, if it came first)
    response = run(
        {"image_url": "http://127.0.0.1:9/front.png", "model": "hunyuan3d-2", "views": {"left": subject_b64}}
    )
    assert response["error"].startswith("Field 'views' needs a multi-view model"), response
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": {"top": subject_b64}})
    assert response["error"].startswith("Field 'views' has the unknown view 'top'")
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": "left"})
    assert response["error"].startswith("Field 'views' must be an object")
    # every view is checked as 'image' is, and its error names the view
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": {"left": subject_b64, "back": "@@@"}})
    assert response["error"].startswith("Field 'views.back' is not valid base64")
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": {"right": b64(b"GIF89a" + bytes(40))}})
    assert response["error"].startswith("Field 'views.right' ")
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": {"left": 12}})
    assert response["error"] == "Field 'views.left' must be base64 text or image bytes."
    assert time.monotonic() - started < 10


def test_view_size_caps_apply_per_view(fresh_worker, monkeypatch, subject_b64):
    monkeypatch.setenv("HY3D_MAX_IMAGE_PIXELS", str(200 * 200))
    big = b64(make_subject_png(256))
    response = run({"image": b64(make_subject_png(64)), "model": "hunyuan3d-2mv", "views": {"left": big}})
    assert response["error"] == (
        "Field 'views.left' is 256x256 = 65536 pixels; the limit is 40000 pixels, set by HY3D_MAX_IMAGE_PIXELS."
    )


def test_missing_multiview_weights_fail_fast_naming_the_download(fresh_worker, subject_b64):
    """conftest's HY3DGEN_MODELS is empty: no multi-view weights anywhere."""
    views = {"left": b64(view_png("left")), "back": b64(view_png("back"))}
    started = time.monotonic()
    response = run({"image": subject_b64, "model": "hunyuan3d-2mv", "views": views})
    assert "Weights for model 'hunyuan3d-2mv'" in response["error"]
    assert "`python -m pipeline.weights download --model hunyuan3d-2mv`" in response["error"]
    response = run({"image": subject_b64, "views": views})  # auto
    assert response["error"].startswith("Field 'views' needs a multi-view model but no multi-view weights")
    assert "`python -m pipeline.weights download --model hunyuan3d-2mv-turbo`" in response["error"]
    assert time.monotonic() - started < 10
    # the app serves draft for a plain auto request, but cannot serve views with it either
    with pytest.raises(WeightsMissingError, match="download --model hunyuan3d-2mv-turbo"):
        ImageTo3D(draft_fallback=True).choose_model("auto", multiview=True)


class FakeMultiview:
    """Stands in for a multi-view backend to watch what the service hands it."""

    name = "hunyuan3d-2mv"

    def __init__(self):
        self.calls = []

    def generate(self, image, options, progress, views=None):
        self.calls.append((image, views))
        return ShapeOutput(trimesh.creation.icosphere(subdivisions=2, radius=0.5), model=self.name)


def test_service_decodes_and_cuts_out_every_view_with_progress_and_timings():
    pipe = ImageTo3D(draft_fallback=False)
    fake = pipe._backends["hunyuan3d-2mv"] = FakeMultiview()
    calls = []
    options = parse_options({"model": "hunyuan3d-2mv", "generate_texture": False, "remove_background": True})
    views = {"right": view_png("right"), "left": b64(view_png("left"))}  # bytes and base64, any order
    result = pipe.generate(b64(view_png("front")), options, lambda *a: calls.append(a), views=views)
    image, got = fake.calls[0]
    assert list(got) == ["left", "right"]
    assert result.extras["views"] == ["front", "left", "right"]  # recorded in the GLB's extras
    for picture in (image, *got.values()):
        alpha = np.asarray(picture.getchannel("A"))
        assert picture.mode == "RGBA" and alpha.min() == 0 and alpha.max() == 255  # background removed
    # rembg has no weights here: one GrabCut notice, not one per view
    assert sum("GrabCut" in w for w in result.warnings) == 1, result.warnings
    assert {
        "decode.front",
        "decode.left",
        "decode.right",
        "background.front",
        "background.left",
        "background.right",
    } <= set(result.timings)
    decode = [c for c in calls if c[0] == "decode"]
    assert [round(c[1], 3) for c in decode] == [0.0, 0.333, 0.667, 1.0]
    assert "Decoding view left (2/3)" in decode[1][2] and "+ 2 views" in decode[-1][2]
    background = [c[2] for c in calls if c[0] == "background"]
    assert "Removing background of view right (3/3)" in background

    fake.calls.clear()
    pipe.generate(b64(view_png("front")), options.replace(remove_background=False), views=None)
    assert fake.calls[0][1] is None  # a lone front image goes through the plain call


def test_remote_mode_sends_views_like_image():
    payload = build_input(b"front", parse_options({"model": "hunyuan3d-2mv"}), {"left": b"L", "back": b"B"})
    assert payload["views"] == {"left": b64(b"L"), "back": b64(b"B")}
    assert "views" not in build_input(b"front", parse_options({}))
    with pytest.raises(ImageError, match="view left"):
        build_input(b"front", parse_options({}), {"left": b""})


# -- real hy3dgen on tiny checkpoints ---------------------------------------------------


@pytest.fixture(scope="module")
def family_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hy3dgen-family")
    write_model(root, "hunyuan3d-2")
    for seed, name in enumerate(NEW_MODELS, start=1):
        write_model(root, name, seed=seed)
    return root


@pytest.fixture
def family(family_root, monkeypatch, loopback_only_network):
    monkeypatch.setenv("HY3DGEN_MODELS", str(family_root))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    monkeypatch.setattr(worker, "_PIPELINE", None)
    return family_root


@pytest.fixture
def dit_calls(monkeypatch):
    """Every DiT call's batch size, context length and guidance input."""
    from hy3dgen.shapegen.models import Hunyuan3DDiT

    calls, real = [], Hunyuan3DDiT.forward

    def spy(self, x, t, contexts, **kwargs):
        calls.append((x.shape[0], contexts["main"].shape[1], kwargs.get("guidance")))
        return real(self, x, t, contexts, **kwargs)

    monkeypatch.setattr(Hunyuan3DDiT, "forward", spy)
    return calls


@pytest.fixture
def view_indices(monkeypatch):
    from hy3dgen.shapegen.models.conditioner import DinoImageEncoderMV

    seen, real = [], DinoImageEncoderMV.forward

    def spy(self, image, mask=None, value_range=(-1, 1), view_idxs=None):
        seen.append([tuple(v) for v in view_idxs])
        return real(self, image, mask=mask, value_range=value_range, view_idxs=view_idxs)

    monkeypatch.setattr(DinoImageEncoderMV, "forward", spy)
    return seen


def job(model: str, views: dict | None = None, **fields) -> dict:
    payload = {
        "image": b64(view_png("front", 128)),
        "model": model,
        "steps": 2,
        "octree_resolution": OCTREE,
        "max_faces": 3000,
        "remove_background": False,
        "generate_texture": False,
        **fields,
    }
    if views is not None:
        payload["views"] = views
    return payload


def check_sphere(glb: bytes) -> trimesh.Trimesh:
    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    shape = SHAPES["sphere"]
    assert mesh.is_watertight and len(mesh.faces) <= 3000
    np.testing.assert_allclose(mesh.bounds, shape.bounds(), atol=0.02)
    return mesh


@pytest.mark.slow
@pytest.mark.parametrize("model", NEW_MODELS)
def test_every_new_variant_through_the_worker(family, dit_calls, model):
    spec = HUNYUAN_MODELS[model]
    views = {"back": b64(view_png("back"))} if spec.multiview else None
    response = run(job(model, views))
    assert "error" not in response, response
    assert response["model"] == model
    check_sphere(base64.b64decode(response["model_base64"]))
    assert {f"{model}.diffusion", f"{model}.decode"} <= set(response["timings"])
    batches = {batch for batch, _, _ in dit_calls}
    guidance = [g for _, _, g in dit_calls]
    if spec.guidance_distilled:  # one DiT pass a step, the scale fed in as an input
        assert batches == {1} and all(float(g[0]) == 5.0 for g in guidance)
    else:  # classifier-free guidance: conditioned and unconditioned in one batch of 2
        assert batches == {2} and all(g is None for g in guidance)
    tokens = {length for _, length, _ in dit_calls}
    assert tokens == {PATCHES * (2 if spec.multiview else 1)}


@pytest.mark.slow
@pytest.mark.parametrize("extra", [("left",), ("back", "left"), ("right", "back", "left")])
def test_multiview_job_with_one_two_three_extra_views(family, dit_calls, view_indices, extra):
    views = {view: b64(view_png(view)) for view in extra}
    response = run(job("hunyuan3d-2mv", views, remove_background=True))
    assert "error" not in response, response
    check_sphere(base64.b64decode(response["model_base64"]))
    expected = tuple(sorted({"left": 1, "back": 2, "right": 3}[v] for v in extra))
    assert view_indices[0] == [(0, *expected)]  # front first, then hy3dgen's order, whatever order was sent
    assert {length for _, length, _ in dit_calls} == {PATCHES * (1 + len(extra))}
    assert {f"decode.{v}" for v in ("front", *extra)} <= set(response["timings"])
    assert {f"background.{v}" for v in ("front", *extra)} <= set(response["timings"])


@pytest.mark.slow
def test_same_seed_and_views_same_bytes_and_views_change_the_latents(family):
    views = {"left": b64(view_png("left")), "right": b64(view_png("right"))}
    first = run(job("hunyuan3d-2mv-fast", views, seed=99))
    second = run(job("hunyuan3d-2mv-fast", dict(reversed(list(views.items()))), seed=99))
    assert "error" not in first, first
    assert first["model_base64"] == second["model_base64"]

    # The tiny VAE decodes a fixed shape, so the views' effect shows in the latents.
    import torch

    backend = worker.get_pipeline().backend("hunyuan3d-2mv-fast")

    def latents(left: bytes) -> torch.Tensor:
        image = {
            "front": Image.open(io.BytesIO(view_png("front"))).convert("RGBA"),
            "left": Image.open(io.BytesIO(left)).convert("RGBA"),
        }
        return backend.pipeline(
            image=image,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(5),
            output_type="latent",
            enable_pbar=False,
        )

    assert torch.equal(latents(view_png("left")), latents(view_png("left")))
    assert not torch.allclose(latents(view_png("left")), latents(view_png("back")))


@pytest.mark.slow
def test_auto_routes_by_views(family):
    response = run(job("auto"))
    assert response["model"] == "hunyuan3d-2"  # the best single-view variant, though multi-view ones are present
    response = run(job("auto", {"left": b64(view_png("left"))}))
    assert response["model"] == "hunyuan3d-2mv", response
    response = run(job("hunyuan3d-2mv-turbo"))  # a multi-view model takes a lone front image too
    assert response["model"] == "hunyuan3d-2mv-turbo", response


@pytest.mark.slow
def test_swapped_checkpoint_folder_is_named(tmp_path, monkeypatch):
    """A single-view checkpoint in a multi-view model's folder fails at load, naming the file."""
    import shutil

    from pipeline.backends.hunyuan import HunyuanShapeBackend
    from pipeline.errors import PipelineError

    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    folder = write_model(tmp_path, "hunyuan3d-2")
    shutil.copytree(folder, tmp_path / "tencent/Hunyuan3D-2mv/hunyuan3d-dit-v2-mv")
    with pytest.raises(PipelineError, match=r"hunyuan3d-dit-v2-mv/config.yaml is not a multi-view checkpoint"):
        HunyuanShapeBackend("hunyuan3d-2mv", device="cpu").load()


@pytest.mark.slow
def test_multiview_model_under_mmgp_hands_over_its_mv_conditioner(family, monkeypatch):
    """On CUDA the multi-view pipeline goes to mmgp like the others (pipeline.memory):
    its DiT, its FlashVDM VAE, and the conditioner that holds DinoImageEncoderMV."""
    import sys
    import types

    from hy3dgen.shapegen.models.conditioner import DinoImageEncoderMV

    from pipeline.backends import hunyuan
    from pipeline.memory import PROFILES

    handed = []
    offload = types.ModuleType("mmgp.offload")
    offload.profile = lambda models, profile_no, **kwargs: (
        handed.append((models, profile_no)) or types.SimpleNamespace(release=lambda: None, unload_all=lambda: None)
    )
    package = types.ModuleType("mmgp")
    package.offload = offload
    monkeypatch.setitem(sys.modules, "mmgp", package)
    monkeypatch.setitem(sys.modules, "mmgp.offload", offload)
    PROFILES.reset()
    try:
        backend = hunyuan.HunyuanShapeBackend("hunyuan3d-2mv-turbo", device="cuda")
        backend._use_profile(4)
        models, profile = handed[0]
        assert profile == 4 and backend.profile == 4
        assert set(models) == {"shape_dit", "shape_vae", "shape_conditioner"}
        assert isinstance(models["shape_conditioner"].main_image_encoder, DinoImageEncoderMV)
        assert models["shape_vae"].volume_decoder.__class__.__name__ == "FlashVDMVolumeDecoding"
        assert models["shape_dit"].guidance_embed is True
    finally:
        PROFILES.reset()


@pytest.mark.slow
def test_app_generate_old_and_new_positional_forms(family, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    paths = {}
    for kind in ("front", *VIEW_NAMES):
        paths[kind] = tmp_path / f"{kind}.png"
        paths[kind].write_bytes(view_png(kind))
    common = (3, False, False, 1234, False, 3000, 2, None, OCTREE, None, 2048, "hunyuan3d-paint-v2-0")
    with running_app() as url:
        client = Client(url, verbose=False)
        # the old form: 14 positional arguments, no smooth_normals, no views
        _, _, _, stats, _ = client.predict(
            handle_file(str(paths["front"])), "hunyuan3d-2mini-fast", *common, api_name="/generate"
        )
        assert stats["model"] == "hunyuan3d-2mini-fast"
        # the new form: smooth_normals, then left, back, right (any may be None)
        viewer, _, _, stats, _ = client.predict(
            handle_file(str(paths["front"])),
            "hunyuan3d-2mv",
            *common,
            False,
            handle_file(str(paths["left"])),
            None,
            handle_file(str(paths["right"])),
            api_name="/generate",
        )
        assert stats["model"] == "hunyuan3d-2mv"
        assert {"decode.left", "decode.right"} <= set(stats["timings"]) and "decode.back" not in stats["timings"]
        check_sphere(open(viewer, "rb").read())
        _, _, _, stats, _ = client.predict(
            handle_file(str(paths["front"])),
            "auto",
            *common,
            False,
            handle_file(str(paths["left"])),
            handle_file(str(paths["back"])),
            handle_file(str(paths["right"])),
            api_name="/generate",
        )
        assert stats["model"] == "hunyuan3d-2mv"
        with pytest.raises(AppError, match=r"Field 'views' needs a multi-view model .* 'hunyuan3d-2-fast' takes"):
            client.predict(
                handle_file(str(paths["front"])),
                "hunyuan3d-2-fast",
                *common,
                False,
                handle_file(str(paths["back"])),
                api_name="/generate",
            )


@pytest.mark.slow
def test_model_family_bench_runs_on_tiny_models(monkeypatch):
    import os

    from bench import model_family

    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    before = os.environ["HY3DGEN_MODELS"]
    lines = []
    rows = model_family.run(steps=2, repeats=1, dims_name="tiny", log=lines.append)
    assert [r.label for r in rows] == [label for label, _, _ in model_family.ROWS]
    assert all(r.diffusion_s > 0 and r.per_step_s > 0 for r in rows)
    assert [r.views for r in rows] == [0, 0, 0, 1, 3, 3] and len(lines) == len(rows)
    assert os.environ["HY3DGEN_MODELS"] == before
