"""The post-processing benchmark (issue #4) runs end to end in --quick mode.

Only the plumbing is checked here: at 64^3 the ratios say nothing about the
real targets, which the full run (``python -m bench.postprocess``) reports.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAST_LINE = re.compile(r"^total_ratio=(\S+) bytes_ratio=(\S+) error_ratio=(\S+)$")


def test_quick_benchmark_prints_finite_positive_ratios():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "postprocess.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    ratios = [float(x) for x in match.groups()]
    assert all(math.isfinite(r) and r > 0 for r in ratios), ratios
    for chain in ("baseline", "ours"):
        summary = next(line for line in lines if line.startswith(chain) and "total=" in line)
        faces = int(re.search(r"faces=(\d+)", summary).group(1))
        assert 0.99 * 3000 <= faces <= 3000, summary
        assert int(re.search(r"glb=(\d+)", summary).group(1)) > 0
