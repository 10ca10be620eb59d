"""Whether a folder holds complete weights, and the first complete one over all roots.

A folder counts only when complete (config plus a weights file whose size
matches its header), so an interrupted download or a truncated copy is never
loaded. Only sizes and headers are read here; reading every byte is
:mod:`.verify`'s job.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .roots import search_roots

# hy3dgen loads variant fp16: safetensors by default, the .ckpt with use_safetensors=False.
WEIGHT_FILES = ("model.fp16.safetensors", "model.fp16.ckpt")
CONFIG_FILE = "config.yaml"


def file_size(path: Path) -> int:
    """Size of a regular file (following HF cache symlinks); 0 when absent or broken."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def safetensors_complete(path: Path) -> bool:
    """The header parses and the file is as long as the header says: a
    truncated copy (interrupted rsync, full volume) is rejected."""
    size = file_size(path)
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
    return file_size(path) > 0 and zipfile.is_zipfile(path)  # torch checkpoints are zip archives


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
    if file_size(config) == 0:
        return None
    for name in WEIGHT_FILES:
        if _weights_complete(folder / name):
            return ShapeFolder(folder, config, folder / name, source)
    return None


def diffusers_folder_complete(folder: Path) -> bool:
    """A diffusers pipeline folder (texture models): an index, at least one
    weights file, no empty, partial or truncated file."""
    if file_size(folder / "model_index.json") == 0:
        return False
    weights = 0
    for path in folder.rglob("*"):
        if path.name.endswith(".incomplete") or (path.is_symlink() and not path.exists()):
            return False
        if not path.is_file():
            continue
        if file_size(path) == 0:
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
