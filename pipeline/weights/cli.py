"""``python -m pipeline.weights``: ``check`` lists every asset, present or missing, and
``download`` fetches what is missing (the README's "Weights" section documents both).

Kept apart from the lookups so the library modules stay free of argparse and
printing; the Docker image's weights layer runs this CLI before the rest of
the package is copied.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..models import DEFAULT_REMBG_MODEL, HUNYUAN_MODELS
from ..settings import rembg_model_from_env
from .assets import TEXTURE_SUBFOLDERS, AssetStatus, check_assets
from .commands import CLI
from .fetch import DEFAULT_TIMEOUT_S, download
from .roots import search_roots
from .shape import find_model
from .verify import verify_assets

DESCRIPTION = "Where model weights live, whether they are complete, and how to fetch them."
LICENCE_NOTICE = (
    "Licence: Tencent's Hunyuan3D-2 weights are under the Tencent Hunyuan 3D 2.0 Community License, which does "
    "not apply in the EU, the UK or South Korea, has its own terms above a large monthly active user count and "
    "comes with an acceptable-use policy; read it (LICENSE in the model repository) before use."
)


def _print_check(statuses: list[AssetStatus]) -> None:
    for status in statuses:
        label = f"{status.kind}:{status.name}"
        if status.location:
            print(f"present  {label:<42} {status.location}  [{status.source}]")
        else:
            print(f"missing  {label:<42} -> {status.hint}")
    print("Searched, in order: " + "; ".join(f"{r.source}={r.path}" for r in search_roots()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=CLI, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="list every model and asset, present or missing, and where")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("--require", choices=sorted(HUNYUAN_MODELS), help="exit 1 unless this model is present")
    check.add_argument(
        "--verify",
        action="store_true",
        help="also read every weights file: recorded checksums and finite tensors (exit 1 if damaged)",
    )
    get = sub.add_parser("download", help="download a model's subfolders (and texture/rembg assets)")
    get.add_argument("--model", choices=sorted(HUNYUAN_MODELS))
    get.add_argument("--texture", action="store_true", help=f"also {', '.join(TEXTURE_SUBFOLDERS)}")
    get.add_argument(
        "--rembg",
        action="store_true",
        help=f"also the background-removal model (REMBG_MODEL, else {DEFAULT_REMBG_MODEL})",
    )
    where = get.add_mutually_exclusive_group()
    where.add_argument("--dest", type=Path, help="root in hy3dgen layout (default: $HY3DGEN_MODELS)")
    where.add_argument("--hf-cache", action="store_true", help="download into the Hugging Face cache instead")
    get.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="network timeout in seconds; overrides HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT "
        f"(default: those where set, else {DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rembg_name = rembg_model_from_env()
    if args.command == "check":
        statuses = check_assets(rembg_name)
        checks = verify_assets() if args.verify else []
        damaged = [item for item in checks if item.status == "damaged"]
        if args.json:
            listing = [status.__dict__ for status in statuses]
            print(
                json.dumps(
                    {"assets": listing, "verified": [c.__dict__ for c in checks]} if args.verify else listing, indent=2
                )
            )
        else:
            _print_check(statuses)
            for item in checks:
                print(f"{item.status:<10} {item.path}" + (f"  ({item.detail})" if item.detail else ""))
            if args.verify:
                print(f"Verified {len(checks)} files: {len(damaged)} damaged.")
        failed = bool(args.require and find_model(args.require) is None) or bool(damaged)
        return 1 if failed else 0
    if not (args.model or args.texture or args.rembg):
        print("download: give --model NAME and/or --texture / --rembg.", file=sys.stderr)
        return 2
    if args.model or args.texture:
        print(LICENCE_NOTICE)
    try:
        download(
            args.model,
            texture=args.texture,
            rembg=rembg_name if args.rembg else None,
            dest=args.dest,
            hf_cache=args.hf_cache,
            timeout=args.timeout,
        )
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure as one clear line
        print(f"download failed: {exc}", file=sys.stderr)
        return 1
    print("Done.")
    return 0
