"""mmgp memory profiles over both pipelines (pipeline/memory.py), on a CPU.

mmgp needs a GPU, so here it is replaced: in-process by a fake ``mmgp``
package whose ``offload.profile`` and ``offload.extract_models`` record what
they are given, and in a subprocess by the real package with only
``offload.all`` (the GPU layer under ``profile``) recorded, so mmgp's own
rules decide pinning, budgets and quantisation from our names. Only the
backends' device check pretends CUDA; the models are the real tiny
checkpoints, loaded by the real loaders, and the mmgp call is built by the
real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fakes.tiny_hunyuan import write_tiny_shape_model
from fakes.tiny_paint import write_tiny_texture_models
from pipeline import memory
from pipeline.backends import hunyuan, lifecycle
from pipeline.memory import PROFILES, TRANSFORMER
from pipeline.models import DEFAULT_PAINT_MODEL
from pipeline.options import parse_options
from pipeline.progress import RunLog
from pipeline.service import ImageTo3D
from pipeline.texture import backend as tb

ROOT = Path(__file__).resolve().parents[1]
SHAPE_NAMES = {"shape_dit", "shape_vae", "shape_conditioner"}
TEXTURE_NAMES = {"delight_unet", "delight_vae", "delight_text_encoder", TRANSFORMER, "paint_vae", "paint_text_encoder"}
TURBO_PAINT = "hunyuan3d-paint-v2-0-turbo"


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hy3dgen-both")
    write_tiny_shape_model(root, shape="offset")
    write_tiny_texture_models(root, (DEFAULT_PAINT_MODEL, TURBO_PAINT))
    return root


class FakeOffload:
    def __init__(self, profile_no: int, models: dict, kwargs: dict) -> None:
        self.profile_no, self.models, self.kwargs = profile_no, dict(models), kwargs
        self.released, self.unloads = False, 0

    def release(self) -> None:
        self.released = True

    def unload_all(self) -> None:
        self.unloads += 1


class FakeMmgp:
    """What our code calls of mmgp, recorded."""

    def __init__(self) -> None:
        self.calls: list[FakeOffload] = []
        self.extracted: list[tuple] = []

    def profile(self, models, profile_no, **kwargs):
        self.calls.append(FakeOffload(profile_no, models, kwargs))
        return self.calls[-1]

    def extract_models(self, *args, **kwargs):
        self.extracted.append(args)
        return {}


@pytest.fixture
def cuda(models_root, monkeypatch, tmp_path):
    """Pretend CUDA (the device check only), tiny weights, a recording mmgp;
    yields the fake and the load counts per pipeline."""
    monkeypatch.setenv("HY3DGEN_MODELS", str(models_root))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    monkeypatch.setattr(lifecycle, "choose_device", lambda settings=None: "cuda")
    fake = FakeMmgp()
    package, offload = types.ModuleType("mmgp"), types.ModuleType("mmgp.offload")
    offload.profile, offload.extract_models = fake.profile, fake.extract_models
    package.offload = offload
    monkeypatch.setitem(sys.modules, "mmgp", package)
    monkeypatch.setitem(sys.modules, "mmgp.offload", offload)
    loads = {"shape": 0, "texture": 0}
    real_shape, real_texture = hunyuan.load_pipeline, tb.build_texgen

    def load_shape(*args, **kwargs):
        loads["shape"] += 1
        return real_shape(*args, **kwargs)

    def load_texture(*args, **kwargs):
        loads["texture"] += 1
        return real_texture(*args, **kwargs)

    monkeypatch.setattr(hunyuan, "load_pipeline", load_shape)
    monkeypatch.setattr(tb, "build_texgen", load_texture)
    PROFILES.reset()
    yield fake, loads
    PROFILES.reset()


def request(service: ImageTo3D, profile: int, texture: bool, paint: str = DEFAULT_PAINT_MODEL) -> dict:
    """The service's own pre-shape profiling step for one request; returns its texture timings."""
    timings: dict = {}
    options = parse_options(
        {"model": "hunyuan3d-2", "profile": profile, "generate_texture": texture, "paint_model": paint}
    )
    service._profile_both(service.backend("hunyuan3d-2"), options, timings)
    return timings


def expected_models(service: ImageTo3D, texture: bool, paint: str = DEFAULT_PAINT_MODEL) -> dict:
    pipe = service.backend("hunyuan3d-2").pipeline
    models = {"shape_dit": pipe.model, "shape_vae": pipe.vae, "shape_conditioner": pipe.conditioner}
    if texture:
        texgen = service._textures[paint].texgen
        delight, painter = texgen.delight.pipeline, texgen.multiview.pipeline
        models.update(
            delight_unet=delight.unet,
            delight_vae=delight.vae,
            delight_text_encoder=delight.text_encoder,
            transformer=painter.unet,
            paint_vae=painter.vae,
            paint_text_encoder=painter.text_encoder,
        )
    return models


# -- what is handed over ------------------------------------------------------------------


@pytest.mark.parametrize("texture", [True, False], ids=["textured", "plain"])
@pytest.mark.parametrize("profile", [1, 2, 3, 4, 5])
def test_one_profile_call_hands_over_the_request_models(cuda, profile, texture):
    fake, loads = cuda
    service = ImageTo3D()
    request(service, profile, texture)
    assert len(fake.calls) == 1 and fake.calls[0].profile_no == profile
    handed = fake.calls[0].models
    assert set(handed) == (SHAPE_NAMES | TEXTURE_NAMES if texture else SHAPE_NAMES)
    expected = expected_models(service, texture)
    assert all(handed[name] is module for name, module in expected.items())
    assert fake.calls[0].kwargs == {"verboseLevel": 0}  # mmgp's own profile rules, no overrides
    assert not fake.extracted  # names are ours: extract_models' never equal 'transformer'
    assert loads == {"shape": 1, "texture": 1 if texture else 0}
    assert service.backend("hunyuan3d-2").profile == profile
    if not texture:  # a plain request on a fresh worker never creates, let alone loads, the texture models
        assert service._textures == {}
    else:
        host = {p.device.type for m in (handed[TRANSFORMER], handed["delight_unet"]) for p in m.parameters()}
        assert host == {"cpu"}  # on the host, fp16: mmgp moves each model when it is called
        assert handed[TRANSFORMER].unet.conv_in.weight.dtype.is_floating_point
        assert type(handed[TRANSFORMER]).__name__ == "UNet2p5DConditionModel"


def test_the_paint_unet_is_the_only_transformer_and_the_largest_model(cuda):
    fake, _ = cuda
    request(ImageTo3D(), 3, True)
    handed = fake.calls[0].models
    sizes = {name: sum(p.numel() for p in module.parameters()) for name, module in handed.items()}
    assert [name for name in handed if name == TRANSFORMER] == [TRANSFORMER]
    assert type(handed[TRANSFORMER]).__name__ == "UNet2p5DConditionModel"
    # In the tiny models too, the dual-stream paint UNet outweighs the other UNet.
    assert sizes[TRANSFORMER] > sizes["delight_unet"]


def test_worker_start_loads_both_before_any_profile_and_plain_requests_keep_them(cuda):
    fake, loads = cuda
    service = ImageTo3D()
    service.warm_up("hunyuan3d-2")
    assert loads == {"shape": 1, "texture": 1} and not fake.calls  # loaded on the host, mmgp not yet involved
    request(service, 4, False)
    request(service, 4, True)
    assert len(fake.calls) == 1 and set(fake.calls[0].models) == SHAPE_NAMES | TEXTURE_NAMES
    assert loads == {"shape": 1, "texture": 1}  # nothing reloaded


def test_same_profile_again_is_free(cuda):
    fake, loads = cuda
    service = ImageTo3D()
    for _ in range(3):
        request(service, 2, True)
    assert len(fake.calls) == 1 and loads == {"shape": 1, "texture": 1}


# -- switches -----------------------------------------------------------------------------


def test_profile_switch_reprofiles_both_pipelines_and_says_so(cuda):
    fake, loads = cuda
    service = ImageTo3D()
    backend = service.backend("hunyuan3d-2")
    request(service, 3, True)
    first = expected_models(service, True)
    backend._load_s = 0.0
    service._textures[DEFAULT_PAINT_MODEL]._load_s = 0.0
    texture_timings = request(service, 5, False)  # a plain request with another profile
    assert [c.profile_no for c in fake.calls] == [3, 5]
    assert fake.calls[0].released and not fake.calls[1].released
    assert set(fake.calls[1].models) == SHAPE_NAMES | TEXTURE_NAMES
    assert loads == {"shape": 2, "texture": 2}  # both reloaded from disk
    second = expected_models(service, True)
    assert all(second[name] is not first[name] for name in first)
    assert texture_timings["load"] > 0  # reported as texture.load although nothing is painted
    run = RunLog()
    assert backend._prepare(5, run) == 5
    assert run.timings["shape_load"] > 0  # <model>.shape_load
    assert len(fake.calls) == 2


def test_texture_joining_later_reloads_the_shape_model_once(cuda):
    fake, loads = cuda
    service = ImageTo3D()
    request(service, 3, False)
    request(service, 3, True)
    request(service, 3, True)
    assert [set(c.models) for c in fake.calls] == [SHAPE_NAMES, SHAPE_NAMES | TEXTURE_NAMES]
    assert fake.calls[0].released
    assert loads == {"shape": 2, "texture": 1}


def test_another_paint_model_reprofiles_both(cuda):
    fake, loads = cuda
    service = ImageTo3D()
    request(service, 2, True)
    request(service, 2, True, paint=TURBO_PAINT)
    assert len(fake.calls) == 2 and fake.calls[0].released
    assert fake.calls[1].models[TRANSFORMER] is expected_models(service, True, TURBO_PAINT)[TRANSFORMER]
    assert service._textures[DEFAULT_PAINT_MODEL].texgen is None  # the other variant's models are gone
    assert loads == {"shape": 2, "texture": 2}


def test_paint_on_its_own_uses_the_profile_in_force(cuda):
    """A texture backend used directly (as bench/gpu_texture.py does) joins
    the shape model's profile, or takes HY3D_PROFILE when there is none."""
    fake, _ = cuda
    service = ImageTo3D()
    request(service, 4, False)
    texture = service.texture_backend(DEFAULT_PAINT_MODEL)
    texture._use_profile(None)
    assert [c.profile_no for c in fake.calls] == [4, 4]
    assert set(fake.calls[1].models) == SHAPE_NAMES | TEXTURE_NAMES
    PROFILES.reset()
    texture.release()
    texture._use_profile(None)  # nothing in force: HY3D_PROFILE (3)
    assert fake.calls[-1].profile_no == 3 and set(fake.calls[-1].models) == TEXTURE_NAMES


def test_job_end_moves_every_model_off_the_gpu(cuda, monkeypatch, subject_png):
    """After a job no model stays on the GPU, so a plain job never finds
    texture models there (mmgp keeps one model on the GPU at a time)."""
    import trimesh

    from pipeline.types import ShapeOutput

    fake, _ = cuda
    service = ImageTo3D()
    backend = service.backend("hunyuan3d-2")

    def shape_stage(image, options, progress):  # the GPU work; what is tested is the profiling around it
        backend._prepare(options.profile, RunLog())
        return ShapeOutput(trimesh.creation.icosphere(1), model=backend.name, profile=backend.profile)

    monkeypatch.setattr(backend, "generate", shape_stage)
    result = service.generate(
        subject_png,
        parse_options({"model": "hunyuan3d-2", "profile": 3, "generate_texture": False, "remove_background": False}),
    )
    assert result.profile == 3 and len(fake.calls) == 1 and fake.calls[0].unloads == 1


def test_oom_in_the_shape_stage_unloads_every_model(cuda, monkeypatch):
    import torch
    from PIL import Image

    from pipeline.errors import OutOfMemoryError

    fake, _ = cuda
    service = ImageTo3D()
    request(service, 2, True)
    backend = service.backend("hunyuan3d-2")

    def boom(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(backend, "_generate", boom)
    with pytest.raises(OutOfMemoryError, match="profile 2"):
        backend.generate(Image.new("RGBA", (8, 8), (255, 0, 0, 255)), parse_options({"profile": 2}), None)
    assert fake.calls[0].unloads == 1


# -- load order ---------------------------------------------------------------------------


def test_loads_after_mmgps_import_see_safetensors_own_functions(monkeypatch):
    """mmgp.safetensors2 rebinds safetensors' loaders on import; inside
    unpatched_safetensors() the originals are back, and mmgp's after."""
    import safetensors
    import safetensors.torch

    def original_open(*a, **k):
        return "original"

    def mmgp_open(*a, **k):
        return "mmgp"

    def original_load(*a, **k):
        return "original"

    def mmgp_load(*a, **k):
        return "mmgp"

    patch = types.ModuleType("mmgp.safetensors2")
    patch.safe_open, patch._old_safe_open = mmgp_open, original_open
    patch.torch_load_file, patch._old_torch_load_file = mmgp_load, original_load
    monkeypatch.setitem(sys.modules, "mmgp.safetensors2", patch)
    monkeypatch.setattr(safetensors, "safe_open", mmgp_open)
    monkeypatch.setattr(safetensors.torch, "load_file", mmgp_load)
    with memory.unpatched_safetensors():
        assert safetensors.safe_open() == "original" and safetensors.torch.load_file() == "original"
    assert safetensors.safe_open is mmgp_open and safetensors.torch.load_file is mmgp_load


@pytest.mark.slow  # about a minute: a fresh process importing mmgp, every profile twice
def test_real_mmgp_rules_and_load_order(models_root, tmp_path):
    """The real mmgp.offload.profile over our names, profiles 1-5, textured
    and plain, in a fresh process: pinning, budgets and quantisation as
    intended; every load before mmgp's import or through safetensors' own
    loader (a read through mmgp's patched loader fails this test)."""
    env = {**os.environ, "HY3DGEN_MODELS": str(models_root), "RUNPOD_HF_CACHE": str(tmp_path / "runpod")}
    done = subprocess.run(
        [sys.executable, "-m", "fakes.mmgp_recorder", str(models_root)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    events = report["events"]
    assert report["patched_reads"] == []
    assert not [e for e in events if e["event"] == "extract_models"]
    imported = next(i for i, e in enumerate(events) if e["event"] == "mmgp_imported")
    first_profile = next(i for i, e in enumerate(events) if e["event"] == "profile")
    early = [e["kind"] for e in events[:first_profile] if e["event"] == "load"]
    assert early == ["shape", "texture"] and imported < first_profile  # both loaded, then mmgp imported
    assert all(not e["mmgp_imported"] for e in events[:imported] if e["event"] == "load")

    expect_pinned = {1: "all", 2: "all", 3: [TRANSFORMER], 4: [TRANSFORMER], 5: []}
    expect_budgets = {
        1: None,
        2: {TRANSFORMER: 1200, "*": 3000},
        3: None,
        4: {TRANSFORMER: 1200, "*": 3000},
        5: {TRANSFORMER: 400, "*": 3000},
    }
    profiles = [e for e in events if e["event"] == "profile"]
    # Worker part: 1-5 textured (one call each, each a switch), then a plain request at 1.
    # Fresh part: per profile a plain request (shape only), then a textured one (both).
    assert [(e["profile"], len(e["names"])) for e in profiles] == (
        [(p, 9) for p in (1, 2, 3, 4, 5)] + [(1, 9)] + [(p, n) for p in (1, 2, 3, 4, 5) for n in (3, 9)]
    )
    for event in profiles:
        names, profile = set(event["names"]), event["profile"]
        textured = names == SHAPE_NAMES | TEXTURE_NAMES
        assert textured or names == SHAPE_NAMES
        assert event["n_ids"] == len(names)  # distinct modules
        assert event["quantized"] == ([TRANSFORMER] if textured else [])
        pinned = sorted(names) if expect_pinned[profile] == "all" else [n for n in expect_pinned[profile] if n in names]
        assert event["pinned"] == pinned, event
        budgets = expect_budgets[profile]
        if budgets is not None and not textured:
            budgets = {"*": 3000}  # no transformer, no transformer budget
        assert event["budgets"] == budgets, event


def test_a_failed_profile_call_reloads_next_time(cuda, monkeypatch):
    fake, loads = cuda
    service = ImageTo3D()
    offload = sys.modules["mmgp.offload"]

    def fail(models, profile_no, **kwargs):
        raise RuntimeError("mmgp failed half-way")

    monkeypatch.setattr(offload, "profile", fail)
    with pytest.raises(RuntimeError, match="half-way"):
        request(service, 3, False)
    assert service.backend("hunyuan3d-2").pipeline is None  # possibly changed in place: dropped
    monkeypatch.setattr(offload, "profile", fake.profile)
    request(service, 3, False)
    assert len(fake.calls) == 1 and loads["shape"] == 2
