"""GPU benchmark of the Hunyuan3D-2 shape backend at full size, without downloads.

Random full-size checkpoints are written from the real config structure (the
VAE's geo-decoder is made analytic, so surface extraction sees a real closed
surface), then loaded through :class:`pipeline.backends.hunyuan.HunyuanShapeBackend`
exactly as in production. For each variant (standard, turbo, fast: the
guidance-distilled DiT, one pass a step instead of CFG's two; multiview: the 2mv
DiT conditioned on four views) and mmgp profile it prints load time, seconds
per diffusion step, decode time, total and peak VRAM. The fast and multiview
rows reuse the v2-0 sizes (``FULL_DIMS``); the real 2mv config is unverified.

    python bench/gpu_shape.py                 # needs CUDA; stays under --budget-s
    python bench/gpu_shape.py --dry-run       # any machine: parameter counts on the meta device

Run from the repository root.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gpu_common as gpu

VARIANTS = {
    "standard": "hunyuan3d-2",
    "turbo": "hunyuan3d-2-turbo",
    "fast": "hunyuan3d-2-fast",
    "multiview": "hunyuan3d-2mv",
}


@dataclass
class Row:
    variant: str
    profile: int
    load_s: float
    step_s: float
    decode_s: float
    total_s: float
    peak_gib: float
    faces: int


# -- dry run ------------------------------------------------------------------


def dry_run() -> dict[str, dict[str, int]]:
    """Instantiate the full-size configs on the meta device (no memory, no
    weights) and return parameter counts per variant and component."""
    import torch
    from hy3dgen.shapegen.pipelines import instantiate_from_config

    from fakes.tiny_hunyuan import FULL_DIMS, shape_config, vae_config

    counts: dict[str, dict[str, int]] = {}
    with torch.device("meta"):
        for variant in VARIANTS:
            config = shape_config(
                FULL_DIMS, turbo=variant == "turbo", fast=variant == "fast", multiview=variant == "multiview"
            )
            counts[variant] = {
                part: gpu.param_count(instantiate_from_config(config[part])) for part in ("model", "vae", "conditioner")
            }
            if variant == "turbo":
                counts[variant]["turbo_vae"] = gpu.param_count(instantiate_from_config(vae_config(FULL_DIMS)))
    for variant, parts in counts.items():
        detail = ", ".join(f"{part} {n / 1e6:,.1f}M" for part, n in parts.items())
        print(f"{variant:<9} {VARIANTS[variant]:<18} {detail}")
    return counts


# -- the measured run -----------------------------------------------------------


def write_checkpoints(root: Path, dims, device: str, variants=tuple(VARIANTS)) -> None:
    """Random checkpoints of size ``dims`` for ``variants``, built on ``device``
    (on CUDA the init of 2.5B parameters takes seconds) and written fp16 in
    hy3dgen's layout under ``root``."""
    import torch

    from fakes.tiny_hunyuan import write_model

    for name in (VARIANTS[variant] for variant in variants):
        start = time.perf_counter()
        with torch.device(device):
            write_model(root, name, dims, "sphere")
        gpu.empty_cache(device)
        print(f"wrote {name} in {time.perf_counter() - start:.1f} s", flush=True)


def subject_image(box=(120, 90, 392, 430)):
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(box, fill=(200, 60, 40, 255))
    return image


def subject_views(variant: str, count: int | None = None) -> dict | None:
    """The multiview row's extra views (left, back, right; all three unless
    ``count`` says fewer): four views in all. None for a single-view variant
    unless ``count`` asks for views."""
    if count is None:
        count = 3 if variant == "multiview" else 0
    side = subject_image((180, 90, 332, 430))
    views = {"left": side, "back": subject_image(), "right": side}
    return dict(list(views.items())[:count]) or None


def measure(
    variant: str, profile: int, args: argparse.Namespace, device: str = "cuda", views: int | None = None
) -> Row:
    """Load the variant (a key of ``VARIANTS`` or a model name) with ``profile``
    and warm up in a first request, then time a second one. ``views``: how
    many extra views to send (default: three for ``multiview``, else none)."""
    from pipeline.backends.hunyuan import HunyuanShapeBackend
    from pipeline.options import parse_options

    backend = HunyuanShapeBackend(VARIANTS.get(variant, variant), device=device)  # a key or a model name
    warm = parse_options(
        {"profile": profile, "steps": 2, "octree_resolution": min(128, args.octree), "generate_texture": False}
    )
    # The first request loads from disk and applies the profile (reported as shape_load).
    views = subject_views(variant, views)
    load_s = backend.generate(subject_image(), warm, lambda *a: None, views=views).timings["shape_load"]

    steps: list[float] = []

    def progress(stage: str, fraction: float, message: str = "") -> None:
        if message.startswith("Diffusion step"):
            steps.append(time.perf_counter())

    options = parse_options(
        {  # steps None: the model's own default
            "profile": profile,
            "steps": args.steps,
            "octree_resolution": args.octree,
            "num_chunks": args.num_chunks,
            "generate_texture": False,
        }
    )
    gpu.sync(device)
    gpu.reset_peak(device)
    begin = time.perf_counter()
    out = backend.generate(subject_image(), options, progress, views=views)
    gpu.sync(device)
    total_s = time.perf_counter() - begin
    step_s = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else out.timings["diffusion"]
    row = Row(
        variant,
        profile,
        load_s,
        step_s,
        out.timings["decode"] + out.timings["surface"],
        total_s,
        gpu.peak_gib(device),
        len(out.mesh.faces),
    )
    backend.release()
    del backend, out
    gpu.empty_cache(device)
    return row


def print_row(row: Row) -> None:
    print(
        f"{row.variant:<9} {row.profile:>7} {row.load_s:>9.1f} {row.step_s:>9.3f} {row.decode_s:>9.2f} "
        f"{row.total_s:>9.2f} {row.peak_gib:>10.2f} {row.faces:>8}",
        flush=True,
    )


def run(args: argparse.Namespace, dims=None, device: str = "cuda") -> list[Row]:
    """Write the checkpoints, then measure every (variant, profile) within the budget."""
    import traceback

    from fakes.tiny_hunyuan import FULL_DIMS

    started, rows = time.perf_counter(), []
    with gpu.models_root("hy3d-bench-") as root:
        write_checkpoints(root, dims or FULL_DIMS, device, args.variants)
        print(
            f"{'variant':<9} {'profile':>7} {'load_s':>9} {'s/step':>9} {'decode_s':>9} "
            f"{'total_s':>9} {'peak_GiB':>10} {'faces':>8}"
        )
        for variant in args.variants:
            for profile in args.profiles:
                if time.perf_counter() - started > args.budget_s:
                    print(f"{variant:<9} {profile:>7} skipped (over the {args.budget_s:.0f} s budget)")
                    continue
                try:
                    rows.append(measure(variant, profile, args, device))
                    print_row(rows[-1])
                except Exception as exc:  # noqa: BLE001 - one failing profile must not hide the others
                    print(f"{variant:<9} {profile:>7} failed: {type(exc).__name__}: {exc}", flush=True)
                    traceback.print_exc()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="parameter counts on the meta device; no CUDA needed")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--profiles", nargs="+", type=int, choices=range(1, 6), default=[1, 2, 3, 4, 5])
    parser.add_argument(
        "--steps", type=int, default=None, help="diffusion steps (default: the model's, 30 or 5 for turbo)"
    )
    parser.add_argument("--octree", type=int, default=256)
    parser.add_argument("--num-chunks", type=int, default=8000)
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip remaining runs after this many seconds")
    return gpu.main("bench/gpu_shape.py", parser.parse_args(argv), dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
