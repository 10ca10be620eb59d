"""GLB export: plain geometry (no Draco/meshopt) with a PBR material and, when
the mesh is textured, its base colour texture as JPEG.

* Plain geometry because After Effects documents no compressed-geometry
  support and Gradio's offline Babylon viewer fetches the Draco/meshopt
  decoders from a CDN.
* JPEG (q90, ``optimize``, baseline: not every importer takes progressive)
  because a detailed texture is several times smaller than as PNG (hy3dgen's
  way), and the GLB goes back as base64 JSON.
* trimesh writes ``image/jpeg`` only when the PIL image came from a JPEG, and
  even then re-encodes it at PIL's default quality 75; anything else becomes
  a slow PNG. So trimesh is handed a tiny JPEG placeholder and its
  ``buffer_postprocessor`` hook swaps in our own JPEG bytes (one encode). The
  same hook stores indices as uint16 when they fit. Its ``tree_postprocessor``
  hook adds the buffer-view targets the Khronos validator asks for
  (BUFFER_VIEW_TARGET_MISSING), the ``asset.generator`` and ``asset.extras``.
* Vertex normals by default (``smooth_normals``, true unless the request
  says false; the service's default since issue 18): 12 bytes a vertex.
  Without them glTF viewers shade flat, exactly as they do hy3dgen's own
  GLBs, which have none. When written they are welded across UV seams.
  Cheaper encodings were ruled out: int8 normals need KHR_mesh_quantization
  (an extension importers may refuse) and normalised uint16 UVs, though core
  glTF, load wrong in trimesh 5.2 (it ignores ``normalized``).

Sizes and encode times: ``bench/postprocess.py`` and the README's
"Performance" and "Output size" sections.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

import numpy as np
import trimesh
from PIL import Image

DEFAULT_COLOR = (0.8, 0.8, 0.8, 1.0)  # neutral grey for untextured meshes
ROUGHNESS = 0.9  # baked textures carry their own shading; keep highlights soft
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963  # bufferView targets
UINT16, UINT32 = 5123, 5125  # accessor component types


def _generator(extras: dict[str, Any]) -> str:
    """The caller's ``generator``, else ``hy3d-service <pipeline.__version__>``."""
    if isinstance(extras.get("generator"), str):
        return extras["generator"]
    from . import __version__

    return f"hy3d-service {__version__}"


def _placeholder_jpeg() -> Image.Image:
    """A 1x1 image PIL reports as JPEG, so trimesh emits an ``image/jpeg`` slot cheaply."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (128, 128, 128)).save(buf, "JPEG")
    buf.seek(0)
    return Image.open(buf)


def texture_image(mesh: trimesh.Trimesh) -> Image.Image | None:
    """The base colour image of a textured mesh (PBR or simple material), else None."""
    visual = mesh.visual
    if getattr(visual, "kind", None) != "texture" or getattr(visual, "uv", None) is None:
        return None
    material = getattr(visual, "material", None)
    image = getattr(material, "baseColorTexture", None)
    if image is None:
        image = getattr(material, "image", None)
    if image is None:
        return None
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))


def encode_jpeg(image: Image.Image, quality: int = 90, max_size: int | None = None) -> bytes:
    """RGB JPEG (alpha dropped: baked textures are opaque), downscaled so the
    longest side is at most ``max_size``."""
    if max_size is not None and max(image.size) > max_size:
        scale = max_size / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if image.mode != "RGB":
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(quality), optimize=True)  # optimize: -5% bytes for +20 ms at 2048
    return buf.getvalue()


def welded_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Smooth vertex normals computed as if the copies of a vertex along UV
    seams were one vertex, so seams don't show in the shading. (Normals cached
    on the mesh are not trusted: ``Trimesh.copy`` drops them and trimesh then
    recomputes them per copy.)"""
    vertices = np.asarray(mesh.vertices)
    unique, inverse = np.unique(vertices, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(unique) == len(vertices):
        return np.asarray(mesh.vertex_normals)
    welded = trimesh.Trimesh(unique, inverse[np.asarray(mesh.faces)], process=False)
    return np.asarray(welded.vertex_normals)[inverse]


def _export_mesh(mesh: trimesh.Trimesh, textured: bool, normals: bool) -> trimesh.Trimesh:
    """A geometry-only copy with the material we export (the caller's mesh is untouched)."""
    from trimesh.visual.material import PBRMaterial

    vertex_normals = welded_normals(mesh) if normals else None
    if textured:
        material = PBRMaterial(baseColorTexture=_placeholder_jpeg(), metallicFactor=0.0, roughnessFactor=ROUGHNESS)
        uv = cast("trimesh.visual.TextureVisuals", mesh.visual).uv  # a textured mesh carries TextureVisuals
        visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv), material=material)
    else:
        color = [int(round(c * 255)) for c in DEFAULT_COLOR]
        material = PBRMaterial(baseColorFactor=color, metallicFactor=0.0, roughnessFactor=ROUGHNESS)
        visual = trimesh.visual.TextureVisuals(material=material)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=vertex_normals, visual=visual, process=False)


def _padded(data: bytes) -> bytes:
    """Buffer views stay 4-byte aligned, as trimesh lays them out."""
    return data + b"\0" * (-len(data) % 4)


def _accessor_list(tree: dict) -> list[dict]:
    """trimesh holds accessors in an ordered dict until after the buffer hook."""
    accessors = tree["accessors"]
    return list(accessors.values()) if isinstance(accessors, dict) else accessors


def _narrow_indices(buffer_items, tree: dict) -> None:
    """Store indices as uint16 when there are at most 65535 vertices (65535
    itself is reserved): trimesh always writes uint32, and at 40k faces that
    is 240 KB of zeros."""
    accessors, keys = _accessor_list(tree), list(buffer_items.keys())
    for gltf_mesh in tree.get("meshes", []):
        for primitive in gltf_mesh.get("primitives", []):
            index = accessors[primitive["indices"]] if "indices" in primitive else None
            vertices = accessors[primitive["attributes"]["POSITION"]]["count"]
            if index is None or index["componentType"] != UINT32 or vertices > 65535:
                continue
            key = keys[index["bufferView"]]
            wide = np.frombuffer(buffer_items[key], np.uint32, count=index["count"], offset=index.get("byteOffset", 0))
            buffer_items[key] = _padded(wide.astype(np.uint16).tobytes())
            index["componentType"], index["byteOffset"] = UINT16, 0


def _replace_image(buffer_items, tree: dict, jpeg: bytes) -> None:
    """Put our JPEG bytes where trimesh wrote the placeholder."""
    image = tree["images"][0]
    buffer_items[list(buffer_items.keys())[image["bufferView"]]] = _padded(jpeg)
    image["mimeType"] = "image/jpeg"


def _set_targets(tree: dict) -> None:
    """Mark vertex-attribute and index buffer views, as the validator expects."""
    views = tree.get("bufferViews", [])
    accessors = tree.get("accessors", [])
    for gltf_mesh in tree.get("meshes", []):
        for primitive in gltf_mesh.get("primitives", []):
            for accessor in primitive.get("attributes", {}).values():
                views[accessors[accessor]["bufferView"]]["target"] = ARRAY_BUFFER
            if "indices" in primitive:
                views[accessors[primitive["indices"]]["bufferView"]]["target"] = ELEMENT_ARRAY_BUFFER


def export_glb(
    mesh: trimesh.Trimesh,
    *,
    extras: dict | None = None,
    jpeg_quality: int = 90,
    max_texture_size: int | None = None,
    include_normals: bool = False,
) -> bytes:
    """The mesh as GLB bytes; see the module docstring for the format choices.

    ``extras`` (JSON-serialisable) is stored as ``asset.extras`` together with
    ``generator``, which is also written to ``asset.generator``.
    ``include_normals=True`` buys smooth shading for 12 bytes a vertex.
    """
    if len(mesh.faces) == 0:
        raise ValueError("cannot export a mesh without faces")
    meta = dict(extras or {})
    meta["generator"] = _generator(meta)
    json.dumps(meta)  # fail here, with the caller's data in the message, if not serialisable
    image = texture_image(mesh)
    jpeg = encode_jpeg(image, jpeg_quality, max_texture_size) if image is not None else None

    def finish_buffers(buffer_items, tree: dict) -> None:
        _narrow_indices(buffer_items, tree)
        if jpeg is not None:
            _replace_image(buffer_items, tree, jpeg)

    def finish_tree(tree: dict) -> None:
        _set_targets(tree)
        tree["asset"] = {"version": "2.0", "generator": meta["generator"], "extras": meta}

    from trimesh.exchange.gltf import export_glb as trimesh_export_glb

    return trimesh_export_glb(
        _export_mesh(mesh, jpeg is not None, include_normals).scene(),
        include_normals=include_normals,
        buffer_postprocessor=finish_buffers,
        tree_postprocessor=finish_tree,
    )


def glb_stats(glb: bytes) -> dict[str, Any]:
    """Counts and texture facts of a GLB (read with pygltflib, without building
    a mesh), for the faces' responses and the tests: faces, vertices,
    has_texture, texture_mime, texture_width/height, texture_bytes, bytes,
    generator, extras."""
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    faces = vertices = 0
    for gltf_mesh in gltf.meshes:
        for primitive in gltf_mesh.primitives:
            vertices += gltf.accessors[primitive.attributes.POSITION].count
            if primitive.indices is not None:
                faces += gltf.accessors[primitive.indices].count // 3
            else:
                faces += gltf.accessors[primitive.attributes.POSITION].count // 3
    stats: dict[str, Any] = {
        "bytes": len(glb),
        "faces": faces,
        "vertices": vertices,
        "has_texture": False,
        "texture_mime": None,
        "texture_width": 0,
        "texture_height": 0,
        "texture_bytes": 0,
        "generator": gltf.asset.generator,
        "extras": gltf.asset.extras or {},
    }
    texture = _base_color_image(gltf)
    if texture is not None:
        mime, data = texture
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
        stats.update(
            has_texture=True, texture_mime=mime, texture_width=width, texture_height=height, texture_bytes=len(data)
        )
    return stats


def _base_color_image(gltf) -> tuple[str, bytes] | None:
    """(mimeType, bytes) of the first material's base colour image, if any."""
    for material in gltf.materials:
        pbr = material.pbrMetallicRoughness
        if pbr is None or pbr.baseColorTexture is None:
            continue
        image = gltf.images[gltf.textures[pbr.baseColorTexture.index].source]
        view = gltf.bufferViews[image.bufferView]
        blob = gltf.binary_blob()
        start = view.byteOffset or 0
        return image.mimeType, bytes(blob[start : start + view.byteLength])
    return None
