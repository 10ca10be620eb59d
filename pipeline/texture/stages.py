"""The texture stages, in the order ``Hunyuan3DPaintPipeline.__call__`` runs them.

Each is a named helper over a loaded :class:`~.texgen.Texgen`, so that
:meth:`~pipeline.texture.backend.TextureBackend.paint` can time each and report
its progress: delighting, the normal/position renders, multiview diffusion,
baking, and the hole fill (:mod:`.inpaint` on the mesh, then :mod:`.fill`
inside the UV charts), then :func:`textured_mesh` puts the atlas on the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..export import ROUGHNESS
from .config import RenderConfig, Sampling, Span, camera_indices

if TYPE_CHECKING:  # pragma: no cover
    import trimesh
    from PIL import Image

    from .texgen import Texgen


def delight(texgen: Texgen, image: Image.Image, steps: int | None, report: Span) -> Image.Image:
    """texgen's recentring and delighting (its wrapper's ``__call__``)."""
    prompt = texgen.pipeline.recenter_image(image)
    with texgen.delight.configured(steps, lambda i, n: report(i, n, f"Delighting step {i}/{n}")):
        return texgen.pipeline.models["delight_model"](prompt)


def render_controls(texgen: Texgen, report: Span) -> list[Image.Image]:
    """Normal then position maps of every view, as the paint model takes them."""
    config, render = texgen.config, texgen.render
    cameras = list(zip(config.candidate_camera_elevs, config.candidate_camera_azims, strict=False))
    normals, positions = [], []
    for index, (elev, azim) in enumerate(cameras):
        normals.append(render.render_normal(elev, azim, use_abs_coor=True, return_type="pl"))
        positions.append(render.render_position(elev, azim, return_type="pl"))
        report(index + 1, len(cameras), f"Rendered view {index + 1}/{len(cameras)}")
    return normals + positions


def multiview(texgen: Texgen, prompt: Image.Image, controls: list, sampling: Sampling, report: Span) -> list:
    """texgen's multiview diffusion (its wrapper's ``__call__``): one image per view."""
    config, wrapper = texgen.config, texgen.pipeline.models["multiview_model"]
    wrapper.view_size = sampling.view_size or 512
    cameras = camera_indices(config.candidate_camera_elevs, config.candidate_camera_azims)
    steps = sampling.multiview_steps
    with texgen.multiview.configured(steps, lambda i, n: report(i, n, f"Painting views, step {i}/{n}")):
        return wrapper(prompt, list(controls), cameras)


def bake(texgen: Texgen, views: list, size: RenderConfig, report: Span) -> tuple[Any, Any]:
    """Back-project each view into UV space and merge them (texgen's 'fast' bake)."""
    config, render = texgen.config, texgen.render
    cameras = list(
        zip(
            views,
            config.candidate_camera_elevs,
            config.candidate_camera_azims,
            config.candidate_view_weights,
            strict=False,
        )
    )
    textures, cos_maps = [], []
    for index, (view, elev, azim, weight) in enumerate(cameras):
        texture, cos_map, _ = render.back_project(view.resize((size.render_size, size.render_size)), elev, azim)
        textures.append(texture)
        cos_maps.append(weight * (cos_map**config.bake_exp))
        report(index + 1, len(cameras), f"Baked view {index + 1}/{len(cameras)}")
    return render.fast_bake_texture(textures, cos_maps)


def inpaint(texgen: Texgen, texture: Any, mask: Any) -> Image.Image:
    """Colour unbaked vertices from their neighbours, then fill the remaining
    holes inside the UV charts (texgen fills the whole frame)."""
    import numpy as np
    from PIL import Image

    from .fill import fill_texture, uv_coverage
    from .inpaint import mesh_vertex_inpaint

    texture_np = texture.float().cpu().numpy()
    mask_np = (mask.squeeze(-1).cpu().numpy() * 255).astype(np.uint8)
    vtx_pos, pos_idx, vtx_uv, uv_idx = texgen.render.get_mesh()
    texture_np, mask_np = mesh_vertex_inpaint(texture_np, mask_np, vtx_pos, vtx_uv, pos_idx, uv_idx)
    region = uv_coverage(vtx_uv, uv_idx, mask_np.shape)
    filled = fill_texture((texture_np * 255).astype(np.uint8), mask_np, region)
    return Image.fromarray(filled, "RGB")


def textured_mesh(mesh: trimesh.Trimesh, texture: Image.Image) -> trimesh.Trimesh:
    """The unwrapped mesh with a PBR material carrying ``texture`` as base colour."""
    import numpy as np
    import trimesh
    from trimesh.visual.material import PBRMaterial

    material = PBRMaterial(baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=ROUGHNESS)
    uv = cast("trimesh.visual.TextureVisuals", mesh.visual).uv  # unwrap_uv's mesh carries TextureVisuals
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv), material=material)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.vertex_normals, visual=visual, process=False)
