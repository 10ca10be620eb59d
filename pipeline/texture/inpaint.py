"""Compiled replacement for texgen's pure-Python ``meshVerticeInpaint``.

texgen's fallback (``mesh_processor.py``) takes seconds on a 40k-face mesh.
Before the texture fill runs, it gives each mesh
vertex whose texel lies outside the baked mask a colour: the
inverse-square-distance weighted mean of its already-coloured neighbours.

This module runs the same algorithm, in the same order and in the same float
types, compiled by numba at run time. The output is bit-identical to the
original's, and no compiler is needed at install time: llvmlite's wheel
carries LLVM. numba is already installed for rembg (through pymatting).

Why not numpy: the original walks its list of unbaked corners in order and
in place (Gauss-Seidel). Each entry sees the colours that earlier entries of
the same pass wrote, and the number of passes depends on those results. The
chains of dependencies run thousands of steps deep on a real mesh. An exact
numpy/scipy version (earliest-arrival times, then one sparse triangular
solve) was built first; it was exact to float rounding only, and slower than
the compiled loop, whose call is now dominated by the output copy. Figures:
``bench/inpaint.py`` and the README's "Performance" section.

Compiled code is cached on disk (``cache=True``: next to this file, or in
``NUMBA_CACHE_DIR``). :func:`warm_up` compiles it ahead of the first job.
"""

from __future__ import annotations

import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

logger = logging.getLogger(__name__)

_MIN_DISTANCE = 1e-4  # the original's ``max(dist, 1e-4)``
_CALLER_COPY_SHARE = 0.75  # of the texture's rows; the helper copies the rest after the loop (0.5-1.0 tried)


def _compiled(function):
    """``numba.njit`` without the GIL, cached on disk where numba finds a writable place.

    numba refuses ``cache=True`` at import when it has none (a read-only
    install with an unwritable home); then each process compiles once.
    """
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError as exc:
        logger.warning("numba cannot cache %s (%s); it will be compiled in each process", function.__name__, exc)
        return numba.njit(nogil=True)(function)


class _VertexColours(NamedTuple):
    coloured: np.ndarray  # [V] bool: the vertex ends up with a colour
    colour: np.ndarray  # [V, C] its colour
    texel: np.ndarray  # [F * 3] flat texel index (row * W + col) of every face corner
    passes: int  # smoothing passes the original runs
    corner_vertex: np.ndarray  # [F * 3] vertex of every face corner


@_compiled
def _texel(u, v, one, scale_w, scale_h, height: int, width: int) -> int:
    """Flat texel of one UV: ``int(round(u * (W - 1)))`` etc. in the UVs' float type.

    Negative indices wrap once, as numpy indexing does; anything still out of
    range is an error, as in the original.
    """
    col = int(np.rint(u * scale_w))
    row = int(np.rint((one - v) * scale_h))
    col = col + width if col < 0 else col
    row = row + height if row < 0 else row
    if not (0 <= row < height and 0 <= col < width):
        raise IndexError("a UV coordinate maps outside the texture")
    return row * width + col


@_compiled
def _vertex_colours_kernel(
    texture,
    mask,
    vtx_pos,
    vtx_uv,
    pos_idx,
    uv_idx,
    uv_one,
    scale_w,
    scale_h,
    pos_one,
    min_distance,
    near_weight,
    colour_dtype,
):
    """The original's two first loops, statement for statement, on flat arrays.

    ``G`` becomes CSR filled in face order, so each vertex's neighbours (and
    the float32 sums over them) come in the original's order.
    """
    height, width, channels = texture.shape
    n_vertices = vtx_pos.shape[0]
    n_faces = uv_idx.shape[0]
    coloured = np.zeros(n_vertices, np.bool_)
    colour = np.zeros((n_vertices, channels), colour_dtype)
    texel = np.empty(n_faces * 3, np.int64)
    unbaked = np.empty(n_faces * 3, np.int64)  # the original's ``uncolored_vtxs``
    n_unbaked = 0
    start = np.zeros(n_vertices + 1, np.int64)
    for i in range(n_faces):
        for k in range(3):
            vertex = pos_idx[i, k]
            uv = uv_idx[i, k]
            at = _texel(vtx_uv[uv, 0], vtx_uv[uv, 1], uv_one, scale_w, scale_h, height, width)
            texel[i * 3 + k] = at
            row, col = at // width, at % width
            if mask[row, col] > 0:
                coloured[vertex] = True
                for c in range(channels):
                    colour[vertex, c] = texture[row, col, c]
            else:
                unbaked[n_unbaked] = vertex
                n_unbaked += 1
            start[vertex + 1] += 1
    for v in range(n_vertices):
        start[v + 1] += start[v]
    fill = start[:-1].copy()
    neighbour = np.empty(n_faces * 3, np.int64)
    for i in range(n_faces):
        for k in range(3):
            vertex = pos_idx[i, k]
            neighbour[fill[vertex]] = pos_idx[i, (k + 1) % 3]
            fill[vertex] += 1

    total = np.zeros(channels, np.float32)  # ``sum_color``: float32 whatever the inputs
    smooth_count, last_failed, passes = 2, 0, 0
    while smooth_count > 0:
        failed = 0
        for e in range(n_unbaked):
            v = unbaked[e]
            total[:] = 0
            weight_sum = pos_one - pos_one
            for j in range(start[v], start[v + 1]):
                n = neighbour[j]
                if coloured[n]:
                    dx = vtx_pos[v, 0] - vtx_pos[n, 0]
                    dy = vtx_pos[v, 1] - vtx_pos[n, 1]
                    dz = vtx_pos[v, 2] - vtx_pos[n, 2]
                    dist = np.sqrt((dx * dx + dy * dy) + dz * dz)  # np.sum's order for three terms
                    if dist < min_distance:
                        weight = near_weight
                    else:
                        weight = pos_one / dist
                        weight = weight * weight
                    for c in range(channels):
                        total[c] = total[c] + colour[n, c] * weight
                    weight_sum += weight
            if weight_sum > 0:
                for c in range(channels):
                    colour[v, c] = total[c] / weight_sum
                coloured[v] = True
            else:
                failed += 1
        smooth_count += -1 if failed == last_failed else 1
        last_failed = failed
        passes += 1
    return coloured, colour, texel, passes


@_compiled
def _paint(new_texture, new_mask, texel, corner_vertex, coloured, colour, mark) -> None:
    """The original's last loop: every coloured vertex's colour at each corner's texel, in corner order."""
    width = new_texture.shape[1]
    for corner in range(texel.shape[0]):
        vertex = corner_vertex[corner]
        if coloured[vertex]:
            row, col = texel[corner] // width, texel[corner] % width
            for c in range(new_texture.shape[2]):
                new_texture[row, col, c] = colour[vertex, c]
            new_mask[row, col] = mark


def _float_array(values: np.ndarray) -> np.ndarray:
    """float32/float64 stay as they are (the original computes in their type); other types become float64."""
    values = np.asarray(values)
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


def _index_array(values: np.ndarray, name: str, bound: int) -> np.ndarray:
    indices = np.asarray(values)
    if indices.ndim != 2 or indices.shape[1] != 3 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of shape [F, 3], got {indices.dtype} {indices.shape}")
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= bound):
        raise IndexError(f"{name} refers to rows outside [0, {bound})")
    return indices


def _texture_array(texture: np.ndarray) -> np.ndarray:
    texture = np.asarray(texture)
    if texture.ndim != 3:
        raise ValueError(f"texture must be [H, W, C], got shape {texture.shape}")
    return texture


def _mask_plane(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as [H, W] (a view of an [H, W, 1] mask)."""
    plane = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if plane.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match the texture's {shape}")
    return plane


def vertex_colours(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx) -> _VertexColours:
    """Which vertices the original colours, with what, and each corner's texel (inputs checked)."""
    texture = _texture_array(texture)
    plane = _mask_plane(np.asarray(mask), texture.shape[:2])
    vtx_pos, vtx_uv = _float_array(vtx_pos), _float_array(vtx_uv)
    pos_idx = _index_array(pos_idx, "pos_idx", len(vtx_pos))
    uv_idx = _index_array(uv_idx, "uv_idx", len(vtx_uv))
    if pos_idx.shape != uv_idx.shape:
        raise ValueError(f"pos_idx {pos_idx.shape} and uv_idx {uv_idx.shape} must have the same shape")
    height, width = texture.shape[:2]
    uv_type, pos_type = vtx_uv.dtype.type, vtx_pos.dtype.type
    # The original mixes numpy scalars with Python numbers, which then take the numpy scalar's float type
    # (NEP 50); the typed scalars below do the same in the compiled loop. With float64 positions its weights,
    # and so its averages, are float64, hence the colour type.
    colour_dtype = np.result_type(texture.dtype, np.float32, vtx_pos.dtype)
    coloured, colour, texel, passes = _vertex_colours_kernel(
        texture,
        plane,
        vtx_pos,
        vtx_uv,
        pos_idx,
        uv_idx,
        uv_type(1.0),
        uv_type(width - 1),
        uv_type(height - 1),
        pos_type(1.0),
        pos_type(_MIN_DISTANCE),
        pos_type((1.0 / _MIN_DISTANCE) ** 2),
        colour_dtype,
    )
    return _VertexColours(coloured, colour, texel, passes, pos_idx.reshape(-1))


def mesh_vertex_inpaint(
    texture: np.ndarray,
    mask: np.ndarray,
    vtx_pos: np.ndarray,
    vtx_uv: np.ndarray,
    pos_idx: np.ndarray,
    uv_idx: np.ndarray,
    method: str = "smooth",
) -> tuple[np.ndarray, np.ndarray]:
    """Drop-in for texgen's ``meshVerticeInpaint``: returns ``(new_texture, new_mask)``, fresh arrays.

    ``texture`` is [H, W, C], ``mask`` [H, W] (> 0 = baked). Every vertex that
    ends up coloured has its colour written at all of its corners' texels,
    whose mask becomes 255. The inputs are not modified.
    """
    if method != "smooth":
        raise ValueError("Invalid method. Use 'smooth' or 'forward'.")
    texture, mask = _texture_array(texture), np.asarray(mask)
    new_texture, new_mask = np.empty(texture.shape, texture.dtype), np.empty(mask.shape, mask.dtype)
    # The output copies cost more than the loop (bench/inpaint.py: a 2048 px
    # float32 texture 13-16 ms, the loop 4-5 ms), and both numpy's copies and
    # the compiled loop release the GIL. So a helper thread runs the loop, then
    # copies the texture's last rows, while this thread copies the rest and the
    # mask. The helper lives for one call: a pool kept in a module global would
    # deadlock in a forked child, which inherits the pool but not its thread.
    split = int(len(texture) * _CALLER_COPY_SHARE)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inpaint-helper") as helper:
        solving = helper.submit(vertex_colours, texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx)
        copying = helper.submit(np.copyto, new_texture[split:], texture[split:])
        np.copyto(new_texture[:split], texture[:split])
        np.copyto(new_mask, mask)
        solved = solving.result()
        copying.result()
    _paint(
        new_texture,
        _mask_plane(new_mask, texture.shape[:2]),
        solved.texel,
        solved.corner_vertex,
        solved.coloured,
        solved.colour,
        new_mask.dtype.type(255),
    )
    return new_texture, new_mask


def warm_up() -> None:
    """Compile (or load from the cache) the kernels for texgen's input types: float32 and uint8."""
    texture = np.zeros((4, 4, 3), np.float32)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 255
    triangle = np.array([[0, 1, 2]], np.int32)
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    mesh_vertex_inpaint(texture, mask, points, points[:, :2], triangle, triangle)


_TEXGEN_MODULES = (
    "hy3dgen.texgen.differentiable_renderer.mesh_processor",
    "hy3dgen.texgen.differentiable_renderer.mesh_render",
)


def install_inpaint() -> list[str]:
    """Point texgen at :func:`mesh_vertex_inpaint`; return the modules patched.

    ``mesh_render.py`` binds ``meshVerticeInpaint`` at import
    (``from .mesh_processor import meshVerticeInpaint``), so its reference is
    replaced as well as the defining module's.
    """
    patched = []
    for name in _TEXGEN_MODULES:
        module = importlib.import_module(name)
        vars(module)["meshVerticeInpaint"] = mesh_vertex_inpaint  # a name texgen's modules bind at import
        patched.append(name)
    logger.info("texgen vertex inpaint replaced by the compiled version in %s", ", ".join(patched))
    return patched
