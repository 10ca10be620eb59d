"""PyTorch stand-in for Hunyuan3D's compiled ``custom_rasterizer`` extension.

texgen's ``mesh_render.py`` does ``import custom_rasterizer as cr`` and calls
only ``cr.rasterize`` and ``cr.interpolate``. The extension is not on PyPI and
needs nvcc, so :func:`install_rasterizer` registers this module's functions
under that name when the compiled one is missing.

Conventions, determined from upstream's kernel source (``rasterizer.cpp`` and
``rasterizer_gpu.cu``, which do the same per pixel) and from how
``mesh_render.py`` consumes the result:

* ``resolution`` is ``(H, W)``; outputs are indexed ``[row, col]``.
* Viewport: ``screen = (ndc * 0.5 + 0.5) * (size - 1) + 0.5``, sampled at
  pixel centres ``(col + 0.5, row + 0.5)``. Column ``c`` therefore sees
  ``ndc x = 2 c / (W - 1) - 1``: the outermost centres sit exactly on
  ``ndc = +-1`` ("align corners"). Row 0 is ``ndc y = -1``; there is **no**
  y flip. texgen relies on this for its UV maps (texel row ``r`` <-> flipped
  ``v = r / (H - 1)``, the same rounding ``meshVerticeInpaint`` uses).
* Coverage: a pixel is covered when the three screen-space barycentrics at
  its centre all lie in ``[0, 1]``. Edges are inclusive, both windings are
  drawn and zero-area faces never are.
* Depth: ``ndc z * 0.49999 + 0.5``, interpolated with the screen-space
  barycentrics. Fragments with depth < 0 are dropped (a near clip; there is
  no far clip). The z-buffer keeps the smallest ``(int(depth * 2**18), face)``
  pair, so an exact tie goes to the lower face index. This matters for UV
  rasterization, where every depth is equal.
* ``findices``: int32, face index + 1, 0 where empty.
* ``barycentric``: float32, **perspective-correct**. The screen-space weights
  are divided by each vertex's clip ``w`` and renormalised. For texgen's
  orthographic camera (``w = 1``) that equals the screen-space weights. It is
  zero where empty.

Every formula below repeats the kernel's float32 operations in the same order,
including its two double-precision steps. The tests check the output bit for
bit against a scalar, per-pixel transcription of the kernel, so it should
match the CPU build exactly. The CUDA build may differ in the last ulp where
nvcc fuses a multiply-add, which can move a pixel lying exactly on an edge.

The work is vectorised: faces are processed in chunks sized by how many
bounding-box pixels they test. Pass 1 resolves the z-buffer with
``scatter_reduce(amin)`` over packed int64 keys. Pass 2 recomputes the
barycentrics of each pixel's winning face, as the kernel does.
"""

from __future__ import annotations

import importlib.machinery
import itertools
import logging
import sys
import types

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

_MAXINT = 2147483647  # the kernel packs (quantised depth, face + 1) as depth * MAXINT + face + 1
_DEPTH_SCALE = 262144.0  # the kernel's ``2 << 17``
_DEPTH_PRIOR_TRUNCATION = 1e-6  # ``occlusion_truncation`` upstream passes with a depth prior
_EMPTY = torch.iinfo(torch.int64).max
# Per-face parameters gathered for every tested pixel, one row per face.
_A0, _A1, _CA0, _CA1, _BA0, _BA1, _INV, _Z0, _Z1, _Z2, _W0, _W1, _W2 = range(13)


def _screen_vertices(pos: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-vertex pixel x, y and [0, 1] depth, in the kernel's float32 operation order."""
    x, y, z, w = pos.unbind(-1)
    sx = ((x / w) * 0.5 + 0.5) * float(width - 1) + 0.5
    sy = (0.5 + (0.5 * y) / w) * float(height - 1) + 0.5
    sz = (z / w) * 0.49999 + 0.5
    return sx, sy, sz


def _face_parameters(screen: tuple[Tensor, Tensor, Tensor], w: Tensor, tri: Tensor) -> tuple[Tensor, Tensor]:
    """[F, 13] per-face terms of the barycentric formula, and which faces can cover anything."""
    sx, sy, sz = screen
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ax, ay, bx, by, cx, cy = sx[a], sy[a], sx[b], sy[b], sx[c], sy[c]
    ca0, ca1, ba0, ba1 = cx - ax, cy - ay, bx - ax, by - ay
    area = ca0 * ba1 - ba0 * ca1  # calculateSignedArea2(a, b, c)
    inv = (1.0 / area.double()).float()  # ``float tri_inv = 1.0 / area``: a double division
    params = torch.stack([ax, ay, ca0, ca1, ba0, ba1, inv, sz[a], sz[b], sz[c], w[a], w[b], w[c]], dim=1)
    drawable = (area != 0) & torch.isfinite(params[:, :_W0]).all(dim=1)
    return params, drawable


def _barycentrics(params: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Screen-space barycentrics of pixel centres (px, py) for each row of face parameters."""
    pa0 = (px.to(params.dtype) + 0.5) - params[:, _A0]
    pa1 = (py.to(params.dtype) + 0.5) - params[:, _A1]
    beta = (params[:, _CA0] * pa1 - pa0 * params[:, _CA1]) * params[:, _INV]  # area2(a, p, c) / area
    gamma = (pa0 * params[:, _BA1] - params[:, _BA0] * pa1) * params[:, _INV]  # area2(a, b, p) / area
    alpha = (1.0 - beta.double() - gamma.double()).float()  # ``float alpha = 1.0 - beta - gamma``
    return alpha, beta, gamma


def _inside(alpha: Tensor, beta: Tensor, gamma: Tensor) -> Tensor:
    """The kernel's inclusive coverage test (NaN fails it)."""
    return (alpha >= 0) & (alpha <= 1) & (beta >= 0) & (beta <= 1) & (gamma >= 0) & (gamma <= 1)


def _pixel_boxes(
    screen: tuple[Tensor, Tensor, Tensor], tri: Tensor, drawable: Tensor, height: int, width: int
) -> Tensor:
    """[F, 4] (x0, y0, box width, box height) of the pixels the kernel's loop visits, clipped to the image."""
    fx = torch.where(drawable[:, None], screen[0][tri], 0.0)
    fy = torch.where(drawable[:, None], screen[1][tri], 0.0)
    # The loop runs ``for (int px = x_min; px < x_max + 1; ++px)``: from trunc(x_min) to ceil(x_max).
    x0 = fx.amin(1).floor().clamp(0, width).long()
    y0 = fy.amin(1).floor().clamp(0, height).long()
    x1 = fx.amax(1).ceil().clamp(-1, width - 1).long()
    y1 = fy.amax(1).ceil().clamp(-1, height - 1).long()
    bw = torch.where(drawable, (x1 - x0 + 1).clamp(min=0), 0)
    bh = (y1 - y0 + 1).clamp(min=0)
    return torch.stack([x0, y0, bw, bh], dim=1)


def _chunks(counts: Tensor, budget: int) -> list[tuple[int, int]]:
    """Split faces into runs of about ``budget`` tested pixels (a run may overshoot by its last face)."""
    counts_np = counts.cpu().numpy()
    starts = np.cumsum(counts_np) - counts_np
    run = starts // max(budget, 1)
    edges = [0, *(np.flatnonzero(np.diff(run)) + 1).tolist(), len(counts_np)]
    return [(a, b) for a, b in itertools.pairwise(edges) if counts_np[a:b].any()]


def _candidate_pixels(boxes: Tensor, first: int, last: int) -> tuple[Tensor, Tensor, Tensor]:
    """Face index, column and row of every pixel in the boxes of faces [first, last)."""
    box = boxes[first:last]
    counts = box[:, 2] * box[:, 3]
    total = int(counts.sum())
    local = torch.repeat_interleave(torch.arange(last - first, device=boxes.device), counts, output_size=total)
    offset = torch.arange(total, device=boxes.device) - (counts.cumsum(0) - counts)[local]
    bw = box[local, 2]
    px = box[local, 0] + offset % bw
    py = box[local, 1] + torch.div(offset, bw, rounding_mode="floor")
    return local + first, px, py


def _depth_threshold(clamp_depth: Tensor | None, pixel: Tensor) -> Tensor | float:
    """Per-fragment minimum depth: 0 (near clip), or the depth prior plus upstream's truncation."""
    if clamp_depth is None:
        return 0.0
    prior = clamp_depth.reshape(-1).to(device=pixel.device, dtype=torch.float32)[pixel]
    return prior * 0.49999 + 0.5 + _DEPTH_PRIOR_TRUNCATION


def _zbuffer(params: Tensor, boxes: Tensor, height: int, width: int, clamp_depth: Tensor | None, budget: int) -> Tensor:
    """Pass 1: [H*W] int64 of min(quantised depth * MAXINT + face + 1), ``_EMPTY`` where nothing lands."""
    zbuf = torch.full((height * width,), _EMPTY, dtype=torch.int64, device=params.device)
    for first, last in _chunks(boxes[:, 2] * boxes[:, 3], budget):
        face, px, py = _candidate_pixels(boxes, first, last)
        fp = params[face, :_W0]
        alpha, beta, gamma = _barycentrics(fp, px, py)
        depth = alpha * fp[:, _Z0] + beta * fp[:, _Z1] + gamma * fp[:, _Z2]
        pixel = py * width + px
        keep = _inside(alpha, beta, gamma) & (depth >= _depth_threshold(clamp_depth, pixel))
        quantised = (depth * _DEPTH_SCALE).to(torch.int64)  # C's float -> int truncation
        # The kernel packs into unsigned 64 bits: a negative or int-overflowing depth never wins its atomicMin.
        keep &= (quantised >= 0) & (quantised < _MAXINT)
        key = quantised * _MAXINT + (face + 1)
        zbuf.scatter_reduce_(0, pixel[keep], key[keep], reduce="amin")
    return zbuf


def _resolve(params: Tensor, zbuf: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pass 2: face ids and perspective-correct barycentrics of each pixel's winning face."""
    findices = torch.zeros(height * width, dtype=torch.int32, device=zbuf.device)
    barycentric = torch.zeros(height * width, 3, dtype=torch.float32, device=zbuf.device)
    pixel = torch.nonzero(zbuf != _EMPTY).squeeze(1)
    face = zbuf[pixel] % _MAXINT - 1
    fp = params[face]
    alpha, beta, gamma = _barycentrics(fp, pixel % width, torch.div(pixel, width, rounding_mode="floor"))
    b0, b1, b2 = alpha / fp[:, _W0], beta / fp[:, _W1], gamma / fp[:, _W2]
    norm = 1.0 / (b0 + b1 + b2)
    findices[pixel] = (face + 1).to(torch.int32)
    barycentric[pixel] = torch.stack([b0 * norm, b1 * norm, b2 * norm], dim=1)
    return findices.view(height, width), barycentric.view(height, width, 3)


def _default_budget(device: torch.device) -> int:
    """Pixels tested per chunk: about 100 bytes each, so ~0.4 GB on a GPU and ~0.1 GB on a CPU."""
    return 1 << 22 if device.type == "cuda" else 1 << 20


@torch.no_grad()
def rasterize(
    pos: Tensor,
    tri: Tensor,
    resolution: tuple[int, int] | list[int],
    clamp_depth: Tensor | None = None,
    use_depth_prior: int = 0,
    budget: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Rasterize clip-space triangles like ``custom_rasterizer.rasterize``.

    ``pos`` is [1, N, 4] (or [N, 4]) clip space, ``tri`` [F, 3] vertex indices,
    ``resolution`` (H, W). Returns ``findices`` [H, W] int32 (face + 1, 0 =
    empty) and ``barycentric`` [H, W, 3] float32 on ``pos``'s device.
    ``clamp_depth`` [H, W] (ndc z) with ``use_depth_prior`` drops fragments
    in front of that prior, as upstream does. ``budget`` caps the pixels
    tested per chunk and so the peak memory.
    """
    height, width = int(resolution[0]), int(resolution[1])
    pos = (pos[0] if pos.dim() == 3 else pos).to(torch.float32)
    tri = tri.to(device=pos.device, dtype=torch.int64)
    prior = clamp_depth if use_depth_prior and clamp_depth is not None and clamp_depth.numel() else None
    screen = _screen_vertices(pos, height, width)
    params, drawable = _face_parameters(screen, pos[:, 3], tri)
    boxes = _pixel_boxes(screen, tri, drawable, height, width)
    zbuf = _zbuffer(params, boxes, height, width, prior, budget or _default_budget(pos.device))
    return _resolve(params, zbuf, height, width)


@torch.no_grad()
def interpolate(attr: Tensor, findices: Tensor, barycentric: Tensor, attr_idx: Tensor) -> Tensor:
    """Blend per-vertex ``attr`` [1, N, C] over the raster: [1, H, W, C], zeros where empty.

    ``findices`` may be float: ``mesh_render.py`` slices it out of a float
    tensor that it built by concatenating it with the barycentrics.
    """
    fid = findices.long()
    face = (fid - 1).clamp(min=0)
    corners = attr_idx.to(device=fid.device, dtype=torch.int64)[face]  # [H, W, 3]
    values = attr[0][corners]  # [H, W, 3, C]
    out = (barycentric.unsqueeze(-1).to(values.dtype) * values).sum(dim=-2)
    out = torch.where((fid > 0).unsqueeze(-1), out, torch.zeros_like(out))
    return out.unsqueeze(0)


def _torch_module() -> types.ModuleType:
    """A module object that can stand in for ``custom_rasterizer`` in ``sys.modules``."""
    module = types.ModuleType("custom_rasterizer", "PyTorch fallback for Hunyuan3D's custom_rasterizer.")
    vars(module).update(rasterize=rasterize, interpolate=interpolate, IMPLEMENTATION="torch")
    # A spec, so importlib.util.find_spec() works while it sits in sys.modules.
    module.__spec__ = importlib.machinery.ModuleSpec("custom_rasterizer", loader=None)
    return module


TORCH_RASTERIZER = _torch_module()


def install_rasterizer() -> str:
    """Make ``import custom_rasterizer`` work; return 'compiled' or 'torch' for the one now active.

    The compiled extension wins when it imports. Otherwise this module's
    functions are registered under its name, before texgen's ``MeshRender``
    imports it.
    """
    if sys.modules.get("custom_rasterizer") is TORCH_RASTERIZER:
        return "torch"
    try:
        import custom_rasterizer  # noqa: F401 - an availability probe
    except (ImportError, OSError) as exc:
        sys.modules["custom_rasterizer"] = TORCH_RASTERIZER
        logger.info("custom_rasterizer unavailable (%s); using the PyTorch rasterizer", exc)
        return "torch"
    logger.info("using the compiled custom_rasterizer extension")
    return "compiled"
