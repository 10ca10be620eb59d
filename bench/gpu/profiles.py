"""Textured jobs under each mmgp profile, at full size, without downloads.

Random full-size checkpoints of the standard shape model, the delight model
and the default paint model are written fp16 in hy3dgen's layout (the shape
VAE's geo-decoder analytic, so there is a surface to paint), then the
service runs one textured request per profile, exactly as the worker does:
both pipelines under one mmgp profile (``pipeline/memory.py``), a profile
switch reloading both from disk. Each row: peak VRAM (allocated and
reserved by torch, GiB), total seconds, the switch's reload seconds inside
it, and whether the peak keeps the profile's promise (24/16/12/8/6 GiB).

    python bench/gpu/profiles.py                # needs CUDA; stays under --budget-s
    python bench/gpu/profiles.py --dry-run      # any machine: sizes and mmgp's plan per profile
    python bench/gpu/profiles.py --reload       # any machine: host reload seconds of both pipelines

``run(args)`` is what a GPU kit calls; ``ROWS_HEADER``/``format_row`` print its table.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import gpu_common as gpu

PROMISE_GIB = {1: 24, 2: 16, 3: 12, 4: 8, 5: 6}  # the request contract's VRAM per profile
MODEL = "hunyuan3d-2"
ROWS_HEADER = (
    f"{'profile':>7} {'peak_GiB':>9} {'reserved':>9} {'promise':>8} {'total_s':>8} "
    f"{'reload_s':>9} {'shape_s':>8} {'texture_s':>9}  ok"
)


@dataclass
class Row:
    profile: int
    peak_gib: float
    reserved_gib: float
    total_s: float
    reload_s: float  # shape_load + texture.load of this request (the profile switch)
    shape_s: float
    texture_s: float

    @property
    def within_promise(self) -> bool:
        return self.reserved_gib <= PROMISE_GIB[self.profile]


def format_row(row: Row) -> str:
    return (
        f"{row.profile:>7} {row.peak_gib:>9.2f} {row.reserved_gib:>9.2f} {PROMISE_GIB[row.profile]:>8} "
        f"{row.total_s:>8.1f} {row.reload_s:>9.1f} {row.shape_s:>8.1f} {row.texture_s:>9.1f}  "
        f"{'yes' if row.within_promise else 'NO'}"
    )


# -- dry run: sizes and mmgp's own plan ------------------------------------------------


def full_size_models() -> dict:
    """Every model of both pipelines, full size, on the meta device, under its mmgp name."""
    import torch
    from hy3dgen.shapegen.pipelines import instantiate_from_config

    from fakes import tiny_hunyuan as th
    from fakes import tiny_paint as tp
    from pipeline.memory import TRANSFORMER

    config = th.shape_config(th.FULL_DIMS)
    with torch.device("meta"):
        return {
            "shape_dit": instantiate_from_config(config["model"]),
            "shape_vae": instantiate_from_config(config["vae"]),
            "shape_conditioner": instantiate_from_config(config["conditioner"]),
            "delight_unet": tp.build_delight_unet(tp.FULL_DIMS),
            "delight_vae": tp.build_vae(tp.FULL_DIMS),
            "delight_text_encoder": tp.build_text_encoder(tp.FULL_DIMS),
            TRANSFORMER: tp.build_paint_unet(tp.FULL_DIMS),
            "paint_vae": tp.build_vae(tp.FULL_DIMS),
            "paint_text_encoder": tp.build_text_encoder(tp.FULL_DIMS),
        }


def sizes(module) -> tuple[int, float, float]:
    """Parameters, fp16 GiB, and GiB after qint8 (Linear/Conv2d weights at 1 byte, the rest fp16)."""
    import torch

    total = gpu.param_count(module)
    weights = sum(m.weight.numel() for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    return total, 2 * total / 2**30, (weights + 2 * (total - weights)) / 2**30


def mmgp_plan(models: dict, profile: int) -> dict:
    """What mmgp's real ``offload.profile`` decides for these names (its GPU
    layer, ``offload.all``, is replaced by a recorder)."""
    from mmgp import offload

    seen: dict = {}
    real_all = offload.all

    def record(pipe, pinnedMemory=False, budgets=0, quantizeTransformer=True, extraModelsToQuantize=None, **_):
        seen.update(
            pinned=pinnedMemory,
            budgets=budgets or {},
            quantized=set(extraModelsToQuantize or []) | ({"transformer"} if quantizeTransformer else set()),
        )

    offload.all = record
    try:
        offload.profile(models, profile_no=profile, verboseLevel=0)
    finally:
        offload.all = real_all
    return seen


def _renamed(models: dict, transformer: str) -> dict:
    """The same models with ``transformer`` (an mmgp name) swapped with the paint UNet's name."""
    from pipeline.memory import TRANSFORMER

    if transformer == TRANSFORMER:
        return dict(models)
    renamed = {name: module for name, module in models.items() if name not in (TRANSFORMER, transformer)}
    renamed[TRANSFORMER], renamed["paint_unet"] = models[transformer], models[TRANSFORMER]
    return renamed


def dry_run() -> dict:
    """Sizes of every model, then mmgp's plan per profile for our mapping
    (paint UNet as ``transformer``) against the DiT as ``transformer``."""
    models = full_size_models()
    table = {name: sizes(module) for name, module in models.items()}
    print(f"{'mmgp name':<22} {'params':>10} {'fp16_GiB':>9} {'qint8_GiB':>10}")
    for name, (count, fp16, q8) in sorted(table.items(), key=lambda item: -item[1][0]):
        print(f"{name:<22} {count / 1e6:>9,.1f}M {fp16:>9.2f} {q8:>10.2f}")
    print("\nmmgp's plan (its real offload.profile rules). GPU share: a model's weights on the GPU while it runs,")
    print("min(size, budget); mmgp keeps one model at a time. Activations come on top.")
    print(
        f"{'transformer':<12} {'profile':>7} {'pinned':>12} {'budgets MB':>28} {'largest share':>26} {'pinned GiB':>10}"
    )
    for candidate in ("transformer", "shape_dit"):
        mapping = _renamed(models, candidate)
        sized = {
            name: table[candidate if name == "transformer" else "transformer" if name == "paint_unet" else name]
            for name in mapping
        }
        for profile in range(1, 6):
            plan = mmgp_plan(mapping, profile)
            shares, pinned_gib = {}, 0.0
            for name, (_, fp16, q8) in sized.items():
                size = (q8 if name in plan["quantized"] else fp16) * 1024  # MiB
                budget = plan["budgets"].get(name, plan["budgets"].get("*", 0))
                shares[name] = budget if budget and budget < size else size
                if plan["pinned"] is True or plan["pinned"] == name:
                    pinned_gib += size / 1024
            pinned = plan["pinned"] if isinstance(plan["pinned"], (bool, str)) else ",".join(plan["pinned"])
            top = max(shares, key=shares.get)
            label = "paint UNet" if candidate == "transformer" else "shape DiT"
            print(
                f"{label:<12} {profile:>7} {str(pinned):>12} {str(plan['budgets'] or None):>28} "
                f"{top + f' {shares[top] / 1024:.2f} GiB':>26} {pinned_gib:>10.2f}"
            )
    return table


# -- host reload (what a profile switch reads from disk) ------------------------------------


def write_checkpoints(root: Path, dims_shape, dims_paint, device: str) -> None:
    import torch

    from fakes.tiny_hunyuan import write_shape_model
    from fakes.tiny_paint import write_texture_models
    from pipeline.models import DEFAULT_PAINT_MODEL, HUNYUAN_MODELS

    spec = HUNYUAN_MODELS[MODEL]
    start = time.perf_counter()
    # On the host the models are built in fp16 directly: fp32 would need ~24 GB of RAM at full size.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if device.startswith("cuda") else torch.float16)
    try:
        with torch.device(device):
            write_shape_model(root, dims_shape, spec.repo_id, spec.subfolder, spec.vae_subfolder, "sphere")
            gpu.empty_cache(device)
            write_texture_models(root, dims_paint, (DEFAULT_PAINT_MODEL,), dtype=torch.float16)
    finally:
        torch.set_default_dtype(previous)
    gpu.empty_cache(device)
    print(f"wrote the checkpoints in {time.perf_counter() - start:.1f} s", flush=True)


def reload_seconds(repeats: int) -> dict[str, list[float]]:
    """Seconds to load each pipeline on the host in fp16 from the files just
    written (warm page cache), as a profile switch does before mmgp; the
    models are dropped between runs, one pipeline at a time."""
    import torch

    from pipeline.backends.hunyuan import HunyuanShapeBackend
    from pipeline.texture.backend import TextureBackend

    seconds: dict[str, list[float]] = {"shape": [], "texture": []}
    for _ in range(repeats):
        shape = HunyuanShapeBackend(MODEL, device="cpu")
        shape.dtype = torch.float16  # the CUDA path's host load, timed on any machine
        shape.load()
        seconds["shape"].append(shape._load_s)
        shape.drop_models()
        texture = TextureBackend(None, device="cpu")
        texture.dtype = torch.float16
        texture.load()
        seconds["texture"].append(texture._load_s)
        texture.drop_models()
        gpu.empty_cache("cpu")
    return seconds


def reload(args: argparse.Namespace, dims=None) -> dict[str, list[float]]:
    from fakes import tiny_hunyuan as th
    from fakes import tiny_paint as tp

    shape_dims, paint_dims = dims or (th.FULL_DIMS, tp.FULL_DIMS)
    with gpu.models_root("hy3d-bench-") as root:
        write_checkpoints(root, shape_dims, paint_dims, "cpu")
        seconds = reload_seconds(args.repeats)
    for part, values in seconds.items():
        print(f"{part:<8} host reload s: " + ", ".join(f"{v:.1f}" for v in values), flush=True)
    return seconds


# -- the measured run -------------------------------------------------------------------


def measure(service, profile: int, args: argparse.Namespace, device: str) -> Row:
    from bench.gpu_texture import subject_image
    from pipeline.options import parse_options

    options = parse_options(
        {
            "model": MODEL,
            "profile": profile,
            "generate_texture": True,
            "remove_background": False,
            "steps": args.steps,
            "octree_resolution": args.octree,
            "texture_size": args.texture_size,
        }
    )
    gpu.empty_cache(device)
    gpu.reset_peak(device)
    result = service.generate(subject_image(), options)
    gpu.sync(device)
    if not result.textured:
        raise RuntimeError(f"profile {profile}: the model came back untextured: {result.warnings}")
    timings = result.timings
    reserved = 0.0
    if device.startswith("cuda"):
        import torch

        reserved = torch.cuda.max_memory_reserved() / 2**30
    return Row(
        profile,
        gpu.peak_gib(device),
        reserved,
        result.execution_time,
        timings.get(f"{MODEL}.shape_load", 0.0) + timings.get("texture.load", 0.0),
        timings["shape"],
        timings["texture"],
    )


def run(args: argparse.Namespace, dims=None, device: str = "cuda", sampling=None) -> list[Row]:
    """Write the checkpoints, then one textured request per profile (each a
    switch: both pipelines reloaded and re-profiled), within the budget."""
    import traceback

    from fakes import tiny_hunyuan as th
    from fakes import tiny_paint as tp
    from pipeline.memory import PROFILES
    from pipeline.models import DEFAULT_PAINT_MODEL
    from pipeline.service import ImageTo3D
    from pipeline.settings import load_settings
    from pipeline.texture.backend import TextureBackend

    shape_dims, paint_dims = dims or (th.FULL_DIMS, tp.FULL_DIMS)
    started, rows = time.perf_counter(), []
    with gpu.models_root("hy3d-bench-") as root:
        write_checkpoints(root, shape_dims, paint_dims, device)
        settings = load_settings()
        service = ImageTo3D(settings, draft_fallback=False)
        if sampling is not None:  # tests: fewer steps on CPU
            service.use_texture_backend(TextureBackend(settings, DEFAULT_PAINT_MODEL, sampling=sampling, device=device))
        service.warm_up(MODEL)
        print(ROWS_HEADER, flush=True)
        for profile in args.profiles:
            if time.perf_counter() - started > args.budget_s:
                print(f"{profile:>7} skipped (over the {args.budget_s:.0f} s budget)", flush=True)
                continue
            try:
                rows.append(measure(service, profile, args, device))
                print(format_row(rows[-1]), flush=True)
            except Exception as exc:  # noqa: BLE001 - one failing profile must not hide the others
                print(f"{profile:>7} failed: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
        service.release()
        PROFILES.reset()
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="sizes and mmgp's plan on the meta device; no CUDA")
    parser.add_argument("--reload", action="store_true", help="host reload seconds of both pipelines; no CUDA")
    parser.add_argument("--repeats", type=int, default=2, help="--reload runs")
    parser.add_argument("--profiles", nargs="+", type=int, choices=range(1, 6), default=[5, 4, 3, 2, 1])
    parser.add_argument("--steps", type=int, default=None, help="shape diffusion steps (default: the model's, 30)")
    parser.add_argument("--octree", type=int, default=256)
    parser.add_argument("--texture-size", type=int, default=2048, choices=(512, 1024, 2048))
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip remaining profiles after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reload:
        reload(args)
        return 0
    return gpu.main("bench/gpu/profiles.py", args, dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
