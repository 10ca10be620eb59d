"""Helpers the GPU benchmarks share: parameter counts, CUDA sync and peak
memory, a throwaway weights folder, and the main() that refuses politely
without CUDA. torch is imported inside each helper so ``--dry-run`` and
``--help`` stay light."""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def sync(device: str) -> None:
    import torch

    if _is_cuda(device):
        torch.cuda.synchronize()


def empty_cache(device: str) -> None:
    """Collect garbage and hand cached CUDA blocks back, so the next figure starts clean."""
    import torch

    gc.collect()
    if _is_cuda(device):
        torch.cuda.empty_cache()


def reset_peak(device: str) -> None:
    import torch

    if _is_cuda(device):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if _is_cuda(device) else 0.0


@contextmanager
def models_root(prefix: str) -> Iterator[Path]:
    """A temporary folder that ``HY3DGEN_MODELS`` points at while the block runs (restored after)."""
    previous = os.environ.get("HY3DGEN_MODELS")
    with tempfile.TemporaryDirectory(prefix=prefix) as root:
        os.environ["HY3DGEN_MODELS"] = root
        try:
            yield Path(root)
        finally:
            if previous is None:
                os.environ.pop("HY3DGEN_MODELS", None)
            else:
                os.environ["HY3DGEN_MODELS"] = previous


def main(
    script: str, args: argparse.Namespace, dry_run: Callable[[], object], run: Callable[[argparse.Namespace], object]
) -> int:
    """``--dry-run`` anywhere; otherwise the measured run, or one line and exit 0 without CUDA."""
    if args.dry_run:
        dry_run()
        return 0
    import torch

    if not torch.cuda.is_available():
        print(f"{script} needs CUDA; nothing measured. Use --dry-run for parameter counts.")
        return 0
    run(args)
    return 0
