"""Cut the subject out of its background before shape generation.

rembg does the work when its weights are on disk. It is never allowed to
download them at request time (that hangs for up to 30 s or fails offline), so
the weights are looked up first, mirroring rembg 2.0.x's own search, and a
classical GrabCut cutout seeded from the image border stands in when they are
missing. rembg (and numba behind it) is imported on first use only: a cold
import compiles for about a minute and the worker must start fast.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .image_io import has_real_transparency, largest_component
from .settings import Settings
from .weights import rembg_homes, rembg_weight_candidates

log = logging.getLogger(__name__)

CUSTOM_MODEL = "u2net_custom"
DOWNLOAD_HINT = "Download with `python -m pipeline.weights download --rembg` or place the file at {path}."
# GrabCut runs on a copy whose longer side is at most this, and the mask is
# upsampled. Its max-flow grows faster than the pixel count on smooth studio
# gradients: measured 0.35 s of CPU at 320 px against 1.4 s at 512 px.
GRABCUT_MAX_SIDE = 320
GRABCUT_ITERATIONS = 3
_MIN_CUTOUT_SIDE = 16  # below this GrabCut's colour models have too few samples


@dataclass
class RemovalResult:
    """The cut-out image and how it was made, for the response's warnings."""

    image: Image.Image
    method: str  # 'rembg:<model>' | 'grabcut' | 'skipped'
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WeightsLookup:
    """Where rembg would find a model's ONNX file, or why it would not."""

    model: str
    path: Path | None  # the file rembg will load; None when unusable
    searched: tuple[Path, ...]  # candidate files, in rembg's order
    source: str  # which setting chose the folder, for messages
    problem: str | None = None  # user-facing reason when path is None
    hint: str = ""  # how to fix it

    def fallback_warning(self) -> str:
        """The warning a GrabCut result carries: what is missing, where, and how to fix it."""
        reason = (self.problem or f"rembg weights for {self.model} not found").rstrip(".")
        return f"{reason}; used a GrabCut cutout instead. {self.hint}".rstrip()


def _inside(path: Path, root: Path) -> bool:
    path_s, root_s = os.path.abspath(path), os.path.abspath(root)
    return path_s == root_s or path_s.startswith(root_s + os.sep)


def _lookup_custom(model_path: str | os.PathLike | None) -> WeightsLookup:
    home, legacy, source = rembg_homes()
    raw = model_path if model_path is not None else os.environ.get("REMBG_MODEL_PATH", "").strip()
    origin = "model_path" if model_path is not None else "REMBG_MODEL_PATH"
    if not raw:
        return WeightsLookup(CUSTOM_MODEL, None, (), source,
                             f"rembg model {CUSTOM_MODEL} needs a model file",
                             f"Set REMBG_MODEL_PATH to an ONNX file inside {home}.")
    path = Path(os.path.expanduser(os.fspath(raw)))
    if not path.is_file():
        return WeightsLookup(CUSTOM_MODEL, None, (path,), source,
                             f"rembg model file {path} ({origin}) not found",
                             f"Place the file there or correct {origin}.")
    if not (_inside(path, home) or _inside(path, legacy)):
        # rembg refuses custom models outside its folders; say so up front.
        return WeightsLookup(CUSTOM_MODEL, None, (path,), source,
                             f"rembg model file {path} is outside {home} ({source}), and rembg refuses "
                             "custom models elsewhere",
                             "Move it into that folder or set U2NET_HOME to a folder above it.")
    return WeightsLookup(CUSTOM_MODEL, path, (path,), source)


def find_weights(model: str, model_path: str | os.PathLike | None = None) -> WeightsLookup:
    """Locate ``model``'s weights without importing rembg or touching the network."""
    if model == CUSTOM_MODEL:
        return _lookup_custom(model_path)
    _, _, source = rembg_homes()
    candidates = rembg_weight_candidates(model)
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None:
        return WeightsLookup(model, found, candidates, source)
    folders = " or ".join(str(p.parent) for p in candidates)
    problem = f"rembg weights {model}.onnx not found in {folders} ({source})"
    return WeightsLookup(model, None, candidates, source, problem, DOWNLOAD_HINT.format(path=candidates[-1]))


def _rembg_agrees(rembg: Any, lookup: WeightsLookup) -> bool:
    """Ask rembg's own resolver too, so a future layout change cannot trigger a download."""
    if lookup.model == CUSTOM_MODEL:
        return True  # rembg validates model_path itself and never downloads it
    session_cls = getattr(getattr(rembg, "sessions", None), "sessions", {}).get(lookup.model)
    resolve = getattr(session_cls, "resolve_existing", None)
    if resolve is None:
        return False
    return resolve(f"{lookup.model}.onnx") is not None


def _grabcut_mask(rgb: np.ndarray) -> np.ndarray:
    """Binary (0/255) foreground mask; everything outside an inset rectangle is background."""
    import cv2

    h, w = rgb.shape[:2]
    inset = max(2, round(0.03 * min(h, w)))
    rect = (inset, inset, w - 2 * inset, h - 2 * inset)
    labels = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(rgb), labels, rect, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    mask = np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    size = max(3, (min(h, w) // 128) * 2 + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return largest_component(mask)


def grabcut_cutout(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """Classical cutout for when rembg is unavailable: good on plain backgrounds.

    Works on a copy downscaled to ``GRABCUT_MAX_SIDE`` for speed; the mask is
    upsampled bilinearly, which also softens the edge.
    """
    import cv2

    rgba = img.convert("RGBA")
    w, h = rgba.size
    if min(w, h) < _MIN_CUTOUT_SIDE:
        return rgba, [f"The image ({w}x{h}) is too small for a cutout; kept it whole."]
    rgb = np.asarray(rgba.convert("RGB"))
    scale = min(1.0, GRABCUT_MAX_SIDE / max(w, h))
    small = rgb if scale == 1.0 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    try:
        mask = _grabcut_mask(small)
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1]
        return rgba, [f"The GrabCut cutout failed ({detail}); kept the image whole."]
    if not mask.any():
        return rgba, ["The GrabCut cutout found no subject; kept the image whole."]
    if scale < 1.0:
        # Blur before upsampling so the low-resolution staircase becomes a soft edge.
        mask = cv2.GaussianBlur(mask, (3, 3), 0)
    alpha = mask if scale == 1.0 else cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    rgba.putalpha(Image.fromarray(alpha, mode="L"))
    return rgba, []


class BackgroundRemover:
    """One per process: holds the rembg session, created on first use and reused.

    The weights lookup is repeated while no session exists, so weights placed
    on disk after start-up are picked up without a restart.
    """

    def __init__(self, settings: Settings, model_path: str | os.PathLike | None = None):
        self.model = settings.rembg_model or "u2net"
        self.model_path = model_path
        self._session: Any = None
        self._lock = threading.Lock()
        self.session_loads = 0  # how many sessions were built; observability and tests

    def remove(self, img: Image.Image) -> RemovalResult:
        """Cut out the subject; never downloads and never fails for lack of weights."""
        if has_real_transparency(img):
            kept = img if img.mode == "RGBA" else img.convert("RGBA")
            return RemovalResult(kept, "skipped", [
                "The image already has transparency; kept its alpha instead of removing the background."])
        rgba = img.convert("RGBA")
        session, problem = self._get_session()
        if session is not None:
            try:
                return RemovalResult(self._run_rembg(session, rgba), f"rembg:{self.model}", [])
            except Exception as exc:  # a model with the wrong interface, say
                log.exception("rembg %s failed", self.model)
                problem = f"rembg model {self.model} failed ({exc}); used a GrabCut cutout instead."
        cutout, notes = grabcut_cutout(rgba)
        return RemovalResult(cutout, "grabcut", [problem, *notes])

    @staticmethod
    def _run_rembg(session: Any, rgba: Image.Image) -> Image.Image:
        import rembg

        # putalpha keeps the original colours at soft edges (the default
        # cutout darkens them). The copy protects the caller's image, and
        # dropping its metadata stops rembg from applying EXIF rotation twice.
        work = rgba.copy()
        work.info.clear()
        out = rembg.remove(work, session=session, putalpha=True)
        return out.convert("RGBA")

    def _get_session(self) -> tuple[Any, str]:
        """The cached session, or (None, why) when rembg can't be used without a download."""
        if self._session is not None:
            return self._session, ""
        lookup = find_weights(self.model, self.model_path)
        if lookup.path is None:
            return None, lookup.fallback_warning()
        with self._lock:
            if self._session is None:
                try:
                    self._session = self._load(lookup)
                except Exception as exc:
                    log.warning("could not load rembg model %s from %s: %s", self.model, lookup.path, exc)
                    return None, (f"Could not load rembg model {self.model} from {lookup.path} ({exc}); "
                                  "used a GrabCut cutout instead.")
            return self._session, ""

    def _load(self, lookup: WeightsLookup) -> Any:
        import rembg

        if not _rembg_agrees(rembg, lookup):
            raise RuntimeError(f"rembg {rembg.__version__} does not find {lookup.path} and would download it")
        kwargs = {"model_path": str(lookup.path)} if self.model == CUSTOM_MODEL else {}
        session = rembg.new_session(self.model, **kwargs)
        self.session_loads += 1
        log.info("rembg session %s loaded from %s", self.model, lookup.path)
        return session
