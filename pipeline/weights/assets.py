"""The other weights a job may use: the texture models (delight + paint) and rembg's
ONNX file, where each is on disk, and ``check``'s one line per asset.

Like the shape models, both are looked up on local disk only: texturing is
skipped with a warning when its folders are missing, and background removal
falls back to GrabCut when rembg's file is (rembg would otherwise download it
at request time). The rembg lookup mirrors rembg 2.0.86's own folder search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OptionsError, WeightsMissingError
from ..models import DEFAULT_PAINT_MODEL, DEFAULT_REMBG_MODEL, HUNYUAN_MODELS, PAINT_MODELS
from .commands import REMBG_DOWNLOAD_COMMAND, TEXTURE_DOWNLOAD_COMMAND, download_command
from .folders import described_candidates, diffusers_folder_complete, file_size, find_folder
from .roots import searched_roots_text
from .shape import find_model, model_folders

TEXTURE_REPO = "tencent/Hunyuan3D-2"
DELIGHT_SUBFOLDER = "hunyuan3d-delight-v2-0"
# Every texture folder ``download --texture`` fetches: each paint variant, then the delight model.
TEXTURE_SUBFOLDERS = (*PAINT_MODELS, DELIGHT_SUBFOLDER)


# -- texture models -----------------------------------------------------------------


@dataclass(frozen=True)
class TextureWeights:
    """The two local folders one paint variant needs."""

    paint_model: str
    delight: Path
    paint: Path


def check_paint_model(paint_model: str) -> None:
    if paint_model not in PAINT_MODELS:
        raise OptionsError(f"Field 'paint_model' must be one of {', '.join(PAINT_MODELS)}, got {paint_model!r}.")


def find_texture_folder(subfolder: str) -> Path | None:
    """The first complete diffusers folder of ``TEXTURE_REPO/subfolder`` over all roots."""
    found = find_folder(TEXTURE_REPO, subfolder, diffusers_folder_complete)
    return found[0] if found else None


def find_texture_weights(paint_model: str = DEFAULT_PAINT_MODEL) -> TextureWeights | None:
    """Both folders if they are complete on disk, else None. Reads the local disk only."""
    check_paint_model(paint_model)
    delight, paint = find_texture_folder(DELIGHT_SUBFOLDER), find_texture_folder(paint_model)
    return TextureWeights(paint_model, delight, paint) if delight and paint else None


def texture_weights_present(paint_model: str = DEFAULT_PAINT_MODEL) -> bool:
    """Whether texturing with ``paint_model`` can run (lets the orchestrator skip it with a warning)."""
    return find_texture_weights(paint_model) is not None


def resolve_texture_weights(paint_model: str = DEFAULT_PAINT_MODEL) -> TextureWeights:
    """The folders, or :class:`WeightsMissingError` naming what is missing, where it looked and the fix."""
    found = find_texture_weights(paint_model)
    if found is not None:
        return found
    missing = [sub for sub in (DELIGHT_SUBFOLDER, paint_model) if find_texture_folder(sub) is None]
    searched = [path for sub in missing for path in described_candidates(TEXTURE_REPO, sub)]
    raise WeightsMissingError(
        f"Texture weights ({TEXTURE_REPO}: {', '.join(missing)}) are not complete on disk "
        f"(searched {searched_roots_text()}); download them with `{TEXTURE_DOWNLOAD_COMMAND}`.",
        searched=searched,
    )


# -- rembg --------------------------------------------------------------------------


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


def rembg_model_path(name: str = DEFAULT_REMBG_MODEL) -> Path | None:
    """The first non-empty file among rembg's own candidates, or None."""
    return next((path for path in rembg_weight_candidates(name) if file_size(path) > 0), None)


# -- status (``check``) ---------------------------------------------------------------


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
    return AssetStatus(
        "texture",
        subfolder,
        str(found[0]) if found else None,
        found[1] if found else None,
        "" if found else TEXTURE_DOWNLOAD_COMMAND,
        described_candidates(TEXTURE_REPO, subfolder),
    )


def _rembg_status(name: str) -> AssetStatus:
    path = rembg_model_path(name)
    return AssetStatus(
        "rembg",
        name,
        str(path) if path else None,
        "rembg home" if path else None,
        "" if path else REMBG_DOWNLOAD_COMMAND,
    )


def check_assets(rembg_name: str = DEFAULT_REMBG_MODEL) -> list[AssetStatus]:
    return (
        [_shape_status(name) for name in HUNYUAN_MODELS]
        + [_texture_status(sub) for sub in TEXTURE_SUBFOLDERS]
        + [_rembg_status(rembg_name)]
    )
