"""The GPU kit (bench/gpu/): its plan, its wheel lists, its shell scripts' refusals, the
kit's row loop (failures, budget, JSON), the pymeshlab stand-in, and, slow, the whole
simulation of the GPU machine (bench/gpu/simulate.sh)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.gpu import kit
from bench.gpu.plan import PLAN, ProfileRow, ShapeRow, TextureRow

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "bench" / "gpu"


def _names(path: Path) -> dict[str, str | None]:
    """NAME -> pinned version (or None) of a requirements-style list, names normalised."""
    found: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version or None
    return found


# -- the plan -----------------------------------------------------------------------------


def test_plan_puts_the_production_defaults_first_and_covers_the_issue():
    from pipeline.models import DEFAULT_PAINT_MODEL, HUNYUAN_MODELS, TEXTURE_SIZES
    from pipeline.options import GenerationOptions

    defaults = GenerationOptions()
    assert PLAN[0] == ShapeRow("hunyuan3d-2", defaults.profile)
    assert PLAN[1] == TextureRow(defaults.texture_size)
    shape = [(r.model, r.profile) for r in PLAN if isinstance(r, ShapeRow)]
    for model in ("hunyuan3d-2", "hunyuan3d-2-turbo"):
        assert {p for m, p in shape if m == model} == {1, 3, 5}
    assert all(m in HUNYUAN_MODELS for m, _ in shape)
    assert [m for m, _ in shape][-2:] == ["hunyuan3d-2mini", "hunyuan3d-2mini-turbo"]  # mini last
    textures = [r for r in PLAN if isinstance(r, TextureRow)]
    assert sorted(r.texture_size for r in textures) == [1024, 2048]
    assert all(r.texture_size in TEXTURE_SIZES and r.paint_model == DEFAULT_PAINT_MODEL for r in textures)
    assert kit.load_plan("bench.gpu.plan:PLAN") == list(PLAN)


def test_plan_has_a_textured_row_per_profile_and_the_fast_and_multiview_rows():
    from pipeline.models import HUNYUAN_MODELS, TEXTURE_SIZES

    kinds = [r.kind for r in PLAN]
    profiles = [r for r in PLAN if isinstance(r, ProfileRow)]
    assert sorted(r.profile for r in profiles) == [1, 2, 3, 4, 5]
    assert profiles[0].profile == 5  # the tightest promise first
    assert all(r.texture_size in TEXTURE_SIZES for r in profiles)
    # After the production defaults and the 1024 texture (which shares their loaded models), back to back.
    first = kinds.index("profile")
    assert first > kinds.index("texture") + 1 and kinds[first : first + 5] == ["profile"] * 5
    shape = {(r.model, r.profile, r.views) for r in PLAN if isinstance(r, ShapeRow)}
    assert ("hunyuan3d-2-fast", 3, 0) in shape and ("hunyuan3d-2mv", 3, 3) in shape
    assert HUNYUAN_MODELS["hunyuan3d-2mv"].multiview and not HUNYUAN_MODELS["hunyuan3d-2-fast"].multiview
    assert all(r.views == 0 for r in PLAN if isinstance(r, ShapeRow) and not HUNYUAN_MODELS[r.model].multiview)
    assert kit.load_plan("bench.gpu.plan:PROFILES") == profiles


def test_rows_refuse_what_no_request_could_send():
    with pytest.raises(ValueError, match="ShapeRow views must be from 0 to 3, got 4"):
        ShapeRow("hunyuan3d-2mv", 3, views=4)
    with pytest.raises(ValueError, match="ProfileRow profile must be from 1 to 5, got 6"):
        ProfileRow(6)


def test_the_kit_writes_every_shape_checkpoint_the_plan_needs(light_kit):
    """Each shape row's model (fast and multi-view included) is complete on disk after ensure_shape."""
    from pipeline import weights

    root = light_kit / "models"
    args = _args(light_kit / "out")
    k = kit.Kit(args, root)
    for model in dict.fromkeys(r.model for r in PLAN if isinstance(r, ShapeRow)):
        assert weights.find_model(model) is None, model
        k.ensure_shape(model)
        assert weights.find_model(model) is not None, model


def test_a_plan_with_a_kind_nobody_measures_is_refused(tmp_path, monkeypatch):
    (tmp_path / "odd_plan.py").write_text(
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass Odd:\n    kind = 'odd'\nROWS = [Odd()]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit, match="no measuring function for row kind"):
        kit.load_plan("odd_plan:ROWS")


# -- the wheel lists ----------------------------------------------------------------------------


def test_carried_wheels_are_what_the_gpu_machine_lacks_at_the_projects_versions():
    carried, machine = _names(GPU / "wheels.txt"), _names(GPU / "machine-packages.txt")
    project = _names(ROOT / "requirements.txt")
    for name in ("hy3dgen", "diffusers", "mmgp", "trimesh", "xatlas", "fast-simplification", "pygltflib", "omegaconf"):
        assert name in carried and name not in machine
    for name, version in carried.items():
        if name in project:
            assert version == project[name], name  # the GPU figures are for the versions production runs
    replaced = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (GPU / "wheels.txt").read_text().splitlines()
        if "# replaces" in line
    }
    assert {n for n in carried if n in machine} == replaced == {"transformers", "tokenizers", "huggingface-hub"}
    for name in ("vtk", "pymeshlab", "rembg"):  # far too big to carry, or not needed
        assert name not in carried and name not in machine


def test_the_simulation_installs_only_names_the_gpu_machine_has():
    simulated, machine = _names(GPU / "sim-requirements.txt"), _names(GPU / "machine-packages.txt")
    assert set(simulated) <= set(machine)
    for name in ("transformers", "huggingface-hub", "accelerate", "safetensors", "tokenizers"):
        assert simulated[name] == machine[name]  # the GPU machine's own versions


def test_prepare_refuses_an_unmarked_preinstalled_name_before_downloading(tmp_path):
    listing = tmp_path / "wheels.txt"
    listing.write_text("trimesh==5.2.0\nnumpy==2.4.6\n")
    done = subprocess.run(
        ["bash", str(GPU / "prepare.sh")],
        env={**os.environ, "KIT_WHEEL_LIST": str(listing)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "numpy==2.4.6 is preinstalled on the GPU machine" in done.stderr


def test_run_without_prepared_wheels_says_what_to_do(tmp_path):
    done = subprocess.run(
        ["bash", str(GPU / "run.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "KIT_WHEELS": str(tmp_path / "none"), "OUT": str(tmp_path / "out")},
    )
    assert done.returncode == 1
    assert "run 'bash bench/gpu/prepare.sh' first" in done.stderr


# -- the pymeshlab stand-in ----------------------------------------------------------------------


def test_the_pymeshlab_standin_lets_hy3dgen_import_and_refuses_use():
    """Run where the stand-in shadows pymeshlab, as run.sh arranges on the GPU machine."""
    code = (
        "import pymeshlab\n"
        "assert pymeshlab.STANDIN\n"
        "import hy3dgen.shapegen\n"
        "from hy3dgen.shapegen import FaceReducer\n"
        "import trimesh\n"
        "try:\n"
        "    FaceReducer()(trimesh.creation.box(), max_facenum=4)\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{GPU / 'standins'}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: pymeshlab is a stand-in in the GPU kit's environment" in done.stdout


# -- the kit's row loop ------------------------------------------------------------------------


@pytest.fixture
def light_kit(monkeypatch, tmp_path):
    """The kit with its heavy steps (mmgp, environment, full-size check) replaced."""
    monkeypatch.setattr(kit, "import_mmgp_first", lambda: "stub")
    monkeypatch.setattr(kit, "environment", lambda device: {"device": device, "surface_extractor": "vtk"})
    monkeypatch.setattr(kit, "full_size_check", lambda: None)
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path / "models"))
    return tmp_path


def _args(out: Path, budget_s: float = 60.0, plan: str = "bench.gpu.plan:PLAN") -> argparse.Namespace:
    return argparse.Namespace(dry_run=True, budget_s=budget_s, started_at=time.time(), plan=plan, out=str(out))


def test_a_failing_row_is_reported_and_the_next_rows_still_run(light_kit, monkeypatch, capsys):
    seen: list[str] = []

    def shape(k, row):
        seen.append(row.label())
        if row.profile == 1:
            raise RuntimeError("boom")
        return {
            "variant": row.model,
            "profile": row.profile,
            "load_s": 1.0,
            "step_s": 0.1,
            "decode_s": 0.5,
            "total_s": 2.0,
            "peak_gib": 3.0,
            "faces": 100,
        }

    def texture(k, row):
        seen.append(row.label())
        return {
            "paint_model": row.paint_model,
            "texture_size": row.texture_size,
            "profile": None,
            "rasterizer": "torch",
            "load_s": 1.0,
            **{s: 0.1 for s in kit.TEXTURE_STAGES},
            "total_s": 1.0,
            "peak_gib": 2.0,
        }

    def profile(k, row):
        seen.append(row.label())
        if row.profile == 4:
            raise RuntimeError("no room")
        return {
            "profile": row.profile,
            "peak_gib": 5.0 + row.profile,
            "reserved_gib": 5.5 + row.profile,
            "total_s": 30.0,
            "reload_s": 8.0,
            "shape_s": 10.0,
            "texture_s": 20.0,
        }

    released = []
    monkeypatch.setattr(kit.Kit, "release_service", lambda self: released.append(len(seen)))
    monkeypatch.setitem(kit.MEASURES, "shape", shape)
    monkeypatch.setitem(kit.MEASURES, "texture", texture)
    monkeypatch.setitem(kit.MEASURES, "profile", profile)
    out = light_kit / "out"
    assert kit.run(_args(out)) == 1  # a row failed
    assert seen == [r.label() for r in PLAN]
    last_profile = max(i for i, r in enumerate(PLAN) if isinstance(r, ProfileRow)) + 1
    # Released after each failing row (profile 4, the two shape rows at profile 1) and after the last
    # profile row, before the next shape row.
    failing = ("textured hunyuan3d-2 profile 4", "hunyuan3d-2 profile 1", "hunyuan3d-2-turbo profile 1")
    assert released == sorted([seen.index(label) + 1 for label in failing] + [last_profile])
    profile_rows = json.loads((out / "profile.json").read_text())["rows"]
    assert [r.get("profile") for r in profile_rows] == [5, None, 3, 2, 1]
    assert profile_rows[1] == {"label": "textured hunyuan3d-2 profile 4", "error": "RuntimeError: no room"}
    shape_rows = json.loads((out / "shape.json").read_text())["rows"]
    assert [r["label"] for r in shape_rows if "error" in r] == ["hunyuan3d-2 profile 1", "hunyuan3d-2-turbo profile 1"]
    assert next(r for r in shape_rows if r["label"] == "hunyuan3d-2 profile 1")["error"] == "RuntimeError: boom"
    assert len(json.loads((out / "texture.json").read_text())["rows"]) == 2
    printed = capsys.readouterr().out
    assert "hunyuan3d-2 profile 1: failed: RuntimeError: boom" in printed and "peak_GiB" in printed
    # The profile table: reserved peak against the promise (profile 5: 10.5 GiB > 6, profile 1: 6.5 <= 24).
    table = kit.profile_table(profile_rows)
    assert table[0].split() == [
        "profile",
        "peak_GiB",
        "reserved",
        "promise",
        "total_s",
        "reload_s",
        "shape_s",
        "texture_s",
        "ok",
    ]
    assert table[1].split() == ["5", "10.00", "10.50", "6", "30.0", "8.0", "10.0", "20.0", "NO"]
    assert table[2].split()[-3:] == ["RuntimeError:", "no", "room"] and table[-1].split()[-1] == "yes"
    assert "\n".join(table) in printed
    cpu = kit.profile_table([{**profile_rows[0], "within_promise": None}])[1]  # the dry run: no CUDA peak
    assert cpu.split()[-1] == "n/a" and cpu.split()[:-1] == table[1].split()[:-1]


def test_rows_that_no_longer_fit_the_budget_are_skipped(light_kit, monkeypatch):
    clock = {"now": 1000.0}
    # The kit's clock only (patching the time module itself would reach pytest and other threads).
    monkeypatch.setattr(kit, "time", argparse.Namespace(time=lambda: clock["now"], perf_counter=lambda: clock["now"]))

    def slow_row(k, row):
        clock["now"] += 20.0  # every row "takes" 20 s
        return {
            "variant": getattr(row, "model", "-"),
            "profile": getattr(row, "profile", 3),
            "load_s": 0.0,
            "step_s": 0.0,
            "decode_s": 0.0,
            "total_s": 0.0,
            "peak_gib": 0.0,
            "faces": 0,
            "paint_model": "-",
            "texture_size": 0,
            "rasterizer": "-",
            **{s: 0.0 for s in kit.TEXTURE_STAGES},
            "reserved_gib": 0.0,
            "reload_s": 0.0,
            "shape_s": 0.0,
            "texture_s": 0.0,
        }

    monkeypatch.setitem(kit.MEASURES, "shape", slow_row)
    monkeypatch.setitem(kit.MEASURES, "texture", slow_row)
    monkeypatch.setitem(kit.MEASURES, "profile", slow_row)
    monkeypatch.setattr(kit, "_start_watchdog", lambda k: type("T", (), {"cancel": lambda self: None})())
    out = light_kit / "out"
    args = _args(out, budget_s=70.0)
    args.started_at = clock["now"]
    assert kit.run(args) == 0
    rows = [
        row
        for kind in ("shape", "texture", "profile")
        for row in json.loads((out / f"{kind}.json").read_text())["rows"]
    ]
    done = [r for r in rows if "skipped" not in r]
    skipped = [r for r in rows if "skipped" in r]
    # 3 x 20 s fit in 70 s less the watchdog's margin; then the first profile row still starts: a kind not yet
    # measured costs nothing in the dry run (its H200 estimate is for the GPU machine).
    assert [r["label"] for r in done][-1] == "textured hunyuan3d-2 profile 5"
    assert len(done) == 4 and len(skipped) == len(PLAN) - 4
    assert all(r["skipped"].startswith("skipped: needs ~20 s") for r in skipped)


def test_the_watchdog_writes_the_tables_and_stops_before_the_budget(light_kit, monkeypatch, capsys):
    stopped = []
    # The kit's os only: a real os._exit from a late timer would end the whole test session.
    monkeypatch.setattr(kit, "os", argparse.Namespace(_exit=lambda code: stopped.append(code)))
    args = _args(light_kit / "out", budget_s=kit.WATCHDOG_MARGIN_S + 0.2)
    k = kit.Kit(args, light_kit)
    k.results["shape"].append(
        {
            "label": "done",
            "variant": "m",
            "profile": 3,
            "load_s": 1.0,
            "step_s": 0.1,
            "decode_s": 0.2,
            "total_s": 1.5,
            "peak_gib": 2.0,
            "faces": 10,
        }
    )
    k.current = "shape:hunyuan3d-2 profile 5"
    timer = kit._start_watchdog(k)
    try:
        timer.join(60)
    finally:
        timer.cancel()
    assert stopped == [0]
    rows = json.loads((light_kit / "out" / "shape.json").read_text())["rows"]
    assert rows[-1] == {"label": "hunyuan3d-2 profile 5", "error": "cut at the budget"}
    assert "nearly spent during 'shape:hunyuan3d-2 profile 5'" in capsys.readouterr().out


# -- the whole simulation --------------------------------------------------------------------------


@pytest.mark.slow
def test_simulate_proves_the_kit_in_a_copy_of_the_gpu_machines_environment():
    """Builds the venv, installs the cp311 wheels as run.sh does, runs run.sh --dry-run (needs the registry)."""
    started = time.perf_counter()
    done = subprocess.run(["bash", str(GPU / "simulate.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    match = re.fullmatch(r"simulated=ok carry_mib=(\d+)", lines[-1])
    assert match and int(match.group(1)) <= 56
    # The evidence for wheels.txt's choice: mmgp's patch breaks plain loads under transformers 5.17.0;
    # the backends' load() puts safetensors' functions back and loads.
    assert (
        "decision: with the GPU machine's transformers: transformers 5.17.0 after mmgp: raw loaders fails: "
        "TypeError: safe_open() got an unexpected keyword argument 'backend'; the backends' load() loads"
    ) in lines
    assert "pymeshlab: not installed; the kit's stand-in answers hy3dgen's import" in done.stdout
    assert "surface extraction: VTK is absent, so scikit-image marching cubes is used" in done.stdout
    print(f"simulate.sh took {time.perf_counter() - started:.0f} s")


def test_the_multiview_row_sends_its_extra_views(light_kit, monkeypatch):
    from bench import gpu_shape

    sent = {}

    def measure(variant, profile, settings, device, views=None):
        sent["views"] = gpu_shape.subject_views(variant, views)
        return gpu_shape.Row(variant, profile, 1.0, 0.1, 0.5, 2.0, 3.0, 100)

    monkeypatch.setattr(gpu_shape, "measure", measure)
    monkeypatch.setattr(kit.Kit, "ensure_shape", lambda self, model: None)
    k = kit.Kit(_args(light_kit / "out"), light_kit)
    row = next(r for r in PLAN if isinstance(r, ShapeRow) and r.views)
    result = kit.measure_shape(k, row)
    assert list(sent["views"]) == result["views"] == ["left", "back", "right"]
    assert "hunyuan3d-2mv +3v" in kit.shape_table([{"label": row.label(), **result}])[1]
    kit.measure_shape(k, ShapeRow("hunyuan3d-2-fast", 3))
    assert sent["views"] is None
    assert list(gpu_shape.subject_views("multiview")) == ["left", "back", "right"]  # the bench's own default
