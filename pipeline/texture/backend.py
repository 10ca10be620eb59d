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
  as tensors already on its device and dtype (:class:`_DeviceAwareCall`).
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

diffusers, transformers and hy3dgen are imported inside functions, when the
models load.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.lifecycle import ModelBackend, subject_rgba
from ..errors import OptionsError, PipelineError, WeightsMissingError, tag_stage
from ..memory import PROFILES, texture_models, unpatched_safetensors
from ..models import DEFAULT_PAINT_MODEL, PAINT_MODELS, TEXTURE_SIZES
from ..progress import ProgressCallback, null_progress
from ..progress import RunLog as _Run
from ..settings import Settings, load_settings
from ..weights import (
    TEXTURE_REPO,
    check_weights_finite,
    described_candidates,
    diffusers_folder_complete,
    find_folder,
    searched_roots_text,
)

if TYPE_CHECKING:  # pragma: no cover
    import trimesh
    from PIL import Image

log = logging.getLogger(__name__)

DELIGHT_SUBFOLDER = "hunyuan3d-delight-v2-0"
TEXTURE_DOWNLOAD_COMMAND = "python -m pipeline.weights download --texture"
STAGE = "texture"  # the progress stage every update is reported under
# hy3dgen's delight guidance (Light_Shadow_Remover.__init__), set here because that __init__ is skipped.
DELIGHT_CFG_IMAGE, DELIGHT_CFG_TEXT = 1.5, 1.0
# hy3dgen's camera-embedding index of a view: ((azim // 30 + 9) % 12) // DIVISOR[elev] + OFFSET[elev].
_ELEV_DIVISOR = {-20: 1, 0: 1, 20: 1, -90: 3, 90: 3}
_ELEV_OFFSET = {-20: 0, 0: 12, 20: 24, -90: 36, 90: 40}
# End of each sub-stage as a fraction of the texture stage (diffusion dominates on every device).
_SPANS = {
    "delight": (0.0, 0.15),
    "uv": (0.15, 0.2),
    "render": (0.2, 0.25),
    "multiview": (0.25, 0.85),
    "bake": (0.85, 0.95),
    "inpaint": (0.95, 1.0),
}


# -- weights ------------------------------------------------------------------------


@dataclass(frozen=True)
class TextureWeights:
    """The two local folders one paint variant needs."""

    paint_model: str
    delight: Path
    paint: Path


def _check_paint_model(paint_model: str) -> None:
    if paint_model not in PAINT_MODELS:
        raise OptionsError(f"Field 'paint_model' must be one of {', '.join(PAINT_MODELS)}, got {paint_model!r}.")


def _find(subfolder: str) -> Path | None:
    found = find_folder(TEXTURE_REPO, subfolder, diffusers_folder_complete)
    return found[0] if found else None


def find_texture_weights(paint_model: str = DEFAULT_PAINT_MODEL) -> TextureWeights | None:
    """Both folders if they are complete on disk, else None. Reads the local disk only."""
    _check_paint_model(paint_model)
    delight, paint = _find(DELIGHT_SUBFOLDER), _find(paint_model)
    return TextureWeights(paint_model, delight, paint) if delight and paint else None


def texture_weights_present(paint_model: str = DEFAULT_PAINT_MODEL) -> bool:
    """Whether texturing with ``paint_model`` can run (lets the orchestrator skip it with a warning)."""
    return find_texture_weights(paint_model) is not None


def resolve_texture_weights(paint_model: str = DEFAULT_PAINT_MODEL) -> TextureWeights:
    """The folders, or :class:`WeightsMissingError` naming what is missing, where it looked and the fix."""
    found = find_texture_weights(paint_model)
    if found is not None:
        return found
    missing = [sub for sub in (DELIGHT_SUBFOLDER, paint_model) if _find(sub) is None]
    searched = [path for sub in missing for path in described_candidates(TEXTURE_REPO, sub)]
    raise WeightsMissingError(
        f"Texture weights ({TEXTURE_REPO}: {', '.join(missing)}) are not complete on disk "
        f"(searched {searched_roots_text()}); download them with `{TEXTURE_DOWNLOAD_COMMAND}`.",
        searched=searched,
    )


# -- request-level settings -------------------------------------------------------------


@dataclass(frozen=True)
class RenderConfig:
    """Sizes of one request: texgen renders and bakes at ``render_size`` into a ``texture_size`` atlas."""

    render_size: int
    texture_size: int

    @property
    def unreliable_kernel(self) -> int:
        """texgen's erosion of view borders when baking: 2 px per 512 of render size."""
        return int((2 / 512) * self.render_size)


def render_config(texture_size: int) -> RenderConfig:
    """hy3dgen renders at the texture's own size (its defaults are 2048 and 2048)."""
    if texture_size not in TEXTURE_SIZES:
        raise OptionsError(
            f"Field 'texture_size' must be one of {', '.join(map(str, TEXTURE_SIZES))}, got {texture_size!r}."
        )
    return RenderConfig(render_size=texture_size, texture_size=texture_size)


@dataclass(frozen=True)
class Sampling:
    """Diffusion settings; None keeps hy3dgen's own (50 delight steps, 30
    multiview steps, 512-px views). Production leaves them all None; the tests
    lower them to stay fast on CPU."""

    delight_steps: int | None = None
    multiview_steps: int | None = None
    view_size: int | None = None


@dataclass
class TextureResult:
    """A painted mesh: UVs in [0, 1] and a PBR material whose ``baseColorTexture`` is the atlas."""

    mesh: trimesh.Trimesh
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rasterizer: str = ""


class _Span:
    """Reports progress inside one sub-stage's share of the texture stage."""

    def __init__(self, progress: ProgressCallback, name: str) -> None:
        self.progress = progress
        self.start, self.end = _SPANS[name]

    def __call__(self, done: int, total: int, message: str) -> None:
        fraction = self.start + (self.end - self.start) * min(done / max(total, 1), 1.0)
        self.progress(STAGE, round(fraction, 4), message)


# -- loading ----------------------------------------------------------------------------


def _private_modules_cache() -> None:
    """diffusers copies custom pipeline code into ``HF_MODULES_CACHE`` (default:
    the user's HF home) and reads the variable when it is imported. Our loader
    never uses that path, but anything else in the process that does should
    write to a private, disposable folder (created only if something uses it)."""
    if not os.environ.get("HF_MODULES_CACHE"):
        os.environ["HF_MODULES_CACHE"] = os.path.join(tempfile.gettempdir(), f"hy3d-hf-modules-{os.getpid()}")


def load_delight(folder: Path, device: str, dtype: Any) -> Any:
    """The delighting InstructPix2Pix pipeline with hy3dgen's scheduler, in ``dtype`` on ``device``."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        str(folder),
        torch_dtype=dtype,
        safety_checker=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe if device == "cpu" else pipe.to(device)  # already on the host (fp16 there: under mmgp)


def _unet_state(folder: Path) -> dict[str, Any]:
    """The wrapper's state dict: safetensors if present, else the torch file
    hy3dgen itself reads (memory-mapped when it is a zip archive, as
    ``torch.save`` writes since torch 1.6)."""
    import zipfile

    import torch

    safetensors_file = folder / "diffusion_pytorch_model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    path = folder / "diffusion_pytorch_model.bin"
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def load_paint_unet(folder: Path, dtype: Any) -> Any:
    """hy3dgen's ``UNet2p5DConditionModel`` filled from ``folder`` (its
    ``config.json`` describes the inner UNet). It is built on the meta device
    and takes the checkpoint's tensors as its parameters: no random init and
    no float32 copy of a 1.8B-parameter model on the way to fp16."""
    import torch
    from diffusers import UNet2DConditionModel
    from hy3dgen.texgen.hunyuanpaint.unet.modules import UNet2p5DConditionModel

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    with torch.device("meta"):
        unet = UNet2p5DConditionModel(UNet2DConditionModel.from_config(config))
    result = unet.load_state_dict(_unet_state(folder), strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise PipelineError(
            f"The paint UNet in {folder} does not match hy3dgen's UNet2p5DConditionModel "
            f"({len(result.missing_keys)} missing keys, e.g. {result.missing_keys[:3]}; "
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]})."
        )
    unset = [name for name, t in [*unet.named_parameters(), *unet.named_buffers()] if t.is_meta]
    if unset:  # a buffer the checkpoint doesn't carry (none in diffusers 0.39's UNet)
        raise PipelineError(f"The paint UNet has tensors no checkpoint fills: {unset[:3]}.")
    return unet.to(dtype).eval()


def _component(folder: Path, name: str, library: str, class_name: str, dtype: Any) -> Any:
    """One standard diffusers/transformers component of a pipeline folder."""
    import importlib

    import torch

    if library not in ("diffusers", "transformers"):
        raise PipelineError(f"{folder}/model_index.json: component {name!r} comes from {library!r}, not loadable.")
    cls = getattr(importlib.import_module(library), class_name)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
        kwargs["dtype" if library == "transformers" else "torch_dtype"] = dtype
    return cls.from_pretrained(str(folder / name), **kwargs)


def load_paint(folder: Path, device: str, dtype: Any) -> Any:
    """hy3dgen's ``HunyuanPaintPipeline`` assembled from the components its
    ``model_index.json`` lists, with hy3dgen's scheduler, in ``dtype`` on ``device``."""
    import inspect

    from diffusers import EulerAncestralDiscreteScheduler
    from hy3dgen.texgen.hunyuanpaint.pipeline import HunyuanPaintPipeline

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    if index.get("_class_name") != "HunyuanPaintPipeline":
        raise PipelineError(f"{folder} holds a {index.get('_class_name')!r}, not hy3dgen's HunyuanPaintPipeline.")
    accepted = inspect.signature(HunyuanPaintPipeline.__init__).parameters
    components: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or name not in accepted or not isinstance(spec, list) or spec[0] is None:
            continue
        if name == "unet":
            components[name] = load_paint_unet(folder / "unet", dtype)
        else:
            components[name] = _component(folder, name, spec[0], spec[1], dtype)
    pipe = HunyuanPaintPipeline(**components)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    return pipe if device == "cpu" else pipe.to(device)  # already on the host (fp16 there: under mmgp)


def views_to_tensor(views: list[list[Image.Image]], device: Any, dtype: Any) -> Any:
    """[B][N] PIL views -> [B, N, 3, H, W] in [0, 1], alpha composited on white,
    as texgen's converter does, but on the pipeline's own device and dtype."""
    import numpy as np
    import torch

    batches = []
    for batch in views:
        images = []
        for view in batch:
            array = np.asarray(view.convert("RGBA"), dtype=np.float32) / 255.0
            rgb = array[..., :3] * array[..., 3:] + (1.0 - array[..., 3:])
            images.append(torch.from_numpy(rgb).permute(2, 0, 1))
        batches.append(torch.stack(images))
    return torch.stack(batches).to(device=device, dtype=dtype)


class _DeviceAwareCall:
    """Stands in for a diffusers pipeline inside texgen's wrappers.

    texgen's ``__call__``s pass their hard-coded step counts and, for the
    paint pipeline, normal/position views as PIL lists that the pipeline turns
    into ``.half().to("cuda")``. This object hands those views over as tensors
    on the pipeline's device and dtype, and within :meth:`configured` applies
    a step override and reports each step. Everything else is delegated.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self._steps: int | None = None
        self._on_step: Callable[[int, int], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    @contextmanager
    def configured(self, steps: int | None, on_step: Callable[[int, int], None] | None) -> Iterator[None]:
        self._steps, self._on_step = steps, on_step
        try:
            yield
        finally:
            self._steps, self._on_step = None, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for key in ("normal_imgs", "position_imgs"):
            if isinstance(
                kwargs.get(key), list
            ):  # where the models run (CUDA under mmgp, whose models idle on the host)
                kwargs[key] = views_to_tensor(kwargs[key], self.pipeline._execution_device, self.pipeline.dtype)
        if self._steps is not None:
            kwargs["num_inference_steps"] = self._steps
        if self._on_step is not None:
            total, on_step = kwargs.get("num_inference_steps", 0), self._on_step

            def step_end(_pipe: Any, step: int, _timestep: Any, _tensors: dict) -> dict:
                on_step(step + 1, total)
                return {}

            kwargs["callback_on_step_end"] = step_end
        return self.pipeline(*args, **kwargs)


def _bare(cls: type, **attributes: Any) -> Any:
    """An instance of a texgen class whose ``__init__`` is skipped (it hard-codes
    the device, fp16 and a download-capable loader), given the attributes its
    methods use."""
    instance = cls.__new__(cls)
    vars(instance).update(attributes)
    return instance


def install_uv_unwrap() -> None:
    """Point texgen's own ``__call__`` at :func:`pipeline.mesh.unwrap_uv` too
    (``pipelines.py`` binds ``mesh_uv_wrap`` at import)."""
    from hy3dgen.texgen import pipelines

    from ..mesh import unwrap_uv

    def mesh_uv_wrap(mesh: Any) -> Any:
        if hasattr(mesh, "dump"):  # a Scene, as texgen accepts
            mesh = mesh.dump(concatenate=True)
        return unwrap_uv(mesh)[0]

    pipelines.mesh_uv_wrap = mesh_uv_wrap


@dataclass
class Texgen:
    """texgen's objects, built for one device: the paint pipeline object (its
    config, renderer and model wrappers) and the two diffusers pipelines behind
    the wrappers."""

    pipeline: Any  # hy3dgen.texgen.Hunyuan3DPaintPipeline
    delight: _DeviceAwareCall
    multiview: _DeviceAwareCall

    @property
    def render(self) -> Any:
        return self.pipeline.render

    @property
    def config(self) -> Any:
        return self.pipeline.config


def _check_finite(pipe: Any, folder: Path, device: str) -> None:
    """Garbage tensor bytes in a texture model are named (the job then comes
    back untextured with that sentence as its warning), not painted as noise."""
    import torch

    modules = {name: part for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)}
    check_weights_finite(modules, folder, None, device, command=TEXTURE_DOWNLOAD_COMMAND)


def build_texgen(
    weights: TextureWeights, device: str, dtype: Any, size: RenderConfig, model_device: str | None = None
) -> Texgen:
    """Load both models (onto ``model_device``, default ``device``; the host
    when mmgp will move them) and wire texgen's objects for ``device``."""
    from hy3dgen.texgen.differentiable_renderer.mesh_render import MeshRender
    from hy3dgen.texgen.pipelines import Hunyuan3DPaintPipeline, Hunyuan3DTexGenConfig
    from hy3dgen.texgen.utils.dehighlight_utils import Light_Shadow_Remover
    from hy3dgen.texgen.utils.multiview_utils import Multiview_Diffusion_Net

    config = Hunyuan3DTexGenConfig(str(weights.delight), str(weights.paint))
    config.device = device  # hard-code 1 of 3: 'cuda'
    delight = _DeviceAwareCall(load_delight(weights.delight, model_device or device, dtype))
    _check_finite(delight.pipeline, weights.delight, device)
    multiview = _DeviceAwareCall(load_paint(weights.paint, model_device or device, dtype))
    _check_finite(multiview.pipeline, weights.paint, device)
    models = {
        "delight_model": _bare(
            Light_Shadow_Remover,
            device=device,
            cfg_image=DELIGHT_CFG_IMAGE,
            cfg_text=DELIGHT_CFG_TEXT,
            pipeline=delight,
        ),
        "multiview_model": _bare(Multiview_Diffusion_Net, device=device, view_size=512, pipeline=multiview),
    }
    render = MeshRender(
        default_resolution=size.render_size, texture_size=size.texture_size, device=device
    )  # hard-code 2 of 3: MeshRender(device='cuda')
    pipeline = _bare(Hunyuan3DPaintPipeline, config=config, models=models, render=render)
    apply_render_config(pipeline, size)
    return Texgen(pipeline, delight, multiview)


def apply_render_config(pipeline: Any, size: RenderConfig) -> None:
    """Set a request's sizes on texgen's config and renderer (the renderer
    derives its view-border erosion from the render size at construction)."""
    pipeline.config.render_size = size.render_size
    pipeline.config.texture_size = size.texture_size
    pipeline.render.set_default_render_resolution(size.render_size)
    pipeline.render.set_default_texture_resolution(size.texture_size)
    pipeline.render.bake_unreliable_kernel_size = size.unreliable_kernel


# -- stages -----------------------------------------------------------------------------


def camera_indices(elevs: list[int], azims: list[int]) -> list[int]:
    """The camera-embedding row of each view, as texgen's ``__call__`` computes it."""
    return [
        ((azim // 30 + 9) % 12) // _ELEV_DIVISOR[elev] + _ELEV_OFFSET[elev]
        for elev, azim in zip(elevs, azims, strict=False)
    ]


def textured_mesh(mesh: trimesh.Trimesh, texture: Image.Image) -> trimesh.Trimesh:
    """The unwrapped mesh with a PBR material carrying ``texture`` as base colour."""
    import numpy as np
    import trimesh
    from trimesh.visual.material import PBRMaterial

    material = PBRMaterial(baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=ROUGHNESS)
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(mesh.visual.uv), material=material)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.vertex_normals, visual=visual, process=False)


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
        sampling: Sampling = Sampling(),
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
        _private_modules_cache()
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
        size = render_config(texture_size)
        image = subject_rgba(image, "The image is fully transparent: nothing to paint the texture from.")
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
        from ..mesh import unwrap_uv

        run = _Run()
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
        with run.timed("delight"):
            prompt = self._delight(texgen, image, _Span(progress, "delight"))
        progress(STAGE, _SPANS["uv"][0], "Unwrapping UVs")
        with run.timed("uv"):
            unwrapped, _ = unwrap_uv(mesh)
            texgen.render.load_mesh(unwrapped)
        with run.timed("render"):
            controls = self._render_controls(texgen, _Span(progress, "render"))
        with run.timed("multiview"):
            views = self._multiview(texgen, prompt, controls, _Span(progress, "multiview"))
        with run.timed("bake"):
            texture, mask = self._bake(texgen, views, size, _Span(progress, "bake"))
        progress(STAGE, _SPANS["inpaint"][0], "Filling texture holes")
        with run.timed("inpaint"):
            atlas = self._inpaint(texgen, texture, mask)
        progress(STAGE, 1.0, f"Texture {size.texture_size}x{size.texture_size}")
        try:
            painted = textured_mesh(unwrapped, atlas)
        except Exception as exc:
            tag_stage(exc, "material")
            raise
        return TextureResult(painted, run.timings, run.warnings, self.rasterizer or "")

    def _delight(self, texgen: Texgen, image: Image.Image, report: _Span) -> Image.Image:
        """texgen's recentring and delighting (its wrapper's ``__call__``)."""
        steps = self.sampling.delight_steps
        prompt = texgen.pipeline.recenter_image(image)
        with texgen.delight.configured(steps, lambda i, n: report(i, n, f"Delighting step {i}/{n}")):
            return texgen.pipeline.models["delight_model"](prompt)

    def _render_controls(self, texgen: Texgen, report: _Span) -> list[Image.Image]:
        """Normal then position maps of every view, as the paint model takes them."""
        config, render = texgen.config, texgen.render
        cameras = list(zip(config.candidate_camera_elevs, config.candidate_camera_azims, strict=False))
        normals, positions = [], []
        for index, (elev, azim) in enumerate(cameras):
            normals.append(render.render_normal(elev, azim, use_abs_coor=True, return_type="pl"))
            positions.append(render.render_position(elev, azim, return_type="pl"))
            report(index + 1, len(cameras), f"Rendered view {index + 1}/{len(cameras)}")
        return normals + positions

    def _multiview(self, texgen: Texgen, prompt: Image.Image, controls: list, report: _Span) -> list:
        """texgen's multiview diffusion (its wrapper's ``__call__``): one image per view."""
        config, wrapper = texgen.config, texgen.pipeline.models["multiview_model"]
        wrapper.view_size = self.sampling.view_size or 512
        cameras = camera_indices(config.candidate_camera_elevs, config.candidate_camera_azims)
        steps = self.sampling.multiview_steps
        with texgen.multiview.configured(steps, lambda i, n: report(i, n, f"Painting views, step {i}/{n}")):
            return wrapper(prompt, list(controls), cameras)

    def _bake(self, texgen: Texgen, views: list, size: RenderConfig, report: _Span) -> tuple[Any, Any]:
        """Back-project each view into UV space and merge them (texgen's 'fast' bake)."""
        config, render = texgen.config, texgen.render
        cameras = list(
            zip(
                views,
                config.candidate_camera_elevs,
                config.candidate_camera_azims,
                config.candidate_view_weights,
                strict=False,
            )
        )
        textures, cos_maps = [], []
        for index, (view, elev, azim, weight) in enumerate(cameras):
            texture, cos_map, _ = render.back_project(view.resize((size.render_size, size.render_size)), elev, azim)
            textures.append(texture)
            cos_maps.append(weight * (cos_map**config.bake_exp))
            report(index + 1, len(cameras), f"Baked view {index + 1}/{len(cameras)}")
        return render.fast_bake_texture(textures, cos_maps)

    def _inpaint(self, texgen: Texgen, texture: Any, mask: Any) -> Image.Image:
        """Colour unbaked vertices from their neighbours, then fill the remaining
        holes inside the UV charts (texgen fills the whole frame)."""
        import numpy as np
        from PIL import Image

        from .fill import fill_texture, uv_coverage
        from .inpaint import mesh_vertex_inpaint

        texture_np = texture.float().cpu().numpy()
        mask_np = (mask.squeeze(-1).cpu().numpy() * 255).astype(np.uint8)
        vtx_pos, pos_idx, vtx_uv, uv_idx = texgen.render.get_mesh()
        texture_np, mask_np = mesh_vertex_inpaint(texture_np, mask_np, vtx_pos, vtx_uv, pos_idx, uv_idx)
        region = uv_coverage(vtx_uv, uv_idx, mask_np.shape)
        filled = fill_texture((texture_np * 255).astype(np.uint8), mask_np, region)
        return Image.fromarray(filled, "RGB")
