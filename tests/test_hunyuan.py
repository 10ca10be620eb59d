"""The Hunyuan3D-2 shape backend, end to end on CPU with tiny random checkpoints.

hy3dgen's real loading, conditioning, flow-matching sampling, VAE decoding and
surface extraction run on checkpoints written by ``fakes``; their
geo-decoder encodes a known analytic shape, so the meshes can be checked.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fakes.tiny_hunyuan import SHAPES, write_tiny_shape_model
from pipeline import device as device_helpers
from pipeline.backends import hunyuan
from pipeline.backends.hunyuan import HunyuanShapeBackend, ShapeParams
from pipeline.errors import ImageError, PipelineError
from pipeline.models import HUNYUAN_MODELS
from pipeline.options import parse_options
from pipeline.service import ImageTo3D

ROOT = Path(__file__).resolve().parents[1]
OCTREE = 64  # the smallest the options allow; a few hundred ms per decode


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    """Tiny checkpoints, written once: the standard model encodes the off-centre
    egg; the turbo DiT's own VAE a sphere and its FlashVDM VAE the ellipsoid."""
    root = tmp_path_factory.mktemp("hy3dgen")
    write_tiny_shape_model(root, shape="offset")
    write_tiny_shape_model(
        root,
        subfolder="hunyuan3d-dit-v2-0-turbo",
        turbo_vae_subfolder="hunyuan3d-vae-v2-0-turbo",
        shape="sphere",
        turbo_vae_shape="ellipsoid",
        seed=5,
    )
    write_tiny_shape_model(root, "tencent/Hunyuan3D-2mini", "hunyuan3d-dit-v2-mini", shape="empty")
    return root


@pytest.fixture
def offline(models_root, monkeypatch, tmp_path):
    """Weights only in HY3DGEN_MODELS; any socket connection fails the test."""
    monkeypatch.setenv("HY3DGEN_MODELS", str(models_root))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HY3D_DEVICE", "cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("the shape backend tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return models_root


def subject(size: int = 160) -> Image.Image:
    """An RGBA subject on a transparent background (background already removed)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((30, 20, size - 40, size - 25), fill=(210, 40, 40, 255))
    return image


def options(**fields):
    return parse_options({"steps": 3, "octree_resolution": OCTREE, "generate_texture": False, **fields})


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, float, str]] = []

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        self.calls.append((stage, fraction, message))


def assert_matches(mesh, shape_name: str, bounds_tol: float = 0.01, volume_rel: float = 0.02) -> None:
    shape = SHAPES[shape_name]
    np.testing.assert_allclose(mesh.bounds, shape.bounds(), atol=bounds_tol)
    assert mesh.volume == pytest.approx(shape.volume(), rel=volume_rel)


# -- end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_generate_matches_the_analytic_shape(offline):
    backend = HunyuanShapeBackend("hunyuan3d-2")
    progress = Recorder()
    out = backend.generate(subject(), options(max_faces=5000), progress)
    mesh = out.mesh
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0  # closed, facing outward
    assert len(mesh.faces) <= 5000
    assert_matches(mesh, "offset", bounds_tol=0.015, volume_rel=0.03)  # after decimation to 5000 faces
    # hy3dgen's native frame is kept (Y up, front +Z): the egg sits above and in front of the origin
    assert mesh.centroid[1] > 0.1 and mesh.centroid[2] > 0.15
    assert np.all(np.abs(mesh.vertices) <= 1.0)
    assert out.model == "hunyuan3d-2" and out.textured is False
    assert out.profile is None and out.warnings == ["profile 3 ignored on CPU; running float32"]
    assert {"shape_load", "diffusion", "decode", "surface"} <= set(out.timings)
    assert any(k.startswith("postprocess_") for k in out.timings)
    steps = [(f, m) for s, f, m in progress.calls if m.startswith("Diffusion step")]
    assert [m for _, m in steps] == ["Diffusion step 1/3", "Diffusion step 2/3", "Diffusion step 3/3"]
    fractions = [f for _, f, _ in progress.calls]
    assert fractions == sorted(fractions) and all(s == "shape" for s, _, _ in progress.calls)


@pytest.mark.slow
def test_exact_geometry_without_decimation(offline):
    """Within a fraction of a voxel: hy3dgen's own extractor, which scales by
    res+1 instead of res, would miss by ~0.016 here."""
    from pipeline.backends.hy3dgen_extractor import Hy3dgenSurfaceExtractor

    backend = HunyuanShapeBackend("hunyuan3d-2")
    out = backend.generate(subject(), options(max_faces=500000), Recorder())
    assert isinstance(backend.pipeline.vae.surface_extractor, Hy3dgenSurfaceExtractor)
    assert_matches(out.mesh, "offset", bounds_tol=0.004, volume_rel=0.01)


@pytest.mark.slow
def test_same_seed_same_mesh_different_seed_different_latents(offline, monkeypatch):
    backend = HunyuanShapeBackend("hunyuan3d-2")
    latents = []
    decode = backend._decode

    def spy(lat, *args):
        latents.append(lat.clone())
        return decode(lat, *args)

    monkeypatch.setattr(backend, "_decode", spy)
    first = backend.generate(subject(), options(seed=7), Recorder())
    again = backend.generate(subject(), options(seed=7), Recorder())
    other = backend.generate(subject(), options(seed=8), Recorder())
    assert np.array_equal(first.mesh.vertices, again.mesh.vertices)
    assert np.array_equal(first.mesh.faces, again.mesh.faces)
    assert latents[0].equal(latents[1])
    assert not latents[0].allclose(latents[2])
    # the analytic decoder ignores the latents, so the shape itself stays the same
    assert_matches(other.mesh, "offset")


@pytest.mark.slow
def test_pipeline_loads_once_and_is_reused(offline, monkeypatch):
    loads = []
    real = hunyuan.load_pipeline
    monkeypatch.setattr(hunyuan, "load_pipeline", lambda *a: loads.append(a) or real(*a))
    service = ImageTo3D()
    backend = service.backend("hunyuan3d-2")
    assert service.backend("hunyuan3d-2") is backend
    first = backend.generate(subject(), options(), Recorder())
    pipe = backend.pipeline
    second = backend.generate(subject(), options(), Recorder())
    assert len(loads) == 1 and backend.pipeline is pipe
    assert first.timings["shape_load"] > 0 and second.timings["shape_load"] == 0


@pytest.mark.slow
def test_turbo_uses_flashvdm_with_its_own_vae(offline, monkeypatch):
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline
    from hy3dgen.shapegen.models.autoencoders import FlashVDMVolumeDecoding

    from pipeline.backends.hy3dgen_extractor import Hy3dgenSurfaceExtractor

    calls = []
    real = Hunyuan3DDiTFlowMatchingPipeline.enable_flashvdm

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Hunyuan3DDiTFlowMatchingPipeline, "enable_flashvdm", spy)
    backend = HunyuanShapeBackend("hunyuan3d-2-turbo")
    out = backend.generate(subject(), options(steps=None), Recorder())
    assert calls == [{"enabled": True, "replace_vae": False, "mc_algo": "mc"}]
    assert isinstance(backend.pipeline.vae.volume_decoder, FlashVDMVolumeDecoding)
    assert isinstance(backend.pipeline.vae.surface_extractor, Hy3dgenSurfaceExtractor)  # set after enable_flashvdm
    assert backend.pipeline.model.guidance_embed is True
    # The turbo DiT checkpoint's own VAE draws a sphere; the FlashVDM VAE an ellipsoid.
    assert_matches(out.mesh, "ellipsoid")
    assert out.mesh.is_watertight
    assert ShapeParams.from_options(backend.spec, options(steps=None)).steps == 5


@pytest.mark.slow
def test_turbo_hierarchical_decoding_at_higher_resolution(offline):
    """At octree 128 FlashVDM decodes 63^3 and refines near the surface only."""
    out = HunyuanShapeBackend("hunyuan3d-2-turbo").generate(
        subject(), options(octree_resolution=128, max_faces=500000), Recorder()
    )
    assert out.mesh.is_watertight
    assert_matches(out.mesh, "ellipsoid", bounds_tol=0.004, volume_rel=0.01)


@pytest.mark.slow
def test_loads_from_runpod_hf_cache_layout(offline, tmp_path, monkeypatch):
    """Symlinked HF-cache files load like plain ones."""
    hub = tmp_path / "runpod"
    repo = hub / "models--tencent--Hunyuan3D-2"
    snapshot = repo / "snapshots" / "rev1" / "hunyuan3d-dit-v2-0"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in (offline / "tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0").iterdir():
        blob = repo / "blobs" / file.name
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(Path("../../../blobs") / file.name)
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path / "empty"))
    backend = HunyuanShapeBackend("hunyuan3d-2")
    assert backend.weights.dit.source == "RunPod cache"
    assert_matches(backend.generate(subject(), options(max_faces=500000), Recorder()).mesh, "offset")


@pytest.mark.slow
def test_no_surface_is_a_clear_error(offline):
    with pytest.raises(PipelineError, match="no surface"):
        HunyuanShapeBackend("hunyuan3d-2mini").generate(subject(), options(), Recorder())


def test_backend_accepts_a_spec_and_resolves_at_construction(offline):
    backend = HunyuanShapeBackend(HUNYUAN_MODELS["hunyuan3d-2-turbo"])
    assert backend.name == "hunyuan3d-2-turbo" and backend.device == "cpu"
    assert backend.weights.dit.folder == offline / "tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0-turbo"
    assert backend.weights.vae.folder == offline / "tencent/Hunyuan3D-2/hunyuan3d-vae-v2-0-turbo"
    assert backend.pipeline is None  # built by load() or the first request


@pytest.mark.slow
def test_reload_after_mmgp_import(offline):
    """Re-profiling reloads the checkpoint after mmgp has patched safetensors."""
    code = (
        "import mmgp.offload, torch\n"
        "from pipeline.weights import resolve_model\n"
        "from pipeline.backends.hunyuan import load_pipeline\n"
        "pipe = load_pipeline(resolve_model('hunyuan3d-2'), torch.float16)\n"
        "assert pipe.model.latent_in.weight.dtype == torch.float16\n"
    )
    env = {**os.environ, "HY3DGEN_MODELS": str(offline)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)


def test_fast_load_restores_every_weight(offline):
    """Loading skips the random init; every tensor must still come from the
    checkpoint, exactly as hy3dgen's own loader gives it."""
    import torch
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline
    from hy3dgen.shapegen.models.autoencoders import ShapeVAE

    from pipeline.weights import resolve_model

    resolved = resolve_model("hunyuan3d-2-turbo")
    ours = hunyuan.load_pipeline(resolved, torch.float32)
    dit, vae = resolved.dit, resolved.vae
    theirs = Hunyuan3DDiTFlowMatchingPipeline.from_single_file(
        str(dit.weights), str(dit.config), device="cpu", dtype=torch.float32, use_safetensors=True
    )
    theirs.vae = ShapeVAE.from_single_file(
        str(vae.weights), str(vae.config), device="cpu", dtype=torch.float32, use_safetensors=True
    )
    for part in ("model", "vae", "conditioner"):
        mine, ref = getattr(ours, part).state_dict(), getattr(theirs, part).state_dict()
        assert mine.keys() == ref.keys()
        assert all(torch.equal(mine[k], ref[k]) for k in ref), part
    assert torch.nn.init.kaiming_uniform_.__name__ == "kaiming_uniform_"  # torch's init is back


def test_fully_transparent_image_is_rejected(offline):
    backend = HunyuanShapeBackend("hunyuan3d-2")
    with pytest.raises(ImageError, match="transparent"):
        backend.generate(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), options(), Recorder())
    assert backend.pipeline is None  # rejected before any model work


# -- CUDA logic, exercised without a GPU (more in test_memory_profiles.py) ---------------


@pytest.fixture
def fake_mmgp(monkeypatch):
    """A recording stand-in for mmgp's offload.profile; the list of calls."""
    import types

    from pipeline.memory import PROFILES

    calls = []

    class FakeOffload:
        def release(self):
            pass

        def unload_all(self):
            pass

    offload = types.ModuleType("mmgp.offload")
    offload.profile = lambda models, profile_no, **kwargs: calls.append((profile_no, dict(models))) or FakeOffload()
    package = types.ModuleType("mmgp")
    package.offload = offload
    monkeypatch.setitem(sys.modules, "mmgp", package)
    monkeypatch.setitem(sys.modules, "mmgp.offload", offload)
    PROFILES.reset()
    yield calls
    PROFILES.reset()


def test_cuda_loads_fp16_on_the_host_and_applies_profile_once(offline, fake_mmgp):
    import torch

    backend = HunyuanShapeBackend("hunyuan3d-2", device="cuda")
    assert backend.dtype == torch.float16
    backend._use_profile(3)
    backend._use_profile(3)
    assert [(p, set(models)) for p, models in fake_mmgp] == [(3, {"shape_dit", "shape_vae", "shape_conditioner"})]
    assert fake_mmgp[0][1]["shape_dit"] is backend.pipeline.model
    assert backend.pipeline.model.latent_in.weight.dtype == torch.float16
    assert backend.pipeline.model.latent_in.weight.device.type == "cpu"  # mmgp moves it when called
    assert backend.pipeline.device == torch.device("cuda") and backend.profile == 3
    backend.release()
    assert backend.pipeline is None and backend.profile is None


def test_cpu_never_touches_mmgp(offline, fake_mmgp):
    out = HunyuanShapeBackend("hunyuan3d-2").generate(subject(), options(profile=1), Recorder())
    assert out.profile is None and out.warnings == ["profile 1 ignored on CPU; running float32"]
    assert fake_mmgp == []


def test_config_without_inline_encoder_is_refused(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "conditioner:\n  params:\n    main_image_encoder:\n      type: DinoImageEncoder\n"
        "      kwargs: {version: facebook/dinov2-giant}\n"
    )
    with pytest.raises(PipelineError, match="download"):
        hunyuan._check_no_download(str(config))


# -- helpers and packaging ----------------------------------------------------------


def test_params_default_to_the_model_spec():
    spec = HUNYUAN_MODELS["hunyuan3d-2"]
    params = ShapeParams.from_options(spec, parse_options({"seed": 3}))
    assert params == ShapeParams(steps=30, guidance_scale=5.0, octree_resolution=256, num_chunks=8000, seed=3)
    custom = ShapeParams.from_options(
        spec, parse_options({"steps": 7, "guidance_scale": 0.0, "octree_resolution": 128, "num_chunks": 2000})
    )
    assert (custom.steps, custom.guidance_scale, custom.octree_resolution, custom.num_chunks) == (7, 0.0, 128, 2000)


def test_device_choice(monkeypatch):
    import torch

    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    assert device_helpers.choose_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("HY3D_DEVICE", "auto")
    assert device_helpers.choose_device() == "cpu"
    monkeypatch.setenv("HY3D_DEVICE", "cuda")
    with pytest.raises(PipelineError, match="no CUDA device"):
        device_helpers.choose_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_helpers.choose_device() == "cuda"
    assert device_helpers.choose_dtype("cuda") == torch.float16
    assert device_helpers.choose_dtype("cpu") == torch.float32


def test_is_oom():
    import torch

    assert device_helpers.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert device_helpers.is_oom(RuntimeError("CUDA error: out of memory"))
    assert device_helpers.is_oom(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not device_helpers.is_oom(RuntimeError("shape mismatch"))
    assert not device_helpers.is_oom(ValueError("out of memory"))


def test_importing_the_backend_is_cheap():
    code = (
        "import sys, pipeline.backends.hunyuan, pipeline.weights, pipeline.device\n"
        "heavy = [m for m in ('torch', 'hy3dgen', 'mmgp', 'trimesh', 'huggingface_hub') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


@pytest.mark.slow
def test_gpu_bench_dry_run_counts_full_size_parameters(capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_shape
    finally:
        sys.path.remove(str(ROOT / "bench"))
    counts = gpu_shape.dry_run()
    standard, turbo = counts["standard"], counts["turbo"]
    assert 1.0e9 < standard["model"] < 1.2e9  # the 1.1B DiT
    assert 1.0e9 < standard["conditioner"] < 1.2e9  # DINOv2-giant
    assert turbo["model"] > standard["model"]  # guidance embedding
    assert turbo["turbo_vae"] == standard["vae"]
    assert counts["fast"]["model"] == turbo["model"]  # guidance-distilled: the same guidance embedding
    assert counts["multiview"] == standard  # the view embedding is a fixed sin-cos table, not weights
    assert "hunyuan3d-2-turbo" in capsys.readouterr().out
    assert gpu_shape.main([]) == 0  # no CUDA here: a clear line, exit 0
    assert "needs CUDA" in capsys.readouterr().out


@pytest.mark.slow
def test_gpu_bench_measurement_loop_runs_on_tiny_models(offline, capsys):
    """The CUDA path cannot run here; its loop, timings and table run on CPU
    with tiny checkpoints, so a GPU session does not discover its bugs."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_shape
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from fakes.tiny_hunyuan import TINY_DIMS

    args = argparse.Namespace(
        variants=["standard", "turbo", "fast", "multiview"],
        profiles=[3],
        steps=2,
        octree=64,
        num_chunks=8000,
        budget_s=120.0,
    )
    rows = gpu_shape.run(args, dims=TINY_DIMS, device="cpu")
    assert [(r.variant, r.profile) for r in rows] == [("standard", 3), ("turbo", 3), ("fast", 3), ("multiview", 3)]
    assert all(r.load_s > 0 and r.step_s > 0 and r.decode_s > 0 and r.faces > 0 for r in rows)
    out = capsys.readouterr().out
    assert "s/step" in out and "failed" not in out
    assert os.environ["HY3DGEN_MODELS"] == str(offline)  # restored


# -- the shared lifecycle, the service's cache, the extractor plug-in ---------------------


def test_the_extractor_gives_the_backend_outward_faces_and_hy3dgen_its_own_winding():
    """The backend takes outward faces as they are (no flip and flip back);
    hy3dgen's interface still gets scikit-image's winding, which its export reverses."""
    from bench.common import sphere_grid
    from pipeline.backends.hy3dgen_extractor import Hy3dgenSurfaceExtractor

    grid = sphere_grid(32, radius=0.5)
    extractor = Hy3dgenSurfaceExtractor()
    outward = extractor.outward_mesh(grid, mc_level=0.0, bounds=1.01)
    vertices, faces = extractor.run(grid, mc_level=0.0, bounds=1.01)
    assert np.array_equal(outward.mesh_f, faces[:, ::-1]) and np.array_equal(outward.mesh_v, vertices)
    mesh = hunyuan._to_trimesh(outward)
    assert mesh.is_watertight and mesh.volume > 0
    assert extractor.outward_mesh(np.full((8, 8, 8), -1.0, np.float32)) is None  # no surface: None, logged


def test_warm_up_pays_the_mesh_codes_one_off_costs_and_draft_loads_nothing(monkeypatch, tmp_path):
    import pipeline.mesh

    calls = []
    monkeypatch.setattr(pipeline.mesh, "warm_up", lambda: calls.append("mesh"))
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    service = ImageTo3D()
    assert service.warm_up("draft").name == "draft"
    assert calls == ["mesh"] and "draft" in service._backends
    service.backend("draft").load()  # part of the protocol: a no-op for the draft backend


def test_release_forgets_every_cached_backend(offline):
    service = ImageTo3D()
    shape = service.backend("hunyuan3d-2")
    shape.pipeline = "loaded pipeline"
    service.release()
    assert shape.pipeline is None and service._backends == {} and service._textures == {}
    assert service.backend("hunyuan3d-2") is not shape
