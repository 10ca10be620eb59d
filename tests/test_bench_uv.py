"""bench/uv.py in a quick mode, so the benchmark cannot rot (the figures come from its full run)."""

from __future__ import annotations

import re

import pytest

from bench import uv as bench
from pipeline.mesh import uv as chain


@pytest.mark.slow
def test_quick_run_prints_every_row_and_the_summary_last(capsys):
    service_cap = chain.UV_BOUNDARY_EDGES
    argv = ["--faces", "2000", "--resolution", "64", "--repeats", "1", "--caps", "30", f"{service_cap:g}"]
    assert bench.main(argv) == 0
    assert chain.UV_BOUNDARY_EDGES == service_cap  # a cap row leaves the service's setting alone
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line[:16].strip(): line[16:].split() for line in lines if line.startswith(("texgen", "ours"))}
    same = f"ours cap={service_cap:g}"
    assert list(rows) == ["texgen default", "ours", "ours cap=30", same]
    for values in rows.values():
        seconds, utilisation, coverage, charts, stretch, vertices = map(float, values)
        assert seconds > 0 and 0 < utilisation <= 1 and 0 < coverage <= 1 and charts >= 1 and vertices >= 1000
    assert rows[same][1:] == rows["ours"][1:]  # the service's own cap: the same unwrap, timings aside
    assert int(rows["ours cap=30"][3]) > int(rows["ours"][3])  # a tighter cap cuts more charts
    assert re.fullmatch(r"uv_speedup=[\d.]+ utilisation_ours=[\d.]+ utilisation_default=[\d.]+", lines[-1])
