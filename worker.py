"""RunPod serverless worker: translates RunPod jobs to and from the shared pipeline.

Request and response fields are documented in the README ("Worker API"). The
handler never raises: every failure becomes ``{"error": "<sentence>"}`` and
the worker keeps serving. ``runpod.serverless.start`` runs only under
``__main__``, so tests import :func:`handler` directly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

from pipeline.errors import PipelineError, bound_message, describe_failure, utf8_safe
from pipeline.image_url import fetch_image_url
from pipeline.options import parse_options
from pipeline.progress import throttled
from pipeline.response import ErrorResponse, Response, to_response
from pipeline.runpod.delivery import DeliveryConfig, deliver, delivery_for
from pipeline.service import ImageTo3D
from pipeline.views import check_views, require_multiview

log = logging.getLogger("worker")

_PIPELINE: ImageTo3D | None = None


def get_pipeline() -> ImageTo3D:
    """The process-wide pipeline; the worker never falls back to draft silently."""
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = ImageTo3D(draft_fallback=False)
    return _PIPELINE


def _progress_reporter(job: dict):
    # Only a production worker has a progress endpoint; locally (no
    # RUNPOD_WEBHOOK_GET_JOB) runpod's call just logs an error, so log instead.
    production = bool(os.environ.get("RUNPOD_WEBHOOK_GET_JOB"))

    def report(stage: str, fraction: float, message: str = "") -> None:
        if not production:
            log.info("job %s: %s %.0f%% %s", job.get("id"), stage, 100 * fraction, message)
            return
        try:
            import runpod

            runpod.serverless.progress_update(
                job, {"stage": stage, "progress": round(float(fraction), 3), "message": message}
            )
        except Exception:  # progress is best-effort; a failed update must not fail the job
            log.debug("progress_update failed", exc_info=True)

    return throttled(report)


def handler(job: dict) -> Response | ErrorResponse:
    """RunPod handler: ``{"input": {...}}`` in, response dict out (never raises).

    Whatever happens, the response can be sent: an error is one bounded
    sentence and every string encodes as UTF-8 (RunPod's SDK posts nothing,
    and the result is lost, when it cannot encode one)."""
    try:
        response = _handle(job)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.exception("job failed outside the pipeline")
        response = {"error": f"The worker failed with an internal error ({type(exc).__name__})."}
    if "error" in response:
        response["error"] = bound_message(response["error"])
    return utf8_safe(response)


def _handle(job: dict) -> Response | ErrorResponse:
    payload = job.get("input") if isinstance(job, dict) else None
    if not isinstance(payload, dict):
        return {"error": "Request 'input' must be a JSON object with at least an 'image' field."}
    try:
        if "image" in payload and "image_url" in payload:
            return {"error": "Send either 'image' or 'image_url', not both."}
        if "image" not in payload and "image_url" not in payload:
            return {"error": "Field 'image' is required: base64 PNG, JPEG or WebP (or send 'image_url' instead)."}
        if "image" in payload and not isinstance(payload["image"], str):
            return {"error": "Field 'image' must be a base64 string."}
        pipeline = get_pipeline()
        # Defaults (HY3D_MODEL, HY3D_PROFILE) come from the settings the pipeline loaded at start-up.
        options = parse_options(payload, settings=pipeline.settings, ignore=("image", "image_url", "views"))
        delivery_config = delivery_for(options.output)  # before the models run
        progress = _progress_reporter(job)
        views = check_views(payload.get("views"))  # cheap checks first: before any image_url download
        require_multiview(options.model, views)
        image, download_s = payload.get("image"), None
        if image is None:  # image_url: fetched under pipeline/image_url.py's rules, after the cheap checks
            started = time.perf_counter()
            progress("decode", 0.0, "Downloading image_url")
            image = fetch_image_url(payload["image_url"], pipeline.settings)
            download_s = round(time.perf_counter() - started, 4)
        result = pipeline.generate(image, options, progress, views=views)
        if download_s is not None:
            result.timings = {"download": download_s, **result.timings}
        budget = delivery_config.budget
        if result.preview_png:  # its base64 travels in the same body: the GLB gets that much less
            budget -= 3 * -(-len(result.preview_png) // 3)  # base64's 4 characters per 3 bytes, in GLB bytes
        reexport = (lambda quality, size: pipeline.reexport(result, quality, size)) if result.textured else None
        delivery = deliver(
            result.glb,
            options.output,
            reexport=reexport,
            budget=budget,
            bucket=delivery_config.bucket,
            prefix=str(job.get("id") or "job"),
        )
        progress("export", 1.0, f"Delivered {delivery.method}")
        return to_response(result, delivery)
    except Exception as exc:
        if not isinstance(exc, PipelineError):
            log.exception("job failed")
        message, restart = describe_failure(exc)
        return {"error": message, "refresh_worker": True} if restart else {"error": message}


def startup_check() -> str:
    """Load the configured model before taking jobs (models load once per
    process), and pay one-off warm-up costs now rather than in a request.

    Raises PipelineError when the configured weights are missing, so the
    process ends with one clear line and RunPod marks the worker unhealthy
    instead of failing every job.
    """
    started = time.perf_counter()
    DeliveryConfig.from_env()  # first: a malformed bucket stops start-up before minutes of model loading
    choice = get_pipeline().warm_up()
    return f"worker ready: model={choice.name} load_s={time.perf_counter() - started:.2f}"


def _import_runpod() -> None:
    """Run beside the model load: importing runpod (aiohttp, fastapi, boto3)
    takes seconds, which overlap the load instead of adding to it
    (bench/cold_start.py measures start-up; figures in the README, "Worker
    cold start"). Module imports in two threads are safe."""
    import runpod  # noqa: F401 - imported for its module cache, in the background


WORKER_DESCRIPTION = """\
RunPod serverless worker for image-to-3D (README: "Worker API" and "Deployment on RunPod").

Modes:
  python worker.py                       one job from ./test_input.json, then exit (0 ok, 1 error)
  python worker.py --test_input JSON     one job from JSON, then exit
  python worker.py --rp_serve_api [--rp_api_host 127.0.0.1] [--rp_api_port 8000]
                                         local API server: POST /run, /runsync, /status/{id}
  (on RunPod, RUNPOD_WEBHOOK_GET_JOB is set and jobs come from the platform)
  Write a request body for a local image with `python -m pipeline request IMAGE > test_input.json`.
"""

WORKER_ENV_HELP = """\
environment variables (README, "Configuration"):
  HY3D_MODEL (auto), HY3D_PROFILE (3), HY3D_DEVICE (auto)     request defaults and device
  HY3D_MAX_IMAGE_BYTES, HY3D_MAX_IMAGE_PIXELS                 image limits
  HY3D_ALLOW_PRIVATE_URLS (off), HY3D_URL_TIMEOUT_S (15)      image_url: private addresses, download bound
  HY3D_INLINE_BUDGET_MB (7.5)                                 largest GLB returned inline
  BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID,
  BUCKET_SECRET_ACCESS_KEY, BUCKET_NAME                       bucket for model_url results
  HY3D_UPLOAD_TIMEOUT_S (30)                                  bound on one bucket upload
  HY3DGEN_MODELS, RUNPOD_HF_CACHE, HF_HOME / HF_HUB_CACHE
  (or HUGGINGFACE_HUB_CACHE)                                  where weights are looked for
  HF_MODULES_CACHE (a private temp folder)                    diffusers' custom pipeline code
  REMBG_MODEL (u2net), REMBG_MODEL_PATH, U2NET_HOME,
  REMBG_HOME, XDG_DATA_HOME                                   background removal weights
  NUMBA_CACHE_DIR, NUMBA_CPU_NAME                             numba's compiled-code cache and target CPU
  RUNPOD_WEBHOOK_GET_JOB (set by RunPod), RUNPOD_LOG_LEVEL    production mode, SDK log level
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Our usage, at once and without importing anything heavy. The flags are
    runpod's own (its SDK parses sys.argv again when it starts); anything
    else is an error instead of being silently ignored."""
    parser = argparse.ArgumentParser(
        prog="python worker.py",
        description=WORKER_DESCRIPTION,
        epilog=WORKER_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--test_input", metavar="JSON", help='run one job, e.g. \'{"input": {"image": ...}}\'')
    parser.add_argument("--rp_serve_api", action="store_true", help="serve RunPod's local API instead")
    parser.add_argument("--rp_api_host", default="localhost", metavar="HOST", help="API server host (localhost)")
    parser.add_argument("--rp_api_port", type=int, default=8000, metavar="PORT", help="API server port (8000)")
    parser.add_argument(
        "--rp_api_concurrency", type=int, default=1, metavar="N", help="API server workers; runpod supports only 1"
    )
    parser.add_argument("--rp_log_level", metavar="LEVEL", help="SDK log level: ERROR, WARN, INFO or DEBUG")
    parser.add_argument("--rp_debugger", action="store_true", help="runpod's debugger output")
    return parser.parse_args(argv)


def _one_local_job(args: argparse.Namespace) -> bool:
    """A local one-job run (--test_input or ./test_input.json), where the job
    names its own model: a start-up without weights need not stop it."""
    if os.environ.get("RUNPOD_WEBHOOK_GET_JOB") or args.rp_serve_api:
        return False
    return bool(args.test_input) or os.path.isfile("test_input.json")


_WRAPPED = "_hy3d_wrapped"  # marks runpod's shutdown handler once bound_runpod_shutdown wrapped it


def bound_runpod_shutdown() -> None:
    """SIGTERM ends the worker within seconds, exit status 0, in every mode
    (``pipeline/shutdown.py`` says why it needs a handler at all).

    ``main`` installs ``exit_on_sigterm`` first: before ``runpod.serverless.start``
    (model load, ``--test_input``) SIGTERM raises SystemExit(0). RunPod's local
    API server (uvicorn) handles SIGTERM itself, gracefully. RunPod's
    production job loop, which replaces the handler, only stops
    taking jobs and then waits up to 90 s for its open job long-poll; so its
    handler is wrapped: the running job, if any, gets up to
    ``shutdown.DEFAULT_STOP_GRACE_S`` to finish and have its result posted,
    then the process exits. runpod is pinned (requirements.txt) and
    tests/test_shutdown.py runs this path against a loopback job server.
    """
    from runpod.serverless.modules import rp_scale

    from pipeline import shutdown

    original = rp_scale.JobScaler.handle_shutdown
    if getattr(original, _WRAPPED, False):
        return

    def handle_shutdown(self, signum, frame):
        original(self, signum, frame)
        shutdown.exit_when_idle(lambda: self.job_progress.get_job_count() > 0, shutdown.DEFAULT_STOP_GRACE_S, "worker")

    setattr(handle_shutdown, _WRAPPED, True)  # a mark on the function itself: wrapping twice is a no-op
    rp_scale.JobScaler.handle_shutdown = handle_shutdown


def main() -> None:
    args = parse_args(sys.argv[1:])
    from pipeline.shutdown import exit_on_sigterm

    exit_on_sigterm("worker")  # from the first moment: the model load can take minutes
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    preload = threading.Thread(target=_import_runpod, daemon=True)
    preload.start()
    try:
        ready = startup_check()
    except Exception as exc:
        if not isinstance(exc, PipelineError):
            log.exception("worker start-up failed")
        message = describe_failure(exc)[0]
        if not (isinstance(exc, PipelineError) and _one_local_job(args)):
            print(f"worker start-up failed: {message}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        ready = (
            f"worker start-up: {message} Running the local test job anyway; it fails only if it needs those weights."
        )
    print(ready, flush=True)
    preload.join()
    import runpod

    bound_runpod_shutdown()
    runpod.serverless.start({"handler": handler})


if __name__ == "__main__":
    main()
