"""Silhouette inflation: the subject of an RGBA image as a closed, textured mesh.

The draft backend's geometry (:mod:`pipeline.backends.draft`): no weights, no
GPU. Its time per image size: ``bench/draft.py``, reported in the README's
"Performance" section ("Draft backend").

How it works, and why this way:

* The alpha mask is cut down to its largest subject and sampled on a grid whose
  size follows the face budget.
* Each inside point gets a height ``sqrt(d * (2R - d))``, where ``d`` is its
  distance to the outline and ``R`` the radius of the largest inscribed disc
  covering it: the circle through the outline on both sides, squashed in depth.
  A disc becomes a spheroid and a limb a round tube of its own width
  ("Teddy"-style), instead of thin parts swelling into fins as a global
  ``sqrt(d)`` would.
* The body is written as a 3-D field (distance to that circle) and cut with
  marching cubes. Stitching a front and a back height field along a
  jagged pixel outline is fragile; a padded marching-cubes volume is closed by
  construction, interpolates a smooth rim and handles holes (a handle, the gap
  under an arm) without special cases. The field is mirror-symmetric in
  ``z``, so the back matches the front.
* Marching cubes runs at about twice the face budget and quadric decimation
  brings it down, which puts the faces where the curvature is.
* The texture is the cropped image projected along ``z``: the front shows it
  as it is, the back mirrored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import fast_simplification
import numpy as np
import trimesh
from PIL import Image
from scipy.sparse import coo_matrix, csgraph
from skimage import measure

from ..errors import InputError
from ..image_io import largest_component

ALPHA_THRESHOLD = 127
# Front height over the local inscribed radius: a disc becomes a spheroid half
# as thick as it is wide (its front at 0.3 of its width), which reads as a
# plausible body from any of the usual three-quarter views.
DEPTH_RATIO = 0.6
EXTENT = 1.9  # longest side of the output, inside the [-1, 1] cube
# Holes smaller than this share of the subject are matting noise, not gaps.
HOLE_FILL_SHARE = 0.01
MARGIN_SHARE = 0.02  # crop margin around the subject, of its longest side
MIN_GRID, MAX_GRID = 48, 256  # cells on the crop's longest side
THIN_MAX_GRID = 512  # finer grids are tried only for subjects thinner than a cell
MAX_ATTEMPTS = 6
MIN_FACES = 100  # the smallest closed body marching cubes reliably decimates to
PAD_CELLS = 2  # empty cells around the grid, so the surface closes
# Marching cubes gives about this many triangles per inside cell for these
# bodies (measured: 8.8 for a disc, ~9 for a stick figure).
FACES_PER_CELL = 9.0
OVERSAMPLE = 2.0  # marching-cubes faces per budgeted face, before decimation
SUPERSAMPLE = 4  # distance-transform samples per grid cell, per axis
OUTLINE_SIGMA = 1.0  # cells; smooths the pixel staircase out of the outline
RADIUS_SIGMA = 2.0  # cells; blends the inscribed-radius steps between levels
RADIUS_LEVEL_RATIO = 1.15  # geometric spacing of the radius levels
RADIUS_SLACK = 1.0  # cells; tolerance of the discrete disc-coverage test
MAX_TEXTURE = 1024


@dataclass(frozen=True)
class Box:
    """A crop window in image pixels; it may reach past the image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def subject_mask(alpha: np.ndarray) -> np.ndarray:
    """Threshold alpha and keep the largest subject, with pinholes filled.

    Stray specks left by background removal would otherwise become floating
    blobs, and pinholes tiny tunnels.
    """
    mask = (alpha > ALPHA_THRESHOLD).astype(np.uint8)
    mask = largest_component(mask)
    if not mask.any():
        raise InputError(
            "The image has no foreground subject after background removal; "
            "use an image with a clear subject, or one whose alpha channel marks it."
        )
    return _fill_small_holes(mask, HOLE_FILL_SHARE)


def _fill_small_holes(mask: np.ndarray, share: float) -> np.ndarray:
    """Fill background regions enclosed by the subject and smaller than ``share`` of it."""
    background = np.pad(1 - mask, 1, constant_values=1)  # the border joins the outside
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    outside = labels[0, 0]
    areas = stats[:, cv2.CC_STAT_AREA]
    small = (areas < share * mask.sum()) & (np.arange(count) != outside) & (np.arange(count) != 0)
    filled = mask | small[labels[1:-1, 1:-1]].astype(np.uint8)
    return filled.astype(np.uint8)


def crop_box(mask: np.ndarray) -> Box:
    """The subject's bounding box with a small margin, for geometry and texture alike."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    margin = max(2, math.ceil(MARGIN_SHARE * max(bottom - top, right - left)))
    return Box(left - margin, top - margin, right + margin, bottom + margin)


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """Cut ``box`` out of ``image``, padding with zeros where it leaves the image."""
    h, w = image.shape[:2]
    inner = image[max(box.y0, 0) : min(box.y1, h), max(box.x0, 0) : min(box.x1, w)]
    pad = [(max(-box.y0, 0), max(box.y1 - h, 0)), (max(-box.x0, 0), max(box.x1 - w, 0))]
    pad += [(0, 0)] * (image.ndim - 2)
    return np.pad(inner, pad)


def grid_cells(subject_px: int, box: Box, max_faces: int) -> int:
    """Cells on the crop's longest side so marching cubes lands near ``OVERSAMPLE`` x the budget."""
    cell_px = math.sqrt(subject_px * FACES_PER_CELL / (OVERSAMPLE * max_faces))
    return int(np.clip(round(max(box.width, box.height) / cell_px), MIN_GRID, MAX_GRID))


def grid_shape(box: Box, cells_long: int) -> tuple[int, int]:
    """(rows, cols) of a grid over the crop with ``cells_long`` cells on its longest side."""
    scale = cells_long / max(box.width, box.height)
    return max(3, round(box.height * scale)), max(3, round(box.width * scale))


def signed_distance(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distance to the outline in grid cells, positive inside, on the padded grid.

    The distance is taken at ``SUPERSAMPLE`` x the grid and area-averaged down:
    a distance transform of a coarse binary mask has a pixel staircase along
    the outline and radial creases inside, which would show as ridges on the
    surface. A light blur near the outline smooths what is left of the
    staircase; it fades out inwards because it would also sink the ridge of the
    distance (by ~1.25 sigma at a disc's centre) and with it the depth.
    """
    fine = _fine_mask(mask, (shape[0] * SUPERSAMPLE, shape[1] * SUPERSAMPLE))
    inside = cv2.distanceTransform(fine, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - fine, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # -0.5 puts the outline on pixel edges rather than pixel centres.
    sd_fine = np.where(fine > 0, inside - 0.5, 0.5 - outside).astype(np.float32) / SUPERSAMPLE
    rows, cols = shape[0] + 2 * PAD_CELLS, shape[1] + 2 * PAD_CELLS
    sd = cv2.resize(sd_fine, (cols, rows), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(sd, (0, 0), OUTLINE_SIGMA)
    near = np.clip(1.0 - np.abs(sd) / (3.0 * OUTLINE_SIGMA), 0.0, 1.0)
    return near * blurred + (1.0 - near) * sd


def _fine_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The crop's mask resampled to ``shape``, padded, re-thresholded, one subject."""
    rows, cols = shape
    shrinking = cols < mask.shape[1]
    coverage = cv2.resize(
        mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    fine = (coverage >= 0.5).astype(np.uint8)
    if not fine.any():  # a subject thinner than a sample still gets one
        fine[np.unravel_index(np.argmax(coverage), coverage.shape)] = 1
    return np.pad(largest_component(fine), PAD_CELLS * SUPERSAMPLE)


def inscribed_radius(depth: np.ndarray) -> np.ndarray:
    """Per point, the radius of the largest inscribed disc that covers it.

    The morphological opening by a disc of radius ``t`` is the set of points
    within ``t`` of ``{depth >= t}``; sweeping ``t`` over geometric levels gives
    the radius to within one level, and a blur smooths the level steps.
    """
    radius = np.zeros_like(depth)
    for level in radius_levels(float(depth.max())):
        core = (depth < level).astype(np.uint8)  # zero on the centres of discs of radius >= level
        reach = cv2.distanceTransform(core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        radius[reach <= level + RADIUS_SLACK] = level
    # Normalised blur: averaging in the zeros outside would flatten the rim.
    inside = (depth > 0).astype(np.float32)
    weight = cv2.GaussianBlur(inside, (0, 0), RADIUS_SIGMA)
    radius = cv2.GaussianBlur(radius * inside, (0, 0), RADIUS_SIGMA) / np.maximum(weight, 1e-6)
    return np.maximum(radius, depth)


def radius_levels(top: float) -> list[float]:
    """Geometric levels from one cell up to ``top`` inclusive, so the widest part stays round."""
    if top <= 1.0:
        return [top] if top > 0 else []
    count = math.ceil(math.log(top) / math.log(RADIUS_LEVEL_RATIO))
    return [top ** (i / count) for i in range(count + 1)]


def body_field(sd: np.ndarray) -> tuple[np.ndarray, int]:
    """Field positive inside the body, in cells, on z samples at half-cell offsets.

    Across the outline the body is the circle of the local inscribed radius
    ``R`` through the outline (centre at depth ``R``), squashed to
    ``DEPTH_RATIO`` in z, so its surface is ``|z| = DEPTH_RATIO * sqrt(d (2R - d))``.
    The field is the distance to that circle rather than ``height - |z|``: the
    height is vertical at the rim, and marching cubes interpolates linearly, so
    a distance-like field gives an even rim where the height would leave
    terraces. The half-cell z offsets keep samples off the mid-plane, where the
    outline would read exactly zero. Returns the field and half its depth.
    """
    radius = inscribed_radius(np.maximum(sd, 0.0))
    half = math.ceil(DEPTH_RATIO * float(radius.max())) + PAD_CELLS
    z = (np.arange(2 * half, dtype=np.float32) - half + 0.5) / DEPTH_RATIO
    across = np.square(radius - sd)
    field = np.sqrt(across[:, :, None] + np.square(z)[None, None, :])
    np.subtract(radius[:, :, None], field, out=field)
    return field, half


def surface_of_field(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes at level 0, oriented outward, largest body only."""
    verts, faces, _, _ = measure.marching_cubes(field, 0.0, allow_degenerate=False)
    verts, faces = _drop_unused(verts, largest_body(faces))
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]
    return verts, np.ascontiguousarray(faces)


def _drop_unused(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, inverse = np.unique(faces, return_inverse=True)
    return verts[used], inverse.reshape(faces.shape)


def largest_body(faces: np.ndarray) -> np.ndarray:
    """Faces of the largest connected piece: a neck thinner than a cell may pinch off."""
    count = int(faces.max()) + 1
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(count, count))
    n, labels = csgraph.connected_components(graph, directed=False)
    if n == 1:
        return faces
    face_labels = labels[faces[:, 0]]
    return faces[face_labels == np.argmax(np.bincount(face_labels))]


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (verts[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def decimate_closed(verts: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to the budget, keeping the result only if still closed."""
    if len(faces) <= max_faces:
        return verts, faces
    small_v, small_f = fast_simplification.simplify(verts, faces, target_count=max_faces)
    mesh = trimesh.Trimesh(small_v, small_f, process=False)
    if len(small_f) <= max_faces and mesh.is_watertight and mesh.is_winding_consistent:
        return small_v, small_f
    return verts, faces  # the caller retries on a coarser grid


def texture_image(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The cropped colours, capped in size, with the background set to the nearest subject colour.

    Bilinear sampling and mipmaps blend texels across the outline, so the
    background must not be white or black or the rim would show a halo.
    """
    h, w = mask.shape
    scale = min(1.0, MAX_TEXTURE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    inside = mask > 0
    if inside.any() and not inside.all():
        _, labels = cv2.distanceTransformWithLabels(
            (~inside).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        # Labels number the subject pixels 1..n in raster order.
        rgb = rgb[inside][labels - 1]
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def to_model_space(verts: np.ndarray, shape: tuple[int, int], half: int, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices to centred, Y-up, +Z-facing coordinates, and planar UVs.

    UVs map x, y onto the crop (u right, v up), so the front shows the image
    upright and the back the same image mirrored.
    """
    rows, cols = shape
    cell_x, cell_y = box.width / cols, box.height / rows
    verts = verts.astype(np.float64)
    px = (verts[:, 1] - PAD_CELLS + 0.5) * cell_x  # crop pixels, x right
    py = (verts[:, 0] - PAD_CELLS + 0.5) * cell_y  # crop pixels, y down
    pz = (verts[:, 2] - half + 0.5) * 0.5 * (cell_x + cell_y)
    uv = np.column_stack([px / box.width, 1.0 - py / box.height])
    points = np.column_stack([px, -py, pz])
    low, high = points.min(axis=0), points.max(axis=0)
    points = (points - 0.5 * (low + high)) * (EXTENT / float((high - low).max()))
    return points, uv


def inflate_silhouette(rgba: np.ndarray, max_faces: int, textured: bool = True) -> trimesh.Trimesh:
    """A closed mesh of the subject of an RGBA image (alpha = subject mask).

    Deterministic: the same image and budget always give the same mesh.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"Expected an HxWx4 RGBA array, got shape {rgba.shape}.")
    if max_faces < MIN_FACES:
        raise ValueError(f"max_faces must be at least {MIN_FACES}, got {max_faces}.")
    mask = subject_mask(rgba[:, :, 3])
    box = crop_box(mask)
    mask_crop = crop(mask, box)
    cells_long = grid_cells(int(mask.sum()), box, max_faces)
    verts, faces, shape, half = closed_surface(mask_crop, box, cells_long, max_faces)
    points, uv = to_model_space(verts, shape, half, box)
    if not textured:
        return trimesh.Trimesh(points, faces, process=False)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=texture_image(crop(rgba[:, :, :3], box), mask_crop),
        metallicFactor=0.0,
        roughnessFactor=1.0,
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(points, faces, visual=visual, process=False)


def closed_surface(
    mask_crop: np.ndarray, box: Box, cells_long: int, max_faces: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int]:
    """Marching cubes plus decimation, adapting the grid when either falls short.

    A subject thinner than a cell has no sample inside: refine the grid. If
    decimation cannot keep the mesh closed, marching cubes on a grid coarse
    enough to fit the budget by itself is closed by construction. Returns the
    vertices (grid units), faces, grid shape and half depth.
    """
    for _ in range(MAX_ATTEMPTS):
        shape = grid_shape(box, cells_long)
        surface = _surface_on_grid(mask_crop, shape)
        if surface is None:
            if cells_long >= THIN_MAX_GRID:
                raise InputError(
                    "The subject is too thin to inflate; use an image where it is thicker than a hairline."
                )
            cells_long = min(2 * cells_long, THIN_MAX_GRID)
            continue
        verts, faces, half = surface
        verts, faces = decimate_closed(verts, faces, max_faces)
        if len(faces) <= max_faces:
            return verts, faces, shape, half
        cells_long = max(3, int(cells_long * 0.9 * math.sqrt(max_faces / len(faces))))
    raise RuntimeError(f"Could not build a closed draft mesh within {max_faces} faces.")


def _surface_on_grid(mask_crop: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Marching cubes of the inflated mask on one grid; None if nothing is inside it."""
    field, half = body_field(signed_distance(mask_crop, shape))
    if field.max() <= 0:
        return None
    verts, faces = surface_of_field(field)
    return verts, faces, half
