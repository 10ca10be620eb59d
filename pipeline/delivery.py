"""Getting a GLB back to the caller within RunPod's payload caps.

RunPod accepts about 10 MB through ``/run`` and 20 MB through ``/runsync``;
an oversized result fails late and quietly (COMPLETED with no output). So a
result is either inlined under a budget, shrunk until it fits, or uploaded to
an S3-compatible bucket with runpod's own helper and returned as a presigned
URL. Nothing here ever returns a payload over the budget.

Budget arithmetic (default ``HY3D_INLINE_BUDGET_MB=7.5``): base64 makes 7.5 MB
of GLB into 10,000,000 characters; the rest of the response JSON is under
10 kB, so the body stays below the 10 MiB (10,485,760-byte) ``/run`` cap.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from typing import Callable

from .errors import OptionsError, PipelineError

DEFAULT_INLINE_BUDGET_MB = 7.5
# The largest budget whose base64 (4/3) plus 10 kB of JSON fits 10 MiB: 7.85 MB.
MAX_INLINE_BUDGET_MB = 7.85
# runpod's rp_upload presigns for 7 days (ExpiresIn=604800).
PRESIGNED_URL_SECONDS = 604800
# Texture shrink steps tried in order when a GLB is over budget with no bucket:
# (JPEG quality, longest texture side or None to keep the size).
SHRINK_STEPS: tuple[tuple[int, int | None], ...] = ((75, None), (60, None), (60, 1024), (50, 512))
BUCKET_VARS = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME")


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
    def from_env(cls) -> "BucketConfig | None":
        values = {name: os.environ.get(name, "").strip() for name in BUCKET_VARS}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise OptionsError(
                f"Bucket upload is half-configured: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set (all of {', '.join(BUCKET_VARS)} are needed)."
            )
        return cls(*values.values())


def inline_budget_bytes() -> int:
    raw = os.environ.get("HY3D_INLINE_BUDGET_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_INLINE_BUDGET_MB
    except ValueError:
        raise OptionsError(f"Environment variable HY3D_INLINE_BUDGET_MB must be a number, got {raw!r}.") from None
    if not 0 < megabytes <= MAX_INLINE_BUDGET_MB:
        raise OptionsError(
            f"Environment variable HY3D_INLINE_BUDGET_MB must be above 0 and at most {MAX_INLINE_BUDGET_MB} "
            f"(base64 of more would not fit RunPod's 10 MiB /run cap), got {raw}."
        )
    return int(megabytes * 1_000_000)


@dataclass
class Delivery:
    """How the GLB travels back: inline bytes, or a presigned URL."""

    glb: bytes
    method: str  # "inline" or "url"
    model_url: str | None = None
    expires_at: str | None = None
    warnings: list[str] = field(default_factory=list)


def upload_glb(glb: bytes, bucket: BucketConfig, prefix: str) -> tuple[str, str]:
    """Upload with runpod's helper; returns (presigned URL, ISO expiry time).

    rp_upload silently writes to local disk and returns a path when it cannot
    build an S3 client; that is treated as a failed upload, never as a URL.
    """
    from runpod.serverless.utils import rp_upload

    creds = {
        "endpointUrl": bucket.endpoint_url,
        "accessId": bucket.access_key_id,
        "accessSecret": bucket.secret_access_key,
    }
    client, _ = rp_upload.get_boto_client(creds)
    if client is None:
        raise DeliveryError("Bucket upload is unavailable: runpod could not create an S3 client (is boto3 installed?).")
    name = f"model-{uuid.uuid4().hex[:12]}.glb"
    issued = dt.datetime.now(dt.timezone.utc)
    try:
        url = rp_upload.upload_in_memory_object(
            name, glb, bucket_creds=creds, bucket_name=bucket.bucket_name, prefix=prefix
        )
    except Exception as exc:  # noqa: BLE001 - any S3 failure becomes one clear sentence
        raise DeliveryError(f"Uploading the GLB to bucket '{bucket.bucket_name}' failed: {exc}") from exc
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DeliveryError(f"Uploading the GLB did not return a URL (got {url!r}); check the BUCKET_* variables.")
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
        if bucket is None:
            raise DeliveryError(
                "Field 'output' is 'url' but no bucket is configured; set " + ", ".join(BUCKET_VARS) + "."
            )
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
