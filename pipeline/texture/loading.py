"""Loading the two diffusers pipelines from local folders, without trust_remote_code.

:func:`load_delight` is the delighting InstructPix2Pix pipeline;
:func:`load_paint` assembles hy3dgen's ``HunyuanPaintPipeline`` from the
components its ``model_index.json`` lists, with the UNet filled from the
checkpoint (:func:`load_paint_unet`). Every load is ``local_files_only`` and
no code from a weights folder runs (the reasons: :mod:`pipeline.texture.backend`).
diffusers, transformers and hy3dgen are imported inside the functions.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import PipelineError


def private_modules_cache() -> None:
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
