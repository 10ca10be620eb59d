"""Command-line face: ``python -m pipeline IMAGE [IMAGE ...] -o OUTDIR``.

The same ``ImageTo3D`` and options schema as the worker and the app. Every
request field is a flag derived from :data:`pipeline.options.FIELDS`, named as
in the worker API (``--max_faces`` or ``--max-faces``; booleans also take
``--no-...``), and values are checked by the schema itself, so a bad value
gets the worker's own sentence. ``python -m pipeline request IMAGE [flags]``
prints the RunPod request body for a local image instead (``> request.json``,
then ``curl -d @request.json``): base64 of a photo is far too long for a
command-line argument. ``--view-left/--view-back/--view-right PATH`` are the
``views`` field (multi-view models); IMAGE is the front, so they take one IMAGE.

Heavy libraries load only once a job runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError, describe_failure
from .models import VIEW_NAMES
from .options import FIELDS, FieldSpec, parse_options
from .progress import STAGES
from .views import FIELD as VIEWS_FIELD
from .views import check_views, require_multiview, view_field

if TYPE_CHECKING:  # pragma: no cover
    from tqdm import tqdm

# Short spellings the README and the issue use for the two switches everyone flips.
ALIASES = {"generate_texture": ("--texture",), "remove_background": ("--background",)}
# How the worker returns its GLB (inline / bucket URL) has no meaning when
# the GLB is written to a file, so only the request subcommand takes it.
REQUEST_ONLY = ("output",)
USAGE_NOTE = "Run `python -m pipeline request IMAGE --help` for the request-body subcommand."


def _scalar(text: str) -> Any:
    """A flag's text as JSON would carry it (integer, number, null or string);
    the schema then decides, with the worker's sentence, whether it fits."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return None if text in ("null", "none", "default") else text


def _help(spec: FieldSpec) -> str:
    rule = spec.rule() + (", or null for the model's default" if spec.nullable else "")
    default = spec.default if not callable(spec.default) else None
    suffix = f" (default: {default})" if default is not None and not spec.nullable else ""
    return f"{spec.doc} Must be {rule}.{suffix}".replace("%", "%%")


def add_field_flags(parser: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """One flag per schema field; unset flags are left out, so the worker's
    defaults (HY3D_MODEL, HY3D_PROFILE, ...) apply exactly as for a request."""
    group = parser.add_argument_group("request fields (as in the worker API; README, 'Request fields')")
    for spec in FIELDS:
        if spec.name in exclude:
            continue
        names = [f"--{spec.name}"]
        if "_" in spec.name:
            names.append(f"--{spec.name.replace('_', '-')}")
        names += ALIASES.get(spec.name, ())
        if spec.kind is bool:
            group.add_argument(
                *names,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=_help(spec),
            )
        else:
            metavar = "|".join(map(str, spec.choices)) if spec.choices else spec.kind.__name__.upper()
            group.add_argument(
                *names, dest=spec.name, type=_scalar, default=argparse.SUPPRESS, metavar=metavar, help=_help(spec)
            )


def add_view_flags(parser: argparse.ArgumentParser) -> None:
    """The ``views`` field as one file flag per view (``--view-left``)."""
    group = parser.add_argument_group(
        "multi-view input (the 'views' field; README, 'Multi-view input')",
        "Extra pictures of the subject for a multi-view model (or auto); IMAGE is the front, so views "
        "take exactly one IMAGE.",
    )
    for view in VIEW_NAMES:
        group.add_argument(
            f"--view-{view}",
            f"--view_{view}",
            dest=f"view_{view}",
            type=Path,
            metavar="PATH",
            default=None,
            help=f"the {view} view: PNG, JPEG or WebP file",
        )


def view_paths(args: argparse.Namespace) -> dict[str, Path]:
    return {view: getattr(args, f"view_{view}") for view in VIEW_NAMES if getattr(args, f"view_{view}") is not None}


def read_views(args: argparse.Namespace, model: str) -> dict[str, bytes]:
    """The view files as the worker's ``views`` field: its shape checks and
    its multi-view model check, before any file is read or model loaded."""
    paths = check_views(view_paths(args))
    require_multiview(model, paths)
    return {view: _read(path) for view, path in paths.items()}


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(args, spec.name) for spec in FIELDS if hasattr(args, spec.name)}


def _generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        usage="python -m pipeline IMAGE [IMAGE ...] -o OUTDIR [--model M] [--seed N] [--no-texture] [...]",
        description="Turn images into GLB models with the service's pipeline, one GLB per image.",
        epilog=USAGE_NOTE,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or WebP files")
    parser.add_argument(
        "-o",
        "--output-dir",
        required=True,
        type=Path,
        metavar="OUTDIR",
        help="folder for the GLBs (<image name>.glb), created if missing",
    )
    add_field_flags(parser, exclude=REQUEST_ONLY)
    add_view_flags(parser)
    return parser


def _request_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline request",
        usage="python -m pipeline request IMAGE [--model M] [--seed N] [--no-texture] [...] > request.json",
        description='Print the RunPod request body {"input": {...}} for a local image, for '
        "`python worker.py` (save it as test_input.json) or `curl -d @request.json`.",
    )
    parser.add_argument("image", metavar="IMAGE", help="PNG, JPEG or WebP file")
    add_field_flags(parser)
    add_view_flags(parser)
    return parser


class _StageBars:
    """One tqdm bar per stage, each closed when the next stage starts."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.stage: str | None = None

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            step = f"{STAGES.index(stage) + 1}/{len(STAGES)} " if stage in STAGES else ""
            self.bar = bar = tqdm(
                total=100,
                desc=f"{self.label} {step}{stage}",
                unit="%",
                leave=True,
                bar_format="{desc:<40} {bar} {n_fmt}% {postfix}",
                file=sys.stderr,
            )
        else:
            bar = self.bar
        target = round(100 * min(max(float(fraction), 0.0), 1.0))
        if target > bar.n:
            bar.update(target - bar.n)
        if message:
            bar.set_postfix_str(message[:60], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stats_line(image: str, path: Path, result) -> str:
    profile = result.profile if result.profile is not None else "n/a"
    return (
        f"{image} -> {path}: model={result.model} seed={result.seed} profile={profile} faces={result.faces} "
        f"vertices={result.vertices} textured={'yes' if result.textured else 'no'} "
        f"size={result.file_size / 1e6:.2f}MB time={result.execution_time:.2f}s"
    )


def _out_path(outdir: Path, image: Path, used: set[Path]) -> Path:
    path, n = outdir / f"{image.stem}.glb", 1
    while path in used:
        n += 1
        path = outdir / f"{image.stem}-{n}.glb"
    used.add(path)
    return path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"Cannot read image file {str(path)!r} ({exc.strerror or exc}).") from None


def generate_main(argv: Sequence[str]) -> int:
    args = _generate_parser().parse_args(argv)
    fields = request_fields(args)
    from .settings import load_settings

    try:
        settings = load_settings()
        options = parse_options(fields, settings=settings)  # bad flags fail before any model loads
        if view_paths(args) and len(args.images) != 1:
            raise PipelineError(
                f"Views (--view-left/--view-back/--view-right) go with exactly one IMAGE, "
                f"the front; got {len(args.images)} images."
            )
        views = read_views(args, options.model)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from .service import ImageTo3D

    pipeline = ImageTo3D(settings, draft_fallback=True)
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(
            f"error: Cannot create the output folder {str(args.output_dir)!r} ({exc.strerror or exc}).", file=sys.stderr
        )
        return 1
    failed, used = 0, set[Path]()
    for name in args.images:
        image = Path(name)
        bars = _StageBars(image.name)
        try:
            result = pipeline.generate(_read(image), options, bars, views=views)
        except Exception as exc:  # noqa: BLE001 - each failure is one sentence; the other images still run
            bars.close()
            failed += 1
            print(f"error: {image}: {describe_failure(exc)[0]}", file=sys.stderr)
            continue
        bars.close()
        path = _out_path(args.output_dir, image, used)
        path.write_bytes(result.glb)
        if result.preview_png:  # --preview: the PNG beside its GLB
            path.with_suffix(".png").write_bytes(result.preview_png)
        for warning in result.warnings:
            print(f"warning: {image}: {warning}", file=sys.stderr)
        print(stats_line(str(image), path, result), flush=True)
    return 1 if failed else 0


def request_main(argv: Sequence[str]) -> int:
    args = _request_parser().parse_args(argv)
    fields = request_fields(args)
    from . import image_io
    from .settings import load_settings

    try:
        settings = load_settings()
        options = parse_options(fields, settings=settings)
        views = read_views(args, options.model)
        data = _read(Path(args.image))
        image_io.load_image(data, settings)  # the worker would refuse it: say so now
        for view, picture in views.items():
            image_io.load_image(picture, settings, view_field(view))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    body = {"input": {"image": base64.b64encode(data).decode("ascii"), **fields}}
    if views:
        body["input"][VIEWS_FIELD] = {
            view: base64.b64encode(picture).decode("ascii") for view, picture in views.items()
        }
    try:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader left; nothing more to say
        sys.stderr.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "request":
        return request_main(argv[1:])
    return generate_main(argv)
