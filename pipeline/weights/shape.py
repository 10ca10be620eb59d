"""Shape models' local files: one model's folders, and which model ``auto`` picks.

Resolution reads the local disk only and fails in milliseconds, naming the
model, the roots searched and the download command; the backend then loads
the resolved files directly and never asks hy3dgen to download.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import WeightsMissingError
from ..models import AUTO_MULTIVIEW_PREFERENCE, AUTO_PREFERENCE, HUNYUAN_MODELS, ShapeModelSpec
from .commands import download_command
from .folders import ShapeFolder, described_candidates, find_shape_folder
from .roots import searched_roots_text


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
