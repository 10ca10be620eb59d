"""Benchmark the response's preview image (``pipeline/preview.py``) against a
naive software renderer, in the same run.

Run from the repository root: ``python -m bench.preview [--repeats N]``.

Subjects, both at 40,000 faces and textured:

* ``figure``: the Hunyuan-like test figure from ``bench/common.py``, extracted,
  cleaned and decimated by the service's own chain, UV-unwrapped, with the
  realistic 2048 texture of ``bench.common.detailed_texture``;
* ``draft``: the draft backend's inflated stick figure (``bench/draft.py``).

Baseline: the usual no-OpenGL fallback, a painter's algorithm with Pillow's
``ImageDraw.polygon``: faces sorted back to front, each filled flat with
its texture colour at the centroid and Lambert shading of its face normal.
It has no z-buffer (intersecting faces sort wrongly), no smooth shading and
no per-pixel texture, so it is a floor for time, not a match for quality.

Targets (issue 18): at most 0.5 s a render at 40k faces on the 2-core
development CPU, and at most 150 KB of PNG.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import preview

FACES = 40000
TARGET_S = 0.5
TARGET_BYTES = 150_000


def figure_subject():
    """The postprocess bench's figure as the service would texture it."""
    import trimesh
    from PIL import Image
    from trimesh.visual.material import PBRMaterial

    from bench.common import detailed_texture
    from bench.uv import subject_mesh
    from pipeline.mesh import unwrap_uv

    mesh, _ = unwrap_uv(subject_mesh(FACES))
    texture = Image.fromarray(detailed_texture(2048))
    mesh.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=PBRMaterial(baseColorTexture=texture))
    return mesh


def draft_subject():
    from bench.draft import figure_image
    from pipeline.mesh.inflate import inflate_silhouette

    return inflate_silhouette(figure_image(1024), FACES, textured=True)


def painter_baseline(mesh, size: int = preview.PREVIEW_SIZE) -> bytes:
    """Naive flat-shaded painter's algorithm with Pillow (see the module docstring)."""
    from PIL import Image, ImageDraw

    from pipeline.export import texture_image

    vertices = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces)
    view = preview.View.three_quarter().matrix()
    local = (vertices - (vertices.min(0) + vertices.max(0)) / 2) @ view.T
    scale = preview.FILL / np.abs(local[:, :2]).max() * (size - 1) / 2
    xy = np.column_stack([size / 2 + local[:, 0] * scale, size / 2 - local[:, 1] * scale])
    tri = local[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    normals[normals[:, 2] < 0] *= -1
    light = np.array([-0.35, 0.55, 0.75]) / np.linalg.norm([-0.35, 0.55, 0.75])
    shade = preview.AMBIENT + preview.DIFFUSE * np.clip(normals @ light, 0, None)
    image = texture_image(mesh)
    if image is not None:
        tex = np.asarray(image.convert("RGB"))
        uv = np.asarray(mesh.visual.uv)[faces].mean(axis=1)
        col = np.clip((uv[:, 0] * (tex.shape[1] - 1)).round().astype(int), 0, tex.shape[1] - 1)
        row = np.clip(((1 - uv[:, 1]) * (tex.shape[0] - 1)).round().astype(int), 0, tex.shape[0] - 1)
        albedo = tex[row, col] / 255.0
    else:
        albedo = np.tile(preview.UNTEXTURED_RGB, (len(faces), 1))
    colours = np.clip(albedo * shade[:, None] * 255, 0, 255).astype(np.uint8)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    points = xy[faces]
    for f in np.argsort(tri[:, :, 2].mean(axis=1)):  # farthest first
        r, g, b = colours[f]
        draw.polygon([tuple(p) for p in points[f]], fill=(int(r), int(g), int(b), 255))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def timed(fn, repeats: int) -> tuple[float, float, float, bytes, float]:
    """(median, min, max wall seconds, last output, median CPU seconds of this
    process) of ``repeats`` calls. CPU time is printed too because the shared
    development machine's other jobs inflate wall time, not CPU time."""
    seconds, cpu, out = [], [], b""
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(seconds), min(seconds), max(seconds), out, statistics.median(cpu)


def share_covered(png: bytes) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return float((np.asarray(img.convert("RGBA"))[..., 3] > 0).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--save", type=Path, default=None, help="write the PNGs into this folder")
    args = parser.parse_args(argv)
    import torch

    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats}")
    ok = True
    for name, build in (("figure", figure_subject), ("draft", draft_subject)):
        mesh = build()
        start = time.perf_counter()
        preview.render_preview_png(mesh)  # the first call in a process pays torch's one-off set-up
        first = time.perf_counter() - start
        ours = timed(lambda mesh=mesh: preview.render_preview_png(mesh), args.repeats)
        base = timed(lambda mesh=mesh: painter_baseline(mesh), args.repeats)
        print(f"{name}: {len(mesh.faces)} faces")
        print(
            f"  ours (torch rasterizer, smooth, per-pixel texture): median {ours[0]:.3f} s "
            f"(min {ours[1]:.3f}, max {ours[2]:.3f}; CPU {ours[4]:.3f} s; first call {first:.3f} s), "
            f"{len(ours[3]):,} bytes, "
            f"model covers {share_covered(ours[3]):.1%}"
        )
        print(
            f"  baseline (Pillow painter's algorithm, flat): median {base[0]:.3f} s "
            f"(min {base[1]:.3f}, max {base[2]:.3f}; CPU {base[4]:.3f} s), {len(base[3]):,} bytes"
        )
        print(f"  ours / baseline time: {ours[0] / base[0]:.2f}")
        meets = ours[0] <= TARGET_S and len(ours[3]) <= TARGET_BYTES
        ok &= meets
        print(f"  targets (<= {TARGET_S} s, <= {TARGET_BYTES // 1000} KB): {'met' if meets else 'MISSED'}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{name}-ours.png").write_bytes(ours[3])
            (args.save / f"{name}-baseline.png").write_bytes(base[3])
    print(f"preview_targets_met={int(ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
