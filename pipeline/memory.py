"""mmgp memory profiles over every model of both pipelines (CUDA only).

One :class:`MemoryProfiles` per process hands the loaded models of the shape
pipeline and, once it is loaded, the texture pipeline to mmgp in **one**
``offload.profile`` call, so mmgp keeps a single model (or a budgeted part of
it) on the GPU at a time across both pipelines. Separate calls would make two
offload objects that each keep their last model on the GPU.

**Names.** mmgp's profile rules key on names: only a model named
``transformer`` is quantised to 8 bits, profiles 3-4 pin only
``transformer`` in RAM (1-2 pin everything, 5 nothing) and profiles 2, 4, 5
cap each model's GPU share, ``transformer``'s tighter (1200 MB, 400 MB at 5)
than the others' (3000 MB). The paint UNet is ``transformer`` (see
:data:`TRANSFORMER`); the shape models are never quantised, so a seed
gives the same mesh at every profile whether or not texturing is loaded.

**Load order.** Importing ``mmgp.offload`` replaces ``safetensors.safe_open``
and ``safetensors.torch.load_file`` process-wide (and the names accelerate
and transformers bound), which transformers 5 cannot call. The first profile
loads every member before mmgp is imported; every later load (a profile
switch, the texture pipeline joining, another model) runs inside
:func:`unpatched_safetensors`, which puts the originals back for the load.

**Switches.** mmgp hooks, pins and quantises the models in place and its
``release()`` undoes none of that (a hooked module is never re-hooked), so a
new profile, or a change of members, releases mmgp and reloads every member
from disk before the one new ``profile`` call. Each member's reload time is
added to its own load timing (``<model>.shape_load``, ``texture.load``).

torch and mmgp are imported inside functions.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)

# The one name mmgp quantises, and pins at profiles 3-4. It goes to the paint UNet, the
# largest model of either pipeline (1831M parameters, 3.41 GiB fp16; next come
# DINOv2 1137M and the DiT 1113M, ``python bench/gpu/profiles.py --dry-run``)
# and the only one above mmgp's 3000 MB per-model budget: under another name it
# alone would be streamed in fp16 at profiles 2, 4 and 5 (from unpinned RAM at
# 4-5). As ``transformer`` it is quantised to ~1.71 GiB, pinned at 3-4 and
# streamed within 1200/400 MB.
TRANSFORMER = "transformer"


class Member(Protocol):
    """A backend whose models mmgp manages: the shape or the texture backend."""

    _load_s: float  # load time not yet reported in a request's timings

    def load(self) -> None: ...  # build the models on the host (idempotent)

    def take_load_s(self) -> float: ...  # the load time not yet reported, now counted as reported

    def drop_models(self) -> None: ...  # forget them, so the next load() reads the disk

    def mmgp_models(self) -> dict[str, Any]: ...  # name -> torch module, as mmgp gets them


# -- mmgp's safetensors patch ----------------------------------------------------


def _patched_names() -> list[tuple[Any, str, Any]]:
    """(module, attribute, original) for every name mmgp's import rebound."""
    patch = sys.modules.get("mmgp.safetensors2")
    if patch is None:
        return []
    originals = {id(patch.safe_open): patch._old_safe_open, id(patch.torch_load_file): patch._old_torch_load_file}
    names = []
    for module_name in ("safetensors", "safetensors.torch", "accelerate.utils.modeling", "transformers.modeling_utils"):
        module = sys.modules.get(module_name)
        for attribute in ("safe_open", "load_file", "safe_load_file"):
            value = getattr(module, attribute, None) if module is not None else None
            if value is not None and id(value) in originals:
                names.append((module, attribute, originals[id(value)]))
    return names


_PATCH_LOCK = threading.RLock()


@contextmanager
def unpatched_safetensors() -> Iterator[None]:
    """Run a model load with safetensors' own functions even after mmgp's
    import patched them; mmgp's are put back afterwards (mmgp's own loader
    reads them at profile time). Process-wide for the load's duration."""
    with _PATCH_LOCK:
        names = _patched_names()
        saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in names]
        for module, attribute, original in names:
            setattr(module, attribute, original)
        try:
            yield
        finally:
            for module, attribute, value in saved:
                setattr(module, attribute, value)


# -- the process-wide profile ----------------------------------------------------


def shape_models(pipe: Any) -> dict[str, Any]:
    """The hy3dgen shape pipeline's models under their mmgp names."""
    return {"shape_dit": pipe.model, "shape_vae": pipe.vae, "shape_conditioner": pipe.conditioner}


def texture_models(delight: Any, paint: Any) -> dict[str, Any]:
    """The delight and paint diffusers pipelines' models under their mmgp names."""
    return {
        "delight_unet": delight.unet,
        "delight_vae": delight.vae,
        "delight_text_encoder": delight.text_encoder,
        TRANSFORMER: paint.unet,
        "paint_vae": paint.vae,
        "paint_text_encoder": paint.text_encoder,
    }


class MemoryProfiles:
    """The one mmgp profile of this process: which profile, over which members.

    ``shape`` and ``texture`` are the member backends (None until one is
    used). :meth:`use` makes a profile apply to them; :meth:`unload_all`
    moves every model off the GPU (after a job, after an OOM).
    """

    def __init__(self) -> None:
        self.profile: int | None = None
        self.shape: Member | None = None
        self.texture: Member | None = None
        self.offload: Any = None
        self._lock = threading.RLock()

    def members(self) -> list[Member]:
        return [m for m in (self.shape, self.texture) if m is not None]

    def use(self, profile: int, *, shape: Member | None = None, texture: Member | None = None) -> bool:
        """Apply ``profile`` to ``shape`` and ``texture`` (None keeps the current
        member). Returns whether mmgp was (re)applied. A profile already in
        force over the same members costs nothing."""
        with self._lock:
            new_shape = shape if shape is not None else self.shape
            new_texture = texture if texture is not None else self.texture
            if (
                self.offload is not None
                and profile == self.profile
                and new_shape is self.shape
                and new_texture is self.texture
            ):
                return False
            if self.offload is not None:
                log.info(
                    "mmgp: re-profiling both pipelines (profile %s -> %s, reloading from disk)", self.profile, profile
                )
                self._release_offload()
            for old, new in ((self.shape, new_shape), (self.texture, new_texture)):
                if old is not None and old is not new:
                    old.drop_models()
            self.shape, self.texture = new_shape, new_texture
            self._load_members()
            try:
                self._apply(profile)
            except BaseException:
                for member in self.members():  # a failed profile call may have changed some in place
                    member.drop_models()
                raise
            return True

    def include(self, *, shape: Member | None = None, texture: Member | None = None) -> None:
        """Make ``shape``/``texture`` members of the next profile call without
        calling mmgp now (worker start-up loads both before any profile)."""
        with self._lock:
            changed = (shape is not None and shape is not self.shape) or (
                texture is not None and texture is not self.texture
            )
            if changed and self.offload is not None:
                self._release_offload()
            for old, new in ((self.shape, shape), (self.texture, texture)):
                if old is not None and new is not None and old is not new:
                    old.drop_models()
            self.shape, self.texture = shape or self.shape, texture or self.texture

    def _release_offload(self) -> None:
        """mmgp's release frees its pinned memory but leaves the models hooked
        and quantised, so every member drops its models to be reloaded."""
        offload, self.offload, self.profile = self.offload, None, None
        try:
            offload.release()
        finally:
            for member in self.members():
                member.drop_models()
            _free_cuda()

    def _load_members(self) -> None:
        """Every member on the host before mmgp sees any (each load() adds its
        own time to the member's ``_load_s``)."""
        for member in self.members():
            with unpatched_safetensors():
                member.load()

    def _apply(self, profile: int) -> None:
        import torch
        from mmgp import offload  # patches safetensors process-wide: only after every member loaded

        models: dict[str, Any] = {}
        for member in self.members():
            models.update(member.mmgp_models())
        previous = torch.get_default_device()
        start = time.perf_counter()
        try:
            self.offload = offload.profile(models, profile_no=profile, verboseLevel=0)
        finally:
            torch.set_default_device(previous)  # mmgp leaves it on CUDA
        self.profile = profile
        elapsed = time.perf_counter() - start
        share = elapsed / len(self.members())  # one call for all: each member carries its share
        for member in self.members():
            member._load_s += share
        log.info("mmgp profile %s applied to %s in %.2f s", profile, ", ".join(models), elapsed)

    def unload_all(self) -> None:
        """Every model off the GPU (mmgp reloads each on its next call)."""
        with self._lock:
            if self.offload is not None:
                self.offload.unload_all()

    def drop(self, member: Member) -> None:
        """``member`` leaves the profile (its models are being released); the
        others are reloaded and re-profiled on their next use."""
        with self._lock:
            if member is not self.shape and member is not self.texture:
                return
            if self.offload is not None:
                self._release_offload()
            if member is self.shape:
                self.shape = None
            else:
                self.texture = None

    def reset(self) -> None:
        """Release mmgp and forget the members (tests, shutdown)."""
        with self._lock:
            if self.offload is not None:
                self._release_offload()
            self.shape = self.texture = None


def _free_cuda() -> None:
    from .device import free_cuda_memory

    free_cuda_memory()


PROFILES = MemoryProfiles()
