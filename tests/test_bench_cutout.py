"""The offline cut-out keeps the subject: the astronaut's head, a figure that
runs off the bottom edge; and bench/cutout.py in its quick mode cannot rot."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from bench import cutout as bench


def test_astronaut_keeps_the_head():
    # The previous fallback kept 0 % of this box (only the suit remained).
    assert bench.head_kept(bench.new_cutout) >= 0.6


def test_subject_running_off_the_bottom_is_kept():
    fg, alpha = bench._figure()
    ramp = np.linspace(235, 150, 512, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(ramp, (512, 512, 3)).astype(np.uint8)
    rng = np.random.default_rng(0)
    sample = bench.composite(fg, alpha, bg, rng, off_bottom=True)
    assert sample.alpha[-1].any()
    assert bench.iou(bench.new_cutout(Image.fromarray(sample.rgb), 1), sample.alpha) >= 0.7


@pytest.mark.slow
def test_quick_run_prints_rows_and_the_summary_last(capsys):
    assert bench.main(["--quick", "--size", "256"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"cutout_iou_old=([\d.]+) cutout_iou_new=([\d.]+)", lines[-1])
    assert match
    old, new = map(float, match.groups())
    assert 0 <= old <= 1 and 0 <= new <= 1
    assert sum(line.startswith(("figure/", "ball/")) for line in lines) == 4
