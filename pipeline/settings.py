"""Process-wide settings read from environment variables.

Read once per call of :func:`load_settings` (not at import) so tests and
launchers can set variables before the pipeline is built. Every variable is
documented in the README's configuration table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload

from .errors import OptionsError, echo
from .models import DEFAULT_REMBG_MODEL, MODEL_CHOICES

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


@overload
def env_seconds(
    name: str,
    default: float,
    *,
    above: float = ...,
    at_least: float | None = ...,
    at_most: float = ...,
    environ: Mapping[str, str] | None = ...,
) -> float: ...
@overload
def env_seconds(
    name: str,
    default: None,
    *,
    above: float = ...,
    at_least: float | None = ...,
    at_most: float = ...,
    environ: Mapping[str, str] | None = ...,
) -> float | None: ...
def env_seconds(
    name: str,
    default: float | None,
    *,
    above: float = 0.0,
    at_least: float | None = None,
    at_most: float = math.inf,
    environ: Mapping[str, str] | None = None,
) -> float | None:
    """A seconds-valued variable: unset means ``default`` (None lets the caller
    tell "unset" apart); anything but a finite number within the bounds (above
    ``above``, or from ``at_least``, and at most ``at_most``) is one
    configuration sentence."""
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise OptionsError(f"Environment variable {name} must be a number of seconds, got {echo(raw)}.") from None
    low_ok = value >= at_least if at_least is not None else value > above
    if not (math.isfinite(value) and low_ok and value <= at_most):
        if at_least is None and above == 0 and not math.isfinite(at_most):
            rule = "a positive number of seconds"
        else:
            rule = "a number of seconds " + (f"from {at_least:g}" if at_least is not None else f"above {above:g}")
            if math.isfinite(at_most):
                rule += f" to {at_most:g}" if at_least is not None else f" and at most {at_most:g}"
        raise OptionsError(f"Environment variable {name} must be {rule}, got {echo(raw)}.")
    return value


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OptionsError(f"Environment variable {name} must be an integer, got {raw!r}.") from None
    if value < minimum:
        raise OptionsError(f"Environment variable {name} must be at least {minimum}, got {value}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Deployment configuration; request fields live in :mod:`pipeline.options`."""

    default_model: str = "auto"
    default_profile: int = 3
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    rembg_model: str = DEFAULT_REMBG_MODEL
    device: str = "auto"


def rembg_model_from_env() -> str:
    """``REMBG_MODEL``, else the default; the weights CLI reads it without the rest of the settings."""
    return os.environ.get("REMBG_MODEL", "").strip() or DEFAULT_REMBG_MODEL


def load_settings() -> Settings:
    model_env = os.environ.get("HY3D_MODEL", "").strip()
    if model_env and model_env not in MODEL_CHOICES:
        raise OptionsError(
            f"Environment variable HY3D_MODEL must be one of {', '.join(MODEL_CHOICES)}, got {model_env[:40]!r}."
        )
    profile = env_int("HY3D_PROFILE", 3)
    if not 1 <= profile <= 5:
        raise OptionsError(f"Environment variable HY3D_PROFILE must be from 1 to 5, got {profile}.")
    device = os.environ.get("HY3D_DEVICE", "auto").strip().lower() or "auto"
    if device not in ("auto", "cpu", "cuda"):
        raise OptionsError(f"Environment variable HY3D_DEVICE must be auto, cpu or cuda, got {device!r}.")
    return Settings(
        default_model=model_env or "auto",
        default_profile=profile,
        max_image_bytes=env_int("HY3D_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES),
        max_image_pixels=env_int("HY3D_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
        rembg_model=rembg_model_from_env(),
        device=device,
    )
