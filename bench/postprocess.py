"""Issue #4: the CPU chain after the network, hy3dgen's own code against ours.

Both chains start from the same occupancy grid (a figure with thin parts, a
handle, floating specks and octree-style NaN cells; see bench/common.py) and
end with GLB bytes carrying the same 2048 texture:

* baseline: hy3dgen 2.0.2 as installed, the way its api_server flow runs it:
  MCSurfaceExtractor (scikit-image) and ``export_to_trimesh``, FloaterRemover,
  DegenerateFaceRemover, ``FaceReducer(max_facenum=40000)`` (pymeshlab),
  ``mesh_uv_wrap`` (xatlas defaults), texgen's ``save_mesh`` and the GLB
  written, reloaded and written again (PNG texture). The texture bake and
  inpaint stages between the unwrap and the save are not part of this chain.
* ours: pipeline.mesh (extract_surface, postprocess, unwrap_uv) and
  pipeline.export.export_glb (JPEG texture), as the service calls them.

Run: ``python -m bench.postprocess [--repeats 3] [--quick]``. The last line is
``total_ratio=<baseline/ours> bytes_ratio=<ours/baseline> error_ratio=<ours/baseline>``
for the largest grid. Errors are symmetric surface distances from each chain's
output to its own full-resolution (pre-decimation) mesh, as fractions of the
bounding-box diagonal.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` and `pipeline` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BOUNDS, detailed_texture, subject_grid, surface_error


@dataclass
class ChainRun:
    """One run of a chain: seconds per stage and what came out."""

    timings: dict[str, float] = field(default_factory=dict)
    reference: Any = None  # full-resolution mesh, input of the decimation
    reduced: Any = None  # decimated mesh
    glb: bytes = b""
    glb_with_normals: int = 0  # ours only: size with the ``smooth_normals`` request option

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        self.timings[name] = time.perf_counter() - start
        return result


def baseline_chain(grid: np.ndarray, resolution: int, texture, max_faces: int) -> ChainRun:
    """hy3dgen's code as installed, in its api_server order."""
    import torch
    import trimesh
    from hy3dgen.shapegen import DegenerateFaceRemover, FaceReducer, FloaterRemover
    from hy3dgen.shapegen.models.autoencoders import MCSurfaceExtractor
    from hy3dgen.shapegen.pipelines import export_to_trimesh
    from hy3dgen.texgen.differentiable_renderer.mesh_utils import save_mesh
    from hy3dgen.texgen.utils.uv_warp_utils import mesh_uv_wrap

    run = ChainRun()
    logits = torch.from_numpy(grid)[None]
    outputs = run.stage(
        "mc", lambda: MCSurfaceExtractor()(logits, mc_level=0.0, bounds=BOUNDS[1], octree_resolution=resolution)
    )
    mesh = run.stage("to_trimesh", lambda: export_to_trimesh(outputs)[0])
    mesh = run.stage("floaters", lambda: FloaterRemover()(mesh))
    mesh = run.stage("degenerate", lambda: DegenerateFaceRemover()(mesh))
    run.reference = mesh
    run.reduced = mesh = run.stage("decimate", lambda: FaceReducer()(mesh, max_facenum=max_faces))
    to_wrap = mesh.copy()  # mesh_uv_wrap works in place; keep `reduced` for the error
    mesh = run.stage("uv", lambda: mesh_uv_wrap(to_wrap))

    def write() -> bytes:
        textured = save_mesh(mesh, texture)
        with tempfile.NamedTemporaryFile(suffix=".glb", delete=False) as tmp:
            textured.export(tmp.name)
            reloaded = trimesh.load(tmp.name)
        os.unlink(tmp.name)
        final = Path(tempfile.gettempdir()) / "baseline-output.glb"
        reloaded.export(final)
        return final.read_bytes()

    run.glb = run.stage("export", write)
    return run


def ours_chain(grid: np.ndarray, texture, max_faces: int) -> ChainRun:
    """pipeline.mesh + pipeline.export, as the service runs them."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    from pipeline.export import export_glb
    from pipeline.mesh import extract_surface, postprocess, remove_degenerate, remove_floaters, unwrap_uv

    run = ChainRun()
    mesh = run.stage("extract", lambda: extract_surface(grid, 0.0, BOUNDS))
    reduced, timings = postprocess(mesh, max_faces)
    run.timings.update(timings)
    run.reduced = reduced
    run.reference = remove_degenerate(remove_floaters(mesh))  # untimed: the decimation's input again
    mesh, _ = run.stage("uv", lambda: unwrap_uv(reduced))

    def write() -> bytes:
        material = PBRMaterial(baseColorTexture=texture)
        mesh.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=material)
        return export_glb(mesh, extras={"generator": "bench"}, jpeg_quality=90)  # the service's default export

    run.glb = run.stage("export", write)
    run.glb_with_normals = len(export_glb(mesh, extras={"generator": "bench"}, include_normals=True))
    return run


@dataclass
class Summary:
    """Medians over repeats and the output figures of one chain."""

    stages: dict[str, float]
    total: float
    faces: int
    glb_bytes: int
    b64_bytes: int
    texture_bytes: int
    texture_mime: str
    glb_with_normals: int
    error: dict[str, float]


def summarise(runs: list[ChainRun], samples: int) -> Summary:
    from pipeline.export import glb_stats

    stages = {name: statistics.median(r.timings[name] for r in runs) for name in runs[0].timings}
    last = runs[-1]
    stats = glb_stats(last.glb)
    return Summary(
        stages=stages,
        total=statistics.median(sum(r.timings.values()) for r in runs),
        faces=len(last.reduced.faces),
        glb_bytes=len(last.glb),
        b64_bytes=len(base64.b64encode(last.glb)),
        texture_bytes=stats["texture_bytes"],
        texture_mime=stats["texture_mime"],
        glb_with_normals=last.glb_with_normals,
        error=surface_error(last.reduced, last.reference, samples=samples),
    )


def bench_resolution(resolution: int, args: argparse.Namespace, texture) -> tuple[Summary, Summary]:
    grid = subject_grid(resolution)
    nan_share = float(np.isnan(grid).mean())
    baseline_runs, ours_runs = [], []
    for _ in range(args.repeats):
        baseline_runs.append(baseline_chain(grid, resolution, texture, args.faces))
        ours_runs.append(ours_chain(grid, texture, args.faces))
    base, ours = summarise(baseline_runs, args.samples), summarise(ours_runs, args.samples)
    report(resolution, nan_share, len(ours_runs[-1].reference.faces), base, ours, args)
    return base, ours


def _stage_line(summary: Summary) -> str:
    return "  ".join(f"{k}={v:.3f}" for k, v in summary.stages.items())


def report(resolution: int, nan_share: float, full_faces: int, base: Summary, ours: Summary, args) -> None:
    print(
        f"== {resolution + 1}^3 grid ({resolution} cells a side, {nan_share:.1%} NaN), "
        f"{full_faces} faces before decimation, budget {args.faces}, texture {args.texture}, "
        f"median of {args.repeats} =="
    )
    for name, s in (("baseline", base), ("ours", ours)):
        print(f"{name:9s} stages(s): {_stage_line(s)}")
        print(
            f"{name:9s} total={s.total:.3f}s faces={s.faces} glb={s.glb_bytes} base64={s.b64_bytes} "
            f"error_mean={s.error['mean']:.6f} error_max={s.error['max']:.6f}"
        )
        print(
            f"{name:9s} glb: texture {s.texture_mime} {s.texture_bytes} + geometry/json {s.glb_bytes - s.texture_bytes}"
        )
    print(
        f"ratio     total(baseline/ours)={base.total / ours.total:.2f} "
        f"bytes(ours/baseline)={ours.glb_bytes / base.glb_bytes:.3f} "
        f"error_mean(ours/baseline)={ours.error['mean'] / base.error['mean']:.3f}"
    )
    print(
        f"info      ours with smooth_normals=true (the service's default; the sizes above, like hy3dgen's "
        f"GLB, carry no normals): "
        f"glb={ours.glb_with_normals} bytes(ours/baseline)={ours.glb_with_normals / base.glb_bytes:.3f}",
        flush=True,
    )


def warm_up(texture) -> None:
    """Untimed run of both chains on a tiny grid: imports, VTK's first call, caches."""
    from pipeline.mesh import warm_up as warm_vtk

    warm_vtk()
    grid = subject_grid(32)
    baseline_chain(grid, 32, texture, 1000)
    ours_chain(grid, texture, 1000)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 384])
    parser.add_argument("--faces", type=int, default=40000)
    parser.add_argument("--texture", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=100_000, help="surface samples per direction")
    parser.add_argument("--quick", action="store_true", help="64^3 grid, 1 repeat, small texture (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.resolutions, args.faces, args.texture, args.samples = 1, [64], 3000, 256, 20_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # hy3dgen's FaceReducer & co. leave .ply files in the temp dir: give them a private one.
    private_tmp = tempfile.mkdtemp(prefix="bench-postprocess-")
    os.environ["TMPDIR"] = tempfile.tempdir = private_tmp
    try:
        from PIL import Image

        texture = Image.fromarray(detailed_texture(args.texture))
        warm_up(texture)
        results = [bench_resolution(res, args, texture) for res in args.resolutions]
        leftovers = list(Path(private_tmp).glob("*.ply"))
        print(
            f"temp files left by the chains: {len(leftovers)} .ply, "
            f"{sum(p.stat().st_size for p in leftovers) / 1e6:.0f} MB (all from hy3dgen's post-processors)"
        )
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    base, ours = results[-1]
    print(
        f"total_ratio={base.total / ours.total:.3f} bytes_ratio={ours.glb_bytes / base.glb_bytes:.4f} "
        f"error_ratio={ours.error['mean'] / base.error['mean']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
