"""Texture hole fill that inpaints only the texels a render can see.

texgen ends with ``cv2.inpaint(texture, 255 - mask, 3, cv2.INPAINT_NS)`` over
the whole 2048 texture. Its cost grows with the number of texels it fills,
about 1 us each, and many unbaked texels are the empty space between UV
charts that no render ever samples: seconds per model (figures:
``bench/texture_fill.py`` and the README's "Performance" section).

:func:`fill_texture` does the same Navier-Stokes inpaint, but only on the
*zone*. The zone is the unbaked texels that need a value (inside ``region``,
normally the UV charts plus a bleed margin), plus a ring around them so that
they see nearly the same neighbourhood. By default the ring is ``pad``
texels wide; with ``pad=None`` it is sized per hole, which is exact but
costs more. Every other unbaked texel first gets a cheap pull-push fill
(mask-weighted image pyramid). That gives the inpaint plausible colours
where its ring meets the rest, and keeps dark background out of the mipmaps.

With ``region=None`` every unbaked texel is in the zone, and the result is
exactly texgen's full-frame fill. Parts of the zone far enough apart not to
interact are inpainted on parallel threads, with the same result as one
call.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

INPAINT_RADIUS = 3  # texgen's cv2.inpaint radius
DEFAULT_PAD = INPAINT_RADIUS  # ring of unbaked texels inpainted around the needed ones


def uv_coverage(vtx_uv: np.ndarray, uv_idx: np.ndarray, shape: tuple[int, int], margin: int = 2) -> np.ndarray:
    """Texels a render can sample: UV triangles in texgen's layout (row 0 = v 1), dilated by ``margin`` for filtering.

    One ``cv2.fillPoly`` call draws all triangles; it fills overlaps even-odd,
    which is fine for atlases whose charts do not overlap (xatlas's, as texgen
    unwraps every mesh).
    """
    height, width = shape
    uv = np.asarray(vtx_uv, dtype=np.float64)
    pixels = np.stack([uv[:, 0] * (width - 1), (1.0 - uv[:, 1]) * (height - 1)], axis=1)
    triangles = np.round(pixels[np.asarray(uv_idx)] * 16).astype(np.int32)  # 4 fractional bits
    covered: np.ndarray = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(covered, list(triangles), 1, lineType=cv2.LINE_8, shift=4)
    if margin > 0:
        covered = cv2.dilate(covered, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return covered.astype(bool)


def pull_push(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``image`` whose invalid pixels take the mask-weighted average of the finest pyramid level with data.

    Only two passes run at full resolution: the first 2x reduction and the
    final masked write of the upsampled fill. The rest works at half size and
    below, so this stays cheap next to the inpaint it supports.
    """
    valid8 = valid.astype(np.uint8)
    zeroed = cv2.bitwise_and(image, image, mask=valid8).reshape(*valid.shape, -1)
    size = ((valid.shape[1] + 1) // 2, (valid.shape[0] + 1) // 2)
    total: np.ndarray
    weight: np.ndarray
    if image.dtype == np.uint8:  # the uint8 reduction rounds means to whole levels: weight it the same way
        total = _shrink(zeroed, size).astype(np.float32)
        weight = cv2.resize(valid8 * np.uint8(255), size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    else:
        total = _shrink(zeroed.astype(np.float32), size)
        weight = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    levels: list[tuple[np.ndarray, np.ndarray]] = [(total, weight)]
    while min(levels[-1][1].shape) > 1 and not levels[-1][1].all():
        total, weight = levels[-1]
        size = ((weight.shape[1] + 1) // 2, (weight.shape[0] + 1) // 2)
        levels.append((_shrink(total, size), cv2.resize(weight, size, interpolation=cv2.INTER_AREA)))
    total, weight = levels[-1]
    filled: np.ndarray = total / np.maximum(weight, 1e-12)[..., None]
    for total, weight in reversed(levels[:-1]):
        coarse = _grow(filled, weight.shape)
        filled = np.where((weight > 0)[..., None], total / np.maximum(weight, 1e-12)[..., None], coarse)
    if image.dtype == np.uint8:
        filled = cv2.convertScaleAbs(filled).reshape(filled.shape)  # round and saturate before growing
    full = _grow(filled.astype(image.dtype), valid.shape).reshape(image.shape)
    return cv2.copyTo(full, (~valid).astype(np.uint8), image.copy())


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average an [H, W, C] float image (cv2 drops a singleton channel axis, so keep it)."""
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], image.shape[2])


def _grow(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(shape[0], shape[1], image.shape[2])


def _as_uint8(texture: np.ndarray) -> np.ndarray:
    """texgen's conversion: floats in [0, 1] are scaled by 255 and truncated."""
    if texture.dtype == np.uint8:
        return texture
    return (texture * 255).astype(np.uint8)


def _within(sources: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` (Euclidean) of any ``sources`` pixel."""
    distance = cv2.distanceTransform((~sources).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= radius


def _adaptive_ring(needed: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Texels closer to a part of ``needed`` than that part's farthest texel is from baked data (plus one).

    No texel left outside can then be nearer to a needed texel than the baked
    texels that feed it in a full-frame fill. Parts are grouped by reach in
    powers of two, so this costs a few distance transforms.
    """
    to_baked = cv2.distanceTransform(invalid.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    count, labels = cv2.connectedComponents(needed.astype(np.uint8), connectivity=8)
    reach = np.zeros(count, dtype=np.float32)
    np.maximum.at(reach, labels[needed], to_baked[needed])
    bucket = 2.0 ** np.ceil(np.log2(np.ceil(reach) + 1))
    ring = needed.copy()
    for radius in np.unique(bucket[1:]):
        ring |= _within(needed & (bucket[labels] == radius), radius)
    return ring


def fill_zone(
    valid: np.ndarray, region: np.ndarray | None, pad: int | None = DEFAULT_PAD
) -> tuple[np.ndarray, np.ndarray]:
    """(needed, zone): unbaked texels inside ``region``, and those plus the ring of unbaked texels inpainted with them.

    ``pad`` texels of ring is fast and close to texgen's result where holes
    are thin, as bake masks mostly are. ``pad=None`` sizes the ring per hole
    (see :func:`_adaptive_ring`), which matches texgen's result even for wide
    holes at chart borders but fills much more.
    """
    invalid = ~valid
    if region is None:
        return invalid, invalid
    needed = invalid & region
    if pad is None:
        return needed, invalid & _adaptive_ring(needed, invalid)
    ring = cv2.dilate(needed.astype(np.uint8), np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)).astype(bool)
    return needed, invalid & ring


def _component_boxes(zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and padded boxes of zone parts more than 2 * radius apart, which inpaint independently.

    Each inpainted pixel only reads pixels within ``INPAINT_RADIUS``, and the
    fast-marching front is local too. Parts that far apart therefore give
    exactly the same result whether they are filled in one call or one by one.
    """
    kernel = np.ones((2 * INPAINT_RADIUS + 1, 2 * INPAINT_RADIUS + 1), np.uint8)
    grown = cv2.dilate(zone.astype(np.uint8), kernel)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    height, width = zone.shape
    x0, y0 = np.maximum(stats[1:, 0] - 2, 0), np.maximum(stats[1:, 1] - 2, 0)
    x1 = np.minimum(stats[1:, 0] + stats[1:, 2] + 2, width)
    y1 = np.minimum(stats[1:, 1] + stats[1:, 3] + 2, height)
    return labels, np.stack([y0, y1, x0, x1], axis=1)


def _inpaint_zone(base: np.ndarray, zone: np.ndarray, workers: int) -> np.ndarray:
    """``cv2.inpaint(base, zone, 3, NS)``, run per independent part on a thread pool (cv2 releases the GIL)."""
    labels, boxes = _component_boxes(zone)
    out = base.copy()

    def inpaint_part(label: int) -> None:
        y0, y1, x0, x1 = boxes[label - 1]
        part = (labels[y0:y1, x0:x1] == label) & zone[y0:y1, x0:x1]
        filled = cv2.inpaint(base[y0:y1, x0:x1], part.astype(np.uint8) * 255, INPAINT_RADIUS, cv2.INPAINT_NS)
        out[y0:y1, x0:x1][part] = filled.reshape(part.shape + base.shape[2:])[part]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(inpaint_part, range(1, len(boxes) + 1)))
    return out


def fill_texture(
    texture: np.ndarray,
    mask: np.ndarray,
    region: np.ndarray | None = None,
    pad: int | None = DEFAULT_PAD,
    workers: int | None = None,
) -> np.ndarray:
    """Fill unbaked texels (``mask`` == 0) like texgen's ``cv2.inpaint(..., 3, INPAINT_NS)``, where it matters.

    ``texture`` is [H, W, 3] uint8 or float in [0, 1]; ``region`` [H, W] bool
    marks texels that must match texgen's fill (see :func:`uv_coverage`).
    Texels outside it get a pull-push fill; ``pad`` trades speed against
    fidelity (see :func:`fill_zone`). Baked texels are returned untouched, in
    the input's dtype. Independent parts of the zone are inpainted on
    ``workers`` threads (default: OpenCV's thread count).
    """
    valid = np.asarray(mask).astype(bool)
    if valid.ndim == 3:
        valid = valid[..., 0]
    out = texture.copy()
    if valid.all():
        return out
    _, zone = fill_zone(valid, region, pad)
    base = _as_uint8(texture)
    elsewhere = ~valid & ~zone
    if elsewhere.any():
        base = cv2.copyTo(pull_push(base, valid), elsewhere.astype(np.uint8), base.copy())
    filled = _inpaint_zone(base, zone, cv2.getNumThreads() if workers is None else workers)
    if texture.dtype != np.uint8:
        filled = filled.astype(texture.dtype) / 255
    return cv2.copyTo(filled, (~valid).astype(np.uint8), out)
