"""Where model weights live, whether they are complete, and how to fetch them.

hy3dgen's own loader looks only in ``$HY3DGEN_MODELS/<repo>/<subfolder>`` and
otherwise calls ``snapshot_download``, which can hang for many minutes behind a
silent proxy. This module finds the folders itself, in order:

1. ``$HY3DGEN_MODELS/<repo_id>/<subfolder>`` (hy3dgen's layout; default ``~/.cache/hy3dgen``);
2. RunPod's model cache, ``$RUNPOD_HF_CACHE`` (default ``/runpod-volume/huggingface-cache/hub``), HF layout;
3. the Hugging Face cache, ``$HF_HUB_CACHE`` or ``$HF_HOME/hub``, HF layout.

A folder counts only when complete (config plus a weights file whose size
matches its header), so an interrupted download is never loaded. The backend
loads the resolved files directly and never asks hy3dgen to download.

CLI: ``python -m pipeline.weights check [--verify]`` and
``python -m pipeline.weights download --model NAME [--texture] [--rembg]``.

``check --verify`` also reads every weights file: each is compared with the
checksum its download recorded (the Hugging Face cache names LFS blobs by
their sha256 and other blobs by their git hash; ``download`` writes
``MANIFEST_FILE`` into every folder it fetched) and every safetensors tensor
must be finite, so a file of the right size whose bytes are garbage is named.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import struct
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError, WeightsDamagedError, WeightsMissingError
from .models import AUTO_MULTIVIEW_PREFERENCE, AUTO_PREFERENCE, HUNYUAN_MODELS, ShapeModelSpec

DEFAULT_HY3DGEN_ROOT = "~/.cache/hy3dgen"
DEFAULT_RUNPOD_CACHE = "/runpod-volume/huggingface-cache/hub"
DEFAULT_HF_HOME = "~/.cache/huggingface"
# hy3dgen loads variant fp16: safetensors by default, the .ckpt with use_safetensors=False.
WEIGHT_FILES = ("model.fp16.safetensors", "model.fp16.ckpt")
CONFIG_FILE = "config.yaml"
TEXTURE_REPO = "tencent/Hunyuan3D-2"
TEXTURE_SUBFOLDERS = ("hunyuan3d-paint-v2-0", "hunyuan3d-paint-v2-0-turbo", "hunyuan3d-delight-v2-0")
DEFAULT_TIMEOUT_S = 15.0
LICENCE_NOTICE = (
    "Licence: Tencent's Hunyuan3D-2 weights are under the Tencent Hunyuan 3D 2.0 Community License, which does "
    "not apply in the EU, the UK or South Korea, has its own terms above a large monthly active user count and "
    "comes with an acceptable-use policy; read it (LICENSE in the model repository) before use."
)
# Written by ``download`` into each folder it fetched: {"files": {relpath: {"sha256", "size"}}}.
MANIFEST_FILE = ".hy3d-manifest.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def download_command(name: str) -> str:
    return f"python -m pipeline.weights download --model {name}"


class DownloadError(PipelineError):
    """A download could not start or did not finish; nothing was left that counts as present."""


# -- search roots -------------------------------------------------------------


@dataclass(frozen=True)
class SearchRoot:
    """One place weights may live. ``hf_layout``: ``models--org--name/snapshots/<rev>/``."""

    source: str
    path: Path
    hf_layout: bool

    def candidates(self, repo_id: str, subfolder: str) -> list[Path]:
        """Folders to try for a subfolder, best first."""
        if not self.hf_layout:
            return [self.path / repo_id / subfolder]
        return [snapshot / subfolder for snapshot in _snapshots(self.path / _hf_repo_dir(repo_id))]

    def describe(self, repo_id: str, subfolder: str) -> str:
        if not self.hf_layout:
            return str(self.path / repo_id / subfolder)
        return str(self.path / _hf_repo_dir(repo_id) / "snapshots" / "*" / subfolder)


def _env_path(*names: str, default: str) -> Path:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return Path(value).expanduser()
    return Path(default).expanduser()


def _hf_hub_cache() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE", "").strip() or os.environ.get("HUGGINGFACE_HUB_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return _env_path("HF_HOME", default=DEFAULT_HF_HOME) / "hub"


def search_roots() -> list[SearchRoot]:
    """The three roots, in resolution order, read from the environment now."""
    return [
        SearchRoot("HY3DGEN_MODELS", _env_path("HY3DGEN_MODELS", default=DEFAULT_HY3DGEN_ROOT), False),
        SearchRoot("RunPod cache", _env_path("RUNPOD_HF_CACHE", default=DEFAULT_RUNPOD_CACHE), True),
        SearchRoot("HF cache", _hf_hub_cache(), True),
    ]


def searched_locations() -> list[str]:
    return [str(root.path) for root in search_roots()]


def searched_roots_text() -> str:
    """The three roots, short enough for a 400-character error sentence; the
    full folder list is in ``WeightsMissingError.searched`` and ``check``."""
    return ", ".join(searched_locations())


def _hf_repo_dir(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _snapshots(repo_dir: Path) -> list[Path]:
    """Snapshot folders: the one ``refs/main`` names first, then newest first."""
    snapshots_dir = repo_dir / "snapshots"
    if not snapshots_dir.is_dir():
        return []
    found = sorted((p for p in snapshots_dir.iterdir() if p.is_dir()), key=_mtime, reverse=True)
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        main = snapshots_dir / ref.read_text().strip()
        if main in found:
            found.remove(main)
            found.insert(0, main)
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# -- completeness -------------------------------------------------------------


def _file_size(path: Path) -> int:
    """Size of a regular file (following HF cache symlinks); 0 when absent or broken."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def safetensors_complete(path: Path) -> bool:
    """The header parses and the file is as long as the header says: a
    truncated copy (interrupted rsync, full volume) is rejected."""
    size = _file_size(path)
    if size < 8:
        return False
    try:
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len <= 0 or 8 + header_len > size:
                return False
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError):
        return False
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return bool(ends) and size >= 8 + header_len + max(ends)


def _weights_complete(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return safetensors_complete(path)
    return _file_size(path) > 0 and zipfile.is_zipfile(path)  # torch checkpoints are zip archives


@dataclass(frozen=True)
class ShapeFolder:
    """A complete hy3dgen checkpoint folder: ``config.yaml`` plus weights."""

    folder: Path
    config: Path
    weights: Path
    source: str

    @property
    def use_safetensors(self) -> bool:
        return self.weights.suffix == ".safetensors"


def inspect_shape_folder(folder: Path, source: str = "") -> ShapeFolder | None:
    """The folder as a :class:`ShapeFolder` if complete, else None."""
    config = folder / CONFIG_FILE
    if _file_size(config) == 0:
        return None
    for name in WEIGHT_FILES:
        if _weights_complete(folder / name):
            return ShapeFolder(folder, config, folder / name, source)
    return None


def diffusers_folder_complete(folder: Path) -> bool:
    """A diffusers pipeline folder (texture models): an index, at least one
    weights file, no empty, partial or truncated file."""
    if _file_size(folder / "model_index.json") == 0:
        return False
    weights = 0
    for path in folder.rglob("*"):
        if path.name.endswith(".incomplete") or (path.is_symlink() and not path.exists()):
            return False
        if not path.is_file():
            continue
        if _file_size(path) == 0:
            return False
        if path.suffix == ".safetensors":
            if not safetensors_complete(path):
                return False
            weights += 1
        elif path.suffix in (".bin", ".ckpt", ".pt"):
            weights += 1
    return weights > 0


def find_folder(repo_id: str, subfolder: str, complete: Callable[[Path], bool]) -> tuple[Path, str] | None:
    """First complete folder over all roots, with the root's name."""
    for root in search_roots():
        for folder in root.candidates(repo_id, subfolder):
            if complete(folder):
                return folder, root.source
    return None


def find_shape_folder(repo_id: str, subfolder: str) -> ShapeFolder | None:
    for root in search_roots():
        for folder in root.candidates(repo_id, subfolder):
            found = inspect_shape_folder(folder, root.source)
            if found is not None:
                return found
    return None


def described_candidates(repo_id: str, subfolder: str) -> list[str]:
    return [root.describe(repo_id, subfolder) for root in search_roots()]


# -- shape models -------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """A shape model's local files: the DiT checkpoint and, for turbo
    variants, the FlashVDM VAE that replaces the checkpoint's own VAE."""

    spec: ShapeModelSpec
    dit: ShapeFolder
    vae: ShapeFolder | None = None


def model_folders(spec: ShapeModelSpec) -> list[tuple[str, str]]:
    """(repository, subfolder) of every folder the model needs: the DiT and,
    for turbo variants, the FlashVDM VAE (in another repository for 2mv-turbo)."""
    return [(spec.repo_id, spec.subfolder)] + ([(spec.vae_repo, spec.vae_subfolder)] if spec.vae_subfolder else [])


def find_model(name: str) -> ResolvedModel | None:
    spec = HUNYUAN_MODELS[name]
    dit = find_shape_folder(spec.repo_id, spec.subfolder)
    vae = find_shape_folder(spec.vae_repo, spec.vae_subfolder) if spec.vae_subfolder else None
    if dit is None or (spec.vae_subfolder and vae is None):
        return None
    return ResolvedModel(spec, dit, vae)


def resolve_model(name: str) -> ResolvedModel:
    """The model's local files, or :class:`WeightsMissingError` naming every
    folder searched and the download command. Only the local disk is read."""
    if name not in HUNYUAN_MODELS:
        raise WeightsMissingError(f"Unknown shape model '{name}'; known: {', '.join(HUNYUAN_MODELS)}.")
    found = find_model(name)
    if found is not None:
        return found
    spec = HUNYUAN_MODELS[name]
    missing = [(repo, sub) for repo, sub in model_folders(spec) if find_shape_folder(repo, sub) is None]
    searched = [path for repo, sub in missing for path in described_candidates(repo, sub)]
    what = "; ".join(f"{repo}: {sub}" for repo, sub in missing)
    raise WeightsMissingError(
        f"Weights for model '{name}' ({what}) are not complete on disk "
        f"(searched {searched_roots_text()}); download them with `{download_command(name)}`.",
        searched=searched,
    )


def resolve_auto_model(multiview: bool = False) -> str | None:
    """The first model whose weights are all present: for a single image,
    of AUTO_PREFERENCE, then (a multi-view model takes a lone front image
    too) of AUTO_MULTIVIEW_PREFERENCE; for a request with views, of
    AUTO_MULTIVIEW_PREFERENCE only."""
    order = AUTO_MULTIVIEW_PREFERENCE if multiview else AUTO_PREFERENCE + AUTO_MULTIVIEW_PREFERENCE
    return next((name for name in order if find_model(name) is not None), None)


# -- other assets (texture models, rembg) --------------------------------------


def _xdg(name: str, default: str) -> str:
    xdg = os.environ.get("XDG_DATA_HOME")
    return os.path.join(xdg, name) if xdg else os.path.join("~", default)


def rembg_homes() -> tuple[Path, Path, str]:
    """rembg's (home, legacy home, source of home), as rembg 2.0.86 computes them.

    ``U2NET_HOME`` wins for both; otherwise models live under
    ``REMBG_HOME/models/<name>/`` and old flat downloads in ``~/.u2net``.
    """
    u2net_home = os.environ.get("U2NET_HOME")
    if u2net_home:
        home = Path(os.path.expanduser(u2net_home))
        return home, home, "U2NET_HOME"
    legacy = Path(os.path.expanduser(_xdg(".u2net", ".u2net")))
    rembg_home = os.environ.get("REMBG_HOME")
    if rembg_home:
        return Path(os.path.expanduser(rembg_home)), legacy, "REMBG_HOME"
    return Path(os.path.expanduser(_xdg("rembg", ".rembg"))), legacy, "default folders"


def rembg_weight_candidates(model: str) -> tuple[Path, ...]:
    """Files rembg checks for ``model`` before it would download, in order."""
    home, legacy, _ = rembg_homes()
    fname = f"{model}.onnx"
    return tuple(dict.fromkeys([home / "models" / model / fname, legacy / fname]))


def rembg_model_path(name: str = "u2net") -> Path | None:
    """The first non-empty file among rembg's own candidates, or None."""
    return next((path for path in rembg_weight_candidates(name) if _file_size(path) > 0), None)


@dataclass(frozen=True)
class AssetStatus:
    """One line of ``check``: an asset, where it is (None: missing), where we looked."""

    kind: str
    name: str
    location: str | None
    source: str | None
    hint: str
    searched: list[str] = field(default_factory=list)


def _shape_status(name: str) -> AssetStatus:
    spec = HUNYUAN_MODELS[name]
    found = find_model(name)
    searched = [p for repo, sub in model_folders(spec) for p in described_candidates(repo, sub)]
    if found is None:
        return AssetStatus("shape", name, None, None, download_command(name), searched)
    where = str(found.dit.folder) + (f" + {found.vae.folder}" if found.vae else "")
    return AssetStatus("shape", name, where, found.dit.source, "", searched)


def _texture_status(subfolder: str) -> AssetStatus:
    found = find_folder(TEXTURE_REPO, subfolder, diffusers_folder_complete)
    hint = "python -m pipeline.weights download --texture"
    return AssetStatus(
        "texture",
        subfolder,
        str(found[0]) if found else None,
        found[1] if found else None,
        "" if found else hint,
        described_candidates(TEXTURE_REPO, subfolder),
    )


def _rembg_status(name: str) -> AssetStatus:
    path = rembg_model_path(name)
    return AssetStatus(
        "rembg",
        name,
        str(path) if path else None,
        "rembg home" if path else None,
        "" if path else "python -m pipeline.weights download --rembg",
    )


def check_assets(rembg_name: str = "u2net") -> list[AssetStatus]:
    return (
        [_shape_status(name) for name in HUNYUAN_MODELS]
        + [_texture_status(sub) for sub in TEXTURE_SUBFOLDERS]
        + [_rembg_status(rembg_name)]
    )


# -- verifying file contents ----------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_entry(path: Path) -> dict | None:
    """The manifest ``download`` wrote in ``path``'s folder or a parent, if any."""
    for folder in path.parents:
        manifest = folder / MANIFEST_FILE
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
            except (OSError, ValueError, AttributeError):
                return None
            return files.get(path.relative_to(folder).as_posix())
    return None


def recorded_checksum(path: Path) -> tuple[str, str] | None:
    """(algorithm, hex digest) the download recorded for ``path``: the HF cache
    blob name (sha256 for LFS files, git sha1 for small ones), else our manifest."""
    if path.is_symlink():
        blob = path.resolve().name
        if _SHA256.match(blob):
            return "sha256", blob
        if _GIT_SHA1.match(blob):
            return "git-sha1", blob
    entry = _manifest_entry(path)
    if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
        return "sha256", entry["sha256"]
    return None


def nonfinite_tensor(path: Path) -> str | None:
    """The first tensor of a safetensors file holding NaN or infinity, else None."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            wide = torch.float64 if tensor.element_size() > 2 else torch.float32
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor.sum(dtype=wide))):
                return key  # a finite-value sum in the wider type cannot overflow (see check_weights_finite)
    return None


@dataclass(frozen=True)
class FileCheck:
    """One line of ``check --verify``."""

    path: str
    status: str  # "ok", "damaged" or "unverified"
    detail: str = ""


def verify_file(path: Path) -> FileCheck:
    """Compare ``path`` with its recorded checksum, and scan safetensors for non-finite values."""
    recorded = recorded_checksum(path)
    if recorded is not None:
        algorithm, expected = recorded
        actual = file_sha256(path) if algorithm == "sha256" else _git_blob_sha1(path)
        if actual != expected:
            return FileCheck(
                str(path), "damaged", f"{algorithm} is {actual[:12]}..., the download recorded {expected[:12]}..."
            )
    if path.suffix == ".safetensors":
        try:
            bad = nonfinite_tensor(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is a damaged one
            return FileCheck(str(path), "damaged", f"unreadable ({type(exc).__name__})")
        if bad is not None:
            return FileCheck(str(path), "damaged", f"tensor {bad!r} holds NaN or infinite values")
    if recorded is None and path.suffix != ".safetensors":
        return FileCheck(str(path), "unverified", "no checksum was recorded")
    return FileCheck(str(path), "ok", recorded[0] if recorded else "finite")


def _asset_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE and ".cache" not in p.relative_to(folder).parts
    )


def verify_assets() -> list[FileCheck]:
    """Every file of every present shape and texture folder, verified."""
    folders: list[Path] = []
    for name in HUNYUAN_MODELS:
        found = find_model(name)
        if found is not None:
            folders += [found.dit.folder] + ([found.vae.folder] if found.vae else [])
    for sub in TEXTURE_SUBFOLDERS:
        hit = find_folder(TEXTURE_REPO, sub, diffusers_folder_complete)
        if hit is not None:
            folders.append(hit[0])
    return [verify_file(path) for folder in dict.fromkeys(folders) for path in _asset_files(folder)]


def _hf_metadata_sha256(base: Path, relative: str) -> str | None:
    """The sha256 huggingface_hub recorded for a ``local_dir`` download (its
    ``.cache/huggingface/download/<file>.metadata`` etag, for LFS files)."""
    metadata = base / ".cache" / "huggingface" / "download" / f"{relative}.metadata"
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return lines[1].strip() if len(lines) > 1 and _SHA256.match(lines[1].strip()) else None


def write_manifest(folder: Path, base: Path | None = None) -> Path:
    """Record every file's sha256 in ``folder/MANIFEST_FILE``: the hub's own
    checksum where huggingface_hub kept one, else the file's as downloaded.
    ``check --verify`` compares against it later."""
    base = base or folder.parent
    files = {}
    for path in _asset_files(folder):
        relative = path.relative_to(folder).as_posix()
        sha = _hf_metadata_sha256(base, path.relative_to(base).as_posix()) or file_sha256(path)
        files[relative] = {"sha256": sha, "size": path.stat().st_size}
    manifest = folder / MANIFEST_FILE
    manifest.write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
    return manifest


def check_weights_finite(
    modules: dict[str, object], path: Path, model: str | None, device: str = "cpu", command: str | None = None
) -> None:
    """Raise :class:`WeightsDamagedError` naming ``path`` when a loaded
    parameter or buffer holds NaN or infinity: garbage tensor bytes of the
    right size pass every size check, and each job would then fail late as
    "no surface".

    One reduction per tensor, checked once at the end: a sum of finite fp16
    values in float32 (float64 for wider types) cannot overflow, so it is
    finite exactly when every value is. On CUDA the sums run on the device
    (the weights go there anyway); ``isfinite`` on CPU fp16 was 4x slower
    than the sum in bench runs (13.6 vs 3.4 s/GB on one busy core)."""
    import torch

    names, sums = [], []
    on_device = device.startswith("cuda") and torch.cuda.is_available()
    for prefix, module in modules.items():
        if module is None:
            continue
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or tensor.is_meta:
                continue
            values = tensor.to(device, non_blocking=True) if on_device else tensor
            wide = torch.float64 if values.element_size() > 2 else torch.float32
            names.append(f"{prefix}.{name}")
            sums.append(values.sum(dtype=wide).double())
    if not sums:
        return
    finite = torch.isfinite(torch.stack(sums)).cpu()
    if not bool(finite.all()):
        bad = names[int((~finite).nonzero()[0])]
        raise damaged_error(path, f"tensor '{bad}' holds NaN or infinite values", model, command)


def damaged_error(path: Path, detail: str, model: str | None = None, command: str | None = None) -> WeightsDamagedError:
    fix = f"`{command or (download_command(model) if model else 'python -m pipeline.weights download')}`"
    return WeightsDamagedError(
        f"Weights {'folder' if path.is_dir() else 'file'} {path} is damaged ({detail}); delete it and download "
        f"it again with {fix}.",
        path=str(path),
    )


# -- downloading --------------------------------------------------------------


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def require_network(url: str, timeout: float) -> None:
    """Fail within ``timeout`` when ``url`` cannot be reached (DNS, firewall,
    silent proxy), instead of letting a download hang."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered: the network works
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        # "within N s" only when the wait ran out; a failed name lookup fails at once.
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        when = f" within {timeout:g} s" if timed_out else ""
        raise DownloadError(f"Cannot reach {url}{when} ({reason}); check the network or proxy.") from None


@dataclass(frozen=True)
class DownloadPlan:
    """Subfolders to fetch per repository (those not already present), and rembg."""

    repos: dict[str, list[str]]
    rembg: str | None

    @property
    def empty(self) -> bool:
        return not self.repos and self.rembg is None


def _shape_present(repo_id: str, subfolder: str) -> bool:
    return find_shape_folder(repo_id, subfolder) is not None


def _texture_present(repo_id: str, subfolder: str) -> bool:
    return find_folder(repo_id, subfolder, diffusers_folder_complete) is not None


def plan_download(model: str | None, texture: bool, rembg: str | None) -> DownloadPlan:
    wanted: list[tuple[str, str, Callable[[str, str], bool]]] = []
    if model:
        spec = HUNYUAN_MODELS[model]
        wanted += [(repo, sub, _shape_present) for repo, sub in model_folders(spec)]
    if texture:
        wanted += [(TEXTURE_REPO, sub, _texture_present) for sub in TEXTURE_SUBFOLDERS]
    repos: dict[str, list[str]] = {}
    for repo, sub, present in wanted:
        if not present(repo, sub):
            repos.setdefault(repo, []).append(sub)
    needs_rembg = rembg if rembg and rembg_model_path(rembg) is None else None
    return DownloadPlan(repos, needs_rembg)


def _env_seconds(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise DownloadError(f"Environment variable {name} must be a number of seconds, got {raw[:40]!r}.") from None
    if not value > 0:
        raise DownloadError(f"Environment variable {name} must be above 0 seconds, got {raw[:40]!r}.")
    return value


def hub_timeouts(timeout: float | None, log: Callable[[str], None] = print) -> float:
    """Settle huggingface_hub's two timeouts and return the one for reaching
    the hub. An explicit ``timeout`` overrides both variables (saying so when
    it replaces a set value); without one, a set variable is kept."""
    etag, read = _env_seconds("HF_HUB_ETAG_TIMEOUT"), _env_seconds("HF_HUB_DOWNLOAD_TIMEOUT")
    if timeout is not None:
        for name, value in (("HF_HUB_ETAG_TIMEOUT", etag), ("HF_HUB_DOWNLOAD_TIMEOUT", read)):
            if value is not None and value != timeout:
                log(f"--timeout {timeout:g} s overrides {name}={value:g}.")
        etag = read = timeout
    etag = etag if etag is not None else DEFAULT_TIMEOUT_S
    read = read if read is not None else DEFAULT_TIMEOUT_S
    # huggingface_hub reads whole seconds, once, at import.
    os.environ["HF_HUB_ETAG_TIMEOUT"] = str(math.ceil(etag))
    os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = str(math.ceil(read))
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: update the copy it made
        constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = math.ceil(etag), math.ceil(read)
    return etag


def _snapshot_download(repo_id: str, subfolders: Sequence[str], dest: Path | None, timeout: float) -> Path:
    """Fetch only ``subfolders`` of ``repo_id``: into ``dest/<repo_id>`` (hy3dgen
    layout) or, with ``dest`` None, into the HF cache. Returns the folder that
    holds the subfolders."""
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*" for sub in subfolders]
    if dest is None:
        return Path(
            snapshot_download(repo_id, allow_patterns=patterns, cache_dir=str(_hf_hub_cache()), etag_timeout=timeout)
        )
    target = dest / repo_id
    snapshot_download(repo_id, allow_patterns=patterns, local_dir=str(target), etag_timeout=timeout)
    return target


def _download_rembg(name: str, timeout: float) -> Path:
    require_network("https://github.com", timeout)
    from rembg.sessions import sessions  # slow first import (numba); only here

    if name not in sessions:
        raise DownloadError(f"rembg has no model named '{name}'.")
    return Path(sessions[name].download_models())


def download(
    model: str | None = None,
    *,
    texture: bool = False,
    rembg: str | None = None,
    dest: Path | None = None,
    hf_cache: bool = False,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> DownloadPlan:
    """Download what is missing. Raises :class:`DownloadError` quickly when
    offline, and verifies every folder afterwards: a partial download never
    counts as present (the checks look at complete files only).

    ``timeout`` (``--timeout``), when given, wins over HF_HUB_ETAG_TIMEOUT and
    HF_HUB_DOWNLOAD_TIMEOUT; otherwise those apply where set, else 15 s."""
    timeout = hub_timeouts(timeout, log)
    plan = plan_download(model, texture, rembg)
    if plan.empty:
        log("Everything requested is already present.")
        return plan
    if plan.repos and _offline():
        raise DownloadError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it on a machine with network access "
            f"(missing: {_describe_plan(plan)})."
        )
    target = None if hf_cache else (dest or _env_path("HY3DGEN_MODELS", default=DEFAULT_HY3DGEN_ROOT))
    if plan.repos:
        require_network(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)
    for repo_id, subfolders in plan.repos.items():
        log(f"Downloading {repo_id}: {', '.join(subfolders)} -> {target or _hf_hub_cache()}")
        base = _snapshot_download(repo_id, subfolders, target, timeout)
        _verify(repo_id, subfolders, base)
        for sub in subfolders:
            write_manifest(base / sub, base)
    if plan.rembg:
        log(f"Downloading rembg model {plan.rembg}")
        _download_rembg(plan.rembg, timeout)
        if rembg_model_path(plan.rembg) is None:
            raise DownloadError(f"rembg model {plan.rembg} is still missing after the download.")
    return plan


def _verify(repo_id: str, subfolders: Iterable[str], base: Path) -> None:
    for sub in subfolders:
        ok = (
            diffusers_folder_complete(base / sub)
            if sub in TEXTURE_SUBFOLDERS
            else inspect_shape_folder(base / sub) is not None
        )
        if not ok:
            raise DownloadError(f"{repo_id}/{sub} is incomplete after the download ({base / sub}); run it again.")


def _describe_plan(plan: DownloadPlan) -> str:
    parts = [f"{repo}: {', '.join(subs)}" for repo, subs in plan.repos.items()]
    return "; ".join(parts + ([f"rembg {plan.rembg}"] if plan.rembg else []))


# -- CLI ----------------------------------------------------------------------


def _print_check(statuses: list[AssetStatus]) -> None:
    for status in statuses:
        label = f"{status.kind}:{status.name}"
        if status.location:
            print(f"present  {label:<42} {status.location}  [{status.source}]")
        else:
            print(f"missing  {label:<42} -> {status.hint}")
    print("Searched, in order: " + "; ".join(f"{r.source}={r.path}" for r in search_roots()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.weights", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="list every model and asset, present or missing, and where")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("--require", choices=sorted(HUNYUAN_MODELS), help="exit 1 unless this model is present")
    check.add_argument(
        "--verify",
        action="store_true",
        help="also read every weights file: recorded checksums and finite tensors (exit 1 if damaged)",
    )
    get = sub.add_parser("download", help="download a model's subfolders (and texture/rembg assets)")
    get.add_argument("--model", choices=sorted(HUNYUAN_MODELS))
    get.add_argument("--texture", action="store_true", help=f"also {', '.join(TEXTURE_SUBFOLDERS)}")
    get.add_argument("--rembg", action="store_true", help="also the background-removal model (u2net)")
    where = get.add_mutually_exclusive_group()
    where.add_argument("--dest", type=Path, help="root in hy3dgen layout (default: $HY3DGEN_MODELS)")
    where.add_argument("--hf-cache", action="store_true", help="download into the Hugging Face cache instead")
    get.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="network timeout in seconds; overrides HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT "
        f"(default: those where set, else {DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rembg_name = os.environ.get("REMBG_MODEL", "").strip() or "u2net"
    if args.command == "check":
        statuses = check_assets(rembg_name)
        checks = verify_assets() if args.verify else []
        damaged = [item for item in checks if item.status == "damaged"]
        if args.json:
            listing = [status.__dict__ for status in statuses]
            print(
                json.dumps(
                    {"assets": listing, "verified": [c.__dict__ for c in checks]} if args.verify else listing, indent=2
                )
            )
        else:
            _print_check(statuses)
            for item in checks:
                print(f"{item.status:<10} {item.path}" + (f"  ({item.detail})" if item.detail else ""))
            if args.verify:
                print(f"Verified {len(checks)} files: {len(damaged)} damaged.")
        failed = bool(args.require and find_model(args.require) is None) or bool(damaged)
        return 1 if failed else 0
    if not (args.model or args.texture or args.rembg):
        print("download: give --model NAME and/or --texture / --rembg.", file=sys.stderr)
        return 2
    if args.model or args.texture:
        print(LICENCE_NOTICE)
    try:
        download(
            args.model,
            texture=args.texture,
            rembg=rembg_name if args.rembg else None,
            dest=args.dest,
            hf_cache=args.hf_cache,
            timeout=args.timeout,
        )
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure as one clear line
        print(f"download failed: {exc}", file=sys.stderr)
        return 1
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
