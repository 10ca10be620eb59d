"""GPU benchmark of the texture backend at full size, without downloads.

Random full-size delight and paint models are built from diffusers configs
(Stable Diffusion 2 shapes, see ``fakes/tiny_paint.py``), written
fp16 in hy3dgen's layout, and loaded through
:class:`pipeline.texture.backend.TextureBackend` exactly as in production. A
40k-face mesh (the synthetic figure of ``bench/common.py`` through the
service's own mesh chain) is painted at each texture size; each row gives the
seconds per stage, the total and the peak VRAM. Where the compiled
``custom_rasterizer`` imports, every size runs with it and with the PyTorch
one. The first paint of each variant is a warm-up and is not reported.

    python bench/gpu_texture.py               # needs CUDA; stays under --budget-s
    python bench/gpu_texture.py --dry-run     # any machine: parameter counts on the meta device

Run from the repository root.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gpu_common as gpu

STAGES = ("delight", "uv", "render", "multiview", "bake", "inpaint")


@dataclass
class Row:
    variant: str
    texture_size: int
    rasterizer: str
    stages: dict[str, float]
    total_s: float
    peak_gib: float


# -- dry run ------------------------------------------------------------------


def dry_run() -> dict[str, int]:
    """Build the full-size modules on the meta device (no memory, no weights)
    and return parameter counts per component."""
    import torch

    from fakes import tiny_paint as tp

    with torch.device("meta"):
        counts = {
            "delight_unet": gpu.param_count(tp.build_delight_unet(tp.FULL_DIMS)),
            "paint_unet_2p5d": gpu.param_count(tp.build_paint_unet(tp.FULL_DIMS)),
            "vae": gpu.param_count(tp.build_vae(tp.FULL_DIMS)),
            "text_encoder": gpu.param_count(tp.build_text_encoder(tp.FULL_DIMS)),
        }
    for part, n in counts.items():
        print(f"{part:<16} {n / 1e6:>10,.1f}M")
    delight = counts["delight_unet"] + counts["vae"] + counts["text_encoder"]
    paint = counts["paint_unet_2p5d"] + counts["vae"] + counts["text_encoder"]
    print(f"{'delight total':<16} {delight / 1e6:>10,.1f}M   ({2 * delight / 2**30:.2f} GiB fp16)")
    print(f"{'paint total':<16} {paint / 1e6:>10,.1f}M   ({2 * paint / 2**30:.2f} GiB fp16)")
    return counts


# -- the measured run -----------------------------------------------------------


def _fresh_peak(device: str) -> None:
    """Free what earlier rows cached, then start counting the peak anew."""
    gpu.empty_cache(device)
    gpu.reset_peak(device)


def subject_image():
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((140, 60, 372, 470), fill=(200, 60, 40, 255))
    draw.rectangle((200, 200, 312, 260), fill=(40, 80, 200, 255))
    return image


def rasterizers() -> dict[str, object]:
    """The ``custom_rasterizer`` implementations available here, compiled first."""
    from pipeline.texture.rasterizer import TORCH_RASTERIZER

    found: dict[str, object] = {}
    try:
        import custom_rasterizer

        if custom_rasterizer is not TORCH_RASTERIZER:
            found["compiled"] = custom_rasterizer
    except (ImportError, OSError):
        pass
    found["torch"] = TORCH_RASTERIZER
    return found


def measure(backend, mesh, image, size: int, rasterizer: str, module, device: str) -> Row:
    """One paint with ``module`` as texgen's rasterizer."""
    backend.texgen.render.raster = module  # MeshRender keeps the module it imported
    gpu.sync(device)
    _fresh_peak(device)
    begin = time.perf_counter()
    result = backend.paint(mesh, image, size)
    gpu.sync(device)
    total = time.perf_counter() - begin
    return Row(
        backend.paint_model, size, rasterizer, {k: result.timings[k] for k in STAGES}, total, gpu.peak_gib(device)
    )


def print_header() -> None:
    stages = " ".join(f"{s:>9}" for s in STAGES)
    print(f"{'variant':<27} {'size':>5} {'raster':>8} {stages} {'total_s':>8} {'peak_GiB':>9}", flush=True)


def print_row(row: Row) -> None:
    stages = " ".join(f"{row.stages[s]:>9.2f}" for s in STAGES)
    print(
        f"{row.variant:<27} {row.texture_size:>5} {row.rasterizer:>8} {stages} {row.total_s:>8.2f} "
        f"{row.peak_gib:>9.2f}",
        flush=True,
    )


def bench_variant(variant: str, args: argparse.Namespace, mesh, device: str, started: float) -> list[Row]:
    """Load one variant, warm up, then measure every (size, rasterizer) within the budget."""
    from pipeline.texture.backend import Sampling, TextureBackend

    backend = TextureBackend(None, variant, device=device, sampling=Sampling(*args.sampling))
    _fresh_peak(device)
    start = time.perf_counter()
    backend.load()
    print(
        f"{variant}: loaded in {time.perf_counter() - start:.1f} s, {gpu.peak_gib(device):.2f} GiB; "
        f"rasterizer at load: {backend.rasterizer}",
        flush=True,
    )
    image, rows = subject_image(), []
    backend.paint(mesh, image, min(args.sizes))  # warm-up: kernels, allocator, cuDNN choices
    for size in args.sizes:
        for name, module in rasterizers().items():
            if time.perf_counter() - started > args.budget_s:
                print(f"{variant} {size} {name}: skipped (over the {args.budget_s:.0f} s budget)", flush=True)
                continue
            try:
                rows.append(measure(backend, mesh, image, size, name, module, device))
                print_row(rows[-1])
            except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
                print(f"{variant} {size} {name}: failed: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
    backend.release()
    return rows


def run(args: argparse.Namespace, dims=None, device: str = "cuda") -> list[Row]:
    """Write the models, build the mesh, then measure each variant."""
    import torch

    from bench.uv import subject_mesh
    from fakes.tiny_paint import FULL_DIMS, write_texture_models

    started, rows = time.perf_counter(), []
    mesh = subject_mesh(args.faces, args.resolution)
    print(f"mesh: {len(mesh.faces)} faces", flush=True)
    with gpu.models_root("hy3d-bench-texture-") as root:
        start = time.perf_counter()
        dtype = torch.float16 if device.startswith("cuda") else None
        with torch.device(device):
            write_texture_models(root, dims or FULL_DIMS, tuple(args.variants), dtype=dtype)
        _fresh_peak(device)
        print(f"wrote {', '.join(args.variants)} + delight in {time.perf_counter() - start:.1f} s", flush=True)
        print_header()
        for variant in args.variants:
            rows += bench_variant(variant, args, mesh, device, started)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pipeline.models import DEFAULT_PAINT_MODEL, PAINT_MODELS, TEXTURE_SIZES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="parameter counts on the meta device; no CUDA needed")
    parser.add_argument("--variants", nargs="+", choices=PAINT_MODELS, default=[DEFAULT_PAINT_MODEL])
    parser.add_argument("--sizes", nargs="+", type=int, choices=TEXTURE_SIZES, default=list(TEXTURE_SIZES))
    parser.add_argument("--faces", type=int, default=40000)
    parser.add_argument("--resolution", type=int, default=256, help="occupancy grid of the synthetic subject")
    parser.add_argument(
        "--sampling",
        nargs=3,
        type=int,
        default=[None, None, None],
        metavar=("DELIGHT_STEPS", "MULTIVIEW_STEPS", "VIEW_SIZE"),
        help="override hy3dgen's 50/30 steps and 512-px views (default: production values)",
    )
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip remaining rows after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return gpu.main("bench/gpu_texture.py", parse_args(argv), dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
