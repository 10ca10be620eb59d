"""Gradio Blocks app over the shared pipeline: QA's browser face, and the
``/generate`` endpoint for gradio_client scripts.

Only translation lives here: widgets -> request fields -> ``parse_options``,
and ``GenerationResult`` -> viewer, download and stats. Run ``python app.py
--help`` for flags; every flag also has an environment variable (README).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pipeline import app_guard
from pipeline.errors import PipelineError, describe_failure
from pipeline.models import MODEL_CHOICES, MULTIVIEW_MODELS, PAINT_MODELS, TEXTURE_SIZES, VIEW_NAMES
from pipeline.options import FIELDS_BY_NAME, parse_options
from pipeline.progress import STAGES
from pipeline.response import summary
from pipeline.runpod.remote import RemoteGenerator, RemoteSettings
from pipeline.service import ImageTo3D
from pipeline.settings import env_int, load_settings
from pipeline.types import GenerationResult, Generator

DEFAULT_QUEUE_SIZE = 16
HISTORY_SIZE = 8  # previews kept in the session's history gallery


def _output_dir() -> Path:
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "hy3d-outputs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def result_ttl_s() -> int:
    """``HY3D_RESULT_TTL_S``: uploads and result GLBs older than this are deleted."""
    return env_int("HY3D_RESULT_TTL_S", app_guard.DEFAULT_RESULT_TTL_S, minimum=1)


def _guard_image_preprocess(image) -> None:
    """An upload that cannot be read (truncated onto a full disk, or not an
    image) fails with one sentence, not Gradio's "Could not preprocess input
    component ... {'path': <server temp path>}". Set on the instance: a
    subclass would change the component's name the browser looks up."""
    import gradio as gr

    original = image.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - never echo the payload (a server path)
            try:
                app_guard.require_free_disk()
            except app_guard.DiskFullError:
                raise gr.Error(app_guard.DISK_FULL_MESSAGE) from None
            except OSError:
                raise gr.Error(app_guard.DISK_FULL_MESSAGE) from None
            raise gr.Error(f"The upload could not be read as an image ({type(exc).__name__}).") from None

    image.preprocess = preprocess


def request_fields(
    model: str,
    profile: float,
    generate_texture: bool,
    remove_background: bool,
    seed: float,
    max_faces: float,
    steps: float | None,
    guidance_scale: float | None,
    octree_resolution: float | None,
    num_chunks: float | None,
    texture_size: float | str | None = None,
    paint_model: str | None = None,
    smooth_normals: bool | None = None,
) -> dict[str, Any]:
    """Widget values -> request fields. Sliders and number boxes send floats;
    whole numbers become ints so the shared schema's strict checks apply."""

    def as_int(value):
        return int(value) if isinstance(value, float) and value.is_integer() else value

    fields = {
        "model": model,
        "profile": as_int(profile),
        "generate_texture": generate_texture,
        "remove_background": remove_background,
        "seed": as_int(seed),
        "max_faces": as_int(max_faces),
        "steps": as_int(steps),
        "guidance_scale": guidance_scale,
        "octree_resolution": as_int(octree_resolution),
        "num_chunks": as_int(num_chunks),
        # Dropdowns hand back the choice as shown; the schema wants an int.
        "texture_size": int(texture_size)
        if isinstance(texture_size, str) and texture_size.isdigit()
        else as_int(texture_size),
        "paint_model": paint_model,
        "smooth_normals": smooth_normals,
    }
    return {k: v for k, v in fields.items() if v is not None}


def stats_markdown(result: GenerationResult) -> str:
    lines = [
        f"**Model** {result.model} · **seed** {result.seed} · "
        f"**profile** {result.profile if result.profile is not None else 'n/a'}",
        f"**Faces** {result.faces:,} · **vertices** {result.vertices:,} · "
        f"**textured** {'yes' if result.textured else 'no'}",
        f"**GLB** {result.file_size / 1e6:.2f} MB · **total** {result.execution_time:.2f} s",
        "",
        "| stage | seconds |",
        "|---|---|",
        *(f"| {stage} | {seconds:.3f} |" for stage, seconds in result.timings.items()),
    ]
    if result.warnings:
        lines += ["", "**Warnings**", *(f"- {w}" for w in result.warnings)]
    return "\n".join(lines)


def _schema_checked(component):
    """Leave range checks to the shared schema, so an out-of-range value sent
    through gradio_client gets the worker's sentence ("Field 'max_faces' must
    be ...") instead of Gradio's own; the widget still shows the schema's range."""
    from gradio.components import Number

    precision = getattr(component, "precision", None)

    def preprocess(payload):
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return Number.round_to_precision(payload, precision)
        return payload  # None or a wrong type: the schema names the field and the problem

    component.preprocess = preprocess
    return component


def _schema_number(name: str, *, label: str, value=None):
    """A number box whose range (and integer-ness) comes from the schema field ``name``."""
    import gradio as gr

    spec = FIELDS_BY_NAME[name]
    return _schema_checked(
        gr.Number(
            value=value,
            precision=0 if spec.kind is int else None,
            minimum=spec.minimum,
            maximum=spec.maximum,
            label=label,
            info=f"{spec.rule()}" + ("; empty = model default" if spec.nullable else ""),
        )
    )


# Gradio 6's number box replaces a null value with 0 when it first renders
# (its frontend does ``props.value ??= 0``), which happens when the Advanced
# accordion opens; there an empty box means "model default". These run in the
# browser only (no API route, so gradio_client's None is untouched): closing
# records which boxes are empty, opening turns the 0 of a box that was empty
# back into null, so a value the user typed (0 included) is kept.
_RECORD_EMPTY_BOXES_JS = """
(...values) => { window.__hy3dEmptyBoxes = values.map((v) => v === null || v === undefined); return values; }
"""
_RESTORE_EMPTY_BOXES_JS = """
(...values) => {
    const empty = window.__hy3dEmptyBoxes ?? values.map(() => true);
    return values.map((v, i) => (empty[i] && v === 0 ? null : v));
}
"""


def build_demo(pipeline: Generator | None = None):
    """The Blocks UI over ``pipeline``: the local ImageTo3D by default, or a
    RemoteGenerator that sends each job to the deployed RunPod endpoint."""
    import gradio as gr

    pipeline = pipeline or ImageTo3D(draft_fallback=True)
    settings = pipeline.settings
    try:
        notice = pipeline.choose_model(settings.default_model).notice
    except PipelineError as exc:  # no weights for HY3D_MODEL: the banner says so
        notice = str(exc)

    def generate(
        image,
        model,
        profile,
        generate_texture,
        remove_background,
        seed,
        randomize_seed,
        max_faces,
        steps=None,
        guidance_scale=None,
        octree_resolution=None,
        num_chunks=None,
        texture_size=None,
        paint_model=None,
        smooth_normals=None,
        history=None,
        view_left=None,
        view_back=None,
        view_right=None,
        progress=gr.Progress(),  # noqa: B008 - Gradio injects its tracker where this default stands
    ):
        # None defaults make the empty "model default" boxes optional in
        # gradio_client's keyword form too: client.predict(image=..., model="draft").
        image_path = image
        if not image_path:
            raise gr.Error("Upload an image first.")
        try:  # before any model runs: a result that cannot be written is a job wasted
            app_guard.require_free_disk()
        except (app_guard.DiskFullError, OSError):
            raise gr.Error(app_guard.DISK_FULL_MESSAGE) from None
        if randomize_seed:
            seed = random.randint(*(int(bound) for bound in FIELDS_BY_NAME["seed"].bounds))
        try:
            fields = request_fields(
                model,
                profile,
                generate_texture,
                remove_background,
                seed,
                max_faces,
                steps,
                guidance_scale,
                octree_resolution,
                num_chunks,
                texture_size,
                paint_model,
                smooth_normals,
            )
            # The app always asks for the preview: it feeds the history gallery.
            options = parse_options({**fields, "preview": True}, settings=settings)
            image_bytes = Path(image_path).read_bytes()
            paths = dict(zip(VIEW_NAMES, (view_left, view_back, view_right), strict=True))
            views = {view: Path(path).read_bytes() for view, path in paths.items() if path}

            def report(stage: str, fraction: float, message: str = "") -> None:
                index = STAGES.index(stage) if stage in STAGES else 0
                progress((index + min(max(fraction, 0.0), 1.0)) / len(STAGES), desc=f"{stage}: {message}")

            result = pipeline.generate(image_bytes, options, report, views=views)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the worker's sentence
            raise gr.Error(describe_failure(exc)[0]) from None
        for warning in result.warnings:
            gr.Warning(warning)
        try:
            path = _output_dir() / f"model-{uuid.uuid4().hex[:12]}.glb"
            path.write_bytes(result.glb)
        except OSError as exc:
            if app_guard.is_disk_full(exc):
                raise gr.Error(app_guard.DISK_FULL_MESSAGE) from None
            raise gr.Error(describe_failure(exc)[0]) from None
        return (
            str(path),
            str(path),
            stats_markdown(result),
            summary(result),
            options.seed,
            remember(history, result, path),
        )

    def remember(history, result: GenerationResult, glb_path: Path) -> list:
        """The session's history with this result's preview first, at most HISTORY_SIZE entries."""
        if not result.preview_png:
            return list(history or [])
        preview_path = glb_path.with_suffix(".png")
        preview_path.write_bytes(result.preview_png)
        caption = (
            f"{result.model} · seed {result.seed} · {result.faces:,} faces · "
            f"{'textured' if result.textured else 'untextured'} · {result.execution_time:.1f} s"
        )
        return [(str(preview_path), caption), *(history or [])][:HISTORY_SIZE]

    ttl = result_ttl_s()
    # Gradio deletes its own cache (uploads, and the copies of results it serves)
    # past the TTL and at shutdown; the sweeper does hy3d-outputs.
    with gr.Blocks(title="Image to 3D", delete_cache=(max(1, min(ttl, 300)), ttl)) as demo:
        gr.Markdown("## Image to 3D (Hunyuan3D-2)")
        gr.Markdown(f"**Backend:** {notice}", elem_id="backend-notice")
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None passes the uploaded file through untouched, so a
                # transparent PNG keeps its alpha (and skips background removal).
                image_input = gr.Image(
                    label="Image",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    elem_id="input-image",
                )
                _guard_image_preprocess(image_input)
                with gr.Accordion("Multi-view (optional: multi-view models)", open=False):
                    gr.Markdown(
                        "The image above is the front; add any of left, back and right (hy3dgen's order: "
                        "front, turned 90° clockwise, back, turned 270°). Views need a multi-view model: "
                        f"{', '.join(MULTIVIEW_MODELS)}, or auto."
                    )
                    with gr.Row():
                        view_images = [
                            gr.Image(
                                label=view.capitalize(),
                                type="filepath",
                                image_mode=None,
                                sources=["upload", "clipboard"],
                                elem_id=f"view-{view}",
                                height=160,
                            )
                            for view in VIEW_NAMES
                        ]
                        for view_image in view_images:
                            _guard_image_preprocess(view_image)
                model = gr.Dropdown(list(MODEL_CHOICES), value=settings.default_model, label="Model")
                profile = _schema_checked(
                    gr.Slider(
                        *FIELDS_BY_NAME["profile"].bounds,
                        value=settings.default_profile,
                        step=1,
                        label="Memory profile (mmgp)",
                        info="1 = fastest, most VRAM; 5 = least VRAM",
                    )
                )
                with gr.Row():
                    generate_texture = gr.Checkbox(value=True, label="Generate texture")
                    remove_background = gr.Checkbox(value=True, label="Remove background")
                with gr.Row():
                    seed = _schema_number("seed", label="Seed", value=FIELDS_BY_NAME["seed"].default)
                    randomize_seed = gr.Checkbox(value=False, label="Randomize seed")
                max_faces_spec = FIELDS_BY_NAME["max_faces"]
                max_faces = _schema_checked(
                    gr.Slider(
                        *max_faces_spec.bounds,
                        value=max_faces_spec.default,
                        step=1000,
                        label="Max faces",
                    )
                )
                with gr.Accordion("Advanced (Hunyuan3D models; empty = model default)", open=False) as advanced:
                    steps = _schema_number("steps", label="Steps")
                    guidance_scale = _schema_number("guidance_scale", label="Guidance scale")
                    octree_resolution = _schema_number("octree_resolution", label="Octree resolution")
                    num_chunks = _schema_number("num_chunks", label="Num chunks")
                    texture_size = gr.Dropdown(
                        list(TEXTURE_SIZES), value=FIELDS_BY_NAME["texture_size"].default, label="Texture size (px)"
                    )
                    paint_model = gr.Dropdown(
                        list(PAINT_MODELS), value=FIELDS_BY_NAME["paint_model"].default, label="Paint model"
                    )
                    smooth_normals = gr.Checkbox(
                        value=FIELDS_BY_NAME["smooth_normals"].default, label="Smooth normals (+12 bytes a vertex)"
                    )
                button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            with gr.Column(scale=1):
                viewer = gr.Model3D(
                    label="Preview", clear_color=(0.92, 0.92, 0.92, 1.0), height=480, elem_id="model-viewer"
                )
                download = gr.File(label="Download GLB", elem_id="glb-download")
                stats = gr.Markdown(elem_id="stats")
                stats_json = gr.JSON(visible=False)
        history = gr.State([])
        gallery = gr.Gallery(
            label=f"Recent results (last {HISTORY_SIZE}, newest first)",
            columns=HISTORY_SIZE,
            height=200,
            object_fit="contain",
            elem_id="history-gallery",
        )
        button.click(
            generate,
            inputs=[
                image_input,
                model,
                profile,
                generate_texture,
                remove_background,
                seed,
                randomize_seed,
                max_faces,
                steps,
                guidance_scale,
                octree_resolution,
                num_chunks,
                texture_size,
                paint_model,
                smooth_normals,
                history,
                *view_images,
            ],
            outputs=[viewer, download, stats, stats_json, seed, history],
            api_name="generate",
        ).then(lambda items: items, inputs=[history], outputs=[gallery], api_visibility="private")
        # Empty "model default" boxes stay empty (None) once the accordion opens.
        nullable_boxes = [steps, guidance_scale, octree_resolution, num_chunks]
        advanced.expand(
            None,
            inputs=nullable_boxes,
            outputs=nullable_boxes,
            js=_RESTORE_EMPTY_BOXES_JS,
            queue=False,
            api_visibility="private",
        )
        advanced.collapse(
            None, inputs=nullable_boxes, outputs=None, js=_RECORD_EMPTY_BOXES_JS, queue=False, api_visibility="private"
        )
    queue_size = env_int("HY3D_QUEUE_SIZE", DEFAULT_QUEUE_SIZE)
    demo.queue(default_concurrency_limit=1, max_size=queue_size)
    sweeper = app_guard.Sweeper(_output_dir(), ttl).start()
    _on_close(demo, sweeper)
    return demo


DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def resolve_bind(host: str | None, port: int | None, env=os.environ) -> tuple[str, int]:
    """Bind address by precedence: flag, then HY3D_HOST/HY3D_PORT, then
    Gradio's own GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (set by Docker images
    and hosted platforms), then 127.0.0.1:7860."""

    def first(*names: str) -> tuple[str, str] | None:
        for name in names:
            value = env.get(name, "").strip()
            if value:
                return name, value
        return None

    if host is None:
        found = first("HY3D_HOST", "GRADIO_SERVER_NAME")
        host = found[1] if found else DEFAULT_HOST
    if port is None:
        found = first("HY3D_PORT", "GRADIO_SERVER_PORT")
        if found is None:
            port = DEFAULT_PORT
        else:
            name, raw = found
            if not raw.isdigit() or not 1 <= int(raw) <= 65535:
                raise PipelineError(f"Environment variable {name} must be a port from 1 to 65535, got {raw[:40]!r}.")
            port = int(raw)
    if not 1 <= port <= 65535:
        raise PipelineError(f"--port must be from 1 to 65535, got {port}.")
    return host, port


def _on_close(demo, sweeper: app_guard.Sweeper) -> None:
    """Stop the sweeper and delete this process's results when the app closes."""
    close = demo.close

    def closing(*args, **kwargs):
        sweeper.stop()
        app_guard.sweep_old_files(sweeper.folder, -1.0)
        return close(*args, **kwargs)

    demo.close = closing


def launch_kwargs(auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """What ``demo.launch`` gets besides host and port: the upload cap (the
    configured image byte limit), no FastAPI ``/openapi.json``/docs, and the
    guard middleware (auth gate and login throttle when ``auth`` is set)."""
    from starlette.middleware import Middleware

    limit = load_settings().max_image_bytes
    throttle = app_guard.LoginThrottle(
        attempts=env_int("HY3D_LOGIN_ATTEMPTS", app_guard.DEFAULT_LOGIN_ATTEMPTS),
        window_s=float(env_int("HY3D_LOGIN_WINDOW_S", int(app_guard.DEFAULT_LOGIN_WINDOW_S))),
    )
    return {
        "auth": auth,
        "max_file_size": limit,
        "app_kwargs": {
            "openapi_url": None,
            "docs_url": None,
            "redoc_url": None,
            "middleware": [
                Middleware(app_guard.AppGuard, auth=auth is not None, throttle=throttle, max_upload_bytes=limit)
            ],
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Image-to-3D Gradio app. Every flag has an environment variable (README, 'Configuration')."
    )
    parser.add_argument(
        "--host", default=None, help=f"bind address (default {DEFAULT_HOST}; env HY3D_HOST, else GRADIO_SERVER_NAME)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default {DEFAULT_PORT}; env HY3D_PORT, else GRADIO_SERVER_PORT)"
    )
    parser.add_argument(
        "--auth", default=os.environ.get("HY3D_AUTH"), help="basic auth as user:password (default: none; env HY3D_AUTH)"
    )
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        default=os.environ.get("HY3D_WARM_UP", "1").strip().lower() not in ("0", "false", "no"),
        help="skip the start-up warm-up job (default: warm up; env HY3D_WARM_UP=0 skips it)",
    )
    args = parser.parse_args(argv)
    args.host, args.port = resolve_bind(args.host, args.port)
    return args


def warm_up(pipeline: Generator) -> float:
    """Pay at start-up what the first job would otherwise pay: the configured
    model's load, then one tiny draft job through every stage (OpenCV,
    scikit-image, VTK, trimesh and the GLB writer import and warm their
    caches). Returns the seconds spent. bench/app_warmup.py measures it."""
    import time

    started = time.perf_counter()
    try:
        pipeline.warm_up()  # the model's load and the mesh code's one-off costs
    except PipelineError:  # no weights: the page says so, and draft serves
        from pipeline import mesh

        mesh.warm_up()  # the pipeline's warm-up stopped before its own
    image = _warm_up_image()
    # Every job of the app asks for the preview (the history gallery), so the warm-up does too.
    options = parse_options({"model": "draft", "max_faces": 2000, "preview": True}, settings=pipeline.settings)
    pipeline.generate(image, options)
    return time.perf_counter() - started


def _warm_up_image() -> bytes:
    """A 64 px disc on white, as PNG: enough for every stage to run."""
    import io

    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:64]
    rgb = np.full((64, 64, 3), 255, np.uint8)
    rgb[(xx - 32) ** 2 + (yy - 32) ** 2 < 400] = (200, 60, 40)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    from pipeline.shutdown import exit_on_sigterm

    exit_on_sigterm("app")  # docker stop: exit 0 at once instead of SIGKILL after the grace period
    try:
        args = parse_args(argv)
    except PipelineError as exc:
        raise SystemExit(str(exc)) from None
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SystemExit("--auth / HY3D_AUTH must look like user:password")
        auth = (user, password)
    try:
        remote = RemoteSettings.from_env()
        pipeline: Generator = RemoteGenerator(remote) if remote else ImageTo3D(draft_fallback=True)
        demo = build_demo(pipeline)
        options = launch_kwargs(auth)
    except PipelineError as exc:  # bad configuration: one clear line, no traceback
        raise SystemExit(str(exc)) from None
    if args.warm_up and not remote:
        print(f"warmed up in {warm_up(pipeline):.1f} s", flush=True)
    try:
        demo.launch(server_name=args.host, server_port=args.port, show_error=True, **options)
    finally:  # SIGTERM or Ctrl-C: stop the server and delete this process's results
        demo.close()


if __name__ == "__main__":
    main()
