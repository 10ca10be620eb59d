"""The texture backend: hy3dgen 2.0.2's Hunyuan3D-Paint on CUDA or CPU, with no native build.

:class:`TextureBackend` resolves the delight and paint folders through
:mod:`pipeline.weights` (local disk only), loads the models once per process
and paints a face-reduced mesh. What it does differently from
``Hunyuan3DPaintPipeline.from_pretrained(...)(mesh, image)``, and why:

* **Loading without trust_remote_code.** hy3dgen loads the paint model with
  ``DiffusionPipeline.from_pretrained(path, custom_pipeline=<hy3dgen>/hunyuanpaint)``;
  diffusers refuses a local custom pipeline unless ``trust_remote_code=True``,
  which hy3dgen doesn't pass, and would also import the checkpoint's own
  ``unet/modules.py``. Here the pipeline class is imported from the installed
  hy3dgen package and assembled from the components ``model_index.json``
  lists; the UNet is hy3dgen's ``UNet2p5DConditionModel`` filled from the
  checkpoint's state dict. No code from a weights folder runs, nothing is
  copied into ``HF_MODULES_CACHE``, and every load is ``local_files_only``.
  hy3dgen's ``from_pretrained`` would also download when a folder is missing
  and ignores the paint variant (it always takes ``hunyuan3d-paint-v2-0``).
* **The three CUDA hard-codes, and fp16.** ``Hunyuan3DTexGenConfig.device``
  is set to the chosen device; the ``MeshRender`` is built with it (its
  default is ``'cuda'``); and the paint pipeline's normal/position views,
  which its own converter turns into ``.half().to("cuda")``, are handed to it
  as tensors already on its device and dtype (:class:`.texgen._DeviceAwareCall`).
  Both diffusers pipelines load fp16 on CUDA and float32 on CPU (hy3dgen's
  wrappers force fp16, about 5x slower on CPU), so the wrappers' ``__init__``
  (which also hard-code the loader) is not run; their ``__call__`` is.
* **mmgp on CUDA.** The models load on the host and join the shape model's
  under one mmgp profile (:mod:`pipeline.memory`: the paint UNet is mmgp's
  ``transformer``); mmgp moves each to the GPU when it is called.
* **No native code.** :func:`~pipeline.texture.rasterizer.install_rasterizer`
  provides ``custom_rasterizer`` (compiled when importable, else PyTorch;
  :attr:`TextureBackend.rasterizer` says which), and
  :func:`~pipeline.texture.inpaint.install_inpaint` the vertex inpaint, compiled
  by numba at run time.
* **The stages are run here,** in the order ``Hunyuan3DPaintPipeline.__call__``
  runs them, so each is timed and reports progress (per diffusion step and per
  view), the unwrap is :func:`pipeline.mesh.unwrap_uv` (xatlas with tuned
  chart options, instead of texgen's plain ``xatlas.parametrize``; texgen's
  own ``mesh_uv_wrap`` is patched too), and the hole fill is
  :func:`~pipeline.texture.fill.fill_texture` on the UV charts instead of a
  full-frame ``cv2.inpaint``. Render and texture size follow the request.

Sampling keeps hy3dgen's values (50 delight steps, 30 multiview steps, six
512-px views). :class:`Sampling` can lower them; only the tests do, to stay
fast on two cores.

hy3dgen 2.0.2 knows one paint pipeline; the ``-turbo`` checkpoint is loaded
and sampled with it too (later upstream code pairs that checkpoint with its
own scheduler and attention, which this package does not have).

This module holds :class:`TextureBackend` (its ``paint()`` reads as numbered
steps; the weights lookup is :mod:`pipeline.weights`). Its parts are
:mod:`.config` (request sizes, sampling, result), :mod:`.loading` (the
diffusers pipelines), :mod:`.texgen` (texgen's objects for one device) and
:mod:`.stages` (one named helper per stage). diffusers, transformers and hy3dgen are imported
inside functions, when the models load.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..backends.lifecycle import ModelBackend, subject_rgba
from ..errors import PipelineError, tag_stage
from ..memory import PROFILES, texture_models, unpatched_safetensors
from ..models import DEFAULT_PAINT_MODEL, TEXTURE_SIZES
from ..progress import ProgressCallback, null_progress
from ..progress import RunLog as _Run
from ..settings import Settings, load_settings
from ..weights import DELIGHT_SUBFOLDER, resolve_texture_weights
from . import stages
from .config import SPANS, STAGE, RenderConfig, Sampling, Span, TextureResult, render_config
from .loading import private_modules_cache
from .stages import textured_mesh
from .texgen import Texgen, apply_render_config, build_texgen, install_uv_unwrap

if TYPE_CHECKING:  # pragma: no cover
    import trimesh
    from PIL import Image

log = logging.getLogger(__name__)

# Production sampling: hy3dgen's own values (the tests and benches pass fewer steps).
HY3DGEN_SAMPLING = Sampling()
__all__ = [
    "RenderConfig",
    "Sampling",
    "TextureBackend",
    "TextureResult",
    "render_config",
]


# -- the backend ----------------------------------------------------------------------


class TextureBackend(ModelBackend):
    """One paint variant plus the delight model, loaded once and reused.

    Weights are resolved in the constructor (missing ones fail there, in
    milliseconds, with :class:`WeightsMissingError`); the models load in
    :meth:`load` or the first :meth:`paint`. Requests are serialised.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        paint_model: str = DEFAULT_PAINT_MODEL,
        *,
        device: str | None = None,
        sampling: Sampling = HY3DGEN_SAMPLING,
    ) -> None:
        self.paint_model = paint_model
        self.label = f"texture models ({DELIGHT_SUBFOLDER} + {paint_model})"
        self.weights = resolve_texture_weights(paint_model)
        settings = settings or load_settings()
        super().__init__(settings, device=device)
        self.sampling = sampling
        self.default_profile = settings.default_profile  # a paint() without a profile (CUDA)
        self.rasterizer: str | None = None  # 'compiled' or 'torch' once loaded
        self.texgen: Texgen | None = None

    # -- lifecycle --
    @property
    def loaded(self) -> bool:
        return self.texgen is not None

    def _load(self) -> None:
        """Install the native-code stand-ins and load both models (worker start-up)."""
        private_modules_cache()
        from .inpaint import install_inpaint, warm_up
        from .rasterizer import install_rasterizer

        self.rasterizer = install_rasterizer()  # before MeshRender imports custom_rasterizer
        install_inpaint()
        warm_up()  # compile the inpaint now (~3 s, or ~0.5 s from numba's cache), not in the first job
        install_uv_unwrap()
        host = "cpu" if self.on_cuda else None  # under mmgp, which moves each model when called
        with unpatched_safetensors():  # a reload may come after mmgp's import
            self.texgen = build_texgen(
                self.weights, self.device, self.dtype, render_config(TEXTURE_SIZES[-1]), model_device=host
            )
        log.info("%s: rasterizer %s", self.label, self.rasterizer)
        if self.paint_model.endswith("-turbo"):
            log.warning(
                "%s is sampled with hy3dgen 2.0.2's standard paint pipeline (it has no turbo sampler)",
                self.paint_model,
            )

    def _use_profile(self, profile: int | None) -> None:
        """Join the shape model's mmgp profile (one call for both; a new
        profile reloads both): ``profile``, else the one in force, else ``HY3D_PROFILE``."""
        PROFILES.use(profile or PROFILES.profile or self.default_profile, texture=self)

    def _require_texgen(self) -> Texgen:
        """The loaded models (an error if none: :meth:`load` runs first)."""
        if self.texgen is None:
            raise PipelineError(f"The {self.label} are not loaded.")
        return self.texgen

    def mmgp_models(self) -> dict[str, Any]:
        texgen = self._require_texgen()
        return texture_models(texgen.delight.pipeline, texgen.multiview.pipeline)

    def drop_models(self) -> None:
        """Forget the models (mmgp changed them in place); the next load reads the disk."""
        with self._lock:
            self.texgen = None

    # -- the request path --
    def paint(
        self,
        mesh: trimesh.Trimesh,
        image: Image.Image,
        texture_size: int = 2048,
        progress: ProgressCallback = null_progress,
        profile: int | None = None,
    ) -> TextureResult:
        """Paint ``mesh`` (already face-reduced) from ``image`` (RGBA, background removed).
        On CUDA ``profile`` is the mmgp profile (None: the one in force, else
        ``HY3D_PROFILE``); on CPU it does not apply."""
        # 1. Check inputs (before any model runs).
        size = render_config(texture_size)
        image = subject_rgba(image, "The image is fully transparent: nothing to paint the texture from.")
        # 2.-8. Paint, with a CUDA out-of-memory turned into the pipeline's own error.
        return self._guard_oom(
            lambda: self._paint(mesh, image, size, progress, profile),
            lambda: f"CUDA ran out of memory painting a {texture_size} texture; lower 'texture_size' or free VRAM.",
            stage=STAGE,
        )

    def _paint(
        self,
        mesh: trimesh.Trimesh,
        image: Image.Image,
        size: RenderConfig,
        progress: ProgressCallback,
        profile: int | None = None,
    ) -> TextureResult:
        """The stages in ``Hunyuan3DPaintPipeline.__call__``'s order, each timed."""
        from ..mesh import unwrap_uv  # looked up per call: a test can replace it

        run = _Run()
        # 2. Load the models (on CUDA: join the mmgp profile, loading them the first time).
        if self.texgen is None:
            progress(STAGE, 0.0, f"Loading {self.paint_model} and {DELIGHT_SUBFOLDER}")
        try:
            if self.on_cuda:
                self._use_profile(profile)
            else:
                self.load()
        except Exception as exc:
            tag_stage(exc, "load")
            raise
        run.timings["load"] = self.take_load_s()
        texgen = self._require_texgen()
        apply_render_config(texgen.pipeline, size)
        # 3. Delight the input image.
        with run.timed("delight"):
            prompt = self._delight(texgen, image, Span(progress, "delight"))
        # 4. Unwrap the mesh's UVs.
        progress(STAGE, SPANS["uv"][0], "Unwrapping UVs")
        with run.timed("uv"):
            unwrapped, _ = unwrap_uv(mesh)
            texgen.render.load_mesh(unwrapped)
        # 5. Render the normal and position maps of each view.
        with run.timed("render"):
            controls = self._render_controls(texgen, Span(progress, "render"))
        # 6. Multiview diffusion: one painted image per view.
        with run.timed("multiview"):
            views = self._multiview(texgen, prompt, controls, Span(progress, "multiview"))
        # 7. Bake the views into the UV atlas.
        with run.timed("bake"):
            texture, mask = self._bake(texgen, views, size, Span(progress, "bake"))
        # 8. Fill the atlas's holes and put it on the mesh as a PBR material.
        progress(STAGE, SPANS["inpaint"][0], "Filling texture holes")
        with run.timed("inpaint"):
            atlas = self._inpaint(texgen, texture, mask)
        progress(STAGE, 1.0, f"Texture {size.texture_size}x{size.texture_size}")
        try:
            painted = textured_mesh(unwrapped, atlas)
        except Exception as exc:
            tag_stage(exc, "material")
            raise
        return TextureResult(painted, run.timings, run.warnings, self.rasterizer or "")

    # -- the stages (named helpers in .stages; methods so a test can stub one) --
    def _delight(self, texgen: Texgen, image: Image.Image, report: Span) -> Image.Image:
        return stages.delight(texgen, image, self.sampling.delight_steps, report)

    def _render_controls(self, texgen: Texgen, report: Span) -> list[Image.Image]:
        return stages.render_controls(texgen, report)

    def _multiview(self, texgen: Texgen, prompt: Image.Image, controls: list, report: Span) -> list:
        return stages.multiview(texgen, prompt, controls, self.sampling, report)

    def _bake(self, texgen: Texgen, views: list, size: RenderConfig, report: Span) -> tuple[Any, Any]:
        return stages.bake(texgen, views, size, report)

    def _inpaint(self, texgen: Texgen, texture: Any, mask: Any) -> Image.Image:
        return stages.inpaint(texgen, texture, mask)
