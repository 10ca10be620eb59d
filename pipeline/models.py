"""Catalogue of the models the service can run: shape, paint and background removal.

Pure data, no heavy imports: the options schema, the weights CLI and the
backends all read it. Defaults follow upstream's app: 5 steps for a ``-turbo``
subfolder, 30 for any other (``-fast`` included: it is guidance-distilled, so
each step runs the DiT once instead of twice for classifier-free guidance, at
the same step count), guidance 5.0, octree 256 (its "Standard" decoding).
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
    # FlashVDM's turbo VAE subfolder; None for the standard decoder.
    vae_subfolder: str | None = None
    # The turbo VAE's repository when it is not ``repo_id``: hy3dgen's
    # enable_flashvdm maps Hunyuan3D-2mv to tencent/Hunyuan3D-2's v2-0 turbo VAE.
    vae_repo_id: str | None = None
    # Conditioned on up to four views (DinoImageEncoderMV + MVImageProcessorV2).
    multiview: bool = False
    # guidance_embed: true in the DiT config: the guidance scale is an input of
    # the DiT rather than a second, unconditioned pass (fast and turbo).
    guidance_distilled: bool = False

    @property
    def vae_repo(self) -> str:
        return self.vae_repo_id or self.repo_id


_STANDARD, _TURBO = (30, 5.0, 256), (5, 5.0, 256)

HUNYUAN_MODELS: dict[str, ShapeModelSpec] = {
    spec.name: spec
    for spec in (
        ShapeModelSpec("hunyuan3d-2", "tencent/Hunyuan3D-2", "hunyuan3d-dit-v2-0", False, *_STANDARD),
        ShapeModelSpec(
            "hunyuan3d-2-turbo",
            "tencent/Hunyuan3D-2",
            "hunyuan3d-dit-v2-0-turbo",
            True,
            *_TURBO,
            vae_subfolder="hunyuan3d-vae-v2-0-turbo",
            guidance_distilled=True,
        ),
        ShapeModelSpec("hunyuan3d-2mini", "tencent/Hunyuan3D-2mini", "hunyuan3d-dit-v2-mini", False, *_STANDARD),
        ShapeModelSpec(
            "hunyuan3d-2mini-turbo",
            "tencent/Hunyuan3D-2mini",
            "hunyuan3d-dit-v2-mini-turbo",
            True,
            *_TURBO,
            vae_subfolder="hunyuan3d-vae-v2-mini-turbo",
            guidance_distilled=True,
        ),
        ShapeModelSpec(
            "hunyuan3d-2-fast",
            "tencent/Hunyuan3D-2",
            "hunyuan3d-dit-v2-0-fast",
            False,
            *_STANDARD,
            guidance_distilled=True,
        ),
        ShapeModelSpec(
            "hunyuan3d-2mini-fast",
            "tencent/Hunyuan3D-2mini",
            "hunyuan3d-dit-v2-mini-fast",
            False,
            *_STANDARD,
            guidance_distilled=True,
        ),
        ShapeModelSpec(
            "hunyuan3d-2mv",
            "tencent/Hunyuan3D-2mv",
            "hunyuan3d-dit-v2-mv",
            False,
            *_STANDARD,
            multiview=True,
        ),
        ShapeModelSpec(
            "hunyuan3d-2mv-fast",
            "tencent/Hunyuan3D-2mv",
            "hunyuan3d-dit-v2-mv-fast",
            False,
            *_STANDARD,
            multiview=True,
            guidance_distilled=True,
        ),
        ShapeModelSpec(
            "hunyuan3d-2mv-turbo",
            "tencent/Hunyuan3D-2mv",
            "hunyuan3d-dit-v2-mv-turbo",
            True,
            *_TURBO,
            vae_subfolder="hunyuan3d-vae-v2-0-turbo",
            vae_repo_id="tencent/Hunyuan3D-2",
            multiview=True,
            guidance_distilled=True,
        ),
    )
}

# Order used by "auto" for a single image: the best single-view variant whose
# weights are present wins (a fast model samples like the standard one at half
# the DiT work; turbo trades detail for 5 steps).
AUTO_PREFERENCE = (
    "hunyuan3d-2",
    "hunyuan3d-2-fast",
    "hunyuan3d-2-turbo",
    "hunyuan3d-2mini",
    "hunyuan3d-2mini-fast",
    "hunyuan3d-2mini-turbo",
)
# Order used by "auto" when the request carries views.
AUTO_MULTIVIEW_PREFERENCE = ("hunyuan3d-2mv", "hunyuan3d-2mv-fast", "hunyuan3d-2mv-turbo")
MULTIVIEW_MODELS = tuple(name for name, spec in HUNYUAN_MODELS.items() if spec.multiview)

# The extra views a multi-view request may carry (``image`` is the front), in
# hy3dgen's MVImageProcessorV2 order: front, left (front turned 90 degrees
# clockwise), back, right.
VIEW_NAMES = ("left", "back", "right")

MODEL_CHOICES = (AUTO, DRAFT, *HUNYUAN_MODELS)


# Texture paint models (tencent/Hunyuan3D-2 subfolders) and atlas sizes. The
# standard model is the default: hy3dgen 2.0.2 has no turbo paint sampler, so
# the -turbo checkpoint runs through the standard 30-step pipeline there and
# its output on real weights is unverified.
PAINT_MODELS = ("hunyuan3d-paint-v2-0", "hunyuan3d-paint-v2-0-turbo")
DEFAULT_PAINT_MODEL = "hunyuan3d-paint-v2-0"
TEXTURE_SIZES = (512, 1024, 2048)

# The background-removal model (REMBG_MODEL's default). Named explicitly:
# rembg's own default is now bria-rmbg.
DEFAULT_REMBG_MODEL = "u2net"
