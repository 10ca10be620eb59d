"""Where model weights live, whether they are complete, and how to fetch them.

hy3dgen's own loader looks only in ``$HY3DGEN_MODELS/<repo>/<subfolder>`` and
otherwise calls ``snapshot_download``, which can hang for many minutes behind a
silent proxy. This package finds the folders itself, in order:

1. ``$HY3DGEN_MODELS/<repo_id>/<subfolder>`` (hy3dgen's layout; default ``~/.cache/hy3dgen``);
2. RunPod's model cache, ``$RUNPOD_HF_CACHE`` (default ``/runpod-volume/huggingface-cache/hub``), HF layout;
3. the Hugging Face cache, ``$HF_HUB_CACHE`` or ``$HF_HOME/hub``, HF layout.

A folder counts only when complete, so an interrupted download is never
loaded, and the backends load the resolved files directly without asking
hy3dgen to download. The modules, in the order they build on each other:

* :mod:`.commands`: the download command line every hint names;
* :mod:`.roots`: the search roots and the Hugging Face cache layout;
* :mod:`.folders`: completeness checks and the first complete folder;
* :mod:`.shape`: a shape model's folders, and ``auto``'s choice;
* :mod:`.assets`: the texture models' and rembg's files, and ``check``'s status lines;
* :mod:`.verify`: checksums, the download manifest and finite tensors;
* :mod:`.fetch`: the download plan, hub timeouts and the download;
* :mod:`.cli`: ``python -m pipeline.weights check [--verify]`` and
  ``python -m pipeline.weights download --model NAME [--texture] [--rembg]``.

The names other modules use are re-exported here. Patch a function in the
module that calls it (for example ``pipeline.weights.fetch.require_network``),
not here.
"""

from __future__ import annotations

from .assets import (
    DELIGHT_SUBFOLDER,
    TEXTURE_REPO,
    TEXTURE_SUBFOLDERS,
    AssetStatus,
    TextureWeights,
    check_assets,
    check_paint_model,
    find_texture_weights,
    rembg_homes,
    rembg_model_path,
    rembg_weight_candidates,
    resolve_texture_weights,
    texture_weights_present,
)
from .cli import LICENCE_NOTICE, main
from .commands import REMBG_DOWNLOAD_COMMAND, TEXTURE_DOWNLOAD_COMMAND, download_command
from .fetch import (
    DEFAULT_TIMEOUT_S,
    DownloadError,
    DownloadPlan,
    download,
    hub_timeouts,
    plan_download,
    require_network,
)
from .folders import (
    CONFIG_FILE,
    WEIGHT_FILES,
    ShapeFolder,
    described_candidates,
    diffusers_folder_complete,
    find_folder,
    find_shape_folder,
    inspect_shape_folder,
    safetensors_complete,
)
from .roots import SearchRoot, search_roots, searched_locations, searched_roots_text
from .shape import ResolvedModel, find_model, model_folders, resolve_auto_model, resolve_model
from .verify import (
    MANIFEST_FILE,
    FileCheck,
    check_weights_finite,
    damaged_error,
    file_sha256,
    recorded_checksum,
    verify_assets,
    verify_file,
    write_manifest,
)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_TIMEOUT_S",
    "DELIGHT_SUBFOLDER",
    "LICENCE_NOTICE",
    "MANIFEST_FILE",
    "REMBG_DOWNLOAD_COMMAND",
    "TEXTURE_DOWNLOAD_COMMAND",
    "TEXTURE_REPO",
    "TEXTURE_SUBFOLDERS",
    "WEIGHT_FILES",
    "AssetStatus",
    "DownloadError",
    "DownloadPlan",
    "FileCheck",
    "ResolvedModel",
    "SearchRoot",
    "ShapeFolder",
    "TextureWeights",
    "check_assets",
    "check_paint_model",
    "check_weights_finite",
    "damaged_error",
    "described_candidates",
    "diffusers_folder_complete",
    "download",
    "download_command",
    "file_sha256",
    "find_folder",
    "find_model",
    "find_shape_folder",
    "find_texture_weights",
    "hub_timeouts",
    "inspect_shape_folder",
    "main",
    "model_folders",
    "plan_download",
    "recorded_checksum",
    "rembg_homes",
    "rembg_model_path",
    "rembg_weight_candidates",
    "require_network",
    "resolve_auto_model",
    "resolve_model",
    "resolve_texture_weights",
    "safetensors_complete",
    "search_roots",
    "searched_locations",
    "searched_roots_text",
    "texture_weights_present",
    "verify_assets",
    "verify_file",
    "write_manifest",
]
