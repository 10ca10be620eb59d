"""A small PNG of the final model, rendered on the CPU with our PyTorch rasterizer.

Why not a GL renderer: pyrender and trimesh's ``save_image`` need OpenGL
(EGL or a display), which a RunPod CPU path, CI and the app's host may lack.
The rasterizer in :mod:`pipeline.texture.rasterizer` already draws UV maps
for texturing; here it draws one orthographic camera view instead.

The view is three-quarter front (35 degrees to the subject's left, 20 degrees
above), lit by one soft key light plus ambient and shaded with the smooth
(welded) vertex normals the GLB carries, on a transparent background. On a
closed mesh the faces turned away from the camera are culled first (half the
rasterizer's work). One sample per pixel: supersampling for soft edges broke
the time target. The PNG is RGBA, or a palette PNG when that would pass
150 KB (:func:`encode_preview_png` says why). Time and size against a naive
baseline: ``bench/preview.py``, reported in the README's "Performance"
section ("Preview image").
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

PREVIEW_SIZE = 512
MAX_PREVIEW_BYTES = 150_000
AZIMUTH_DEG = 35.0
ELEVATION_DEG = 20.0
FILL = 0.9  # the model's larger view extent covers this share of the frame
AMBIENT, DIFFUSE = 0.38, 0.72
UNTEXTURED_RGB = (0.8, 0.8, 0.8)  # export.DEFAULT_COLOR, the grey viewers show


@dataclass(frozen=True)
class View:
    """An orthographic camera as three orthonormal axes (right, up, towards the camera)."""

    right: np.ndarray
    up: np.ndarray
    back: np.ndarray

    @classmethod
    def three_quarter(cls, azimuth_deg: float = AZIMUTH_DEG, elevation_deg: float = ELEVATION_DEG) -> View:
        az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
        back = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= np.linalg.norm(right)
        return cls(right, np.cross(back, right), back)

    def matrix(self) -> np.ndarray:
        return np.stack([self.right, self.up, self.back])  # world -> view rows


def _texture(mesh) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(texture [H, W, 3] uint8, per-vertex UV [N, 2]) or (None, None)."""
    from .export import texture_image

    image = texture_image(mesh)
    if image is None:
        return None, None
    return np.asarray(image.convert("RGB")), np.asarray(mesh.visual.uv, dtype=np.float32)


def _sample(texture: np.ndarray, st: np.ndarray) -> np.ndarray:
    """Bilinear texture colours [P, 3] in 0..1 at UVs [P, 2] (v = 0 at the
    image's bottom row, as glTF/trimesh have it). Only the covered pixels are
    sampled, straight from the uint8 image: converting a 2048 texture to
    float first took longer than the whole rasterization."""
    height, width = texture.shape[:2]
    x = np.clip(st[:, 0], 0.0, 1.0) * width - 0.5
    y = (1.0 - np.clip(st[:, 1], 0.0, 1.0)) * height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0 = np.clip(x0.astype(np.int64), 0, width - 1)
    y0 = np.clip(y0.astype(np.int64), 0, height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return ((top * (1 - fy) + bottom * fy) / 255.0).astype(np.float32)


def _welded(mesh):
    """The mesh with the copies of each vertex along UV seams merged, and the
    map back: seams must neither crease the shading nor hide that it is closed."""
    import trimesh

    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    # Unique rows through a bytes view: 3-4x faster than np.unique(axis=0), same groups.
    keys = vertices.view(np.dtype((np.void, vertices.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    return trimesh.Trimesh(vertices[first], inverse[np.asarray(mesh.faces)], process=False), inverse


def _closed_and_consistent(faces: np.ndarray, vertex_count: int) -> bool:
    """Every directed edge occurs once and its reverse occurs too: the surface is
    closed and consistently wound. (trimesh's is_watertight plus
    is_winding_consistent say the same in 3x the time.)"""
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
    keys = np.sort(edges[:, 0] * vertex_count + edges[:, 1])
    if (keys[1:] == keys[:-1]).any():
        return False
    reverse = edges[:, 1] * vertex_count + edges[:, 0]
    found = np.searchsorted(keys, reverse)
    return bool((found < len(keys)).all() and (keys[np.minimum(found, len(keys) - 1)] == reverse).all())


def _front_faces(welded, local: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces that can be seen: on a closed, consistently wound mesh the ones
    turned away from the camera are always hidden behind others, so dropping
    them halves the rasterizer's work with the same picture. Other meshes keep
    every face (the rasterizer draws both sides)."""
    welded_faces = np.asarray(welded.faces)
    if not _closed_and_consistent(welded_faces, len(welded.vertices)):
        return faces
    a, b, c = local[faces[:, 0]], local[faces[:, 1]], local[faces[:, 2]]
    facing = np.cross(b - a, c - a)[:, 2]  # towards the camera when positive, for outward winding
    w = np.asarray(welded.vertices)[welded_faces]
    # Sign of the enclosed volume (trimesh's mass_properties computes far more, 30 ms at 40k faces).
    outward = 1.0 if np.einsum("ij,ij->", w[:, 0], np.cross(w[:, 1], w[:, 2])) >= 0 else -1.0
    return faces[facing * outward > 0]


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded for a moment. The preview's tensors are small
    (one 512x512 frame): on a loaded 2-core machine two intra-op threads made
    a render several times slower in wall time (bench/preview.py; the README's
    "Preview image" figures). The pipeline serialises requests (ImageTo3D's
    lock), so no other torch work runs meanwhile."""
    import torch

    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def render_preview_rgba(mesh, size: int = PREVIEW_SIZE) -> np.ndarray:
    """[size, size, 4] uint8 RGBA render of a trimesh mesh (textured when it carries a texture)."""
    with _one_torch_thread():
        return _render(mesh, size)


def _render(mesh, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from .texture.rasterizer import rasterize

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(faces) == 0:
        raise ValueError("cannot render a mesh without faces")
    view = View.three_quarter().matrix()
    centre = (vertices.min(0) + vertices.max(0)) / 2
    local = (vertices - centre) @ view.T  # x right, y up, z towards the camera
    extent = max(np.abs(local[:, :2]).max(), 1e-9)
    depth = max(np.abs(local[:, 2]).max(), 1e-9)
    scale = FILL / extent
    # Rasterizer row 0 is ndc y = -1, so y is negated for a top-down image;
    # nearer points (larger z) get smaller depth and win the z-buffer.
    clip = np.column_stack(
        [local[:, 0] * scale, -local[:, 1] * scale, -local[:, 2] / depth * 0.999, np.ones(len(local))]
    )
    pos = torch.from_numpy(clip.astype(np.float32))
    welded, inverse = _welded(mesh)
    tri = torch.from_numpy(_front_faces(welded, local, faces))
    findices, bary = rasterize(pos, tri, (size, size))
    covered = findices > 0

    # Normals (and UVs) are blended at the covered pixels only, in one gather:
    # the rasterizer's own interpolate() fills every pixel, twice the work here.
    texture, uv = _texture(mesh)
    normals = np.asarray(welded.vertex_normals)[inverse] @ view.T  # as export.welded_normals writes them
    attrs = torch.from_numpy(np.column_stack([normals, uv] if uv is not None else [normals]).astype(np.float32))
    pixel = torch.nonzero(covered.reshape(-1)).squeeze(1)
    corners = tri[findices.reshape(-1)[pixel].long() - 1]
    blended = (bary.reshape(-1, 3)[pixel, :, None] * attrs[corners]).sum(dim=1)
    n = F.normalize(blended[:, :3], dim=-1)
    n = torch.where(n[:, 2:3] < 0, -n, n)  # two-sided: a face seen from behind is lit like its front
    light = F.normalize(torch.tensor([-0.35, 0.55, 0.75]), dim=0)
    shade = AMBIENT + DIFFUSE * (n @ light).clamp(min=0.0)
    if texture is not None:
        albedo = torch.from_numpy(_sample(texture, blended[:, 3:5].numpy()))
    else:
        albedo = torch.tensor(UNTEXTURED_RGB).expand(len(pixel), 3)
    out = torch.zeros(size * size, 4, dtype=torch.uint8)  # transparent where nothing was drawn
    out[pixel, :3] = ((albedo * shade[:, None]).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    out[pixel, 3] = 255
    return out.view(size, size, 4).numpy()


def encode_preview_png(rgba: np.ndarray, max_bytes: int = MAX_PREVIEW_BYTES) -> bytes:
    """An RGBA PNG when it fits ``max_bytes``; else a 256-colour palette PNG
    with per-entry alpha; else 16 colours at 4 bits a pixel, which at 512x512
    cannot pass 132 KB however noisy the picture.

    Smooth colours (the draft figure) fit as RGBA, where a palette would band
    visibly; a detailed baked texture does not, and its detail hides the
    palette's banding (sizes: bench/preview.py, the README's "Preview image").
    """
    from PIL import Image

    image = Image.fromarray(rgba, "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    png = buffer.getvalue()
    for colours, bits in ((256, 8), (16, 4)):
        if len(png) <= max_bytes:
            break
        palette = image.quantize(colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        palette.save(buffer, "PNG", compress_level=6, bits=bits)
        png = buffer.getvalue()
    return png


def render_preview_png(mesh, size: int = PREVIEW_SIZE) -> bytes:
    """The response's ``preview_png_base64`` bytes for ``mesh``."""
    return encode_preview_png(render_preview_rgba(mesh, size))
