"""Before/after figures for issue 12's seams, one row per defect.

Run from the repository root: ``python bench/hardening.py [--root DIR]
[--skip-slow]``. ``--root`` points at another checkout of the project (for
example ``git archive main`` unpacked somewhere) so the same probes measure
the code before a change; the default is this checkout. Every probe goes
through the public faces (``worker.handler``, worker start-up, the app on
loopback) and loopback servers; nothing leaves the machine.

Each row prints ``name: value`` and the last line is the whole table as
JSON. ``--skip-slow`` leaves out the silent-bucket probe, which takes as long
as the code under test waits (247 s before issue 12).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _setup(root: Path) -> Path:
    """Private caches and temp dirs, set before anything imports gradio or runpod."""
    scratch = Path(tempfile.mkdtemp(prefix="hy3d-hardening-"))
    for name in ("hy3dgen", "hf", "runpod", "gradio", "u2net"):
        (scratch / name).mkdir()
    os.environ.update(
        {
            "HY3DGEN_MODELS": str(scratch / "hy3dgen"),
            "HF_HOME": str(scratch / "hf"),
            "RUNPOD_HF_CACHE": str(scratch / "runpod"),
            "GRADIO_TEMP_DIR": str(scratch / "gradio"),
            "U2NET_HOME": str(scratch / "u2net"),
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "RUNPOD_LOG_LEVEL": "ERROR",
            "HY3D_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
        }
    )
    os.environ.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    sys.path.insert(0, str(root))
    return scratch


def _png(size: int = 64) -> bytes:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size]
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[(xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= (size * 0.3) ** 2] = (220, 30, 30, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _job(worker, payload):
    worker._PIPELINE = None
    return worker.handler({"id": "bench", "input": payload})


def _bucket_env(endpoint: str) -> None:
    from fakes.hostile import bucket_env

    os.environ.update(bucket_env(endpoint))


def _no_bucket() -> None:
    from fakes.hostile import BUCKET_ENV

    for name in BUCKET_ENV:
        os.environ.pop(name, None)


def probe_worker(rows: dict, b64: str, slow: bool) -> None:
    import worker
    from fakes.hostile import PlainShapeBackend, RaisingBackend, failing_endpoint, is_sendable, silent_endpoint

    rows["surrogate_field_sendable"] = is_sendable(_job(worker, {"image": b64, "\ud800": 1}))
    for label, payload in {
        "model_10e4299": {"image": b64, "model": 10**4299},
        "bool_10e4299": {"image": b64, "generate_texture": 10**4299},
        "mime_240_ctrl": {"image": "data:" + "\x07" * 240 + ";base64,AAAA"},
        "weights_missing_turbo": {"image": b64, "model": "hunyuan3d-2mini-turbo"},
    }.items():
        rows[f"error_chars.{label}"] = len(_job(worker, payload)["error"])
    worker._PIPELINE = None
    pipe = worker.get_pipeline()
    pipe._backends["draft"] = RaisingBackend(ValueError("y" * 5000))
    rows["error_chars.raw_exception_5000"] = len(
        worker.handler({"id": "b", "input": {"image": b64, "model": "draft", "remove_background": False}})["error"]
    )
    try:
        huge = _job(worker, {"image": b64, "seed": 10**5000})
        rows["error_chars.seed_10e5000"] = len(huge["error"])
    except Exception as exc:  # noqa: BLE001 - before: str() of the int raised inside the handler
        rows["error_chars.seed_10e5000"] = f"handler raised {type(exc).__name__}"

    # One notion of OOM: the draft slot raising CUDA's bare RuntimeError.
    for label, message in (("cuda_error", "CUDA error: out of memory"), ("cublas", "CUBLAS_STATUS_ALLOC_FAILED")):
        worker._PIPELINE = None
        pipe = worker.get_pipeline()
        pipe._backends["draft"] = RaisingBackend(RuntimeError(message))
        result = worker.handler({"id": "b", "input": {"image": b64, "model": "draft", "remove_background": False}})
        rows[f"oom_refresh_worker.{label}"] = bool(result.get("refresh_worker"))

    # Texture failure after the shape is done.
    import pipeline.weights as weights_module  # where pipeline.service looks the texture weights up

    saved = weights_module.texture_weights_present

    class Painter:
        def paint(self, *args, **kwargs):
            raise RuntimeError("bake exploded")

    weights_module.texture_weights_present = lambda *a, **k: True
    try:
        worker._PIPELINE = None
        pipe = worker.get_pipeline()
        pipe._backends["draft"] = PlainShapeBackend()
        pipe.texture_backend = lambda *a, **k: Painter()
        result = worker.handler(
            {"id": "b", "input": {"image": b64, "model": "draft", "remove_background": False, "texture_size": 512}}
        )
        rows["texture_failure"] = "error" if "error" in result else f"model returned, textured={result['textured']}"
    finally:
        weights_module.texture_weights_present = saved

    # Buckets.
    base = {"image": b64, "model": "draft", "remove_background": False, "output": "url", "max_faces": 2000}
    _bucket_env("not a url")
    worker._PIPELINE = None
    pipe = worker.get_pipeline()
    counting = RaisingBackend(AssertionError("ran"))
    pipe._backends["draft"] = counting
    result = worker.handler({"id": "b", "input": dict(base)})
    rows["malformed_bucket_url"] = f"model ran={counting.calls > 0}; error={result['error'][:70]!r}"
    with failing_endpoint() as (endpoint, _):
        _bucket_env(endpoint)
        started = time.monotonic()
        result = _job(worker, dict(base))
        rows["bucket_500_s"] = round(time.monotonic() - started, 1)
        rows["bucket_500_error_chars"] = len(result.get("error", ""))
    if slow:
        with silent_endpoint() as endpoint:
            _bucket_env(endpoint)
            started = time.monotonic()
            _job(worker, dict(base))
            rows["bucket_silent_s"] = round(time.monotonic() - started, 1)
    _no_bucket()


def _tiny_model(root: Path) -> Path:
    from fakes.tiny_hunyuan import write_tiny_shape_model

    return write_tiny_shape_model(root)


def _start_up_outcome(done: subprocess.CompletedProcess) -> str:
    """How worker start-up ended: ready (damage unnoticed) or failed, with the
    number of stderr lines that are not log records (hy3dgen logs at INFO)."""
    if "worker ready" in done.stdout:
        return "ready: damage not noticed"
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and " INFO " not in ln and " - INFO - " not in ln]
    return f"exit {done.returncode}, {len(lines)} stderr lines"


def probe_weights(rows: dict, b64: str, repo: Path, scratch: Path) -> None:
    import worker
    from fakes.hostile import corrupt_tensor_bytes

    models = scratch / "damaged"
    folder = _tiny_model(models)
    corrupt_tensor_bytes(folder / "model.fp16.safetensors")
    os.environ["HY3DGEN_MODELS"] = str(models)
    env = dict(os.environ)
    check = subprocess.run(
        [sys.executable, "-m", "pipeline.weights", "check", "--verify"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows["garbage_tensors.check_verify_exit"] = check.returncode
    worker._PIPELINE = None
    for attempt in ("first", "second"):
        started = time.monotonic()
        result = worker.handler(
            {
                "id": "b",
                "input": {
                    "image": b64,
                    "model": "hunyuan3d-2",
                    "steps": 2,
                    "octree_resolution": 64,
                    "remove_background": False,
                    "generate_texture": False,
                },
            }
        )
        rows[f"garbage_tensors.{attempt}_request_s"] = round(time.monotonic() - started, 2)
        rows[f"garbage_tensors.{attempt}_request"] = (result.get("error") or "no error")[:90]
    start_up = subprocess.run(
        [sys.executable, str(repo / "worker.py")],
        cwd=scratch,
        env=dict(env, HY3D_MODEL="hunyuan3d-2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows["garbage_tensors.start_up"] = _start_up_outcome(start_up)

    models = scratch / "badyaml"
    folder = _tiny_model(models)
    (folder / "config.yaml").write_text("model: [unclosed\n  : {{{ garbage\n")
    env = dict(os.environ, HY3DGEN_MODELS=str(models), HY3D_MODEL="hunyuan3d-2")
    start_up = subprocess.run(
        [sys.executable, str(repo / "worker.py")], cwd=scratch, env=env, capture_output=True, text=True, timeout=300
    )
    rows["garbage_config.start_up"] = _start_up_outcome(start_up)
    os.environ["HY3DGEN_MODELS"] = str(models)
    worker._PIPELINE = None
    result = worker.handler({"id": "b", "input": {"image": b64, "model": "hunyuan3d-2", "remove_background": False}})
    rows["garbage_config.request_error_lines"] = len(result["error"].splitlines())
    rows["garbage_config.request_error_chars"] = len(result["error"])
    os.environ["HY3DGEN_MODELS"] = str(scratch / "hy3dgen")


def probe_app(rows: dict) -> None:
    import requests

    import app
    from fakes.servers import free_port

    extra = getattr(app, "launch_kwargs", None)
    for auth in (None, ("qa", "s3cret")):
        demo = app.build_demo()
        port = free_port()
        kwargs = extra(auth) if extra else {"auth": auth}
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **kwargs)
        url = f"http://127.0.0.1:{port}/"
        try:
            if auth is None:
                big = requests.post(
                    url + "gradio_api/upload",
                    timeout=120,
                    files={"files": ("big.png", b"\0" * (100 * 1024 * 1024), "image/png")},
                )
                rows["app.upload_100MB_status"] = big.status_code
                continue
            page = requests.get(url, timeout=30).text
            rows["app.auth.page_embeds_api_info"] = '"/generate"' in page
            rows["app.auth.openapi_json_status"] = requests.get(url + "openapi.json", timeout=30).status_code
            codes = [
                requests.post(url + "login", data={"username": "qa", "password": f"x{i}"}, timeout=30).status_code
                for i in range(50)
            ]
            rows["app.auth.50_wrong_logins"] = {str(code): codes.count(code) for code in sorted(set(codes))}
        finally:
            demo.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=HERE, help="checkout to measure (default: this one)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the silent-bucket probe")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    scratch = _setup(root)
    os.chdir(scratch)
    b64 = base64.b64encode(_png()).decode()
    rows: dict = {}
    probe_worker(rows, b64, slow=not args.skip_slow)
    probe_weights(rows, b64, root, scratch)
    probe_app(rows)
    for key, value in rows.items():
        print(f"{key}: {value}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
