"""Remote mode: the Gradio app hands each job to the deployed RunPod endpoint.

With ``HY3D_REMOTE_ENDPOINT`` and ``RUNPOD_API_KEY`` set, the app runs no
models itself. :class:`RemoteGenerator` speaks exactly the After Effects
panel's contract, through runpod's own endpoint client: ``POST /run`` with
the worker's input fields, then ``GET /status/{id}`` until the job ends. The
worker's ``progress_update`` dicts, which production ``/status`` carries as
``output`` while the job is ``IN_PROGRESS``, become the usual
``progress(stage, fraction, message)`` calls, and the response becomes the
same :class:`GenerationResult` the local pipeline returns
(:func:`pipeline.response.from_response`), so the app's code after
``generate`` does not change: both are a :class:`pipeline.types.Generator`.

Every failure is a :class:`PipelineError` with one sentence for the user, and
total time is bounded by ``HY3D_REMOTE_TIMEOUT_S``; a job abandoned for any
reason is cancelled on RunPod so it does not keep a GPU busy.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ImageError, OptionsError, PipelineError
from ..options import GenerationOptions
from ..progress import ProgressCallback, null_progress
from ..response import from_response
from ..settings import Settings, env_seconds, load_settings
from ..types import GenerationResult

if TYPE_CHECKING:  # pragma: no cover
    from ..service import ModelChoice

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_POLL_S = 1.0
# RunPod refuses /run bodies over 10 MiB; checked here so an oversized upload
# fails in a millisecond with a sentence instead of an HTTP error.
RUN_BODY_LIMIT = 10 * 1024 * 1024
RUNNING_STATES = ("IN_PROGRESS", "RUNNING")  # RunPod's docs name both
TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
# Consecutive failed /status polls tolerated: a network blip or a RunPod 5xx
# must not throw away a job that is still running (and billed).
MAX_POLL_FAILURES = 3
_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class TransientRemoteError(PipelineError):
    """A failure worth another try: no connection, a timeout, or an HTTP 5xx."""


# -- configuration -----------------------------------------------------------
@dataclass(frozen=True)
class RemoteSettings:
    """Where remote jobs go and how long to wait for them."""

    endpoint_id: str
    api_key: str = field(repr=False)  # never in logs or tracebacks
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = DEFAULT_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_S
    download_timeout_s: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RemoteSettings | None:
        """None unless ``HY3D_REMOTE_ENDPOINT`` is set (local mode)."""
        env = os.environ if environ is None else environ
        endpoint_id = env.get("HY3D_REMOTE_ENDPOINT", "").strip()
        if not endpoint_id:
            return None
        if not _ENDPOINT_ID.match(endpoint_id):
            raise OptionsError(
                "Environment variable HY3D_REMOTE_ENDPOINT must be a RunPod endpoint id such as 'abc123xyz' "
                f"(not a URL), got {endpoint_id!r}."
            )
        api_key = env.get("RUNPOD_API_KEY", "").strip()
        if not api_key:
            raise OptionsError(
                f"HY3D_REMOTE_ENDPOINT is set ({endpoint_id}), so the app sends jobs to RunPod, but "
                "RUNPOD_API_KEY is not set; set it to an API key that may run that endpoint."
            )
        base_url = (env.get("HY3D_REMOTE_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise OptionsError(f"Environment variable HY3D_REMOTE_BASE_URL must be an http(s) URL, got {base_url!r}.")
        return cls(
            endpoint_id=endpoint_id,
            api_key=api_key,
            base_url=base_url,
            timeout_s=env_seconds("HY3D_REMOTE_TIMEOUT_S", DEFAULT_TIMEOUT_S, environ=env),
            poll_interval_s=env_seconds("HY3D_REMOTE_POLL_S", DEFAULT_POLL_S, environ=env),
        )

    def describe(self) -> str:
        """The app banner's sentence."""
        return f"Remote mode: jobs go to RunPod endpoint {self.endpoint_id} ({self.base_url})"


# -- request and response translation ---------------------------------------
def build_input(image: bytes, options: GenerationOptions, views: Mapping[str, bytes] | None = None) -> dict[str, Any]:
    """The worker's ``input``: the panel's fields, minus the ones left unset.

    None means "the model's own default"; leaving the field out lets the
    worker apply it. ``output`` is always ``auto``: inline when it fits
    RunPod's payload cap, a bucket URL when the worker has one. ``views``
    (uploaded bytes per view) travel base64 like ``image``.
    """
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise ImageError("Remote mode needs the uploaded image as non-empty bytes.")
    fields = {name: value for name, value in options.to_dict().items() if value is not None}
    fields["output"] = "auto"
    payload = {"image": base64.b64encode(bytes(image)).decode("ascii"), **fields}
    if views:
        for view, data in views.items():
            if not isinstance(data, (bytes, bytearray)) or not data:
                raise ImageError(f"Remote mode needs view {view} as non-empty bytes.")
        payload["views"] = {view: base64.b64encode(bytes(data)).decode("ascii") for view, data in views.items()}
    return payload


def check_body_size(payload: dict[str, Any]) -> None:
    body = len(json.dumps({"input": payload}))
    if body > RUN_BODY_LIMIT:
        raise ImageError(
            f"The image is too large to send to RunPod: the request would be {body / 1e6:.1f} MB and "
            f"RunPod's /run limit is {RUN_BODY_LIMIT / 1e6:.1f} MB; use an image under about 7 MB."
        )


def failure_message(error: Any) -> str:
    """The worker's sentence from a FAILED status.

    A handler that returns ``{"error": str}`` gives that string; one that
    raises gives runpod's JSON blob with the traceback, whose
    ``error_message`` is the useful part.
    """
    if isinstance(error, str) and error.lstrip().startswith("{"):
        try:
            blob = json.loads(error)
        except ValueError:
            blob = None
        if isinstance(blob, dict) and blob.get("error_message"):
            kind = str(blob.get("error_type", "")).removeprefix("<class '").removesuffix("'>")
            return f"{kind}: {blob['error_message']}" if kind else str(blob["error_message"])
    if error in (None, ""):
        return "no error message was given"
    return error if isinstance(error, str) else json.dumps(error)


def _redact(url: str) -> str:
    """A presigned URL without its query string, whose signature is a credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def download_model(url: str, timeout_s: float) -> bytes:
    """The GLB behind a presigned ``model_url``, within ``timeout_s`` in total."""
    import requests

    deadline = time.monotonic() + timeout_s
    try:
        with requests.get(url, stream=True, timeout=(min(10.0, timeout_s), timeout_s)) as response:
            if response.status_code != 200:
                raise PipelineError(
                    f"Downloading the GLB from {_redact(url)} failed with HTTP {response.status_code}; "
                    "the link may have expired (RunPod bucket links last 7 days)."
                )
            chunks = []
            for chunk in response.iter_content(1 << 20):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise PipelineError(f"Downloading the GLB from {_redact(url)} took over {timeout_s:g} s.")
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise PipelineError(f"Downloading the GLB from {_redact(url)} failed: {type(exc).__name__}.") from None


def decode_model(output: dict[str, Any], job_id: str, timeout_s: float) -> bytes:
    """GLB bytes from a COMPLETED output, inline or by URL, checked for truncation."""
    if isinstance(output.get("model_base64"), str):
        try:
            glb = base64.b64decode(output["model_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise PipelineError(f"Remote job {job_id} returned model_base64 that is not valid base64.") from None
    elif isinstance(output.get("model_url"), str):
        glb = download_model(output["model_url"], timeout_s)
    else:
        raise PipelineError(f"Remote job {job_id} finished without model_base64 or model_url in its output.")
    expected = output.get("file_size")
    if isinstance(expected, int) and expected != len(glb):
        raise PipelineError(
            f"Remote job {job_id}: the GLB arrived with {len(glb)} bytes but the worker sent {expected}; "
            "the transfer was cut short."
        )
    if glb[:4] != b"glTF":
        raise PipelineError(f"Remote job {job_id} returned a file that is not a GLB.")
    return glb


class _ProgressRelay:
    """Turns successive ``/status`` answers into progress calls, skipping repeats."""

    def __init__(self, progress: ProgressCallback) -> None:
        self.progress = progress
        self.last: tuple | None = None
        self.queue_s: float | None = None

    def __call__(self, status: dict[str, Any], elapsed: float) -> None:
        state = status.get("status")
        update = None
        if state == "IN_QUEUE":
            update = ("queue", 0.0, f"Waiting for a RunPod worker ({elapsed:.0f} s)")
        elif state in RUNNING_STATES:
            if self.queue_s is None:
                self.queue_s = round(elapsed, 3)
            update = self._worker_update(status.get("output"))
        if update is not None and update != self.last:
            self.last = update
            self.progress(*update)

    @staticmethod
    def _worker_update(output: Any) -> tuple[str, float, str]:
        if isinstance(output, dict) and isinstance(output.get("stage"), str):
            try:
                fraction = min(max(float(output.get("progress", 0.0)), 0.0), 1.0)
            except (TypeError, ValueError):
                fraction = 0.0
            return output["stage"], fraction, str(output.get("message", ""))
        return "queue", 1.0, "A RunPod worker started the job"


# -- the client --------------------------------------------------------------
class RemoteGenerator:
    """Drop-in for :class:`pipeline.service.ImageTo3D` in the app, backed by RunPod.

    Both are a :class:`pipeline.types.Generator`: ``settings`` (the local
    :class:`Settings`) keeps the widgets' defaults, and :meth:`choose_model`
    gives the banner.
    """

    def __init__(self, remote: RemoteSettings, settings: Settings | None = None) -> None:
        self.remote = remote
        self.settings = settings or load_settings()

    def describe(self) -> str:
        return self.remote.describe()

    def choose_model(self, requested: str) -> ModelChoice:
        """The banner notice; the model itself is chosen by the worker."""
        from ..service import ModelChoice

        return ModelChoice(requested, self.describe())

    def warm_up(self) -> ModelChoice:
        """Nothing loads here: the endpoint's workers load the models. The banner's choice, as the local pipeline's."""
        return self.choose_model(self.settings.default_model)

    def health(self) -> dict[str, Any]:
        """RunPod's ``/health`` for the endpoint: a cheap start-up check of id and key."""
        with self._connect() as endpoint, self._http("checking the endpoint's health"):
            return endpoint.health(timeout=10)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """A fresh runpod endpoint client per call, so concurrent jobs share no session.

        runpod copies its module-level ``endpoint_url_base`` into each client;
        the configured base URL (like the key) goes to this client only, so
        no process-wide runpod setting changes. runpod 1.10 also mounts, for ``http://`` URLs only, a retry policy that
        spends about 30 s on a refused connection, which would break the
        time bound; both schemes get the same short policy instead (408/429
        retried briefly, connection failures left to :meth:`_wait`).
        """
        import runpod
        from requests.adapters import HTTPAdapter
        from urllib3.util import Retry

        endpoint = runpod.Endpoint(self.remote.endpoint_id, api_key=self.remote.api_key)
        endpoint.rp_client.endpoint_url_base = self.remote.base_url
        session = endpoint.rp_client.rp_session
        retry = Retry(total=3, connect=0, read=0, backoff_factor=0.5, status_forcelist=(408, 429))
        for scheme in ("http://", "https://"):
            session.mount(scheme, HTTPAdapter(max_retries=retry))
        try:
            yield endpoint
        finally:
            session.close()

    def generate(
        self,
        image: bytes,
        options: GenerationOptions,
        progress: ProgressCallback = null_progress,
        views: Mapping[str, bytes] | None = None,
    ) -> GenerationResult:
        """Run one job on RunPod: submit, follow ``/status``, fetch the GLB."""
        started = time.monotonic()
        deadline = started + self.remote.timeout_s
        payload = build_input(image, options, views)
        check_body_size(payload)
        progress("queue", 0.0, "Sending the job to RunPod")
        with self._connect() as endpoint:
            with self._http("submitting the job"):
                job = endpoint.run({"input": payload})
            relay = _ProgressRelay(progress)
            try:
                final = self._wait(job, deadline, started, relay)
            except BaseException:
                self._cancel(job)
                raise
        output = self._completed_output(final, job.job_id)
        download_s = max(1.0, min(self.remote.download_timeout_s, deadline - time.monotonic()))
        glb = decode_model(output, job.job_id, download_s)
        timings = {"remote.round_trip": round(time.monotonic() - started, 3)}
        if relay.queue_s is not None:
            timings["remote.queue"] = relay.queue_s
        return from_response(output, glb, options, timings)

    def _wait(self, job, deadline: float, started: float, relay: _ProgressRelay) -> dict[str, Any]:
        """Poll ``/status`` until a terminal state or the deadline.

        ``Job.status()`` in runpod 1.10 returns only the state string and drops
        the progress dict in ``output``, so the job's own client fetches the
        full answer.
        """
        path = f"{job.endpoint_id}/status/{job.job_id}"
        failures, state = 0, "IN_QUEUE"
        while True:
            try:
                with self._http(f"checking job {job.job_id}"):
                    status = job.rp_client.get(path, timeout=10)
                failures, state = 0, status.get("status")
                relay(status, time.monotonic() - started)
                if state in TERMINAL_STATES:
                    return status
            except TransientRemoteError:
                failures += 1
                if failures >= MAX_POLL_FAILURES or time.monotonic() >= deadline:
                    raise
                log.warning("status poll for job %s failed (%d in a row); retrying", job.job_id, failures)
            now = time.monotonic()
            if now >= deadline:
                raise PipelineError(
                    f"The remote job {job.job_id} did not finish within {self.remote.timeout_s:g} s "
                    f"(HY3D_REMOTE_TIMEOUT_S); it was still {state}, so the app cancelled it on RunPod."
                )
            time.sleep(min(self.remote.poll_interval_s, deadline - now))

    def _completed_output(self, status: dict[str, Any], job_id: str) -> dict[str, Any]:
        state, output = status.get("status"), status.get("output")
        if state == "FAILED":
            raise PipelineError(f"Remote worker failed: {failure_message(status.get('error'))}")
        if state == "CANCELLED":
            raise PipelineError(f"The remote job {job_id} was cancelled on RunPod before it finished.")
        if state == "TIMED_OUT":
            raise PipelineError(
                f"The remote job {job_id} ran past the endpoint's execution timeout on RunPod; raise the "
                "timeout in the endpoint settings or use a lighter model or lower octree_resolution."
            )
        if not isinstance(output, dict) or not output:
            raise PipelineError(
                f"RunPod reports job {job_id} COMPLETED but returned no output; a response over RunPod's "
                "10 MB /run limit is dropped this way, so lower max_faces or give the worker a bucket."
            )
        if output.get("error"):
            raise PipelineError(f"Remote worker failed: {failure_message(output['error'])}")
        return output

    def _cancel(self, job) -> None:
        """Best effort: an abandoned job must not keep a GPU busy."""
        try:
            job.cancel(timeout=5)
        except Exception:
            log.warning("could not cancel remote job %s", job.job_id, exc_info=True)

    @contextmanager
    def _http(self, action: str) -> Iterator[None]:
        """runpod's and requests' exceptions as one sentence naming what to fix."""
        import requests

        where = f"endpoint {self.remote.endpoint_id} at {self.remote.base_url}"
        try:
            yield
        except PipelineError:
            raise
        except RuntimeError as exc:  # runpod raises RuntimeError for 401 and for a missing key
            if "401" in str(exc):
                raise PipelineError(
                    f"RunPod rejected the API key (401 Unauthorized) when {action} on {where}; check RUNPOD_API_KEY."
                ) from None
            raise PipelineError(f"RunPod client error when {action} on {where}: {exc}") from None
        except requests.HTTPError as exc:
            code = getattr(exc.response, "status_code", 0) or 0
            kind = TransientRemoteError if code >= 500 else PipelineError
            raise kind(_http_error_sentence(exc.response, action, where)) from None
        except requests.exceptions.RetryError:
            raise TransientRemoteError(
                f"RunPod kept answering 408/429 (busy or rate-limited) when {action} on {where}."
            ) from None
        except requests.Timeout:
            raise TransientRemoteError(f"RunPod did not answer in time when {action} on {where}.") from None
        except requests.ConnectionError:
            raise TransientRemoteError(
                f"Could not connect to RunPod when {action} on {where}; check HY3D_REMOTE_BASE_URL and the network."
            ) from None
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise PipelineError(f"RunPod gave an unexpected answer when {action} on {where}: {exc!r}.") from None


def _http_error_sentence(response, action: str, where: str) -> str:
    code = getattr(response, "status_code", "?")
    body = (getattr(response, "text", "") or "").strip().replace("\n", " ")[:200]
    detail = f": {body}" if body else ""
    if code == 404 and action == "submitting the job":
        return f"RunPod has no {where} (HTTP 404) when {action}; check HY3D_REMOTE_ENDPOINT{detail}."
    if code == 404:
        return (
            f"RunPod no longer knows the job (HTTP 404) when {action} on {where}; "
            f"results expire 30 min after a job ends{detail}."
        )
    if code == 413:
        return f"RunPod refused the request as too large (HTTP 413) when {action} on {where}{detail}."
    return f"RunPod answered HTTP {code} when {action} on {where}{detail}."
