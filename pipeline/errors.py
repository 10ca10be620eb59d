"""Exception types shared by every face of the service.

Each face maps them to its own wire format: the worker to ``{"error": str}``,
the Gradio app to ``gr.Error``. Messages are written for the end user: one
sentence naming the field or resource and the problem.
"""

from __future__ import annotations

import re


class PipelineError(Exception):
    """Base class for errors the service reports to its caller as-is."""


class InputError(PipelineError):
    """The request itself is wrong (bad field, bad image). Never retried."""


class OptionsError(InputError):
    """A request field has the wrong type, range or name."""


class ImageError(InputError):
    """The image could not be decoded or breaks a configured limit."""


class WeightsMissingError(PipelineError):
    """Model weights are not on disk and cannot be fetched.

    ``searched`` lists the folders looked in, so the message can name them.
    """

    def __init__(self, message: str, searched: list[str] | None = None):
        super().__init__(message)
        self.searched = list(searched or [])


class WeightsDamagedError(PipelineError):
    """A weights file is on disk but its contents are wrong (checksum, NaN
    tensors, unparseable config). ``path`` names the file."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


class OutOfMemoryError(PipelineError):
    """The accelerator ran out of memory; the worker process should restart."""


# Every layer's way of saying the accelerator is full: torch's OutOfMemoryError
# ("CUDA out of memory"), a bare RuntimeError("CUDA error: out of memory"),
# and cuBLAS/cuDNN allocation failures.
_OOM_MARKERS = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")

# The panel shows errors in a toast: every sentence the service returns is at
# most this long, and any echoed user value at most ECHO_CHARS.
MAX_MESSAGE_CHARS = 400
# Server paths in raw exception text are not the caller's business.
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-~+@]+){2,}[\\/]?")
ECHO_CHARS = 60


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an accelerator allocation failure, whichever layer raised it.

    The one check every backend, delivery and both faces use; it needs no
    torch import (torch's ``OutOfMemoryError`` is matched by name)."""
    if isinstance(exc, OutOfMemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = _safe_str(exc)
    if not isinstance(exc, RuntimeError):
        return "CUDA out of memory" in text
    return any(marker in text for marker in _OOM_MARKERS)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__, or an int too long to print
        return f"<{type(value).__name__}>"


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``value`` as a quoted, escaped snippet of at most ``limit`` characters,
    safe to put in an error sentence: control characters, lone surrogates and
    every other non-ASCII character are backslash-escaped (so the result always
    encodes as UTF-8), and long values end in "...".

    The one way the service repeats anything a caller sent."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int):
        return _echo_int(value)
    if isinstance(value, float):
        return repr(value)[:limit]
    text = value if isinstance(value, str) else _safe_str(value)
    # Escape a little more than ``limit`` so the cut below never has to look far.
    escaped = ascii(text[: limit + 1])[1:-1].replace("'", "\\'")
    if len(escaped) > limit or len(text) > limit:
        escaped = escaped[: max(limit - 3, 1)].rstrip("\\") + "..."
    return f"'{escaped}'"


def _echo_int(value: int) -> str:
    """Integers as written, or their size when long: ``str()`` of a 5,000-digit
    integer raises ValueError in Python 3.11+, and 4,300 digits help nobody."""
    if value.bit_length() <= 64:
        return str(value)
    digits = int(value.bit_length() * 0.30103) + 1
    return f"{'-' if value < 0 else ''}an integer of about {digits} digits"


def bound_message(message: object) -> str:
    """One sentence fit to return: UTF-8-encodable (lone surrogates escaped),
    on one line, and at most MAX_MESSAGE_CHARS long. Applied to every error the
    faces return, whatever produced it."""
    text = _safe_str(message)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    words = text.split()  # newlines, tabs and runs of spaces: one line
    text = " ".join(words)
    # Too long: first shorten the longest words (deep paths, echoed blobs) in
    # the middle, so the sentence keeps its end (usually the fix), then cut.
    for index in sorted(range(len(words)), key=lambda i: -len(words[i])):
        if len(text) <= MAX_MESSAGE_CHARS or len(words[index]) <= 40:
            break
        word = words[index]
        words[index] = word[:16] + "..." + word[-21:]
        text = " ".join(words)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 4].rstrip() + " ..."
    return text


def utf8_safe(value):
    """``value`` (a JSON-like tree) with every string UTF-8-encodable, so a
    result can always be sent; lone surrogates become backslash escapes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {utf8_safe(k): utf8_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_safe(v) for v in value]
    return value


def tag_stage(exc: BaseException, stage: str) -> None:
    """Record the innermost stage ``exc`` passed through (first tag wins), so a
    failure can name where it happened without wrapping the exception."""
    if getattr(exc, "hy3d_stage", None) is None:
        try:
            exc.hy3d_stage = stage  # type: ignore[attr-defined]  # a tag on any exception type, read by failed_stage
        except Exception:  # noqa: BLE001 - exceptions with __slots__ keep no tag
            pass


def failed_stage(exc: BaseException) -> str | None:
    return getattr(exc, "hy3d_stage", None)


OOM_MESSAGE = "The GPU ran out of memory; retry with a higher 'profile' (up to 5) or a smaller 'octree_resolution'."


def describe_failure(exc: BaseException) -> tuple[str, bool]:
    """The sentence a caller sees for ``exc``, and whether the process should
    restart afterwards (after a CUDA OOM the allocator is best replaced).
    Shared by the worker and the app so both faces say the same thing, and
    always bounded by :func:`bound_message`. An unexpected exception names the
    stage that failed and its type; the traceback is for the operator's log."""
    if isinstance(exc, OutOfMemoryError):
        return bound_message(exc), True
    if isinstance(exc, PipelineError):
        return bound_message(exc), False
    if is_out_of_memory(exc):
        return OOM_MESSAGE, True
    stage = failed_stage(exc)
    where = f"The {stage} stage" if stage else "The request"
    detail = echo(_PATH.sub("<path>", _safe_str(exc)))
    return bound_message(
        f"{where} failed with an internal error ({type(exc).__name__}: {detail}); the server log has the details."
    ), False
