"""Device and precision choice, and CUDA out-of-memory handling.

torch is imported inside the functions so that importing :mod:`pipeline`
stays cheap for the CLI and the options schema.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from .errors import PipelineError, is_out_of_memory
from .settings import Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover
    import torch


def choose_device(settings: Settings | None = None) -> str:
    """``cuda`` or ``cpu`` from ``HY3D_DEVICE`` (auto picks CUDA when present).

    Asking for CUDA on a machine without it is a deployment error, reported
    instead of silently running a 100x slower CPU job.
    """
    import torch

    wanted = (settings or load_settings()).device
    available = torch.cuda.is_available()
    if wanted == "cuda" and not available:
        raise PipelineError("HY3D_DEVICE=cuda but no CUDA device is available; set HY3D_DEVICE=auto or cpu.")
    if wanted == "cpu" or not available:
        return "cpu"
    return "cuda"


def choose_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA (the checkpoints' own precision); float32 on CPU, where
    fp16 runs but yields broken meshes."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


# The one out-of-memory check lives in errors (no torch import); this name stays for the backends.
is_oom = is_out_of_memory


def free_cuda_memory() -> None:
    """Drop cached allocations after a failure so the next request can start clean."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
