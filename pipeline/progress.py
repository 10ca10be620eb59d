"""Progress reporting shared by the faces.

The pipeline calls ``progress(stage, fraction, message)``; the worker forwards
it to ``runpod.serverless.progress_update`` and the app to ``gr.Progress``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from .errors import tag_stage

# The stages every face shows, in order.
STAGES = ("decode", "background", "shape", "texture", "export")


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def null_progress(stage: str, fraction: float, message: str = "") -> None:
    """Default callback: report nothing."""


def throttled(callback: ProgressCallback, min_interval_s: float = 0.5) -> ProgressCallback:
    """Drop updates that arrive faster than ``min_interval_s`` within a stage.

    Diffusion steps can come every few milliseconds on a GPU; RunPod's
    ``/status`` and the browser only need a few updates a second. The first and
    last update of each stage always pass.
    """
    last_stage: str | None = None
    last_t = 0.0

    def report(stage: str, fraction: float, message: str = "") -> None:
        nonlocal last_stage, last_t
        now = time.monotonic()
        if stage != last_stage or fraction >= 1.0 or now - last_t >= min_interval_s:
            last_stage, last_t = stage, now
            callback(stage, fraction, message)

    return report


@dataclass
class RunLog:
    """Warnings and per-stage wall-clock seconds collected while one request
    runs; a stage timed twice accumulates."""

    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time the block; an exception leaving it is tagged with ``name``
        (innermost wins), so a failure can say which stage it came from."""
        start = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            tag_stage(exc, name)
            raise
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 4)
