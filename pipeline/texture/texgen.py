"""texgen's objects wired for one device: :class:`Texgen` and :func:`build_texgen`.

hy3dgen's texgen wrappers hard-code CUDA, fp16 and a download-capable loader
in their ``__init__``, so they are built bare (:func:`_bare`) around the
pipelines :mod:`.loading` returns, each behind a :class:`_DeviceAwareCall`
that hands the paint model its views on its own device and dtype and applies
a request's step count. :func:`apply_render_config` sets a request's sizes;
:func:`install_uv_unwrap` points texgen's own unwrap at :func:`pipeline.mesh.unwrap_uv`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..weights import TEXTURE_DOWNLOAD_COMMAND, check_weights_finite
from .config import RenderConfig
from .loading import load_delight, load_paint

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..weights import TextureWeights

# hy3dgen's delight guidance (Light_Shadow_Remover.__init__), set here because that __init__ is skipped.
DELIGHT_CFG_IMAGE, DELIGHT_CFG_TEXT = 1.5, 1.0


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


def _bare(cls: type[Any], **attributes: Any) -> Any:
    """An instance of a texgen class whose ``__init__`` is skipped (it hard-codes
    the device, fp16 and a download-capable loader), given the attributes its
    methods use."""
    instance = object.__new__(cls)  # texgen's classes keep object's __new__
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

    modules: dict[str, torch.nn.Module] = {
        name: part for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)
    }
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
