"""Per-stage correctness of pipeline.mesh and the hy3dgen surface-extractor adapter."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from bench.common import sphere_grid
from pipeline import mesh as pm


def _sphere(subdivisions: int = 3, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    s.apply_translation(centre)
    return s


def _edge_use_counts(mesh: trimesh.Trimesh) -> np.ndarray:
    _, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    return counts


# -- extraction ----------------------------------------------------------


def hide_vtk(monkeypatch) -> None:
    """Make ``import vtkmodules...`` fail, as on the GPU machine, and forget the cached choice."""
    import sys

    for name in [m for m in sys.modules if m == "vtkmodules" or m.startswith("vtkmodules.")] + ["vtkmodules"]:
        monkeypatch.setitem(sys.modules, name, None)
    pm.surface_backend.cache_clear()


@pytest.fixture(params=["vtk", "scikit-image"])
def extractor(request, monkeypatch):
    """Each extraction test runs with VTK and with the scikit-image fallback (VTK hidden)."""
    if request.param == "scikit-image":
        hide_vtk(monkeypatch)
    else:
        pm.surface_backend.cache_clear()
    assert pm.surface_backend() == request.param
    yield request.param
    pm.surface_backend.cache_clear()


def test_without_vtk_extraction_falls_back_to_scikit_image_and_says_so(monkeypatch, caplog):
    hide_vtk(monkeypatch)
    with caplog.at_level("WARNING", logger="pipeline.mesh"):
        grid = sphere_grid(32, radius=0.5)
        fallback = pm.extract_surface(grid, 0.0, (-1.01, 1.01))
        pm.warm_up()
    assert pm.surface_backend() == "scikit-image"
    assert [r.getMessage() for r in caplog.records].count(
        "VTK is not installed: surface extraction falls back to scikit-image marching cubes (about 4x slower at 384^3)."
    ) == 1  # once per process, not per call
    pm.surface_backend.cache_clear()
    monkeypatch.undo()
    pm.surface_backend.cache_clear()
    assert pm.surface_backend() == "vtk"
    vtk = pm.extract_surface(grid, 0.0, (-1.01, 1.01))
    # Both cut the same grid edges: the same vertices, in another order.
    assert len(fallback.vertices) == len(vtk.vertices)
    assert np.allclose(np.sort(fallback.vertices, axis=0), np.sort(vtk.vertices, axis=0), atol=1e-5)
    assert fallback.volume == pytest.approx(vtk.volume, rel=1e-3) and fallback.volume > 0


def test_extract_sphere_with_nan_cells_is_watertight_and_the_right_size(extractor):
    radius, res = 0.6, 64
    grid = sphere_grid(res, radius=radius, nan_band=3.0)  # NaN far from the surface, inside too
    assert np.isnan(grid).mean() > 0.5
    mesh = pm.extract_surface(grid, 0.0, (-1.01, 1.01))
    assert np.isfinite(mesh.vertices).all()
    assert mesh.is_watertight and mesh.euler_number == 2  # one closed shell, not two
    assert mesh.volume > 0  # outward normals
    r = np.linalg.norm(mesh.vertices, axis=1)
    voxel = 2.02 / res
    assert abs(r.mean() - radius) < 0.1 * voxel
    assert np.abs(r - radius).max() < 0.5 * voxel
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)
    assert np.allclose(mesh.bounds, [[-radius] * 3, [radius] * 3], atol=0.5 * voxel)


def test_extract_without_nan_matches_and_respects_level_and_bounds(extractor):
    grid = sphere_grid(48, radius=0.5)
    # level 0.1 on -sdf is the sphere of radius 0.4; bounds (-2.02, 2.02) doubles everything
    mesh = pm.extract_surface(grid, level=0.1, bounds=(-2.02, 2.02))
    assert np.linalg.norm(mesh.vertices, axis=1).mean() == pytest.approx(0.8, abs=0.01)
    six = pm.extract_surface(grid, level=0.1, bounds=[-2.02, -2.02, -2.02, 2.02, 2.02, 2.02])
    assert np.allclose(six.vertices, mesh.vertices)


def test_extract_orientation_is_outward_on_an_offset_shape(extractor):
    n = 41
    axis = np.linspace(-1, 1, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    # an ellipsoid off-centre along x only: catches swapped axes as well as winding
    grid = (1 - ((x - 0.3) / 0.5) ** 2 - (y / 0.3) ** 2 - (z / 0.2) ** 2).astype(np.float32)
    mesh = pm.extract_surface(grid, 0.0, (-1.0, 1.0))
    lo, hi = mesh.bounds
    assert np.allclose(lo, [-0.2, -0.3, -0.2], atol=0.03) and np.allclose(hi, [0.8, 0.3, 0.2], atol=0.03)
    assert mesh.volume > 0
    c = mesh.triangles_center - [0.3, 0, 0]
    gradient_out = c / np.array([0.5, 0.3, 0.2]) ** 2  # the ellipsoid's true outward normal direction
    real = mesh.area_faces > 1e-12  # grid points exactly on the surface give zero-area faces
    assert real.mean() > 0.95
    assert (np.einsum("ij,ij->i", mesh.face_normals, gradient_out)[real] > 0).all()


def test_extract_empty_and_all_nan_give_an_empty_mesh(extractor):
    assert len(pm.extract_surface(np.full((9, 9, 9), -1.0, np.float32)).faces) == 0
    assert len(pm.extract_surface(np.full((9, 9, 9), np.nan, np.float32)).faces) == 0
    with pytest.raises(ValueError):
        pm.extract_surface(np.zeros((4, 4)))


# -- clean-up ------------------------------------------------------------


def test_remove_floaters_keeps_the_big_parts_and_drops_specks():
    body = _sphere(5)  # 20480 faces
    second = _sphere(4, 0.8, (3, 0, 0))  # 5120 faces: a real second part, kept
    specks = [_sphere(1, 0.05, (0, 2 + i * 0.2, 0)) for i in range(5)]  # 80 faces each
    mesh = trimesh.util.concatenate([body, second, *specks])
    out = pm.remove_floaters(mesh, keep_ratio=0.05)
    assert len(out.faces) == len(body.faces) + len(second.faces)
    assert out.is_watertight and len(out.vertices) == len(body.vertices) + len(second.vertices)
    assert out.bounds[1][1] < 1.01  # no speck (they sit at y >= 2) survived
    only_body = pm.remove_floaters(mesh, keep_ratio=0.5)
    assert len(only_body.faces) == len(body.faces)


def test_remove_floaters_returns_a_single_component_unchanged():
    s = _sphere(2)
    assert pm.remove_floaters(s) is s


def test_remove_degenerate_drops_bad_faces_and_unused_vertices():
    s = _sphere(2)
    v, f = np.asarray(s.vertices), np.asarray(s.faces)
    n = len(v)
    extra_v = np.vstack([v, [[5, 5, 5]], [[0, 0, 0], [1, 0, 0], [2, 0, 0]]])  # one unused, three collinear
    bad = np.array([[0, 0, 1], [n + 1, n + 2, n + 3], f[0][[1, 2, 0]], f[1][::-1]])  # repeat, zero area, dup x2
    mesh = trimesh.Trimesh(extra_v, np.vstack([f, bad]), process=False)
    out = pm.remove_degenerate(mesh)
    assert len(out.faces) == len(f)
    assert len(out.vertices) == n
    assert out.is_watertight
    assert pm.remove_degenerate(s) is s


# -- decimation ----------------------------------------------------------


def test_decimate_hits_the_budget_and_keeps_a_closed_mesh_closed():
    s = _sphere(5)  # 20480 faces
    out = pm.decimate(s, 2000)
    assert 0.99 * 2000 <= len(out.faces) <= 2000
    assert out.is_watertight and out.euler_number == 2
    r = np.linalg.norm(out.vertices, axis=1)
    assert np.abs(r - 1).max() < 0.02
    assert pm.decimate(out, 5000) is out  # under budget: untouched


def test_decimate_is_scale_independent_and_keeps_a_torus_genus():
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3, major_sections=128, minor_sections=64)
    for scale in (0.001, 1.0, 500.0):
        scaled = torus.copy()
        scaled.apply_scale(scale)
        out = pm.decimate(scaled, 1500)
        assert 0.99 * 1500 <= len(out.faces) <= 1500, scale
        assert out.is_watertight and out.euler_number == 0, scale
        assert np.allclose(out.bounds, scaled.bounds, rtol=0.05, atol=0.05 * scale)


def test_postprocess_runs_the_chain_with_timings():
    mesh = trimesh.util.concatenate([_sphere(5), _sphere(1, 0.02, (2, 0, 0))])
    out, timings = pm.postprocess(mesh, 3000)
    assert set(timings) == {"floaters", "degenerate", "decimate"}
    assert all(t >= 0 for t in timings.values())
    assert 0.99 * 3000 <= len(out.faces) <= 3000
    assert out.is_watertight and out.bounds[1][0] < 1.01  # speck gone


# -- UVs and placement ---------------------------------------------------


def test_unwrap_uv_gives_uvs_in_the_unit_square_on_the_same_surface():
    s = pm.decimate(_sphere(4), 2000)
    out, stats = pm.unwrap_uv(s)
    uv = out.visual.uv
    assert uv.shape == (len(out.vertices), 2)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    assert len(out.faces) == len(s.faces)
    assert out.area == pytest.approx(s.area, rel=1e-6)
    assert stats["charts"] >= 1 and 0 < stats["utilization"] <= 1
    # seam copies keep the source normals, so shading is continuous across seams
    assert np.allclose(np.linalg.norm(out.vertex_normals, axis=1), 1.0, atol=1e-6)
    assert (np.einsum("ij,ij->i", out.vertex_normals, out.vertices) > 0.95).all()
    _, first, group = np.unique(out.vertices, axis=0, return_index=True, return_inverse=True)
    assert len(first) < len(out.vertices)  # there are seams ...
    assert np.array_equal(out.vertex_normals, out.vertex_normals[first][group.reshape(-1)])  # ... copies agree
    # every face has a non-degenerate UV triangle (xatlas flips none either)
    t = uv[out.faces]
    uv_area = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    assert (np.abs(uv_area) > 0).mean() > 0.999


def test_normalize_centres_and_scales_the_longest_side():
    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    box.apply_translation((10, -3, 2))
    out = pm.normalize(box, extent=1.9)
    assert np.allclose(out.bounds, [[-0.95, -0.475, -0.2375], [0.95, 0.475, 0.2375]])
    assert np.allclose(box.bounds[0], (8, -4, 1.5))  # the input is untouched


# -- hy3dgen adapter -----------------------------------------------------


def test_surface_adapter_is_what_hy3dgen_pipeline_expects():
    torch = pytest.importorskip("torch")
    from hy3dgen.shapegen.models.autoencoders import Latent2MeshOutput
    from hy3dgen.shapegen.pipelines import export_to_trimesh

    from pipeline.backends.hy3dgen_extractor import Hy3dgenSurfaceExtractor

    sphere = sphere_grid(48, radius=0.5, nan_band=3.0)
    batch = torch.from_numpy(np.stack([sphere, np.full_like(sphere, -1.0)]))
    outputs = Hy3dgenSurfaceExtractor()(
        batch, mc_level=0.0, bounds=1.01, octree_resolution=48, num_chunks=8000, mc_algo=None, enable_pbar=False
    )
    assert len(outputs) == 2 and outputs[1] is None  # empty surface: None, like hy3dgen
    out = outputs[0]
    assert isinstance(out, Latent2MeshOutput)
    assert out.mesh_v.dtype == np.float32 and out.mesh_f.shape[1] == 3
    meshes = export_to_trimesh(outputs)  # hy3dgen's own conversion (it reverses the winding)
    assert meshes[1] is None
    mesh = meshes[0]
    assert mesh.is_watertight and mesh.volume > 0
    assert np.linalg.norm(mesh.vertices, axis=1).mean() == pytest.approx(0.5, abs=0.005)


def test_surface_adapter_plugs_into_latents2mesh():
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from hy3dgen.shapegen.models.autoencoders.model import VectsetVAE

    from pipeline.backends.hy3dgen_extractor import Hy3dgenSurfaceExtractor

    # hy3dgen's own latents2mesh, with a volume decoder that returns our grids as its logits
    vae = SimpleNamespace(
        volume_decoder=lambda latents, geo_decoder, **kw: latents,
        geo_decoder=None,
        surface_extractor=Hy3dgenSurfaceExtractor(),
    )
    grids = torch.from_numpy(sphere_grid(32, radius=0.5)[None])
    outputs = VectsetVAE.latents2mesh(vae, grids, bounds=1.01, mc_level=0.0, octree_resolution=32)
    assert len(outputs) == 1 and len(outputs[0].mesh_f) > 100
