"""The worker image, built by scripts/build_image.sh and run for real (marked ``docker``).

Needs a Docker engine: the one that answers, or one this module starts
(root with ``dockerd`` installed) and stops again. Without either the tests
skip and say why. Containers run with no network, except the one serving
RunPod's local API, whose port is published on 127.0.0.1 only. Every
container started here is removed in a ``finally``; the image is kept, so a
rerun reuses Docker's layer cache. Build time, image size and each timing are
printed (``-rA`` or the terminal summary shows them).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import trimesh

from fakes.servers import free_port
from tests.test_worker import RESPONSE_KEYS

ROOT = Path(__file__).resolve().parents[1]
TAG = os.environ.get("HY3D_TEST_IMAGE_TAG", "hy3d-worker:test")
SESSION = uuid.uuid4().hex[:8]
LABEL = f"org.hy3d.test={SESSION}"
BUILD_TIMEOUT_S = 40 * 60

pytestmark = pytest.mark.docker


def _docker(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _engine_answers() -> bool:
    try:
        return _docker("info", timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Report:
    """Lines that reach the terminal past pytest's capture, so CI logs carry the figures."""

    def __init__(self, config):
        self.capture = config.pluginmanager.getplugin("capturemanager")

    def __call__(self, line: str) -> None:
        line = f"\n[image] {line}"
        if self.capture is None:
            print(line)
            return
        with self.capture.global_and_fixture_disabled():
            print(line, flush=True)


@pytest.fixture(scope="module")
def report(request) -> Report:
    return Report(request.config)


@pytest.fixture(scope="module")
def engine(report, tmp_path_factory):
    """A Docker engine that answers; started here (and stopped after) when none does and it can be."""
    if not shutil.which("docker"):
        reason = "no docker client installed (Debian: apt-get install docker.io)"
        report(f"skipped: {reason}")
        pytest.skip(reason)
    started = None
    if not _engine_answers():
        if os.geteuid() != 0 or not shutil.which("dockerd"):
            reason = "no Docker engine answers, and none can be started here (needs root and dockerd)"
            report(f"skipped: {reason}")
            pytest.skip(reason)
        log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        with open(log_path, "wb") as log:
            started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not _engine_answers() and time.monotonic() < deadline and started.poll() is None:
            time.sleep(1)
        if not _engine_answers():
            started.terminate()
            started.wait(timeout=30)
            reason = f"dockerd could not be started: {log_path.read_text(errors='replace')[-400:]!r}"
            report(f"skipped: {reason}")
            pytest.skip(reason)
        report("started dockerd for these tests")
    try:
        yield
    finally:
        ids = _docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
        if ids:
            _docker("rm", "-f", *ids)
        if started is not None:
            started.terminate()
            try:
                started.wait(timeout=30)
            except subprocess.TimeoutExpired:
                started.kill()
            report("stopped the dockerd these tests started")


@pytest.fixture(scope="module")
def image(engine, report) -> str:
    start = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_image.sh"), "-t", TAG],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        pytest.fail(f"scripts/build_image.sh failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", TAG, check=True).stdout)
    standin = "stand-in" if "STAND-IN" in done.stderr or "stand-in" in done.stderr else "real"
    report(f"build (scripts/build_image.sh, {standin} base): {seconds:.0f} s; image {TAG}: {size / 1e9:.2f} GB")
    return TAG


def _name() -> str:
    return f"hy3d-test-{SESSION}-{uuid.uuid4().hex[:6]}"


def _run(
    image: str, *args: str, env: dict[str, str] | None = None, volumes: tuple[str, ...] = (), timeout: float = 300
) -> tuple[subprocess.CompletedProcess, float]:
    """``docker run --rm`` with no network; (result, seconds)."""
    name = _name()
    argv = ["run", "--rm", "--name", name, "--label", LABEL, "--network", "none"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    for volume in volumes:
        argv += ["-v", volume]
    start = time.monotonic()
    try:
        done = _docker(*argv, image, *args, timeout=timeout)
    finally:
        _docker("rm", "-f", name)
    return done, time.monotonic() - start


def _photo_jpeg() -> bytes:
    """A real photo: scikit-image's bundled astronaut (512 px)."""
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _check_glb(output: dict) -> trimesh.Trimesh:
    data = base64.b64decode(output["model_base64"])
    assert data[:4] == b"glTF" and len(data) == output["file_size"]
    mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
    assert len(mesh.faces) == output["faces"] > 0
    return mesh


def _detach(image: str, *args: str, env: dict[str, str], ports: tuple[str, ...] = ()) -> str:
    name = _name()
    argv = ["run", "-d", "--name", name, "--label", LABEL]
    argv += ["--network", "none"] if not ports else []
    for port in ports:
        argv += ["-p", port]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    _docker(*argv, image, *args, check=True)
    return name


def _wait_log(name: str, needle: str, timeout: float = 180) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        logs = _docker("logs", name)
        if needle in logs.stdout + logs.stderr:
            return time.monotonic() - start
        if _docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
            pytest.fail(f"{name} exited before '{needle}':\n{(logs.stdout + logs.stderr)[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"'{needle}' not in {name}'s log after {timeout} s")


def _stop(name: str) -> tuple[float, int]:
    """``docker stop`` (SIGTERM, SIGKILL after 10 s); (seconds, exit code)."""
    start = time.monotonic()
    _docker("stop", "-t", "10", name, timeout=60, check=True)
    seconds = time.monotonic() - start
    return seconds, int(_docker("inspect", "-f", "{{.State.ExitCode}}", name, check=True).stdout)


def test_without_weights_exits_1_with_one_line(image, report):
    done, seconds = _run(image, env={"HY3D_MODEL": "auto"})
    report(f"no weights: exit {done.returncode} in {seconds:.1f} s")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("worker start-up failed:"), done.stderr
    assert "python -m pipeline.weights download" in lines[0]
    assert seconds < 30


def _logged_result(log: str) -> tuple[dict, bytes]:
    """The fields of the result ``worker.py`` logs in --test_input / test_input.json mode, and the GLB's first bytes.

    runpod logs the result dict's repr and cuts any message over 4096
    characters to its first and last 2048. ``model_base64`` comes first, so the
    head holds the GLB's start and the tail every other field.
    """
    message = log.split("Job result: ", 1)[1]
    head, sep, rest = message.partition("\n...TRUNCATED ")
    if not sep:
        result = ast.literal_eval(message.splitlines()[0])["output"]
        return result, base64.b64decode(result["model_base64"])
    tail = rest.split("CHARACTERS...\n", 1)[1].splitlines()[0]
    fields = ast.literal_eval("{" + tail[tail.index("'output': ") :].removesuffix("}"))
    encoded = head.split("'model_base64': '", 1)[1]
    fields["model_base64"] = None
    return fields, base64.b64decode(encoded[: len(encoded) // 4 * 4])


def test_draft_job_from_a_mounted_test_input_json(image, report, tmp_path):
    """The image's own CMD (``python -u worker.py``) runs the job in /app/test_input.json and exits 0."""
    job = tmp_path / "test_input.json"
    job.write_text(json.dumps({"input": {"image": base64.b64encode(_photo_jpeg()).decode(), "max_faces": 20000}}))
    done, seconds = _run(image, env={"HY3D_MODEL": "draft"}, volumes=(f"{job}:/app/test_input.json:ro",))
    report(f"draft job from mounted test_input.json: exit {done.returncode} in {seconds:.1f} s")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    fields, glb_head = _logged_result(done.stdout + done.stderr)
    assert set(fields) == RESPONSE_KEYS
    assert fields["model"] == "draft" and fields["textured"] and fields["faces"] > 0
    # The GLB header: magic, version 2, total length = file_size; then the JSON chunk.
    assert glb_head[:4] == b"glTF" and int.from_bytes(glb_head[4:8], "little") == 2
    assert int.from_bytes(glb_head[8:12], "little") == fields["file_size"]
    assert glb_head[16:20] == b"JSON"
    # The whole GLB of the same image's worker is loaded in test_runsync_through_the_local_api_then_docker_stop.


def test_runsync_through_the_local_api_then_docker_stop(image, report):
    port = free_port()
    name = _detach(
        image,
        "python",
        "-u",
        "worker.py",
        "--rp_serve_api",
        "--rp_api_host",
        "0.0.0.0",
        "--rp_api_port",
        "8000",
        env={"HY3D_MODEL": "draft"},
        ports=(f"127.0.0.1:{port}:8000",),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        start = time.monotonic()
        while time.monotonic() - start < 180:
            try:
                requests.get(url + "/docs", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        ready = time.monotonic() - start
        start = time.monotonic()
        response = requests.post(
            url + "/runsync", json={"input": {"image": base64.b64encode(_photo_jpeg()).decode()}}, timeout=300
        )
        runsync = time.monotonic() - start
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        assert body.get("status") == "COMPLETED", str(body)[:500]
        assert set(body["output"]) == RESPONSE_KEYS
        _check_glb(body["output"])
        seconds, code = _stop(name)
        report(
            f"--rp_serve_api: answering {ready:.1f} s after docker run; /runsync {runsync:.2f} s; "
            f"docker stop {seconds:.1f} s, exit {code}"
        )
        assert code == 0 and seconds < 10
    finally:
        _docker("rm", "-f", name)


def test_weights_check(image, report):
    done, seconds = _run(image, "python", "-m", "pipeline.weights", "check")
    report(f"python -m pipeline.weights check: exit {done.returncode} in {seconds:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shape:hunyuan3d-2-turbo" in done.stdout and "missing " in done.stdout
    assert "HY3DGEN_MODELS=/models/hy3dgen" in done.stdout  # the image's layout (Dockerfile ENV)


def test_pymeshlab_plugins_load(image, report):
    """`import hy3dgen.shapegen` imports pymeshlab; without libopengl0 it printed 31 plugin-load
    errors and hy3dgen's post-processors (decimation among them) were missing."""
    probe = (
        "import hy3dgen.shapegen, pymeshlab; ms = pymeshlab.MeshSet(); "
        "print('decimation', hasattr(ms, 'meshing_decimation_quadric_edge_collapse'))"
    )
    done, seconds = _run(image, "python", "-c", probe)
    report(
        f"import hy3dgen.shapegen: exit {done.returncode} in {seconds:.1f} s, "
        f"{len(done.stderr.splitlines())} stderr lines"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["decimation", "True"]
    assert "Cannot load library" not in done.stderr and "libOpenGL" not in done.stderr


# Pretend to be a host whose CPU is not the build machine's: numba would key its
# cache by what LLVM reports, so the patched report must not matter. Setting
# NUMBA_CPU_NAME itself would override the image's choice, not simulate a host.
_NUMBA_PROBE = r"""
import json, os, pathlib, time
import llvmlite.binding as ll
import numba.core.codegen as codegen
real = ll.get_host_cpu_name()
fake = "znver3" if real != "znver3" else "icelake-server"
ll.get_host_cpu_name = lambda: fake
codegen.get_host_cpu_features = lambda: "+sse2,+sse4.2,+avx,+avx2,+fma"
cache = pathlib.Path(os.environ["NUMBA_CACHE_DIR"])
before = sorted(str(p) for p in cache.rglob("*.nbc"))
start = time.perf_counter()
import rembg
from pipeline.texture.inpaint import warm_up
warm_up()
seconds = time.perf_counter() - start
after = sorted(str(p) for p in cache.rglob("*.nbc"))
import numba
used = codegen.JITCPUCodegen("probe").magic_tuple()
numba.config.CPU_NAME = numba.config.CPU_FEATURES = None
unset = codegen.JITCPUCodegen("probe").magic_tuple()
print(json.dumps({"real": real, "fake": fake, "seconds": seconds, "cached": len(before),
                  "compiled": len(after) - len(before), "used": used, "without_generic": unset}))
"""


def test_first_rembg_import_hits_the_numba_cache_on_another_cpu(image, report):
    done, seconds = _run(image, "python", "-c", _NUMBA_PROBE)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    report(
        f"first import rembg + inpaint warm-up as a {probe['fake']} host (built on {probe['real']}): "
        f"{probe['seconds']:.1f} s, {probe['compiled']} functions compiled, {probe['cached']} cached"
    )
    assert probe["without_generic"][1] == probe["fake"]  # the pretence reaches numba ...
    assert probe["used"][1:] == ["generic", ""]  # ... and the image's setting makes it irrelevant
    assert probe["cached"] > 0 and probe["compiled"] == 0
    assert probe["seconds"] < 10


def test_docker_stop_of_the_app_exits_cleanly(image, report):
    name = _detach(
        image,
        "python",
        "-u",
        "app.py",
        "--host",
        "127.0.0.1",
        "--port",
        "7860",
        env={"HY3D_MODEL": "draft", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"},
    )
    try:
        ready = _wait_log(name, "Running on")
        seconds, code = _stop(name)
        report(f"app: up {ready:.1f} s after docker run; docker stop {seconds:.1f} s, exit {code}")
        assert code == 0, _docker("logs", name).stderr[-2000:]
        assert seconds < 10
    finally:
        _docker("rm", "-f", name)
