"""The GPU kit's driver: measure every row of a plan (bench/gpu/plan.py) within a time budget.

``bash bench/gpu/run.sh`` runs it on the GPU machine after installing the carried wheels.
Random **full-size** checkpoints are written from the real config structure (the
fixtures' ``FULL_DIMS``/``MINI_DIMS``, as bench/gpu_shape.py and bench/gpu_texture.py
do), each just before the first row that needs it, and loaded through the production
backends. Timings and memory are real; geometry and texture quality are not (random
weights). Each row is measured by the benches' own ``measure`` functions: shape rows by
bench/gpu_shape.py's, texture rows by bench/gpu_texture.py's, and the textured request
under each mmgp profile by bench/gpu/profiles.py's, through the service.

A failing row prints its error and the kit moves on. A row starts only if its expected
cost (its plan estimate, or the last measured row of its kind) fits in what is left of
``--budget-s``; a watchdog stops the process just before the budget in any case. After
every row the tables are rewritten as JSON under ``--out`` (shape.json, texture.json,
profile.json), so a cut run still leaves its figures.

``--dry-run``: the same code paths on CPU with tiny checkpoints and sizes (float32, a
512 texture, a few diffusion steps), plus the full-size configs instantiated on the
meta device; bench/gpu/simulate.sh runs it in a copy of the GPU machine's environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# After the sys.path line: the kit runs as a script from a copied tree.
from bench import gpu_common as gpu  # noqa: E402
from bench.gpu.plan import VIEW_KEYS, ProfileRow, ShapeRow, TextureRow  # noqa: E402

WATCHDOG_MARGIN_S = 5.0  # the watchdog fires this long before the budget, to write the JSON
DRY_TEXTURE_SIZE = 512  # every texture row's size in the dry run (the size path is the same)
SHAPE_COLUMNS = ("variant", "profile", "load_s", "step_s", "decode_s", "total_s", "peak_gib", "faces")
TEXTURE_STAGES = ("delight", "multiview", "uv", "bake", "inpaint", "render")  # uv is the unwrap


# -- environment ---------------------------------------------------------------------


def _version(distribution: str) -> str:
    """The version of the distribution that imports first (a carried wheel shadows the machine's)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def environment(device: str) -> dict[str, Any]:
    """What the figures were measured on, for the JSON and the log."""
    import torch

    from pipeline.mesh import surface_backend

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "surface_extractor": surface_backend(),
    }
    for name in (
        "torch",
        "transformers",
        "tokenizers",
        "diffusers",
        "huggingface_hub",
        "mmgp",
        "hy3dgen",
        "numpy",
        "trimesh",
    ):
        info[name] = _version(name)
    try:
        import pymeshlab

        info["pymeshlab"] = "stand-in" if getattr(pymeshlab, "STANDIN", False) else _version("pymeshlab")
    except ImportError:
        info["pymeshlab"] = "absent"
    return info


def import_mmgp_first() -> str:
    """Import mmgp before any model loads. On CUDA the first shape row does this anyway
    (and mmgp patches safetensors process-wide), so every later load, the texture
    models' included, happens after the patch; the dry run must load in the same world."""
    import mmgp.offload  # noqa: F401 - imported for its safetensors patch
    import safetensors

    return safetensors.safe_open.__module__


# -- the kit ---------------------------------------------------------------------------


class Kit:
    """State shared by the rows: device, sizes, the weights folder, loaded texture models, results."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        import torch

        self.args = args
        self.root = root
        self.dry_run = args.dry_run
        self.device = "cpu" if args.dry_run else "cuda"
        self.dtype = None if args.dry_run else torch.float16
        self.deadline = args.started_at + args.budget_s
        self.written: dict[str, float] = {}  # checkpoint -> seconds to write it
        self.measured: dict[str, float] = {}  # row kind -> wall time of the last such row
        self.results: dict[str, list[dict[str, Any]]] = {"shape": [], "texture": [], "profile": []}
        self.meta: dict[str, Any] = {}
        self.current = ""
        self._texture: tuple[str, Any, float] | None = None  # (paint model, backend, load s)
        self._service: Any = None  # the profile rows' ImageTo3D
        self._mesh: Any = None
        self._write_lock = threading.Lock()

    # -- budget --
    def left_s(self) -> float:
        return self.deadline - time.time()

    def expected_s(self, row: Any) -> float:
        if row.kind in self.measured:
            return self.measured[row.kind]
        return 0.0 if self.dry_run else row.estimate_s

    # -- checkpoints --
    def shape_dims(self, model: str) -> Any:
        from fakes.tiny_hunyuan import FULL_DIMS, MINI_DIMS, TINY_DIMS

        if self.dry_run:
            return TINY_DIMS
        return MINI_DIMS if "mini" in model else FULL_DIMS

    def ensure_shape(self, model: str) -> None:
        """Write ``model``'s random checkpoint (and its turbo VAE) if not yet written."""
        import torch

        from fakes.tiny_hunyuan import write_model

        if model in self.written:
            return
        start = time.perf_counter()
        with torch.device(self.device):
            write_model(self.root, model, self.shape_dims(model), "sphere")
        gpu.empty_cache(self.device)
        self.written[model] = time.perf_counter() - start
        print(f"wrote {model} in {self.written[model]:.1f} s", flush=True)

    def ensure_texture(self, paint_model: str) -> None:
        import torch

        from fakes import tiny_paint

        if paint_model in self.written:
            return
        start = time.perf_counter()
        dims = tiny_paint.TINY_DIMS if self.dry_run else tiny_paint.FULL_DIMS
        with torch.device(self.device):
            tiny_paint.write_texture_models(self.root, dims, (paint_model,), dtype=self.dtype)
        gpu.empty_cache(self.device)
        self.written[paint_model] = time.perf_counter() - start
        print(f"wrote {paint_model} + delight in {self.written[paint_model]:.1f} s", flush=True)

    # -- shared inputs --
    def mesh(self) -> Any:
        """The 40k-face synthetic subject through the service's mesh chain (2k faces in the dry run)."""
        from bench.uv import subject_mesh

        if self._mesh is None:
            self._mesh = subject_mesh(2000, 64) if self.dry_run else subject_mesh(40000, 256)
            print(f"texture mesh: {len(self._mesh.faces)} faces", flush=True)
        return self._mesh

    def texture_backend(self, row: TextureRow) -> tuple[Any, float]:
        """The loaded and warmed-up backend for ``row.paint_model``; returns it and its load time."""
        from pipeline.texture.backend import Sampling, TextureBackend

        if self._texture is not None and self._texture[0] == row.paint_model:
            return self._texture[1], self._texture[2]
        self.release_texture()
        production = Sampling()
        backend = TextureBackend(
            None, row.paint_model, device=self.device, sampling=Sampling(2, 2, 256) if self.dry_run else production
        )
        gpu.empty_cache(self.device)
        start = time.perf_counter()
        backend.load()
        gpu.sync(self.device)
        load_s = time.perf_counter() - start
        print(f"{row.paint_model}: loaded in {load_s:.1f} s; rasterizer: {backend.rasterizer}", flush=True)
        # Warm-up (kernels, allocator, cuDNN choices) at the same view size, with few steps.
        sampling = backend.sampling
        backend.sampling = Sampling(2, 2, sampling.view_size)
        backend.paint(self.mesh(), _texture_image(), DRY_TEXTURE_SIZE)
        backend.sampling = sampling
        self._texture = (row.paint_model, backend, load_s)
        return backend, load_s

    def release_texture(self) -> None:
        if self._texture is not None:
            self._texture[1].release()
            self._texture = None
            gpu.empty_cache(self.device)

    def service(self) -> Any:
        """The profile rows' service, as the worker builds it, with hunyuan3d-2 and the
        default paint model loaded on the host (its warm-up), so the first profile row
        profiles both at once and each later one is a switch."""
        import dataclasses

        from pipeline.memory import PROFILES
        from pipeline.models import DEFAULT_PAINT_MODEL
        from pipeline.service import ImageTo3D
        from pipeline.settings import load_settings

        if self._service is not None:
            return self._service
        from bench.gpu import profiles

        self.ensure_shape(profiles.MODEL)
        self.ensure_texture(DEFAULT_PAINT_MODEL)
        PROFILES.reset()  # the shape and texture rows' backends have left it; start with no member
        settings = dataclasses.replace(load_settings(), device=self.device)
        service = ImageTo3D(settings, draft_fallback=False)
        if self.dry_run:  # the texture rows' few steps; the production Sampling on CUDA
            from pipeline.texture.backend import Sampling, TextureBackend

            service.use_texture_backend(
                TextureBackend(settings, DEFAULT_PAINT_MODEL, sampling=Sampling(1, 1, 256), device=self.device)
            )
        start = time.perf_counter()
        service.warm_up(profiles.MODEL)
        print(
            f"service: {profiles.MODEL} + {DEFAULT_PAINT_MODEL} loaded on the host in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
        self._service = service
        return service

    def release_service(self) -> None:
        """Every model of the profile rows' service off the GPU and forgotten, mmgp released."""
        if self._service is None:
            return
        from pipeline.memory import PROFILES

        service, self._service = self._service, None
        service.release()
        PROFILES.reset()
        del service
        gpu.empty_cache(self.device)

    def release_all(self) -> None:
        self.release_texture()
        self.release_service()

    # -- results --
    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.results[kind].append(row)
        self.write_json()

    def write_json(self) -> None:
        with self._write_lock:
            out = Path(self.args.out)
            out.mkdir(parents=True, exist_ok=True)
            for kind, rows in self.results.items():
                doc = {"meta": self.meta, "dry_run": self.dry_run, "budget_s": self.args.budget_s, "rows": rows}
                tmp = out / f".{kind}.json.tmp"
                tmp.write_text(json.dumps(doc, indent=2) + "\n")
                tmp.replace(out / f"{kind}.json")


def _texture_image():
    from bench.gpu_texture import subject_image

    return subject_image()


# -- measuring one row -------------------------------------------------------------------


def measure_shape(kit: Kit, row: ShapeRow) -> dict[str, Any]:
    from dataclasses import asdict

    from bench import gpu_shape

    kit.ensure_shape(row.model)
    settings = argparse.Namespace(steps=2 if kit.dry_run else None, octree=64 if kit.dry_run else 256, num_chunks=8000)
    result = asdict(gpu_shape.measure(row.model, row.profile, settings, kit.device, views=row.views))
    result["views"] = list(VIEW_KEYS[: row.views])
    result["steps"] = settings.steps or "model default"
    result["octree_resolution"] = settings.octree
    return result


def measure_texture(kit: Kit, row: TextureRow) -> dict[str, Any]:
    from bench import gpu_texture

    kit.ensure_texture(row.paint_model)
    backend, load_s = kit.texture_backend(row)
    size = DRY_TEXTURE_SIZE if kit.dry_run else row.texture_size
    name, module = next(iter(gpu_texture.rasterizers().items()))  # compiled where it imports, else torch
    measured = gpu_texture.measure(backend, kit.mesh(), _texture_image(), size, name, module, kit.device)
    return {
        "paint_model": row.paint_model,
        "texture_size": size,
        "rasterizer": measured.rasterizer,
        "load_s": load_s,
        **measured.stages,
        "total_s": measured.total_s,
        "peak_gib": measured.peak_gib,
    }


def measure_profile(kit: Kit, row: ProfileRow) -> dict[str, Any]:
    """One textured request through the service at ``row.profile`` (bench/gpu/profiles.py's
    measure: both pipelines under that mmgp profile, the peak over the whole request)."""
    from dataclasses import asdict

    from bench.gpu import profiles

    service = kit.service()
    size = DRY_TEXTURE_SIZE if kit.dry_run else row.texture_size
    settings = argparse.Namespace(
        steps=2 if kit.dry_run else None, octree=64 if kit.dry_run else 256, texture_size=size
    )
    measured = profiles.measure(service, row.profile, settings, kit.device)
    return {
        **asdict(measured),
        "texture_size": size,
        "promise_gib": profiles.PROMISE_GIB[row.profile],
        # No CUDA peak on CPU: whether the promise holds is unknown there, not "yes".
        "within_promise": measured.within_promise if kit.device.startswith("cuda") else None,
        "steps": settings.steps or "model default",
        "octree_resolution": settings.octree,
    }


MEASURES: dict[str, Callable[[Kit, Any], dict[str, Any]]] = {
    "shape": measure_shape,
    "texture": measure_texture,
    "profile": measure_profile,
}


# -- tables --------------------------------------------------------------------------------


def _cell(value: Any, width: int, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:>{width}.{digits}f}"
    return f"{value!s:>{width}}"


def shape_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'variant':<22} {'profile':>7} {'load_s':>8} {'s/step':>8} {'decode_s':>9} {'total_s':>8} "
        f"{'peak_GiB':>9} {'faces':>8}"
    ]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"{r['label']:<30} {r.get('error') or r.get('skipped')}")
            continue
        variant = r["variant"] + (f" +{len(r['views'])}v" if r.get("views") else "")
        lines.append(
            f"{variant:<22} {r['profile']:>7} {_cell(r['load_s'], 8, 1)} {_cell(r['step_s'], 8, 3)} "
            f"{_cell(r['decode_s'], 9)} {_cell(r['total_s'], 8)} {_cell(r['peak_gib'], 9)} {r['faces']:>8}"
        )
    return lines


def texture_table(rows: list[dict[str, Any]]) -> list[str]:
    names = {"uv": "unwrap"}
    head = " ".join(f"{names.get(s, s):>9}" for s in TEXTURE_STAGES)
    lines = [f"{'paint_model':<27} {'size':>5} {'raster':>8} {'load_s':>7} {head} {'total_s':>8} {'peak_GiB':>9}"]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"{r['label']:<33} {r.get('error') or r.get('skipped')}")
            continue
        stages = " ".join(_cell(r[s], 9) for s in TEXTURE_STAGES)
        lines.append(
            f"{r['paint_model']:<27} {r['texture_size']:>5} {r['rasterizer']:>8} {_cell(r['load_s'], 7, 1)} "
            f"{stages} {_cell(r['total_s'], 8)} {_cell(r['peak_gib'], 9)}"
        )
    return lines


def profile_table(rows: list[dict[str, Any]]) -> list[str]:
    """bench/gpu/profiles.py's table: ok is whether the reserved peak keeps the profile's promise."""
    from bench.gpu import profiles

    lines = [profiles.ROWS_HEADER]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"{r['label']:<33} {r.get('error') or r.get('skipped')}")
            continue
        fields = {name: r[name] for name in profiles.Row.__dataclass_fields__}
        line = profiles.format_row(profiles.Row(**fields))
        if r.get("within_promise", True) is None:
            line = line[: line.rstrip().rfind(" ")] + " n/a"
        lines.append(line)
    return lines


TABLES = {"shape": shape_table, "texture": texture_table, "profile": profile_table}


# -- the run ---------------------------------------------------------------------------------


def load_plan(spec: str) -> list[Any]:
    """``module:NAME`` (default ``bench.gpu.plan:PLAN``) to a list of rows."""
    module, _, name = spec.partition(":")
    rows = list(getattr(importlib.import_module(module), name or "PLAN"))
    unknown = sorted({getattr(r, "kind", type(r).__name__) for r in rows} - set(MEASURES))
    if unknown:
        raise SystemExit(f"kit: no measuring function for row kind(s) {', '.join(unknown)} (see kit.MEASURES)")
    return rows


def full_size_check() -> None:
    """Instantiate every full-size model the GPU run writes on the meta device (no memory):
    a config that does not build fails here, not on the GPU machine."""
    import torch
    from hy3dgen.shapegen.pipelines import instantiate_from_config

    from bench import gpu_shape, gpu_texture
    from fakes.tiny_hunyuan import MINI_DIMS, shape_config

    gpu_shape.dry_run()
    with torch.device("meta"):
        for turbo in (False, True):
            config = shape_config(MINI_DIMS, turbo=turbo)
            counts = {
                part: gpu.param_count(instantiate_from_config(config[part])) for part in ("model", "vae", "conditioner")
            }
            print(f"mini{'-turbo' if turbo else '':<5} " + ", ".join(f"{k} {n / 1e6:,.1f}M" for k, n in counts.items()))
    gpu_texture.dry_run()


def _start_watchdog(kit: Kit) -> threading.Timer:
    def stop() -> None:
        print(f"\nbudget: {kit.args.budget_s:.0f} s nearly spent during '{kit.current}': stopping here", flush=True)
        kind, _, label = kit.current.partition(":")
        if kind in kit.results:
            kit.results[kind].append({"label": label, "error": "cut at the budget"})
        kit.write_json()
        for kind, rows in kit.results.items():
            print("\n".join(TABLES[kind](rows)), flush=True)
        os._exit(0)

    timer = threading.Timer(max(kit.left_s() - WATCHDOG_MARGIN_S, 0.0), stop)
    timer.daemon = True
    timer.start()
    return timer


def run(args: argparse.Namespace) -> int:
    rows = load_plan(args.plan)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("kit: CUDA is not available here; nothing measured (use --dry-run for the CPU pass).")
            return 1
    patched = import_mmgp_first()
    with gpu.models_root("gpu-kit-") as root:
        kit = Kit(args, root)
        kit.meta = environment(kit.device)
        kit.meta["safe_open"] = patched
        print("environment: " + ", ".join(f"{k} {v}" for k, v in kit.meta.items()), flush=True)
        if kit.meta["surface_extractor"] != "vtk":
            print(
                "surface extraction: VTK is absent, so scikit-image marching cubes is used "
                "(decode_s includes its slower extraction)",
                flush=True,
            )
        if args.dry_run:
            full_size_check()
        kit.write_json()
        watchdog = _start_watchdog(kit)
        try:
            failed = _run_rows(kit, rows)
        finally:
            watchdog.cancel()
        kit.current = ""
        print()
        for kind in TABLES:
            print("\n".join(TABLES[kind](kit.results[kind])))
        print(
            f"\nwrote {', '.join(f'{args.out}/{kind}.json' for kind in TABLES)}; "
            f"{time.time() - args.started_at:.0f} s of the {args.budget_s:.0f} s budget used",
            flush=True,
        )
    return 1 if failed else 0


def _run_rows(kit: Kit, rows: list[Any]) -> int:
    """Every row that fits the budget, in order; returns how many failed."""
    failed = 0
    for index, row in enumerate(rows):
        label = row.label()
        following = rows[index + 1] if index + 1 < len(rows) else None
        expected = kit.expected_s(row)
        if expected > kit.left_s() - WATCHDOG_MARGIN_S:
            note = f"skipped: needs ~{expected:.0f} s, {max(kit.left_s(), 0):.0f} s left"
            print(f"{label}: {note}", flush=True)
            kit.record(row.kind, {"label": label, "skipped": note})
            continue
        kit.current = f"{row.kind}:{label}"
        start = time.perf_counter()
        try:
            result = MEASURES[row.kind](kit, row)
            kit.record(row.kind, {"label": label, **result})
            print("\n".join(TABLES[row.kind]([kit.results[row.kind][-1]])), flush=True)
        except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
            failed += 1
            message = f"{type(exc).__name__}: {exc}"
            print(f"{label}: failed: {message}", flush=True)
            traceback.print_exc()
            kit.record(row.kind, {"label": label, "error": message[:500]})
            kit.release_all()
            gpu.empty_cache(kit.device)
        kit.measured[row.kind] = time.perf_counter() - start
        if row.kind == "texture" and not (
            isinstance(following, TextureRow) and following.paint_model == row.paint_model
        ):
            kit.release_texture()  # its VRAM must not count in the next shape row's peak
        if row.kind == "profile" and not isinstance(following, ProfileRow):
            kit.release_service()
    return failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU pass of every code path at tiny sizes")
    parser.add_argument("--budget-s", type=float, default=450.0, help="stop before this many seconds (default 450)")
    parser.add_argument(
        "--started-at",
        type=float,
        default=None,
        help="epoch seconds the budget counts from (run.sh passes its own start)",
    )
    parser.add_argument("--plan", default="bench.gpu.plan:PLAN", help="module:NAME of the row list")
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT") or str(ROOT / "outputs" / "gpu-kit"),
        help="folder for shape.json, texture.json and profile.json (default $OUT)",
    )
    args = parser.parse_args(argv)
    if args.started_at is None:
        args.started_at = time.time()
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
