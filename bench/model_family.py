"""What the fast and multi-view variants cost per diffusion step, on CPU.

Random small checkpoints of the real config structure (``--dims small``:
a 2 + 4 block DiT of width 128 over 512 latents, a 1-layer DINO at 224 px) are
written for the standard, fast and multi-view DiTs and run through
:class:`pipeline.backends.hunyuan.HunyuanShapeBackend`, as in production. The
standard model is the baseline in the same run: a fast (guidance-distilled)
DiT should need about half its time per step (one pass instead of CFG's two),
and each extra view adds its DINO pass and its tokens to the DiT's context.

    python -m bench.model_family [--steps 5] [--repeats 3] [--dims small|tiny]

Only the ``<model>.diffusion`` timing is compared (conditioning plus sampling);
decoding is the same for every variant. GPU figures: ``bench/gpu_shape.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (row label, model, extra views)
ROWS = (
    ("standard (CFG)", "hunyuan3d-2", ()),
    ("fast", "hunyuan3d-2-fast", ()),
    ("mv, front only", "hunyuan3d-2mv", ()),
    ("mv + 1 view", "hunyuan3d-2mv", ("left",)),
    ("mv + 3 views", "hunyuan3d-2mv", ("left", "back", "right")),
    ("mv-fast + 3 views", "hunyuan3d-2mv-fast", ("left", "back", "right")),
)


@dataclass
class Row:
    label: str
    model: str
    views: int
    diffusion_s: float  # median over the repeats
    per_step_s: float


def bench_dims(name: str):
    from fakes.tiny_hunyuan import TINY_DIMS, ShapeDims

    if name == "tiny":
        return TINY_DIMS
    return ShapeDims(
        dit_hidden=128,
        dit_heads=2,
        dit_depth=2,
        dit_single_depth=4,
        vae_width=64,
        vae_heads=2,
        vae_layers=1,
        num_latents=512,
        embed_dim=16,
        dino_hidden=64,
        dino_layers=1,
        dino_heads=2,
        dino_image_size=224,
        processor_size=256,
    )


def subject(box: tuple[int, int, int, int]):
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(box, fill=(200, 60, 40, 255))
    return image


VIEW_BOXES = {"left": (90, 40, 166, 216), "back": (40, 40, 216, 216), "right": (90, 40, 166, 216)}


def run(steps: int, repeats: int, dims_name: str, log=print) -> list[Row]:
    import os

    from fakes.tiny_hunyuan import write_model
    from pipeline.backends.hunyuan import HunyuanShapeBackend
    from pipeline.options import parse_options

    dims = bench_dims(dims_name)
    options = parse_options({"steps": steps, "octree_resolution": 64, "generate_texture": False, "max_faces": 2000})
    rows: list[Row] = []
    previous = os.environ.get("HY3DGEN_MODELS")
    with tempfile.TemporaryDirectory(prefix="hy3d-family-") as root:
        os.environ["HY3DGEN_MODELS"] = root
        try:
            for model in dict.fromkeys(model for _, model, _ in ROWS):
                write_model(Path(root), model, dims)
            backends = {
                model: HunyuanShapeBackend(model, device="cpu") for model in dict.fromkeys(m for _, m, _ in ROWS)
            }
            front = subject((40, 30, 216, 226))
            cases = [
                (label, backends[model], {view: subject(VIEW_BOXES[view]) for view in extra} or None)
                for label, model, extra in ROWS
            ]
            for _, backend, views in cases:  # load and warm up every row first
                backend.generate(front, options, lambda *a: None, views=views)
            # Round-robin repeats: a busy machine slows every row alike, not the last ones.
            times: dict[str, list[float]] = {label: [] for label, _, _ in ROWS}
            for _ in range(repeats):
                for label, backend, views in cases:
                    out = backend.generate(front, options, lambda *a: None, views=views)
                    times[label].append(out.timings["diffusion"])
            for label, model, extra in ROWS:
                median = statistics.median(times[label])
                rows.append(Row(label, model, len(extra), median, median / steps))
                log(
                    f"{label:<20} {model:<20} {len(extra):>5} {median:>12.3f} {median / steps * 1000:>10.1f}"
                    f" {median / rows[0].diffusion_s:>9.2f}"
                )
        finally:
            if previous is None:
                os.environ.pop("HY3DGEN_MODELS", None)
            else:
                os.environ["HY3DGEN_MODELS"] = previous
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", choices=("small", "tiny"), default="small")
    args = parser.parse_args(argv)
    print(f"{'row':<20} {'model':<20} {'views':>5} {'diffusion_s':>12} {'ms/step':>10} {'vs std':>9}")
    run(args.steps, args.repeats, args.dims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
