"""A small PNG of the final model, rendered on the CPU with our PyTorch rasterizer.

Why not a GL renderer: pyrender and trimesh's ``save_image`` need OpenGL
(EGL or a display), which a RunPod CPU path, CI and the app's host may lack.
The rasterizer in :mod:`pipeline.texture.rasterizer` already draws UV maps
for texturing; here it draws one orthographic camera view instead.

The view is three-quarter front (35 degrees to the subject's left, 20 degrees
above), lit by one soft key light plus ambient and shaded with the smooth
(welded) vertex normals the GLB carries, on a transparent background. On a
closed mesh the faces turned away from the camera are culled first (half the
rasterizer's work). One sample per pixel: supersampling 2x for soft edges
cost 3-4x the time and broke the 0.5 s target at 40k faces on a 2-core CPU
(``python -m bench.preview``). The PNG is RGBA (tens of KB for a shaded
model); a detailed texture that would push it past ``MAX_PREVIEW_BYTES`` is
saved as a palette PNG instead (:func:`encode_preview_png`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

PREVIEW_SIZE = 512
SUPERSAMPLE = 1
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
    def three_quarter(cls, azimuth_deg: float = AZIMUTH_DEG, elevation_deg: float = ELEVATION_DEG) -> "View":
        az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
        back = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= np.linalg.norm(right)
        return cls(right, np.cross(back, right), back)

    def matrix(self) -> np.ndarray:
        return np.stack([self.right, self.up, self.back])  # world -> view rows


def _texture_rgb(mesh) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(texture [H, W, 3] float32 0..1, per-vertex UV [N, 2]) or (None, None)."""
    from .export import texture_image

    image = texture_image(mesh)
    if image is None:
        return None, None
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb, np.asarray(mesh.visual.uv, dtype=np.float32)


def _welded(mesh):
    """The mesh with the copies of each vertex along UV seams merged, and the
    map back: seams must neither crease the shading nor hide that it is closed."""
    import trimesh

    vertices = np.asarray(mesh.vertices)
    unique, inverse = np.unique(vertices, axis=0, return_inverse=True)
    return trimesh.Trimesh(unique, inverse.reshape(-1)[np.asarray(mesh.faces)], process=False), inverse.reshape(-1)


def _front_faces(welded, local: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces that can be seen: on a closed, consistently wound mesh the ones
    turned away from the camera are always hidden behind others, so dropping
    them halves the rasterizer's work with the same picture. Other meshes keep
    every face (the rasterizer draws both sides)."""
    if not (welded.is_watertight and welded.is_winding_consistent):
        return faces
    a, b, c = local[faces[:, 0]], local[faces[:, 1]], local[faces[:, 2]]
    facing = np.cross(b - a, c - a)[:, 2]  # towards the camera when positive, for outward winding
    w = np.asarray(welded.vertices)[np.asarray(welded.faces)]
    # Sign of the enclosed volume (trimesh's mass_properties computes far more, 30 ms at 40k faces).
    outward = 1.0 if np.einsum("ij,ij->", w[:, 0], np.cross(w[:, 1], w[:, 2])) >= 0 else -1.0
    return faces[facing * outward > 0]


def render_preview_rgba(mesh, size: int = PREVIEW_SIZE, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """[size, size, 4] uint8 RGBA render of a trimesh mesh (textured when it carries a texture)."""
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
    clip = np.column_stack([local[:, 0] * scale, -local[:, 1] * scale, -local[:, 2] / depth * 0.999,
                            np.ones(len(local))])
    pos = torch.from_numpy(clip.astype(np.float32))
    welded, inverse = _welded(mesh)
    tri = torch.from_numpy(_front_faces(welded, local, faces))
    hi = size * supersample
    findices, bary = rasterize(pos, tri, (hi, hi))
    covered = findices > 0

    # Normals (and UVs) are blended at the covered pixels only, in one gather:
    # the rasterizer's own interpolate() fills every pixel, twice the work here.
    texture, uv = _texture_rgb(mesh)
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
        st = blended[:, 3:5]
        # glTF/trimesh UVs have v = 0 at the image's bottom row.
        grid = torch.stack([st[:, 0] * 2 - 1, (1 - st[:, 1]) * 2 - 1], dim=-1)[None, None]
        tex = torch.from_numpy(texture).permute(2, 0, 1)[None]
        albedo = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
    else:
        albedo = torch.tensor(UNTEXTURED_RGB).expand(len(pixel), 3)
    rgb = torch.zeros(hi * hi, 3)
    rgb[pixel] = (albedo * shade[:, None]).clamp(0.0, 1.0)
    rgb = rgb.view(hi, hi, 3)
    alpha = covered.to(torch.float32)[..., None]
    rgba = torch.cat([rgb * alpha, alpha], dim=-1)  # premultiplied, so averaging does not bleed black
    if supersample > 1:
        rgba = F.avg_pool2d(rgba.permute(2, 0, 1)[None], supersample)[0].permute(1, 2, 0)
    a = rgba[..., 3:4]
    colour = torch.where(a > 0, rgba[..., :3] / a.clamp(min=1e-6), torch.zeros_like(rgba[..., :3]))
    out = torch.cat([colour, a], dim=-1)
    return (out * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def encode_preview_png(rgba: np.ndarray, max_bytes: int = MAX_PREVIEW_BYTES) -> bytes:
    """RGBA PNG; over ``max_bytes`` (a noisy texture), a 256-colour palette PNG
    with per-entry alpha; still over, 16 colours at 4 bits a pixel, which at
    512x512 cannot exceed 132 KB however noisy the picture."""
    from PIL import Image

    image = Image.fromarray(rgba, "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    for colours, bits in ((256, 8), (16, 4)):
        if buffer.tell() <= max_bytes:
            break
        palette = image.quantize(colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        palette.save(buffer, "PNG", compress_level=6, bits=bits)
    return buffer.getvalue()


def render_preview_png(mesh, size: int = PREVIEW_SIZE) -> bytes:
    """The response's ``preview_png_base64`` bytes for ``mesh``."""
    return encode_preview_png(render_preview_rgba(mesh, size))
