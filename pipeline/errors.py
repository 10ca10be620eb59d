"""Exception types shared by every face of the service.

Each face maps them to its own wire format: the worker to ``{"error": str}``,
the Gradio app to ``gr.Error``. Messages are written for the end user: one
sentence naming the field or resource and the problem.
"""

from __future__ import annotations


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


class OutOfMemoryError(PipelineError):
    """The accelerator ran out of memory; the worker process should restart."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA out-of-memory errors, without importing torch."""
    if isinstance(exc, OutOfMemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


OOM_MESSAGE = (
    "The GPU ran out of memory; retry with a higher 'profile' (up to 5) or a smaller 'octree_resolution'."
)


def describe_failure(exc: BaseException) -> tuple[str, bool]:
    """The sentence a caller sees for ``exc``, and whether the process should
    restart afterwards (after a CUDA OOM the allocator is best replaced).
    Shared by the worker and the app so both faces say the same thing."""
    if isinstance(exc, OutOfMemoryError):
        return str(exc), True
    if isinstance(exc, PipelineError):
        return str(exc), False
    if is_out_of_memory(exc):
        return OOM_MESSAGE, True
    return f"Internal error ({type(exc).__name__}): {exc}", False
