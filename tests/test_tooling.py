"""The lint/type tooling is configured once and the same everywhere: CI's
scripts/lint.sh, pre-commit and the pinned dev requirements agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dev_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_ruff_rules_and_line_length_are_the_projects():
    ruff = _pyproject()["tool"]["ruff"]
    assert ruff["line-length"] == 120
    assert {"E", "F", "W", "I", "B", "UP", "BLE"} <= set(ruff["lint"]["select"])


def test_pre_commit_runs_the_pinned_ruff_and_the_venvs_mypy():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    pins = _dev_pins()
    ruff_repo = next(r for r in config["repos"] if r["repo"].endswith("ruff-pre-commit"))
    assert ruff_repo["rev"] == "v" + pins["ruff"]
    assert {h["id"] for h in ruff_repo["hooks"]} == {"ruff-check", "ruff-format"}
    hooks = [h for r in config["repos"] for h in r["hooks"]]
    mypy = next(h for h in hooks if h["id"] == "mypy")
    assert "mypy" in pins and mypy["entry"].endswith("mypy") and mypy["pass_filenames"] is False


def test_ci_lints_before_the_tests():
    script = (ROOT / "scripts" / "run_tests.sh").read_text()
    assert script.index("bash scripts/lint.sh") < script.index("-m pytest")
    lint = (ROOT / "scripts" / "lint.sh").read_text()
    for command in ("ruff check .", "ruff format --check .", "mypy"):
        assert command in lint
    assert "scripts/run_tests.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_version_has_one_source():
    project = _pyproject()
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "pipeline.__version__"
    import pipeline

    assert re.fullmatch(r"\d+\.\d+\.\d+", pipeline.__version__)


def test_markers_are_registered_once():
    markers = _pyproject()["tool"]["pytest"]["ini_options"]["markers"]
    assert sorted(m.split(":")[0] for m in markers) == ["browser", "docker", "slow"]
    assert not (ROOT / "pytest.ini").exists()
    assert "addinivalue_line" not in (ROOT / "tests" / "conftest.py").read_text()


def test_ruff_passes_on_the_tree():
    """The same check CI runs first; here so a plain pytest run reports it too."""
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
