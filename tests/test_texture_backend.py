"""The texture backend, end to end on CPU with tiny random delight and paint models.

hy3dgen's real texgen code (delighting, multiview diffusion, rendering, baking)
runs through :class:`pipeline.texture.backend.TextureBackend` on models that
``fakes/tiny_paint.py`` writes, with hy3dgen's production sampling
(50 + 30 steps, six 512-px views), float32, the PyTorch rasterizer and no
network.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from fakes.tiny_paint import MODULES_EXECUTED_ENV, REPO_ID, write_tiny_texture_models
from pipeline.backends import lifecycle
from pipeline.errors import OptionsError, OutOfMemoryError, PipelineError, WeightsMissingError
from pipeline.models import PAINT_MODELS
from pipeline.texture import loading
from pipeline.texture import texgen as texgen_module
from pipeline.texture.backend import (
    DEFAULT_PAINT_MODEL,
    RenderConfig,
    Sampling,
    TextureBackend,
    render_config,
)
from pipeline.texture.config import camera_indices
from pipeline.weights import resolve_texture_weights, texture_weights_present

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("load", "delight", "uv", "render", "multiview", "bake", "inpaint")


# -- helpers ----------------------------------------------------------------------------


def subject(size: int = 256) -> Image.Image:
    """An RGBA subject on a transparent background (background already removed)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 30, size - 46, size - 36), fill=(210, 40, 40, 255))
    draw.rectangle((90, 110, 160, 140), fill=(30, 60, 200, 255))
    return image


def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3)  # 1280 faces, closed


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, float, str]] = []

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        self.calls.append((stage, fraction, message))

    @property
    def messages(self) -> list[str]:
        return [message for _, _, message in self.calls]


def _loopback(host: object) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def block_network(patch: pytest.MonkeyPatch) -> list:
    """Make every non-loopback connection or name lookup fail like a dead
    network; returns the list of attempts, so a swallowed failure still shows."""
    attempts: list = []
    real_connect, real_connect_ex, real_lookup = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(real):
        def call(sock, address):
            if isinstance(address, tuple) and not _loopback(address[0]):
                attempts.append(address)
                raise OSError(f"network blocked in tests: {address}")
            return real(sock, address)

        return call

    def lookup(host, *args, **kwargs):
        if not _loopback(host):
            attempts.append(host)
            raise socket.gaierror(f"name lookup blocked in tests: {host}")
        return real_lookup(host, *args, **kwargs)

    patch.setattr(socket.socket, "connect", guarded(real_connect))
    patch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
    patch.setattr(socket, "getaddrinfo", lookup)
    return attempts


def isolate_roots(patch: pytest.MonkeyPatch, models: Path, scratch: Path) -> None:
    """Weights only in ``models``; the RunPod and HF caches point at empty folders."""
    patch.setenv("HY3DGEN_MODELS", str(models))
    patch.setenv("RUNPOD_HF_CACHE", str(scratch / "runpod"))
    patch.setenv("HF_HOME", str(scratch / "hf_home"))
    patch.delenv(MODULES_EXECUTED_ENV, raising=False)


def fake_folders(root: Path, *subfolders: str) -> Path:
    """Folders that pass the completeness check without being loadable (for tests that never load)."""
    for sub in subfolders:
        folder = root / REPO_ID / sub
        (folder / "unet").mkdir(parents=True)
        (folder / "model_index.json").write_text("{}")
        (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"weights")
    return root


@pytest.fixture
def roots(monkeypatch, tmp_path) -> Path:
    models = tmp_path / "hy3dgen"
    models.mkdir()
    isolate_roots(monkeypatch, models, tmp_path)
    return models


# -- the tiny models, written once; one production-sampling paint shared by several tests ------


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("texture-models")
    write_tiny_texture_models(root)
    return root


@pytest.fixture(scope="module")
def painted(models_root, tmp_path_factory):
    """Load (default variant) and paint a sphere at 512 on CPU, offline."""
    scratch = tmp_path_factory.mktemp("texture-scratch")
    with pytest.MonkeyPatch.context() as patch:
        isolate_roots(patch, models_root, scratch)
        attempts = block_network(patch)
        backend = TextureBackend(None, device="cpu")
        progress, mesh = Recorder(), sphere()
        started = time.perf_counter()
        result = backend.paint(mesh, subject(), 512, progress)
        seconds = time.perf_counter() - started
        modules_ran = os.environ.get(MODULES_EXECUTED_ENV)
        yield types.SimpleNamespace(
            backend=backend,
            result=result,
            progress=progress,
            mesh=mesh,
            attempts=attempts,
            seconds=seconds,
            modules_ran=modules_ran,
        )


# -- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_painted_mesh_has_uvs_and_a_base_colour_texture(painted):
    mesh, source = painted.result.mesh, painted.mesh
    uv = np.asarray(mesh.visual.uv)
    assert uv.shape == (len(mesh.vertices), 2) and uv.min() >= 0.0 and uv.max() <= 1.0
    assert len(mesh.faces) == len(source.faces)  # the unwrap only splits vertices along seams
    assert len(mesh.vertices) >= len(source.vertices)
    distances, _ = source.kdtree.query(mesh.vertices)
    assert distances.max() < 1e-6  # every vertex is one of the input's
    texture = mesh.visual.material.baseColorTexture
    assert isinstance(texture, Image.Image) and texture.size == (512, 512) and texture.mode == "RGB"
    assert np.asarray(texture).std() > 0
    assert painted.result.rasterizer == painted.backend.rasterizer == "torch"
    assert painted.result.warnings == []


@pytest.mark.slow
def test_every_stage_is_timed_and_reports_progress(painted):
    timings = painted.result.timings
    assert set(STAGES) <= set(timings) and all(timings[s] >= 0 for s in STAGES)
    assert timings["load"] > 0 and timings["multiview"] > 0
    assert sum(timings[s] for s in STAGES[1:]) <= painted.seconds
    calls = painted.progress.calls
    fractions = [fraction for _, fraction, _ in calls]
    assert {stage for stage, _, _ in calls} == {"texture"}
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] == 1.0
    messages = painted.progress.messages
    # hy3dgen's own sampling ran: 50 delight steps, 30 multiview steps, six views.
    for expected in (
        "Delighting step 1/50",
        "Delighting step 50/50",
        "Painting views, step 30/30",
        "Rendered view 6/6",
        "Baked view 6/6",
        "Texture 512x512",
    ):
        assert expected in messages
    assert sum(m.startswith("Painting views, step") for m in messages) == 30


@pytest.mark.slow
def test_runs_offline_without_running_weights_folder_code(painted):
    assert painted.attempts == []
    assert painted.modules_ran is None  # the checkpoint's unet/modules.py was never imported


@pytest.mark.slow
def test_cpu_float32_and_texgen_cuda_hard_codes_overridden(painted):
    import torch
    from hy3dgen.texgen import pipelines
    from hy3dgen.texgen.differentiable_renderer import mesh_render
    from hy3dgen.texgen.hunyuanpaint.unet.modules import UNet2p5DConditionModel

    from pipeline.texture.inpaint import mesh_vertex_inpaint

    texgen = painted.backend.texgen
    assert texgen.config.device == "cpu" and texgen.render.device == "cpu"
    assert texgen.pipeline.models["delight_model"].device == "cpu"
    for pipe in (texgen.delight.pipeline, texgen.multiview.pipeline):
        assert pipe.device.type == "cpu"
        assert {p.dtype for name in ("unet", "vae", "text_encoder") for p in getattr(pipe, name).parameters()} == {
            torch.float32
        }
    assert type(texgen.multiview.pipeline.unet) is UNet2p5DConditionModel  # hy3dgen's class, not the checkpoint's
    assert mesh_render.meshVerticeInpaint is mesh_vertex_inpaint
    assert pipelines.mesh_uv_wrap.__module__ == texgen_module.__name__


@pytest.mark.slow
def test_exported_glb_has_a_jpeg_texture_of_the_requested_size(painted):
    from pipeline.export import export_glb, glb_stats

    stats = glb_stats(export_glb(painted.result.mesh))
    assert stats["has_texture"] and stats["texture_mime"] == "image/jpeg"
    assert (stats["texture_width"], stats["texture_height"]) == (512, 512)
    assert stats["faces"] == len(painted.mesh.faces)


@pytest.mark.slow
def test_texgens_own_call_runs_on_cpu_with_the_overrides(painted):
    """hy3dgen's ``Hunyuan3DPaintPipeline.__call__`` itself (its normal/position
    conversion, unwrap and inpaint included) runs on the objects the backend built."""
    out = painted.backend.texgen.pipeline(sphere(), subject())
    assert isinstance(out, trimesh.Trimesh) and len(out.faces) == 1280
    assert out.visual.material.image.size == (512, 512)
    assert np.asarray(out.visual.uv).max() <= 1.0


@pytest.mark.slow
def test_sampling_overrides_and_the_standard_variant(models_root, monkeypatch, tmp_path):
    isolate_roots(monkeypatch, models_root, tmp_path)
    backend = TextureBackend(None, "hunyuan3d-paint-v2-0", device="cpu", sampling=Sampling(2, 3, 256))
    assert backend.weights.paint.name == "hunyuan3d-paint-v2-0"
    progress = Recorder()
    result = backend.paint(sphere(), subject(), 512, progress)
    assert "Delighting step 2/2" in progress.messages and "Delighting step 3/50" not in progress.messages
    assert "Painting views, step 3/3" in progress.messages
    assert backend.texgen.pipeline.models["multiview_model"].view_size == 256
    assert result.mesh.visual.material.baseColorTexture.size == (512, 512)


@pytest.mark.slow
def test_fp16_load_as_on_cuda(models_root):
    import torch

    from fakes.tiny_paint import DELIGHT_SUBFOLDER

    repo = models_root / REPO_ID
    paint = loading.load_paint(repo / DEFAULT_PAINT_MODEL, "cpu", torch.float16)
    delight = loading.load_delight(repo / DELIGHT_SUBFOLDER, "cpu", torch.float16)
    for pipe in (paint, delight):
        assert {p.dtype for name in ("unet", "vae", "text_encoder") for p in getattr(pipe, name).parameters()} == {
            torch.float16
        }
    assert type(paint.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert paint.scheduler.config.timestep_spacing == "trailing"


def _checksums(paint, delight) -> list[float]:
    """Sums of a few tensors from every kind of file the loaders read."""
    tensors = [
        paint.text_encoder.text_model.embeddings.token_embedding.weight,
        paint.vae.encoder.conv_in.weight,
        paint.unet.unet.conv_in.weight,
        paint.unet.unet.learned_text_clip_gen,
        delight.unet.conv_in.weight,
    ]
    return [round(float(t.detach().double().sum()), 6) for t in tensors]


@pytest.mark.slow
def test_models_load_the_same_after_mmgp_patched_safetensors(models_root):
    """The shape backend imports mmgp on CUDA, which patches safetensors
    process-wide; the texture models may load after that (first textured request)."""
    import subprocess

    import torch

    repo = models_root / REPO_ID
    expected = _checksums(
        loading.load_paint(repo / DEFAULT_PAINT_MODEL, "cpu", torch.float32),
        loading.load_delight(repo / "hunyuan3d-delight-v2-0", "cpu", torch.float32),
    )
    code = (
        "import sys, mmgp.offload, torch\n"
        "from pathlib import Path\n"
        "from pipeline.texture import loading\n"
        "from tests.test_texture_backend import _checksums\n"
        "repo = Path(sys.argv[1])\n"
        "print(_checksums(loading.load_paint(repo / sys.argv[2], 'cpu', torch.float32),\n"
        "                 loading.load_delight(repo / 'hunyuan3d-delight-v2-0', 'cpu', torch.float32)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(repo), DEFAULT_PAINT_MODEL],
        cwd=ROOT,
        check=True,
        timeout=180,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip().splitlines()[-1] == str(expected)


@pytest.mark.slow
def test_a_unet_checkpoint_that_does_not_fit_is_a_clear_error(models_root, tmp_path):
    import shutil

    import torch

    unet = tmp_path / "unet"
    shutil.copytree(models_root / REPO_ID / DEFAULT_PAINT_MODEL / "unet", unet)
    state = torch.load(unet / "diffusion_pytorch_model.bin", weights_only=True)
    state.pop("unet.learned_text_clip_gen")
    torch.save(state, unet / "diffusion_pytorch_model.bin")
    with pytest.raises(PipelineError, match="1 missing keys.*learned_text_clip_gen"):
        loading.load_paint_unet(unet, torch.float32)


@pytest.mark.slow
def test_gpu_bench_measurement_loop_runs_on_tiny_models(monkeypatch, tmp_path, capsys):
    """The CUDA path cannot run here; its loop, timings and table run on CPU
    with tiny models, so a GPU session does not discover its bugs."""
    isolate_roots(monkeypatch, tmp_path / "unused", tmp_path)
    gpu_texture = _import_bench("gpu_texture")
    from fakes.tiny_paint import TINY_DIMS

    args = gpu_texture.parse_args(
        ["--sizes", "512", "--faces", "2000", "--resolution", "64", "--sampling", "2", "2", "256"]
    )
    rows = gpu_texture.run(args, dims=TINY_DIMS, device="cpu")
    assert [(r.variant, r.texture_size, r.rasterizer) for r in rows] == [(DEFAULT_PAINT_MODEL, 512, "torch")]
    assert all(v >= 0 for v in rows[0].stages.values()) and rows[0].total_s > 0
    out = capsys.readouterr().out
    assert "multiview" in out and "failed" not in out
    assert os.environ["HY3DGEN_MODELS"] == str(tmp_path / "unused")  # restored


# -- fast checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("size, kernel", [(512, 2), (1024, 4), (2048, 8)])
def test_texture_size_sets_render_and_texture_config(size, kernel):
    """What a request's texture_size does to texgen's config and renderer, without running."""
    from hy3dgen.texgen.differentiable_renderer.mesh_render import MeshRender

    from pipeline.texture.rasterizer import install_rasterizer

    install_rasterizer()
    assert render_config(size) == RenderConfig(render_size=size, texture_size=size)
    assert render_config(size).unreliable_kernel == kernel
    fresh = MeshRender(default_resolution=size, texture_size=size, device="cpu")  # texgen's own derivation
    reused = types.SimpleNamespace(
        config=types.SimpleNamespace(render_size=2048, texture_size=2048),
        render=MeshRender(default_resolution=2048, texture_size=2048, device="cpu"),
    )
    texgen_module.apply_render_config(reused, render_config(size))
    assert (reused.config.render_size, reused.config.texture_size) == (size, size)
    assert reused.render.default_resolution == fresh.default_resolution == (size, size)
    assert reused.render.texture_size == fresh.texture_size == (size, size)
    assert reused.render.bake_unreliable_kernel_size == fresh.bake_unreliable_kernel_size == kernel


@pytest.mark.parametrize("size", [256, 1000, 4096, "1024"])
def test_other_texture_sizes_are_refused(size):
    with pytest.raises(OptionsError, match="texture_size"):
        render_config(size)


def test_missing_weights_fail_fast_naming_folders_and_command(roots):
    started = time.perf_counter()
    with pytest.raises(WeightsMissingError) as caught:
        TextureBackend(None, device="cpu")
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert "hunyuan3d-delight-v2-0" in message and DEFAULT_PAINT_MODEL in message
    assert "python -m pipeline.weights download --texture" in message
    assert caught.value.searched and all("Hunyuan3D" in path for path in caught.value.searched)
    assert not texture_weights_present() and not texture_weights_present("hunyuan3d-paint-v2-0")


def test_only_the_missing_folder_is_named(roots):
    turbo = "hunyuan3d-paint-v2-0-turbo"
    fake_folders(roots, "hunyuan3d-delight-v2-0", "hunyuan3d-paint-v2-0")
    assert texture_weights_present("hunyuan3d-paint-v2-0") and not texture_weights_present(turbo)
    with pytest.raises(WeightsMissingError) as caught:
        resolve_texture_weights(turbo)
    assert f"Hunyuan3D-2: {turbo})" in str(caught.value)
    assert "delight" not in str(caught.value).split("searched")[0]


def test_unknown_paint_model_is_refused(roots):
    with pytest.raises(OptionsError, match="paint_model"):
        TextureBackend(None, "hunyuan3d-paint-v9")
    with pytest.raises(OptionsError):
        texture_weights_present("nope")


def test_backends_are_cached_and_one_variant_keeps_its_models(roots, monkeypatch):
    from pipeline.service import ImageTo3D

    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    service = ImageTo3D()
    with pytest.raises(WeightsMissingError):
        service.texture_backend()
    fake_folders(roots, "hunyuan3d-delight-v2-0", *PAINT_MODELS)
    first = service.texture_backend()
    assert service.texture_backend() is first and first.texgen is None  # models load on first use
    first.texgen = "loaded models"
    other = service.texture_backend("hunyuan3d-paint-v2-0-turbo")
    assert other is not first and first.texgen is None  # released


def test_a_replacement_backend_is_served_and_release_forgets_them_all(roots, monkeypatch):
    from pipeline.service import ImageTo3D

    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    fake_folders(roots, "hunyuan3d-delight-v2-0", DEFAULT_PAINT_MODEL)
    service = ImageTo3D()
    first = service.texture_backend()
    first.texgen = "loaded models"
    few_steps = TextureBackend(None, sampling=Sampling(1, 1, 64), device="cpu")
    service.use_texture_backend(few_steps)
    assert service.texture_backend() is few_steps and first.texgen is None  # the replaced one is released
    few_steps.texgen = "loaded models"
    service.release()
    assert few_steps.texgen is None and service.texture_backend() is not few_steps


def test_camera_indices_are_texgens():
    """hy3dgen's six default cameras map to these rows of its camera embedding."""
    assert camera_indices([0, 0, 0, 0, 90, -90], [0, 90, 180, 270, 0, 180]) == [21, 12, 15, 18, 43, 37]


class FakePipeline:
    """Records what texgen's wrapper would hand the diffusers pipeline."""

    def __init__(self, dtype):
        import torch

        self.device, self.dtype, self.calls = torch.device("cpu"), dtype, []
        # Where diffusers runs the models: under mmgp, CUDA while the idle models sit on the host.
        self._execution_device = torch.device("meta")

    def __call__(self, image, **kwargs):
        self.calls.append(kwargs)
        callback = kwargs.get("callback_on_step_end")
        for step in range(kwargs["num_inference_steps"]):
            if callback is not None:
                assert callback(self, step, 999 - step, {"latents": None}) == {}
        return "images"


def test_device_aware_call_hands_views_over_on_the_pipelines_execution_device_and_dtype():
    import torch

    fake = FakePipeline(torch.float16)
    call = texgen_module._DeviceAwareCall(fake)
    view = Image.new("RGBA", (8, 8), (0, 0, 255, 255))
    view.putpixel((0, 0), (0, 0, 0, 0))  # transparent: composited on white, as texgen does
    steps: list[tuple[int, int]] = []
    with call.configured(4, lambda i, n: steps.append((i, n))):
        out = call("image", num_inference_steps=30, normal_imgs=[[view, view]], position_imgs=[[view, view]])
    assert out == "images"
    sent = fake.calls[0]
    assert sent["num_inference_steps"] == 4 and steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for key in ("normal_imgs", "position_imgs"):
        tensor = sent[key]
        assert tensor.shape == (1, 2, 3, 8, 8) and tensor.dtype == torch.float16 and tensor.device.type == "meta"
    values = texgen_module.views_to_tensor([[view, view]], "cpu", torch.float16)
    assert values[0, 0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert values[0, 0, :, 1, 1].tolist() == [0.0, 0.0, 1.0]
    call("image", num_inference_steps=30)  # outside configured(): texgen's own values, no callback
    assert fake.calls[1] == {"num_inference_steps": 30} and call.device == fake.device


def test_cuda_out_of_memory_becomes_a_clear_error(roots, monkeypatch):
    import torch

    fake_folders(roots, "hunyuan3d-delight-v2-0", DEFAULT_PAINT_MODEL)
    backend = TextureBackend(None, device="cuda")
    assert backend.dtype == torch.float16
    freed = []
    monkeypatch.setattr(lifecycle, "free_cuda_memory", lambda: freed.append(True))

    def boom(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(backend, "_paint", boom)
    with pytest.raises(OutOfMemoryError, match="texture_size") as caught:
        backend.paint(sphere(), subject(), 2048)
    assert caught.value.__cause__ is None and freed == [True]


def test_other_errors_and_bad_input_pass_through(roots, monkeypatch):
    from pipeline.errors import ImageError

    fake_folders(roots, "hunyuan3d-delight-v2-0", DEFAULT_PAINT_MODEL)
    backend = TextureBackend(None, device="cpu")
    with pytest.raises(ImageError, match="transparent"):
        backend.paint(sphere(), Image.new("RGBA", (32, 32)), 512)

    def broken(*args):
        raise RuntimeError("CUDA out of memory")  # on CPU this is not an OOM to recover from

    monkeypatch.setattr(backend, "_paint", broken)
    with pytest.raises(RuntimeError):
        backend.paint(sphere(), subject(), 512)


def _import_bench(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_gpu_bench_dry_run_counts_full_size_parameters(capsys):
    gpu_texture = _import_bench("gpu_texture")
    counts = gpu_texture.dry_run()
    assert 0.86e9 < counts["delight_unet"] < 0.87e9  # Stable Diffusion 2's UNet with 8 input channels
    assert 1.8e9 < counts["paint_unet_2p5d"] < 1.9e9  # two such UNets plus multiview/reference attention
    assert 0.33e9 < counts["text_encoder"] < 0.35e9 and 80e6 < counts["vae"] < 90e6
    assert "paint total" in capsys.readouterr().out
    assert gpu_texture.main([]) == 0  # no CUDA here: a clear line, exit 0
    assert "needs CUDA" in capsys.readouterr().out
