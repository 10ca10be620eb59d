"""Where weights may live: the three search roots and the Hugging Face cache layout.

hy3dgen's own loader looks only in ``$HY3DGEN_MODELS/<repo>/<subfolder>`` and
otherwise calls ``snapshot_download``; the service also finds what RunPod's
model cache and the Hugging Face cache hold. Roots are read from the
environment on every call, so tests and launchers can set them late.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HY3DGEN_ROOT = "~/.cache/hy3dgen"
DEFAULT_RUNPOD_CACHE = "/runpod-volume/huggingface-cache/hub"
DEFAULT_HF_HOME = "~/.cache/huggingface"


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


def hy3dgen_root() -> Path:
    """``$HY3DGEN_MODELS`` (hy3dgen's layout), where ``download`` writes by default."""
    return _env_path("HY3DGEN_MODELS", default=DEFAULT_HY3DGEN_ROOT)


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``."""
    explicit = os.environ.get("HF_HUB_CACHE", "").strip() or os.environ.get("HUGGINGFACE_HUB_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return _env_path("HF_HOME", default=DEFAULT_HF_HOME) / "hub"


def search_roots() -> list[SearchRoot]:
    """The three roots, in resolution order, read from the environment now."""
    return [
        SearchRoot("HY3DGEN_MODELS", hy3dgen_root(), False),
        SearchRoot("RunPod cache", _env_path("RUNPOD_HF_CACHE", default=DEFAULT_RUNPOD_CACHE), True),
        SearchRoot("HF cache", hf_hub_cache(), True),
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
