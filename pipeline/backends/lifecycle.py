"""The lifecycle the model backends share (Hunyuan3D shape, Hunyuan3D-Paint texture).

:class:`ModelBackend` holds what both repeated: the device and dtype chosen
from the settings, one lock that serialises loads and requests, ``load()``
once with its time kept for the next request's timings, ``release()``, and
the CUDA out-of-memory wrapper that frees the GPU and raises the pipeline's
own :class:`~pipeline.errors.OutOfMemoryError`. :func:`subject_rgba` is the
RGBA image check both run before any model does.

torch is imported inside :mod:`pipeline.device`'s functions: importing this
module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..device import choose_device, choose_dtype, free_cuda_memory, is_oom
from ..errors import ImageError, OutOfMemoryError, failed_stage, tag_stage
from ..memory import PROFILES
from ..settings import Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

log = logging.getLogger(__name__)

T = TypeVar("T")


def subject_rgba(image: Image.Image, empty: str) -> Image.Image:
    """``image`` as RGBA, or :class:`ImageError` with the sentence ``empty``
    when it is fully transparent (nothing left for a model to use)."""
    image = image.convert("RGBA")
    if image.getchannel("A").getextrema()[1] == 0:
        raise ImageError(empty)
    return image


class ModelBackend:
    """Base of the backends whose models load once per process and are reused.

    Subclasses implement :meth:`_load` (build the models on the host or the
    device), :attr:`loaded`, :meth:`drop_models` and :meth:`mmgp_models`;
    this class gives them the device, the lock, ``load()``, ``release()``
    and :meth:`_guard_oom`. On CUDA the models join one mmgp profile
    (:mod:`pipeline.memory`), so :attr:`under_mmgp` is true there.
    """

    label = "model"  # what the load log line names

    def __init__(self, settings: Settings | None = None, *, device: str | None = None) -> None:
        self.device = device or choose_device(settings or load_settings())
        self.dtype = choose_dtype(self.device)
        self._load_s = 0.0  # load time not yet reported in a request's timings
        self._lock = threading.RLock()  # one set of models, one accelerator: loads and requests in turn

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def under_mmgp(self) -> bool:
        """Whether mmgp's memory profiles manage these models (CUDA only)."""
        return self.on_cuda

    @property
    def loaded(self) -> bool:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    # -- lifecycle --
    def load(self) -> None:
        """Build the models now (worker start-up) instead of in the first request; idempotent."""
        with self._lock:
            if self.loaded:
                return
            start = time.perf_counter()
            self._load()
            elapsed = time.perf_counter() - start
            self._load_s += elapsed
            log.info("%s loaded on %s (%s) in %.2f s", self.label, self.device, self.dtype, elapsed)

    def _load(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def take_load_s(self) -> float:
        """The load time not yet reported (rounded), now counted as reported."""
        seconds, self._load_s = round(self._load_s, 4), 0.0
        return seconds

    def drop_models(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def mmgp_models(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def release(self) -> None:
        """Drop the models and, on CUDA, mmgp's hooks and pinned memory, then free CUDA memory."""
        with self._lock:
            if self.on_cuda:
                PROFILES.drop(self)
            self.drop_models()
            if self.on_cuda:
                free_cuda_memory()

    # -- the request path --
    def _guard_oom(self, work: Callable[[], T], message: Callable[[], str], stage: str | None = None) -> T:
        """Run ``work`` under the lock; a CUDA out-of-memory in it unloads
        mmgp's models, frees CUDA memory and raises :class:`OutOfMemoryError`
        with ``message()`` (tagged with the failed stage, else ``stage``,
        when ``stage`` is given). Any other error passes through unchanged."""
        with self._lock:
            try:
                return work()
            except Exception as exc:
                if not self.on_cuda or not is_oom(exc):
                    raise
                failed = failed_stage(exc)
            # Past the handler the exception's frames, and the tensors they hold, are gone.
            text = message()
            self._recover_from_oom()
            error = OutOfMemoryError(text)
            if stage is not None:
                tag_stage(error, failed or stage)
            raise error

    def _recover_from_oom(self) -> None:
        if PROFILES.offload is not None:
            try:
                PROFILES.unload_all()
            except Exception:
                log.exception("mmgp unload after OOM failed")
        free_cuda_memory()
