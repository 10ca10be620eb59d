"""Catalogue of the shape models the service can run.

Pure data, no heavy imports: the options schema, the weights CLI and the
backends all read it. Defaults follow the issue's table (upstream's app maps
Turbo/Standard to 5/30 steps; octree 256 is its "Standard" decoding).
"""

from __future__ import annotations

from dataclasses import dataclass

DRAFT = "draft"
AUTO = "auto"


@dataclass(frozen=True)
class ShapeModelSpec:
    name: str
    repo_id: str
    subfolder: str
    turbo: bool
    steps: int
    guidance_scale: float
    octree_resolution: int
    # FlashVDM's turbo VAE subfolder, in the same repo; None for the standard decoder.
    vae_subfolder: str | None = None


HUNYUAN_MODELS: dict[str, ShapeModelSpec] = {
    spec.name: spec
    for spec in (
        ShapeModelSpec("hunyuan3d-2", "tencent/Hunyuan3D-2", "hunyuan3d-dit-v2-0", False, 30, 5.0, 256),
        ShapeModelSpec(
            "hunyuan3d-2-turbo", "tencent/Hunyuan3D-2", "hunyuan3d-dit-v2-0-turbo", True, 5, 5.0, 256,
            vae_subfolder="hunyuan3d-vae-v2-0-turbo",
        ),
        ShapeModelSpec("hunyuan3d-2mini", "tencent/Hunyuan3D-2mini", "hunyuan3d-dit-v2-mini", False, 30, 5.0, 256),
        ShapeModelSpec(
            "hunyuan3d-2mini-turbo", "tencent/Hunyuan3D-2mini", "hunyuan3d-dit-v2-mini-turbo", True, 5, 5.0, 256,
            vae_subfolder="hunyuan3d-vae-v2-mini-turbo",
        ),
    )
}

# Order used by "auto": the best variant whose weights are present wins.
AUTO_PREFERENCE = ("hunyuan3d-2", "hunyuan3d-2-turbo", "hunyuan3d-2mini", "hunyuan3d-2mini-turbo")

MODEL_CHOICES = (AUTO, DRAFT, *HUNYUAN_MODELS)
