"""bench/gpu/profiles.py off the GPU: its dry run (sizes and mmgp's plan) and
its measurement loop on tiny models on CPU, so a GPU session does not find
its bugs. Subprocesses: the dry run imports the real mmgp, which patches
safetensors process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_sizes_and_mmgp_plan():
    done = subprocess.run(
        [sys.executable, "bench/gpu/profiles.py", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HY3D_DEVICE": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    first = next(line for line in lines if line.startswith("transformer "))
    assert "1,831.2M" in first and "3.41" in first  # the paint UNet: largest, named transformer
    ours = [line for line in lines if line.startswith("paint UNet")]
    theirs = [line for line in lines if line.startswith("shape DiT")]
    assert len(ours) == len(theirs) == 5
    assert all("shape_conditioner 2.12 GiB" in line for line in ours)
    assert all("paint_unet" in line for line in theirs)


@pytest.mark.slow
def test_measurement_loop_runs_on_tiny_models_on_cpu(monkeypatch, capsys, tmp_path):
    sys.path.insert(0, str(ROOT / "bench" / "gpu"))
    try:
        import profiles
    finally:
        sys.path.remove(str(ROOT / "bench" / "gpu"))
    from fakes import tiny_hunyuan as th
    from fakes import tiny_paint as tp
    from pipeline.texture.backend import Sampling

    monkeypatch.setenv("HY3D_DEVICE", "cpu")
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(tmp_path / "runpod"))
    args = profiles.parse_args(["--profiles", "5", "--steps", "2", "--octree", "64", "--texture-size", "512"])
    rows = profiles.run(args, dims=(th.TINY_DIMS, tp.TINY_DIMS), device="cpu", sampling=Sampling(1, 1, 256))
    out = capsys.readouterr().out
    assert [row.profile for row in rows] == [5], out
    assert rows[0].total_s > 0 and rows[0].texture_s > 0 and rows[0].within_promise
    assert "failed" not in out and profiles.format_row(rows[0]) in out
