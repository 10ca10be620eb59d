"""Getting a GLB back to the caller within RunPod's payload caps.

RunPod accepts about 10 MB through ``/run`` and 20 MB through ``/runsync``;
an oversized result fails late and quietly (COMPLETED with no output). So a
result is either inlined under a budget, shrunk until it fits, or uploaded to
an S3-compatible bucket and returned as a presigned URL (7 days, as
runpod's ``rp_upload``). Every upload is bounded by ``HY3D_UPLOAD_TIMEOUT_S``.
Nothing here ever returns a payload over the budget.

Budget arithmetic (default ``HY3D_INLINE_BUDGET_MB=7.5``): base64 makes 7.5 MB
of GLB into 10,000,000 characters; the rest of the response JSON is under
10 kB, so the body stays below the 10 MiB (10,485,760-byte) ``/run`` cap.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import OptionsError, PipelineError, echo
from ..settings import env_seconds

DEFAULT_INLINE_BUDGET_MB = 7.5
# The largest budget whose base64 (4/3) plus 10 kB of JSON fits 10 MiB: 7.85 MB.
MAX_INLINE_BUDGET_MB = 7.85
# runpod's rp_upload presigns for 7 days (ExpiresIn=604800).
PRESIGNED_URL_SECONDS = 604800
# Texture shrink steps tried in order when a GLB is over budget with no bucket:
# (JPEG quality, longest texture side or None to keep the size).
SHRINK_STEPS: tuple[tuple[int, int | None], ...] = ((75, None), (60, None), (60, 1024), (50, 512))
BUCKET_VARS = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME")
# The whole upload (every attempt, with backoff) gives up after this many
# seconds; botocore's defaults (60 s reads, 4 attempts) held a worker 247 s
# on an endpoint that accepts connections and never answers.
DEFAULT_UPLOAD_TIMEOUT_S = 30.0
UPLOAD_ATTEMPTS = 2


class DeliveryError(PipelineError):
    """The result cannot be returned: too large with no bucket, or the upload failed."""


@dataclass(frozen=True)
class BucketConfig:
    """An S3-compatible bucket, from runpod's standard variables plus ``BUCKET_NAME``."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket_name: str

    @classmethod
    def from_env(cls) -> BucketConfig | None:
        values = {name: os.environ.get(name, "").strip() for name in BUCKET_VARS}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise OptionsError(
                f"Bucket upload is half-configured: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set (all of {', '.join(BUCKET_VARS)} are needed)."
            )
        url = values["BUCKET_ENDPOINT_URL"]
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            parts, port_ok = None, False
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise OptionsError(f"BUCKET_ENDPOINT_URL must be an http:// or https:// URL with a host, got {echo(url)}.")
        upload_timeout_s()  # a bad HY3D_UPLOAD_TIMEOUT_S is a configuration error too, found now
        return cls(*values.values())


def upload_timeout_s() -> float:
    """``HY3D_UPLOAD_TIMEOUT_S``: the bound on one whole upload, in seconds."""
    return env_seconds("HY3D_UPLOAD_TIMEOUT_S", DEFAULT_UPLOAD_TIMEOUT_S, at_least=1, at_most=3600)


def inline_budget_bytes() -> int:
    raw = os.environ.get("HY3D_INLINE_BUDGET_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_INLINE_BUDGET_MB
    except ValueError:
        raise OptionsError(f"Environment variable HY3D_INLINE_BUDGET_MB must be a number, got {echo(raw)}.") from None
    if not 0 < megabytes <= MAX_INLINE_BUDGET_MB:
        raise OptionsError(
            f"Environment variable HY3D_INLINE_BUDGET_MB must be above 0 and at most {MAX_INLINE_BUDGET_MB} "
            f"(base64 of more would not fit RunPod's 10 MiB /run cap), got {echo(raw)}."
        )
    return int(megabytes * 1_000_000)


@dataclass(frozen=True)
class DeliveryConfig:
    """The delivery settings of this process: the inline budget and the bucket, if any."""

    budget: int
    bucket: BucketConfig | None

    @classmethod
    def from_env(cls) -> DeliveryConfig:
        """Read and check ``HY3D_INLINE_BUDGET_MB``, the ``BUCKET_*`` variables and
        ``HY3D_UPLOAD_TIMEOUT_S``: at start-up, so a malformed bucket stops the
        worker before minutes of model loading, not the first finished job."""
        return cls(inline_budget_bytes(), BucketConfig.from_env())

    def check(self, mode: str) -> DeliveryConfig:
        """Refuse an ``output`` mode that could never be delivered, before the models run."""
        if mode == "url":
            _bucket_for_url(self.bucket)
        return self


def delivery_for(mode: str) -> DeliveryConfig:
    """A request's delivery settings, checked against its ``output`` mode: a job
    that could never be returned fails in milliseconds, not after a minute."""
    return DeliveryConfig.from_env().check(mode)


def _bucket_for_url(bucket: BucketConfig | None) -> BucketConfig:
    if bucket is None:
        raise DeliveryError(
            f"Field 'output' is 'url' but no bucket is configured; set {', '.join(BUCKET_VARS[:-1])} "
            f"and {BUCKET_VARS[-1]}."
        )
    return bucket


@dataclass
class Delivery:
    """How the GLB travels back: inline bytes, or a presigned URL."""

    glb: bytes
    method: str  # "inline" or "url"
    model_url: str | None = None
    expires_at: str | None = None
    warnings: list[str] = field(default_factory=list)


def _s3_client(bucket: BucketConfig, timeout: float):
    """A boto3 S3 client whose every attempt is bounded: connect and read
    timeouts sized so that UPLOAD_ATTEMPTS attempts, with backoff, fit in
    ``timeout``. runpod's ``rp_upload`` builds its client with botocore's
    defaults (60 s reads) and cannot be given a config, so it is not used."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise DeliveryError("Bucket upload is unavailable: boto3 is not installed.") from None
    from runpod.serverless.utils.rp_upload import extract_region_from_url

    per_attempt = max((timeout - 1.0) / UPLOAD_ATTEMPTS, 0.5)
    config = Config(
        signature_version="s3v4",
        connect_timeout=min(5.0, per_attempt / 2),
        read_timeout=per_attempt,
        retries={"total_max_attempts": UPLOAD_ATTEMPTS, "mode": "standard"},
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=bucket.endpoint_url,
        aws_access_key_id=bucket.access_key_id,
        aws_secret_access_key=bucket.secret_access_key,
        config=config,
        region_name=extract_region_from_url(bucket.endpoint_url),
    )


def _upload_failure(exc: BaseException) -> str:
    """A short reason for a failed upload: the S3 error code or HTTP status
    when the endpoint answered, else the exception type."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"the endpoint answered {' '.join(str(p) for p in (status, code) if p)}"
    return f"{type(exc).__name__}: {echo(str(exc))}"


def upload_glb(glb: bytes, bucket: BucketConfig, prefix: str) -> tuple[str, str]:
    """Upload to the bucket; returns (presigned URL, ISO expiry time).

    The whole upload is bounded by ``HY3D_UPLOAD_TIMEOUT_S``: per-attempt
    timeouts and a bounded retry, and a deadline on top, after which the job
    fails with one sentence (a stalled attempt is left to its own timeout on a
    daemon thread)."""
    timeout = upload_timeout_s()
    name = f"model-{uuid.uuid4().hex[:12]}.glb"
    key = f"{prefix}/{name}" if prefix else name
    issued = dt.datetime.now(dt.UTC)
    outcome: dict[str, Any] = {}  # the boto3 client (untyped) or the error, set by the upload thread

    def put() -> None:  # building the client counts too: boto3's first one takes seconds
        try:
            client = _s3_client(bucket, timeout)
            client.put_object(Bucket=bucket.bucket_name, Key=key, Body=glb, ContentType="model/gltf-binary")
            outcome["client"], outcome["error"] = client, None
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=put, name="bucket-upload", daemon=True)
    worker.start()
    worker.join(timeout)
    where = f"bucket {echo(bucket.bucket_name)} at {echo(bucket.endpoint_url)}"
    if "error" not in outcome:
        raise DeliveryError(
            f"Uploading the GLB to {where} did not finish within {timeout:g} s (HY3D_UPLOAD_TIMEOUT_S); "
            "check that the endpoint is reachable."
        )
    error = outcome["error"]
    if isinstance(error, DeliveryError):
        raise error
    if isinstance(error, BaseException):
        raise DeliveryError(
            f"Uploading the GLB to {where} failed ({_upload_failure(error)}); check the BUCKET_* variables."
        ) from error
    url = outcome["client"].generate_presigned_url(
        "get_object", Params={"Bucket": bucket.bucket_name, "Key": key}, ExpiresIn=PRESIGNED_URL_SECONDS
    )
    expires = (issued + dt.timedelta(seconds=PRESIGNED_URL_SECONDS)).isoformat(timespec="seconds")
    return url, expires


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.2f} MB"


def deliver(
    glb: bytes,
    mode: str,
    *,
    reexport: Callable[[int, int | None], bytes] | None,
    budget: int,
    bucket: BucketConfig | None,
    prefix: str,
) -> Delivery:
    """Choose inline or URL for ``mode`` ("inline", "url" or "auto").

    ``auto`` tries, in order: inline; inline with the texture shrunk; upload,
    only when nothing inline fits and a bucket is configured; else the error.
    A shrunk texture comes before a URL because the After Effects panel's
    shipped client cannot read ``model_url`` (README, "Output size").

    ``reexport(jpeg_quality, max_texture_size)`` re-encodes the same mesh with
    a smaller texture; it is None for untextured results, which cannot shrink.
    """
    if mode == "url":
        bucket = _bucket_for_url(bucket)
        url, expires = upload_glb(glb, bucket, prefix)
        return Delivery(glb, "url", model_url=url, expires_at=expires)

    warnings: list[str] = []
    original = glb
    if len(glb) > budget and reexport is not None:
        for quality, max_size in SHRINK_STEPS:
            before = len(glb)
            glb = reexport(quality, max_size)
            size_note = f", texture at most {max_size} px" if max_size else ""
            warnings.append(
                f"GLB was {_mb(before)}, over the {_mb(budget)} inline budget; re-encoded the texture as "
                f"JPEG quality {quality}{size_note}: now {_mb(len(glb))}."
            )
            if len(glb) <= budget:
                break
    if len(glb) > budget and mode == "auto" and bucket is not None:
        # Nothing inline fits: the full-quality GLB goes up, not the shrunk one.
        url, expires = upload_glb(original, bucket, prefix)
        note = (
            f"GLB is {_mb(len(original))}, over the {_mb(budget)} inline budget even with the texture shrunk; "
            "returned it as model_url, which the panel's shipped api.js cannot read (use clients/panel/api.js)."
        )
        return Delivery(original, "url", model_url=url, expires_at=expires, warnings=[note])
    if len(glb) > budget:
        raise DeliveryError(
            f"The GLB is {_mb(len(glb))}, over the {_mb(budget)} inline limit (HY3D_INLINE_BUDGET_MB), even after "
            "shrinking the texture. Configure a bucket (" + ", ".join(BUCKET_VARS) + ") so it can be returned "
            "as model_url, or lower max_faces."
        )
    return Delivery(glb, "inline", warnings=warnings)
