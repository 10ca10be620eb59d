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


# Texture paint models (tencent/Hunyuan3D-2 subfolders) and atlas sizes. The
# standard model is the default: hy3dgen 2.0.2 has no turbo paint sampler, so
# the -turbo checkpoint runs through the standard 30-step pipeline there and
# its output on real weights is unverified.
PAINT_MODELS = ("hunyuan3d-paint-v2-0", "hunyuan3d-paint-v2-0-turbo")
DEFAULT_PAINT_MODEL = "hunyuan3d-paint-v2-0"
TEXTURE_SIZES = (512, 1024, 2048)
