"""The response wire format, written down once: what a finished job sends back.

:class:`Response` is the worker's JSON (README, "Worker API" / "Response"), which
the After Effects panel and the app's remote client read; :class:`ResultSummary`,
its fields about the result itself, is the app's stats JSON on ``/generate``.
:func:`to_response` builds it from a :class:`GenerationResult` and its delivery,
:func:`summary` the app's part, and :func:`from_response` reads it back into a
:class:`GenerationResult` (the remote client).

No ``from __future__ import annotations`` here: on Python 3.11 it hides
``NotRequired`` from ``TypedDict``, and the optional keys would read as required.
"""

import base64
import binascii
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, final

from .options import GenerationOptions
from .types import GenerationResult

if TYPE_CHECKING:  # pragma: no cover
    from .runpod.delivery import Delivery

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ResultSummary(TypedDict):
    """What ran and what it made: every face reports these."""

    model: str
    seed: int
    profile: int | None  # None where no profile applies: draft, CPU
    faces: int
    vertices: int
    textured: bool
    file_size: int  # GLB bytes
    execution_time: float  # seconds in the pipeline
    timings: dict[str, float]  # seconds per stage
    warnings: list[str]


@final  # final, so that `"error" in response` tells the two apart for mypy
class Response(ResultSummary):
    """A successful worker response; a failure is an :class:`ErrorResponse`."""

    output: Literal["inline", "url"]  # how the GLB came back
    format: Literal["glb"]
    texture_rasterizer: str | None  # "torch" or "compiled" when Hunyuan3D-Paint baked the texture
    model_base64: NotRequired[str]  # output "inline"
    model_url: NotRequired[str]  # output "url": presigned, 7 days
    model_url_expires_at: NotRequired[str]  # output "url": ISO 8601
    preview_png_base64: NotRequired[str]  # only with preview: true
    refresh_worker: NotRequired[Literal[True]]  # a GPU out-of-memory the job survived: RunPod restarts the worker


@final
class ErrorResponse(TypedDict):
    """A failed job: one sentence (README, "Errors"), never a traceback."""

    error: str
    refresh_worker: NotRequired[Literal[True]]  # after a CUDA out-of-memory: RunPod restarts the worker


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def summary(result: GenerationResult) -> ResultSummary:
    """The app's stats JSON."""
    return {
        "model": result.model,
        "seed": result.seed,
        "profile": result.profile,
        "faces": result.faces,
        "vertices": result.vertices,
        "textured": result.textured,
        "file_size": result.file_size,
        "execution_time": result.execution_time,
        "timings": result.timings,
        "warnings": result.warnings,
    }


def to_response(result: GenerationResult, delivery: "Delivery") -> Response:
    """The worker's response for ``result``, its GLB as ``delivery`` carries it
    (the delivered GLB may be a shrunk re-encode of ``result.glb``)."""
    body: Response = {
        "output": "url" if delivery.method == "url" else "inline",
        "file_size": len(delivery.glb),
        "format": "glb",
        "textured": result.textured,
        "execution_time": result.execution_time,
        "model": result.model,
        "seed": result.seed,
        "profile": result.profile,
        "faces": result.faces,
        "vertices": result.vertices,
        "timings": result.timings,
        "warnings": result.warnings + delivery.warnings,
        "texture_rasterizer": result.texture_rasterizer,
    }
    # Where the GLB is comes first, as it always has.
    if body["output"] == "url":
        assert delivery.model_url is not None and delivery.expires_at is not None  # deliver() sets both
        response: Response = {"model_url": delivery.model_url, "model_url_expires_at": delivery.expires_at, **body}
    else:
        response = {"model_base64": _b64(delivery.glb), **body}
    if result.preview_png:
        response["preview_png_base64"] = _b64(result.preview_png)
    if result.refresh_worker:
        response["refresh_worker"] = True
    return response


def from_response(
    output: dict[str, Any], glb: bytes, options: GenerationOptions, extra_timings: dict[str, float]
) -> GenerationResult:
    """A worker's response (``output`` of a COMPLETED job) as a :class:`GenerationResult`.

    ``glb`` is the model already fetched (inline or from ``model_url``), and
    ``extra_timings`` the reader's own (round trip, queue). A field the worker
    left out falls back to what was asked for."""
    timings = {str(k): float(v) for k, v in (output.get("timings") or {}).items()}
    rasterizer = output.get("texture_rasterizer")
    return GenerationResult(
        glb=glb,
        textured=bool(output.get("textured", False)),
        model=str(output.get("model", options.model)),
        seed=int(output.get("seed", options.seed)),
        profile=output.get("profile"),
        faces=int(output.get("faces", 0)),
        vertices=int(output.get("vertices", 0)),
        timings={**timings, **extra_timings},
        warnings=[str(w) for w in output.get("warnings") or []],
        execution_time=float(output.get("execution_time", extra_timings.get("remote.round_trip", 0.0))),
        options=options.to_dict(),
        texture_rasterizer=rasterizer if isinstance(rasterizer, str) else None,
        preview_png=_preview(output),
    )


def _preview(output: dict[str, Any]) -> bytes | None:
    """The worker's preview PNG, if it sent a decodable one (it is a nicety: never fail a job over it)."""
    encoded = output.get("preview_png_base64")
    if not isinstance(encoded, str):
        return None
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return png if png.startswith(PNG_SIGNATURE) else None
