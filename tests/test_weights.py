"""Weights resolution, completeness checks and the ``pipeline.weights`` CLI.

Checkpoints here are small but valid safetensors files (no torch needed):
resolution only reads files, it never loads them.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pipeline import weights
from pipeline.errors import WeightsMissingError
from pipeline.models import HUNYUAN_MODELS
from pipeline.weights import fetch

REPO = "tencent/Hunyuan3D-2"
DIT = "hunyuan3d-dit-v2-0"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Empty, private search roots for all three locations."""
    paths = {name: tmp_path / name for name in ("hy3dgen", "runpod", "hf_home")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.setenv("HY3DGEN_MODELS", str(paths["hy3dgen"]))
    monkeypatch.setenv("RUNPOD_HF_CACHE", str(paths["runpod"]))
    monkeypatch.setenv("HF_HOME", str(paths["hf_home"]))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    return paths


def write_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("model: {target: x}\n")
    save_file({"model.w": np.ones((4, 4), np.float16)}, str(folder / "model.fp16.safetensors"))
    return folder


def write_hf_cache(hub: Path, repo_id: str, subfolders: list[str], rev: str = "abc123", main: bool = True) -> Path:
    """The Hugging Face cache layout: files are symlinks into ``blobs/``."""
    repo_dir = hub / ("models--" + repo_id.replace("/", "--"))
    staging = repo_dir / "staging"
    for sub in subfolders:
        write_checkpoint(staging / sub)
    for sub in subfolders:
        target_dir = repo_dir / "snapshots" / rev / sub
        target_dir.mkdir(parents=True)
        for file in (staging / sub).iterdir():
            blob = repo_dir / "blobs" / f"{sub}-{file.name}"
            blob.parent.mkdir(parents=True, exist_ok=True)
            file.rename(blob)
            (target_dir / file.name).symlink_to(os.path.relpath(blob, target_dir))
    if main:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / "main").write_text(rev)
    return repo_dir / "snapshots" / rev


# -- resolution order ---------------------------------------------------------


def test_finds_hy3dgen_layout(roots):
    folder = write_checkpoint(roots["hy3dgen"] / REPO / DIT)
    found = weights.find_shape_folder(REPO, DIT)
    assert found is not None and found.folder == folder and found.source == "HY3DGEN_MODELS"
    assert found.weights.name == "model.fp16.safetensors" and found.use_safetensors


def test_finds_runpod_cache_layout(roots):
    snapshot = write_hf_cache(roots["runpod"], REPO, [DIT])
    found = weights.find_shape_folder(REPO, DIT)
    assert found is not None and found.folder == snapshot / DIT and found.source == "RunPod cache"
    assert found.weights.is_symlink()


def test_finds_hf_home_layout(roots):
    snapshot = write_hf_cache(roots["hf_home"] / "hub", REPO, [DIT])
    found = weights.find_shape_folder(REPO, DIT)
    assert found is not None and found.folder == snapshot / DIT and found.source == "HF cache"


def test_hf_hub_cache_overrides_hf_home(roots, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    snapshot = write_hf_cache(tmp_path / "elsewhere", REPO, [DIT])
    assert weights.find_shape_folder(REPO, DIT).folder == snapshot / DIT


def test_resolution_order_prefers_hy3dgen_then_runpod(roots):
    write_hf_cache(roots["hf_home"] / "hub", REPO, [DIT])
    runpod = write_hf_cache(roots["runpod"], REPO, [DIT])
    assert weights.find_shape_folder(REPO, DIT).folder == runpod / DIT
    local = write_checkpoint(roots["hy3dgen"] / REPO / DIT)
    assert weights.find_shape_folder(REPO, DIT).folder == local


def test_refs_main_snapshot_wins(roots):
    write_hf_cache(roots["runpod"], REPO, [DIT], rev="old", main=False)
    main = write_hf_cache(roots["runpod"], REPO, [DIT], rev="new", main=True)
    os.utime(main, (1, 1))  # older mtime: only refs/main can make it win
    assert weights.find_shape_folder(REPO, DIT).folder == main / DIT


# -- completeness -------------------------------------------------------------


def _broken(kind: str, folder: Path) -> None:
    write_checkpoint(folder)
    weights_file = folder / "model.fp16.safetensors"
    if kind == "no-config":
        (folder / "config.yaml").unlink()
    elif kind == "empty-config":
        (folder / "config.yaml").write_text("")
    elif kind == "no-weights":
        weights_file.unlink()
    elif kind == "empty-weights":
        weights_file.write_bytes(b"")
    elif kind == "truncated":
        data = weights_file.read_bytes()
        weights_file.write_bytes(data[:-5])
    elif kind == "incomplete-only":
        weights_file.rename(folder / "model.fp16.safetensors.incomplete")
    elif kind == "garbage":
        weights_file.write_bytes(b"\xff" * 64)


@pytest.mark.parametrize(
    "kind", ["no-config", "empty-config", "no-weights", "empty-weights", "truncated", "incomplete-only", "garbage"]
)
def test_incomplete_folder_is_not_present(roots, kind):
    _broken(kind, roots["hy3dgen"] / REPO / DIT)
    assert weights.find_shape_folder(REPO, DIT) is None


def test_dangling_hf_symlink_is_not_present(roots):
    snapshot = write_hf_cache(roots["runpod"], REPO, [DIT])
    (snapshot / DIT / "model.fp16.safetensors").resolve().unlink()  # blob still downloading elsewhere
    assert weights.find_shape_folder(REPO, DIT) is None


def test_incomplete_first_root_falls_through_to_next(roots):
    _broken("truncated", roots["hy3dgen"] / REPO / DIT)
    snapshot = write_hf_cache(roots["hf_home"] / "hub", REPO, [DIT])
    assert weights.find_shape_folder(REPO, DIT).folder == snapshot / DIT


def test_diffusers_folder_completeness(tmp_path):
    folder = tmp_path / "paint"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    assert not weights.diffusers_folder_complete(folder)  # no weights yet
    save_file({"w": np.ones(3, np.float32)}, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    assert weights.diffusers_folder_complete(folder)
    (folder / "unet" / "other.safetensors.incomplete").write_bytes(b"x")
    assert not weights.diffusers_folder_complete(folder)


# -- models and auto ----------------------------------------------------------


def test_turbo_needs_its_flashvdm_vae(roots):
    write_checkpoint(roots["hy3dgen"] / REPO / "hunyuan3d-dit-v2-0-turbo")
    assert weights.find_model("hunyuan3d-2-turbo") is None
    with pytest.raises(WeightsMissingError, match="hunyuan3d-vae-v2-0-turbo"):
        weights.resolve_model("hunyuan3d-2-turbo")
    vae = write_hf_cache(roots["runpod"], REPO, ["hunyuan3d-vae-v2-0-turbo"])  # may live in another root
    resolved = weights.resolve_model("hunyuan3d-2-turbo")
    assert resolved.vae.folder == vae / "hunyuan3d-vae-v2-0-turbo"
    assert resolved.dit.source == "HY3DGEN_MODELS" and resolved.vae.source == "RunPod cache"


def test_resolve_auto_model_follows_preference(roots):
    assert weights.resolve_auto_model() is None
    write_checkpoint(roots["hy3dgen"] / "tencent/Hunyuan3D-2mini" / "hunyuan3d-dit-v2-mini")
    assert weights.resolve_auto_model() == "hunyuan3d-2mini"
    write_checkpoint(roots["hy3dgen"] / REPO / "hunyuan3d-dit-v2-0-turbo")
    assert weights.resolve_auto_model() == "hunyuan3d-2mini"  # turbo DiT without its VAE does not count
    write_checkpoint(roots["hy3dgen"] / REPO / "hunyuan3d-vae-v2-0-turbo")
    assert weights.resolve_auto_model() == "hunyuan3d-2-turbo"
    write_hf_cache(roots["hf_home"] / "hub", REPO, [DIT])
    assert weights.resolve_auto_model() == "hunyuan3d-2"


def test_searched_locations_lists_the_three_roots(roots):
    assert weights.searched_locations() == [str(roots["hy3dgen"]), str(roots["runpod"]), str(roots["hf_home"] / "hub")]


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection hangs (like a silent proxy) and is recorded."""
    attempts = []

    def hang(self, address):
        attempts.append(address)
        time.sleep(30)

    monkeypatch.setattr(socket.socket, "connect", hang)
    monkeypatch.setattr(socket.socket, "connect_ex", hang)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: hang(None, a[0] if a else None))
    return attempts


@pytest.mark.parametrize("name", sorted(HUNYUAN_MODELS))
def test_missing_weights_fail_fast_without_network(roots, no_network, name):
    spec = HUNYUAN_MODELS[name]
    start = time.monotonic()
    with pytest.raises(WeightsMissingError) as caught:
        weights.resolve_model(name)
    assert time.monotonic() - start < 5
    assert no_network == []
    message = str(caught.value)
    assert name in message and f"python -m pipeline.weights download --model {name}" in message
    # The sentence names the three roots (it must fit the panel's 400-character toast);
    # every folder searched is on the exception.
    assert f"{roots['hy3dgen']}, {roots['runpod']}, {roots['hf_home'] / 'hub'}" in message
    assert str(roots["hy3dgen"] / spec.repo_id / spec.subfolder) in caught.value.searched
    assert len(caught.value.searched) == 3 * (2 if spec.vae_subfolder else 1)


def test_backend_constructor_fails_fast_without_network(roots, no_network):
    from pipeline.backends.hunyuan import HunyuanShapeBackend

    start = time.monotonic()
    with pytest.raises(WeightsMissingError, match="download --model hunyuan3d-2"):
        HunyuanShapeBackend("hunyuan3d-2")
    assert time.monotonic() - start < 5 and no_network == []


def test_rembg_model_lookup(roots, tmp_path, monkeypatch):
    assert weights.rembg_model_path("u2net") is None
    legacy = tmp_path / "u2net" / "u2net.onnx"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"onnx")
    assert weights.rembg_model_path("u2net") == legacy
    monkeypatch.delenv("U2NET_HOME")
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "rembg"))
    modern = tmp_path / "rembg" / "models" / "u2net" / "u2net.onnx"
    assert weights.rembg_model_path("u2net") is None
    modern.parent.mkdir(parents=True)
    modern.write_bytes(b"onnx")
    assert weights.rembg_model_path("u2net") == modern


# -- downloading ------------------------------------------------------------


def test_download_refuses_when_offline(roots, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(weights.DownloadError, match="HF_HUB_OFFLINE"):
        weights.download("hunyuan3d-2-turbo", log=lambda _: None)
    assert time.monotonic() - start < 5 and no_network == []
    assert weights.find_model("hunyuan3d-2-turbo") is None


def test_download_fails_within_timeout_on_silent_server(roots, monkeypatch):
    """A server that accepts connections but never answers (a stuck proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    start = time.monotonic()
    try:
        with pytest.raises(weights.DownloadError, match="Cannot reach"):
            weights.download("hunyuan3d-2", timeout=1.0, log=lambda _: None)
    finally:
        server.close()
    assert time.monotonic() - start < 5


def test_partial_download_is_reported_and_never_present(roots, monkeypatch):
    def partial(repo_id, subfolders, dest, timeout):
        for sub in subfolders:  # the config arrived, the weights did not
            (dest / repo_id / sub).mkdir(parents=True)
            (dest / repo_id / sub / "config.yaml").write_text("model: {}\n")
        return dest / repo_id

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(fetch, "require_network", lambda url, timeout: None)
    monkeypatch.setattr(fetch, "_snapshot_download", partial)
    with pytest.raises(weights.DownloadError, match="incomplete"):
        weights.download("hunyuan3d-2", log=lambda _: None)
    assert weights.find_model("hunyuan3d-2") is None


def test_download_plan_fetches_only_missing_subfolders(roots):
    write_checkpoint(roots["hy3dgen"] / REPO / "hunyuan3d-vae-v2-0-turbo")
    plan = weights.plan_download("hunyuan3d-2-turbo", texture=True, rembg="u2net")
    assert plan.repos == {REPO: ["hunyuan3d-dit-v2-0-turbo", *weights.TEXTURE_SUBFOLDERS]}
    assert plan.rembg == "u2net"


def test_download_fetches_into_hy3dgen_layout(roots, monkeypatch):
    calls = []

    def fake(repo_id, subfolders, dest, timeout):
        calls.append((repo_id, list(subfolders), dest))
        for sub in subfolders:
            write_checkpoint(dest / repo_id / sub)
        return dest / repo_id

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(fetch, "require_network", lambda url, timeout: None)
    monkeypatch.setattr(fetch, "_snapshot_download", fake)
    weights.download("hunyuan3d-2mini-turbo", log=lambda _: None)
    assert calls == [
        ("tencent/Hunyuan3D-2mini", ["hunyuan3d-dit-v2-mini-turbo", "hunyuan3d-vae-v2-mini-turbo"], roots["hy3dgen"])
    ]
    assert weights.resolve_auto_model() == "hunyuan3d-2mini-turbo"


# -- CLI ----------------------------------------------------------------------


def _cli(args: list[str], env_roots: dict[str, Path], **extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HY3DGEN_MODELS": str(env_roots["hy3dgen"]),
        "RUNPOD_HF_CACHE": str(env_roots["runpod"]),
        "HF_HOME": str(env_roots["hf_home"]),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "pipeline.weights", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_check_lists_present_and_missing(roots):
    folder = write_checkpoint(roots["hy3dgen"] / REPO / DIT)
    result = _cli(["check"], roots)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("present") and "shape:hunyuan3d-2 " in line and str(folder) in line for line in lines)
    missing = [line for line in lines if line.startswith("missing")]
    assert any("download --model hunyuan3d-2-turbo" in line for line in missing)
    assert any("texture:hunyuan3d-paint-v2-0" in line for line in missing)
    assert any("rembg:u2net" in line for line in missing)
    assert str(roots["runpod"]) in result.stdout


def test_cli_check_require(roots):
    assert _cli(["check", "--require", "hunyuan3d-2"], roots).returncode == 1
    write_checkpoint(roots["hy3dgen"] / REPO / DIT)
    assert _cli(["check", "--require", "hunyuan3d-2"], roots).returncode == 0


def test_cli_download_offline_fails_clearly(roots):
    start = time.monotonic()
    result = _cli(["download", "--model", "hunyuan3d-2-turbo"], roots)
    assert time.monotonic() - start < 30
    assert result.returncode == 1
    assert "download failed" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "hunyuan3d-dit-v2-0-turbo" in result.stderr
    assert not (roots["hy3dgen"] / REPO / "hunyuan3d-dit-v2-0-turbo").exists()


def test_cli_download_nothing_missing_succeeds_offline(roots):
    write_checkpoint(roots["hy3dgen"] / REPO / DIT)
    result = _cli(["download", "--model", "hunyuan3d-2"], roots)
    assert result.returncode == 0 and "already present" in result.stdout


def test_cli_download_needs_a_target(roots):
    assert _cli(["download"], roots).returncode == 2


def test_failed_name_lookup_does_not_claim_a_wait(monkeypatch):
    """A DNS failure fails at once; the message must not say "within 15 s"."""
    import urllib.error

    def refuse(*_a, **_k):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(fetch.urllib.request, "urlopen", refuse)
    with pytest.raises(weights.DownloadError) as caught:
        weights.require_network("https://nowhere.invalid", 15)
    assert "within" not in str(caught.value) and "Name or service not known" in str(caught.value)

    def slow(*_a, **_k):
        raise urllib.error.URLError(TimeoutError("timed out"))

    monkeypatch.setattr(fetch.urllib.request, "urlopen", slow)
    with pytest.raises(weights.DownloadError, match="within 15 s"):
        weights.require_network("https://nowhere.invalid", 15)


def test_timeout_flag_wins_over_hub_variables_and_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "40")
    said: list[str] = []
    assert weights.hub_timeouts(30.0, said.append) == 30.0
    assert os.environ["HF_HUB_ETAG_TIMEOUT"] == "30" and os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] == "30"
    assert said == [
        "--timeout 30 s overrides HF_HUB_ETAG_TIMEOUT=3.",
        "--timeout 30 s overrides HF_HUB_DOWNLOAD_TIMEOUT=40.",
    ]
    # Without --timeout, values already set are kept; unset ones get the default.
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "4")
    monkeypatch.delenv("HF_HUB_DOWNLOAD_TIMEOUT")
    assert weights.hub_timeouts(None, said.append) == 4.0
    assert os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] == "15"
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "soon")
    with pytest.raises(weights.DownloadError, match="HF_HUB_ETAG_TIMEOUT must be a number of seconds"):
        weights.hub_timeouts(None)


@pytest.mark.parametrize("raw", ["inf", "0", "-3", "nan"])
def test_unusable_hub_timeout_is_one_sentence(monkeypatch, raw):
    """An infinite timeout used to reach ``math.ceil`` and fail as "cannot convert
    float infinity to integer"; every unusable value names the variable instead."""
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", raw)
    with pytest.raises(weights.DownloadError) as caught:
        weights.hub_timeouts(None)
    assert str(caught.value) == (
        f"Environment variable HF_HUB_DOWNLOAD_TIMEOUT must be a positive number of seconds, got '{raw}'."
    )


def test_download_command_spells_every_variant():
    assert weights.download_command() == "python -m pipeline.weights download"
    assert weights.download_command("hunyuan3d-2mv") == "python -m pipeline.weights download --model hunyuan3d-2mv"
    assert weights.TEXTURE_DOWNLOAD_COMMAND == "python -m pipeline.weights download --texture"
    assert weights.REMBG_DOWNLOAD_COMMAND == "python -m pipeline.weights download --rembg"
    both = weights.download_command("hunyuan3d-2-turbo", texture=True, rembg=True)
    assert both == "python -m pipeline.weights download --model hunyuan3d-2-turbo --texture --rembg"
    # Every spelling parses as the CLI it names.
    args = weights.cli._parser().parse_args(both.split()[3:])
    assert (args.command, args.model, args.texture, args.rembg) == ("download", "hunyuan3d-2-turbo", True, True)


def _string_literals(path: Path) -> list[str]:
    """The string constants of a module, docstrings excepted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_download_command_and_rembg_default_have_one_source():
    """The download command is built only in pipeline.weights.commands and the rembg
    default is named only in pipeline.models; every message uses them."""
    sources = [*sorted((ROOT / "pipeline").rglob("*.py")), ROOT / "worker.py", ROOT / "app.py"]
    for path in sources:
        relative = path.relative_to(ROOT).as_posix()
        literals = _string_literals(path)
        if relative != "pipeline/weights/commands.py":
            assert not [s for s in literals if "pipeline.weights download" in s], relative
        if relative != "pipeline/models.py":
            assert "u2net" not in literals, relative


def test_download_prints_the_licence_notice(roots, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.main(["download", "--model", "hunyuan3d-2-turbo"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == weights.LICENCE_NOTICE
    assert all(word in out[0] for word in ("EU", "UK", "South Korea", "monthly active user", "acceptable-use"))
