"""Vectorised replacement for texgen's pure-Python ``meshVerticeInpaint``.

texgen's fallback (``mesh_processor.py``) takes seconds on a 40k-face mesh
(2-6 s measured). Before the full-frame ``cv2.inpaint`` runs, it gives each
mesh vertex whose texel lies outside the baked mask a colour: the
inverse-square-distance weighted mean of its already-coloured neighbours.

What the original does, and what it means for a faithful replacement:

* ``G[v]`` lists, for every face corner of ``v``, the *next* vertex of that
  face (with repeats). ``uncolored_vtxs`` lists one entry per face corner
  whose texel is unmasked, in face order, with repeats. A vertex that has
  another, masked corner is both coloured and on that list.
* Each pass walks that list **in order and in place** (Gauss-Seidel): an
  entry sees the colours that earlier entries of the same pass wrote, and
  every entry with a coloured neighbour rewrites its vertex, even one that
  was coloured already. The passes stop once the count of failed entries has
  stayed the same as often as it changed, plus twice. So both the number of
  passes and the colours depend on the list order.
* The chains of in-pass dependencies are long: thousands of steps on a real
  40k mesh. Replaying them in parallel waves would need thousands of numpy
  rounds.

So this module splits the work:

1. Boolean structure, exactly. The time (pass, position) at which each
   vertex first gets a colour is the earliest-arrival fixed point
   ``T[v] = next entry of v after min(T[neighbours])``, found by a vectorised
   Bellman-Ford. That gives every entry's first successful pass, the per-pass
   failure counts and so the number of passes, and which neighbours each
   entry sees as coloured.
2. Colours, as one sparse linear system. Every successful entry of every pass
   is an unknown. It equals the weighted mean of the latest writes of its
   coloured neighbours, or of their baked colours, which are unknowns fixed by
   the right-hand side. Ordered by time, that system is unit lower triangular,
   and SuperLU solves it in one sweep.

The solve runs in float64 while the original accumulates in float32. Colours
therefore agree to about 1e-6 (tests assert 1e-5 on [0, 1] textures), and
which texels get written agrees exactly.
"""

from __future__ import annotations

import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve_triangular

logger = logging.getLogger(__name__)

# The outputs are fresh copies, as the original's: at 2048 px the float32
# texture copy alone is 10 ms here (half of it the kernel zeroing new pages),
# a third of the whole call. numpy copies without the GIL, so one helper
# thread makes the copies, then picks the texels to write, while the calling
# thread solves the colours (52 -> 21 ms on bench/inpaint.py's 40k faces).
# The helper lives for one call (~0.1 ms to start): a pool kept in a module
# global would deadlock in a forked child, which inherits the pool but not
# its thread.

_NEVER = np.iinfo(np.int64).max // 4  # "no time": beyond any (pass, position) the original reaches
_MIN_DISTANCE = 1e-4  # the original's ``max(dist, 1e-4)``


@dataclass(frozen=True)
class _Entries:
    """The original's ``uncolored_vtxs`` list and lookups into its occurrences."""

    vertex: np.ndarray  # [M] vertex of each entry, in list order
    keys: np.ndarray  # sorted ``vertex * M + position`` of every entry
    first: np.ndarray  # [V] position of each vertex's first entry (valid where ``listed``)
    last: np.ndarray  # [V] position of each vertex's last entry (valid where ``listed``)
    listed: np.ndarray  # [V] bool: the vertex has at least one entry

    @property
    def size(self) -> int:
        return len(self.vertex)


@dataclass(frozen=True)
class _Neighbours:
    """``G`` as CSR: slots ``start[v]:start[v + 1]`` of ``target``/``weight`` belong to ``v``."""

    start: np.ndarray
    target: np.ndarray
    weight: np.ndarray  # float64 copy of the original's float32 inverse-square weights


def _corner_texels(vtx_uv: np.ndarray, uv_idx: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every face corner's texel, rounded half-to-even in the UVs' own dtype like ``round``."""
    uv = np.asarray(vtx_uv)
    cols = np.rint(uv[:, 0] * (width - 1)).astype(np.int64)
    rows = np.rint((1.0 - uv[:, 1]) * (height - 1)).astype(np.int64)
    flat = np.asarray(uv_idx).reshape(-1)
    return rows[flat], cols[flat]


def _texels(image: np.ndarray) -> np.ndarray:
    """``image`` as [H * W, C] rows for flat texel indexing: a view when contiguous (the usual case)."""
    return image.reshape(image.shape[0] * image.shape[1], -1)


def _baked_colours(
    texture: np.ndarray, ok: np.ndarray, texel: np.ndarray, corner_vertex: np.ndarray, n_vertices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which vertices start coloured, and their colour: the texel of their last masked corner."""
    corners = np.flatnonzero(ok)
    last = _last_corner(corner_vertex[corners], corners, n_vertices)
    colored = last >= 0
    colour = np.zeros((n_vertices, texture.shape[2]), dtype=np.result_type(texture.dtype, np.float32))
    colour[colored] = _texels(texture)[texel[last[colored]]]
    return colored, colour


def _last_corner(keys: np.ndarray, corners: np.ndarray, n_keys: int) -> np.ndarray:
    """Per key in [0, n_keys), the highest corner index carrying it (-1 if none): what sequential writes leave."""
    last = np.full(n_keys, -1, dtype=np.int64)
    np.maximum.at(last, keys, corners)
    return last


def _entries(corner_vertex: np.ndarray, ok: np.ndarray, n_vertices: int) -> _Entries:
    """The list of unmasked corners' vertices, in face order, with occurrence lookups."""
    vertex = corner_vertex[~ok]
    size = len(vertex)
    positions = np.argsort(vertex, kind="stable")
    keys = vertex[positions] * size + positions
    grouped = vertex[positions]
    starts = np.flatnonzero(np.diff(grouped, prepend=-1))
    ends = np.append(starts[1:], size)[: len(starts)] - 1
    listed = np.zeros(n_vertices, dtype=bool)
    listed[grouped[starts]] = True
    first = np.zeros(n_vertices, dtype=np.int64)
    last = np.zeros(n_vertices, dtype=np.int64)
    first[grouped[starts]] = positions[starts]
    last[grouped[starts]] = positions[ends]
    return _Entries(vertex, keys, first, last, listed)


def _edge_weights(vtx_pos: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``(1 / max(|p_src - p_dst|, 1e-4)) ** 2`` computed with the original's dtype and operation order."""
    pos = np.asarray(vtx_pos)
    diff = pos[src] - pos[dst]
    sq = diff * diff
    dist = np.sqrt((sq[:, 0] + sq[:, 1]) + sq[:, 2])
    near = dist < _MIN_DISTANCE
    inv = np.divide(1.0, dist, out=np.ones_like(dist), where=~near)
    weight = (inv * inv).astype(np.float64)
    weight[near] = (1.0 / _MIN_DISTANCE) ** 2
    return weight


def _neighbours(pos_idx: np.ndarray, vtx_pos: np.ndarray, listed: np.ndarray) -> _Neighbours:
    """Each listed vertex's successor in every face that uses it, as the original's ``G`` (others stay empty)."""
    n_vertices = len(listed)
    faces = np.asarray(pos_idx).astype(np.int64)
    src = faces.reshape(-1)
    dst = faces[:, [1, 2, 0]].reshape(-1)
    keep = listed[src]
    src, dst = src[keep], dst[keep]
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    start = np.zeros(n_vertices + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_vertices), out=start[1:])
    return _Neighbours(start, dst, _edge_weights(vtx_pos, src, dst))


def _next_entry(entries: _Entries, vertex: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Global time (pass * M + position) of each listed vertex's first entry strictly after ``after``."""
    size = entries.size
    pass_, pos = np.divmod(after, size)
    idx = np.searchsorted(entries.keys, vertex * size + pos, side="right")
    hit = np.minimum(idx, size - 1)
    same_pass = (idx < size) & (entries.keys[hit] // size == vertex)
    return np.where(
        same_pass, pass_ * size + entries.keys[hit] - vertex * size, (pass_ + 1) * size + entries.first[vertex]
    )


def _ranges(start: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start[i], start[i] + counts[i])`` over i."""
    return np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


def _colouring_times(colored: np.ndarray, entries: _Entries, graph: _Neighbours) -> tuple[np.ndarray, np.ndarray]:
    """Time each vertex first holds a colour (-1 baked, ``_NEVER`` never), and min of its neighbours' times.

    Bellman-Ford on ``T[v] = next entry of v after min(T[G[v]])``: each round
    extends the coloured region by one edge, and finite times are grounded in
    baked vertices, so the fixed point reached from above is the simulation's.
    """
    times = np.where(colored, -1, _NEVER).astype(np.int64)
    listed = np.flatnonzero(entries.listed)
    seg_start = graph.start[listed]
    counts = graph.start[listed + 1] - seg_start
    targets = graph.target[_ranges(seg_start, counts)]
    segments = np.cumsum(counts) - counts
    while True:
        earliest = np.minimum.reduceat(times[targets], segments)
        reachable = np.flatnonzero(earliest < _NEVER)
        current = times[listed]
        candidate = current.copy()
        arrival = _next_entry(entries, listed[reachable], earliest[reachable])
        candidate[reachable] = np.minimum(current[reachable], arrival)
        if np.array_equal(candidate, current):
            break
        times[listed] = candidate
    neighbour_min = np.full(len(colored), _NEVER, dtype=np.int64)
    neighbour_min[listed] = earliest
    return times, neighbour_min


def _split(times: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (pass, position) of a time; ``_NEVER`` passes stay ``_NEVER``."""
    pass_, pos = np.divmod(times, size)
    return np.where(times < _NEVER, pass_, _NEVER), pos


def _first_pass_after(ready: tuple[np.ndarray, np.ndarray], vertex: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Smallest pass p >= 0 with ``p * M + pos > ready[vertex]`` (at least ``_NEVER`` when that is never)."""
    ready_pass, ready_pos = ready
    return ready_pass[vertex] + (pos <= ready_pos[vertex])


def _first_success(entries: _Entries, neighbour_min: np.ndarray) -> np.ndarray:
    """Per entry, the first pass in which it finds a coloured neighbour (``_NEVER`` or more if none)."""
    return _first_pass_after(_split(neighbour_min, entries.size), entries.vertex, np.arange(entries.size))


def _pass_count(first_success: np.ndarray) -> int:
    """Replay the original's ``smooth_count`` stopping rule on the per-pass failure counts."""
    smooth, last, passes = 2, 0, 0
    while smooth > 0:
        failed = int(np.count_nonzero(first_success > passes))
        smooth += -1 if failed == last else 1
        last, passes = failed, passes + 1
    return passes


@dataclass(frozen=True)
class _Schedule:
    """Successful entries of every pass, numbered in time order (after the baked-colour nodes)."""

    passes: int
    node: np.ndarray  # [passes, M] node number, -1 where the entry fails


def _schedule(first_success: np.ndarray, passes: int, n_baked: int) -> _Schedule:
    succeeded = np.arange(passes)[:, None] >= first_success[None, :]
    node = np.cumsum(succeeded.reshape(-1)).reshape(passes, -1) - 1 + n_baked
    return _Schedule(passes, np.where(succeeded, node, -1))


def _previous_entry(entries: _Entries, vertex: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Position of each vertex's last entry before ``pos`` in the list (-1 if none).

    The vertex's first and last entries settle most queries (two thirds on
    the bench mesh); only positions between them need the search, the
    costliest step of the reads.
    """
    listed = entries.listed[vertex]
    first, last = entries.first[vertex], entries.last[vertex]
    previous = np.where(listed & (pos > last), last, -1)
    todo = np.flatnonzero(listed & (pos > first) & (pos <= last))
    vertex, pos = vertex[todo], pos[todo]
    size = entries.size
    idx = np.searchsorted(entries.keys, vertex * size + pos, side="left") - 1
    previous[todo] = entries.keys[idx] - vertex * size  # an entry lies at or before ``first < pos``
    return previous


@dataclass(frozen=True)
class _Reads:
    """Every (entry, neighbour slot) that ever reads a colour, with the first pass each source applies from.

    In pass p the slot reads if ``p >= live_from``. Its neighbour's latest
    write is then the neighbour's last entry before the reader in the same
    pass (from ``same_from``), else its last entry of the previous pass (from
    ``prior_from``), else its baked colour.
    """

    entry: np.ndarray  # reader's list position, non-decreasing
    target: np.ndarray
    weight: np.ndarray
    previous: np.ndarray
    last: np.ndarray
    live_from: np.ndarray
    same_from: np.ndarray
    prior_from: np.ndarray


def _reads(
    entries: _Entries, graph: _Neighbours, times: np.ndarray, neighbour_min: np.ndarray, first_success: np.ndarray
) -> _Reads:
    size = entries.size
    seg_start = graph.start[entries.vertex]
    counts = graph.start[entries.vertex + 1] - seg_start
    entry = np.repeat(np.arange(size), counts)
    slot = _ranges(seg_start, counts)
    target = graph.target[slot]
    live_from = np.maximum(first_success[entry], _first_pass_after(_split(times, size), target, entry))
    keep = live_from < _NEVER
    entry, target, slot, live_from = entry[keep], target[keep], slot[keep], live_from[keep]
    ready = _split(neighbour_min, size)
    previous = _previous_entry(entries, target, entry)
    listed = entries.listed[target]
    last = np.where(listed, entries.last[target], 0)
    same_from = np.where(previous >= 0, _first_pass_after(ready, target, previous), _NEVER)
    prior_from = np.where(listed, _first_pass_after(ready, target, last) + 1, _NEVER)
    return _Reads(entry, target, graph.weight[slot], previous, last, live_from, same_from, prior_from)


def _pass_reads(reads: _Reads, schedule: _Schedule, baked_node: np.ndarray, pass_: int) -> tuple[np.ndarray, ...]:
    """Reader node, source node and normalised weight of every read in pass ``pass_``."""
    live = np.flatnonzero(reads.live_from <= pass_)
    reader = schedule.node[pass_][reads.entry[live]]
    same = reads.same_from[live] <= pass_
    prior = ~same & (reads.prior_from[live] <= pass_)
    source = baked_node[reads.target[live]]
    source[same] = schedule.node[pass_][reads.previous[live[same]]]
    if pass_ >= 1:
        source[prior] = schedule.node[pass_ - 1][reads.last[live[prior]]]
    weight = reads.weight[live]
    base = reader[0] if len(reader) else 0
    total = np.bincount(reader - base, weights=weight)
    return reader, source, weight / total[reader - base]


def _lower_unit_system(reader: np.ndarray, source: np.ndarray, coef: np.ndarray, n_nodes: int) -> sparse.csr_array:
    """CSR of ``I - A`` for reads sorted by reader; each row's diagonal 1 goes after its reads."""
    per_row = np.bincount(reader, minlength=n_nodes) + 1
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)  # SuperLU takes int32 indices: no cast copies
    np.cumsum(per_row, out=indptr[1:])
    data = np.empty(indptr[-1])
    indices = np.empty(indptr[-1], dtype=np.int32)
    at = np.arange(len(reader)) + reader
    data[at], indices[at] = -coef, source
    data[indptr[1:] - 1], indices[indptr[1:] - 1] = 1.0, np.arange(n_nodes)
    return sparse.csr_array((data, indices, indptr), shape=(n_nodes, n_nodes))


def _solve_colours(
    entries: _Entries,
    graph: _Neighbours,
    times: np.ndarray,
    neighbour_min: np.ndarray,
    first_success: np.ndarray,
    passes: int,
    baked: np.ndarray,
) -> tuple[_Schedule, np.ndarray]:
    """Colour written by every successful entry of every pass: one unit lower triangular solve in float64.

    Nodes are the baked colours that get read, then the successful entries in
    time order, so every read points at an earlier node.
    """
    reads = _reads(entries, graph, times, neighbour_min, first_success)
    if not len(reads.entry):  # no entry ever finds a coloured neighbour
        return _schedule(first_success, passes, 0), np.zeros((0, baked.shape[1]))
    baked_targets = np.unique(reads.target[times[reads.target] < 0])
    baked_node = np.full(len(times), -1, dtype=np.int64)
    baked_node[baked_targets] = np.arange(len(baked_targets))
    schedule = _schedule(first_success, passes, len(baked_targets))
    n_nodes = int(schedule.node.max(initial=len(baked_targets) - 1)) + 1
    parts = [_pass_reads(reads, schedule, baked_node, p) for p in range(passes)]
    reader, source, coef = (np.concatenate(column) for column in zip(*parts))
    if source.min() < 0:
        raise AssertionError("a read found neither a write nor a baked colour")
    rhs = np.zeros((n_nodes, baked.shape[1]))
    rhs[: len(baked_targets)] = baked[baked_targets]
    system = _lower_unit_system(reader, source, coef, n_nodes)
    solution = spsolve_triangular(system, rhs, lower=True, unit_diagonal=True, overwrite_A=True, overwrite_b=True)
    return schedule, solution.reshape(n_nodes, -1)


def _final_colours(
    entries: _Entries,
    neighbour_min: np.ndarray,
    schedule: _Schedule,
    written: np.ndarray,
    baked: np.ndarray,
) -> np.ndarray:
    """Each vertex's colour after the last pass: its last entry's write, if that succeeded, else its baked colour."""
    colour = baked.copy()
    listed = np.flatnonzero(entries.listed)
    last = entries.last[listed]
    final_pass = schedule.passes - 1
    wrote = (final_pass * entries.size + last) > neighbour_min[listed]
    colour[listed[wrote]] = written[schedule.node[final_pass, last[wrote]]].astype(np.float32)
    return colour


def mesh_vertex_inpaint(
    texture: np.ndarray,
    mask: np.ndarray,
    vtx_pos: np.ndarray,
    vtx_uv: np.ndarray,
    pos_idx: np.ndarray,
    uv_idx: np.ndarray,
    method: str = "smooth",
) -> tuple[np.ndarray, np.ndarray]:
    """Drop-in for texgen's ``meshVerticeInpaint``: returns ``(new_texture, new_mask)``.

    ``texture`` is [H, W, C], ``mask`` [H, W] (> 0 = baked). Every vertex that
    ends up coloured has its colour written at all of its corners' texels,
    whose mask becomes 255.
    """
    if method != "smooth":
        raise ValueError("Invalid method. Use 'smooth' or 'forward'.")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inpaint-helper") as helper:
        copies = helper.submit(_copy_outputs, texture, mask)
        height, width = texture.shape[:2]
        n_vertices = len(vtx_pos)
        rows, cols = _corner_texels(vtx_uv, uv_idx, height, width)
        texel = rows * width + cols
        corner_vertex = np.asarray(pos_idx).astype(np.int64).reshape(-1)
        ok = _texels(np.asarray(mask))[texel, 0] > 0
        colored, baked = _baked_colours(texture, ok, texel, corner_vertex, n_vertices)
        entries = _entries(corner_vertex, ok, n_vertices)
        graph = _neighbours(pos_idx, vtx_pos, entries.listed)
        if entries.size:
            times, neighbour_min = _colouring_times(colored, entries, graph)
            has_colour = times < _NEVER
        else:
            has_colour = colored
        # Which texels get written depends only on which vertices end up coloured:
        # the helper works that out (after the copies) while this thread solves the colours.
        corner_uv = np.asarray(uv_idx).astype(np.int64).reshape(-1)
        winners = helper.submit(_winning_corners, texel, corner_vertex, corner_uv, has_colour)
        if entries.size:
            first = _first_success(entries, neighbour_min)
            schedule, written = _solve_colours(
                entries, graph, times, neighbour_min, first, _pass_count(first), baked.astype(np.float64)
            )
            colour = _final_colours(entries, neighbour_min, schedule, written, baked)
        else:
            colour = baked
        new_texture, new_mask = copies.result()
        texels, vertices = winners.result()
        _texels(new_texture)[texels] = colour[vertices]
        _texels(new_mask)[texels] = 255
        return new_texture, new_mask


def _copy_outputs(texture: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return texture.copy(), mask.copy()  # C order, so the flat views above write into them


def _winning_corners(
    texel: np.ndarray, corner_vertex: np.ndarray, corner_uv: np.ndarray, has_colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(texel, vertex) of every write the original leaves standing.

    Each coloured vertex's colour goes to all of its corners' texels, in
    corner order, so the last corner wins a shared texel. Corners of one UV
    vertex share a texel: keep the last per UV vertex, then the last per texel.
    """
    painted = np.flatnonzero(has_colour[corner_vertex])
    per_uv = _last_corner(corner_uv[painted], painted, int(corner_uv.max(initial=-1)) + 1)
    candidates = per_uv[per_uv >= 0]
    keys = np.sort(texel[candidates] * len(texel) + candidates)
    last_of_texel = np.ones(len(keys), dtype=bool)
    last_of_texel[:-1] = keys[1:] // len(texel) != keys[:-1] // len(texel)
    winners = keys[last_of_texel] % len(texel)
    return texel[winners], corner_vertex[winners]


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
        module.meshVerticeInpaint = mesh_vertex_inpaint
        patched.append(name)
    logger.info("texgen vertex inpaint replaced by the vectorised version in %s", ", ".join(patched))
    return patched
