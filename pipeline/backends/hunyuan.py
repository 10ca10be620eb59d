"""The Hunyuan3D-2 shape backend (hy3dgen 2.0.2), with mmgp memory profiles on CUDA.

The pipeline is built from the files :mod:`pipeline.weights` resolved
(``from_single_file``), so hy3dgen never looks for weights on the network. On
CPU it runs float32 and ignores profiles; on CUDA it loads fp16 on the host and
its three models join the texture pipeline's under one mmgp profile
(:mod:`pipeline.memory`, which says how they are named and why).

torch, hy3dgen and mmgp are imported inside functions: importing
:mod:`pipeline` stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError, WeightsDamagedError
from ..memory import PROFILES, shape_models, unpatched_safetensors
from ..models import HUNYUAN_MODELS, ShapeModelSpec
from ..progress import RunLog as _Run
from ..settings import Settings
from ..types import ShapeOutput
from ..weights import ResolvedModel, ShapeFolder, check_weights_finite, resolve_model
from .lifecycle import ModelBackend, subject_rgba

if TYPE_CHECKING:  # pragma: no cover
    import trimesh
    from PIL import Image

    from ..options import GenerationOptions
    from ..progress import ProgressCallback

log = logging.getLogger(__name__)

BOX = 1.01  # hy3dgen's box_v: the occupancy grid spans [-1.01, 1.01]^3
MC_LEVEL = 0.0  # the flow-matching pipeline's iso level
DEFAULT_NUM_CHUNKS = 8000
# Progress fractions of the "shape" stage at the end of each sub-stage.
_DIFFUSION_END, _DECODE_END, _SURFACE_END = 0.75, 0.9, 0.95


@dataclass(frozen=True)
class ShapeParams:
    """Sampling and decoding parameters of one request, model defaults filled in."""

    steps: int
    guidance_scale: float
    octree_resolution: int
    num_chunks: int
    seed: int

    @classmethod
    def from_options(cls, spec: ShapeModelSpec, options: GenerationOptions) -> ShapeParams:
        return cls(
            steps=options.steps or spec.steps,
            guidance_scale=spec.guidance_scale if options.guidance_scale is None else options.guidance_scale,
            octree_resolution=options.octree_resolution or spec.octree_resolution,
            num_chunks=options.num_chunks or DEFAULT_NUM_CHUNKS,
            seed=options.seed,
        )


# -- loading ------------------------------------------------------------------


def _check_no_download(config_path: str) -> None:
    """hy3dgen downloads the DINO encoder when the config has no inline
    ``config:``; refuse instead of reaching for the network mid-request."""
    config = read_config(config_path)
    encoders = config.get("conditioner", {}).get("params", {})
    for encoder in encoders.values():
        if isinstance(encoder, dict) and not encoder.get("kwargs", {}).get("config"):
            raise PipelineError(f"{config_path} has no inline image-encoder config; it would need a download.")


def read_config(config_path: str) -> dict:
    """A checkpoint's ``config.yaml`` as a mapping; garbage in the file is
    :class:`WeightsDamagedError` naming it in one line (not a YAML traceback)."""
    import yaml

    try:
        with open(config_path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WeightsDamagedError(
            f"Model config {config_path} is not valid YAML{where}; restore it or download the model again.",
            path=config_path,
        ) from None
    if not isinstance(config, dict):
        raise WeightsDamagedError(
            f"Model config {config_path} is not a Hunyuan3D config (not a YAML mapping); "
            "restore it or download the model again.",
            path=config_path,
        )
    return config


@contextmanager
def _skip_random_init() -> Iterator[None]:
    """hy3dgen builds every module with its random init and then overwrites
    all of it from the checkpoint (strict loads); that init alone costs ~20 s
    per billion parameters on one core, on every cold start. transformers'
    context turns torch's init functions into no-ops meanwhile (process-wide,
    for the duration of the load)."""
    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover - only slower
        yield
        return
    with no_init_weights():
        yield


def _load_turbo_vae(folder: ShapeFolder, dtype: Any) -> Any:
    from hy3dgen.shapegen.models.autoencoders import ShapeVAE

    with _skip_random_init():
        return ShapeVAE.from_single_file(
            str(folder.weights), str(folder.config), device="cpu", dtype=dtype, use_safetensors=folder.use_safetensors
        )


def _install_surface_extractor(pipe: Any) -> None:
    """The project's extractor: faster, NaN-aware, and exact (hy3dgen's scales
    vertices by ``res + 1`` instead of the grid's ``points - 1`` cells, which
    shrinks meshes by 1.5-3% towards -1.01)."""
    from .hy3dgen_extractor import Hy3dgenSurfaceExtractor

    pipe.vae.surface_extractor = Hy3dgenSurfaceExtractor()


def load_pipeline(weights: ResolvedModel, dtype: Any, check_device: str = "cpu") -> Any:
    """Build the hy3dgen pipeline on the host from local files only.

    Turbo variants get the FlashVDM VAE from our own resolution, then
    ``enable_flashvdm(replace_vae=False)`` switches its decoder; hy3dgen's own
    replace path would call ``from_pretrained`` (network, fp16 on CPU).
    """
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline

    spec, dit = weights.spec, weights.dit
    _check_no_download(str(dit.config))
    with _skip_random_init():
        pipe = Hunyuan3DDiTFlowMatchingPipeline.from_single_file(
            str(dit.weights),
            str(dit.config),
            device="cpu",
            dtype=dtype,
            use_safetensors=dit.use_safetensors,
            from_pretrained_kwargs=dict(
                model_path=spec.repo_id,
                subfolder=spec.subfolder,
                use_safetensors=dit.use_safetensors,
                variant="fp16",
                dtype=dtype,
                device="cpu",
            ),
        )
    _check_views_support(spec, pipe, str(dit.config))
    # Garbage bytes of the right size load fine and fail every job as "no surface": name the file now.
    check_weights_finite(
        {"model": pipe.model, "vae": pipe.vae, "conditioner": pipe.conditioner}, dit.weights, spec.name, check_device
    )
    if weights.vae is not None:
        read_config(str(weights.vae.config))  # garbage here is named too, before hy3dgen parses it
        pipe.vae = _load_turbo_vae(weights.vae, dtype)
        check_weights_finite({"vae": pipe.vae}, weights.vae.weights, spec.name, check_device)
        pipe.enable_flashvdm(enabled=True, replace_vae=False, mc_algo="mc")
    _install_surface_extractor(pipe)
    return pipe


def _check_views_support(spec: ShapeModelSpec, pipe: Any, config_path: str) -> None:
    """A multi-view model's folder must hold a multi-view checkpoint (its
    processor takes a dict of views) and a single-view one must not: a swapped
    folder would otherwise fail inside hy3dgen mid-request."""
    from hy3dgen.shapegen.preprocessors import MVImageProcessorV2

    if isinstance(pipe.image_processor, MVImageProcessorV2) != spec.multiview:
        kind = "multi-view" if spec.multiview else "single-view"
        raise PipelineError(f"{config_path} is not a {kind} checkpoint, which {spec.name} needs.")


# -- decoding and meshing -------------------------------------------------------


def _to_trimesh(output: Any) -> trimesh.Trimesh:
    """The extractor's outward (vertices, faces) as a trimesh.

    hy3dgen's frame is already glTF's (Y up, subject facing +Z: texgen renders
    the input's view from +Z), so no axes change. The faces already point
    outward (:meth:`Hy3dgenSurfaceExtractor.outward_mesh`); a closed mesh of
    negative volume is still inverted, as a last check.
    """
    import numpy as np
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(output.mesh_v, dtype=np.float64), np.asarray(output.mesh_f), process=True)
    if mesh.is_volume and mesh.volume < 0:
        mesh.invert()
    return mesh


def postprocess(mesh: trimesh.Trimesh, max_faces: int) -> tuple[trimesh.Trimesh, dict[str, float]]:
    """The project's mesh clean-up, with its timings prefixed ``postprocess_``."""
    from ..mesh import postprocess as clean_up

    mesh, timings = clean_up(mesh, max_faces)
    return mesh, {(k if k.startswith("postprocess_") else f"postprocess_{k}"): v for k, v in timings.items()}


def _check_image(image: Image.Image, view: str | None = None) -> Image.Image:
    what = "The image" if view is None else f"Field 'views.{view}'"
    return subject_rgba(image, f"{what} is fully transparent: no subject left after background removal.")


def condition_images(
    spec: ShapeModelSpec, image: Image.Image, views: Mapping[str, Image.Image] | None
) -> Image.Image | dict[str, Image.Image]:
    """What hy3dgen's pipeline takes as ``image``: the picture itself for a
    single-view model; for a multi-view one a dict keyed by MVImageProcessorV2's
    view names, the front always present (its processor iterates a dict, so a
    lone front is ``{"front": image}`` too; it sorts the views itself)."""
    front = _check_image(image)
    if not spec.multiview:
        if views:
            raise PipelineError(f"{spec.name} takes a single image; views need a multi-view model.")
        return front
    return {"front": front, **{view: _check_image(picture, view) for view, picture in (views or {}).items()}}


# -- the backend ----------------------------------------------------------------


class HunyuanShapeBackend(ModelBackend):
    """One Hunyuan3D-2 variant, loaded once and reused by every request.

    Weights are resolved in the constructor (a missing model fails there,
    within milliseconds); the pipeline is built by :meth:`load` or the first
    request. Requests are serialised: one pipeline, one accelerator.
    """

    def __init__(
        self, model: str | ShapeModelSpec, settings: Settings | None = None, *, device: str | None = None
    ) -> None:
        name = model.name if isinstance(model, ShapeModelSpec) else model
        if name not in HUNYUAN_MODELS:
            raise PipelineError(f"Unknown Hunyuan3D model '{name}'.")
        self.name = self.label = name
        self.spec = HUNYUAN_MODELS[name]
        self.weights = resolve_model(name)
        super().__init__(settings, device=device)
        self.pipeline: Any = None
        self._damaged: tuple[tuple, WeightsDamagedError] | None = None

    def _files_stamp(self) -> tuple:
        folders = [self.weights.dit] + ([self.weights.vae] if self.weights.vae else [])
        stamp: list[tuple[str, int | None, int | None]] = []
        for folder in folders:
            for path in (folder.config, folder.weights):
                try:
                    info = path.stat()
                    stamp.append((str(path), info.st_size, info.st_mtime_ns))
                except OSError:
                    stamp.append((str(path), None, None))
        return tuple(stamp)

    # -- lifecycle --
    @property
    def loaded(self) -> bool:
        return self.pipeline is not None

    def _load(self) -> None:
        """Build the pipeline on the host (CPU: where it runs)."""
        if self._damaged is not None and self._damaged[0] == self._files_stamp():
            raise WeightsDamagedError(str(self._damaged[1]), path=self._damaged[1].path)
        try:
            with unpatched_safetensors():  # a reload may come after mmgp's import
                pipe = load_pipeline(self.weights, self.dtype, self.device)
        except WeightsDamagedError as exc:
            # Later requests fail in microseconds with the same sentence,
            # until the files change on disk.
            self._damaged = (self._files_stamp(), exc)
            raise
        if self.device == "cuda":
            import torch

            pipe.device = torch.device("cuda")  # where hy3dgen creates latents; mmgp moves the models
        self.pipeline = pipe

    @property
    def profile(self) -> int | None:
        """The mmgp profile over this model now (CUDA only), else None."""
        return PROFILES.profile if PROFILES.shape is self else None

    def _use_profile(self, profile: int) -> None:
        """Apply ``profile`` on CUDA to this model and the loaded texture models
        (one mmgp call); a switch reloads both from disk (:mod:`pipeline.memory`)."""
        PROFILES.use(profile, shape=self)

    def mmgp_models(self) -> dict[str, Any]:
        return shape_models(self.pipeline)

    def drop_models(self) -> None:
        """Forget the pipeline (mmgp changed it in place); the next load reads the disk."""
        with self._lock:
            self.pipeline = None

    # -- the request path --
    def generate(
        self,
        image: Image.Image,
        options: GenerationOptions,
        progress: ProgressCallback,
        views: Mapping[str, Image.Image] | None = None,
    ) -> ShapeOutput:
        """``views``: left/back/right pictures for a multi-view model (``image`` is the front)."""

        def message() -> str:  # read before the OOM recovery: the profile the request ran under
            return (
                f"CUDA ran out of memory generating the shape with {self.name} (profile {self.profile}); "
                "raise 'profile' (5 uses the least VRAM) or lower 'octree_resolution' / 'num_chunks'."
            )

        return self._guard_oom(lambda: self._generate(image, options, progress, views), message)

    def _generate(
        self,
        image: Image.Image,
        options: GenerationOptions,
        progress: ProgressCallback,
        views: Mapping[str, Image.Image] | None = None,
    ) -> ShapeOutput:
        run = _Run()
        condition = condition_images(self.spec, image, views)
        params = ShapeParams.from_options(self.spec, options)
        profile = self._prepare(options.profile, run)
        latents = self._diffuse(condition, params, progress, run)
        grid = self._decode(latents, params, progress, run)
        mesh = self._extract(grid, params, progress, run)
        progress("shape", _SURFACE_END, "Cleaning the mesh")
        mesh, post_timings = postprocess(mesh, options.max_faces)
        run.timings.update(post_timings)
        return ShapeOutput(
            mesh, model=self.name, textured=False, profile=profile, warnings=run.warnings, timings=run.timings
        )

    def _prepare(self, profile: int, run: _Run) -> int | None:
        """Load (and on CUDA profile) the pipeline; returns the profile that runs."""
        if self.device == "cuda":
            self._use_profile(profile)
        else:
            self.load()
        run.timings["shape_load"] = self.take_load_s()
        if self.device == "cuda":
            return self.profile
        run.warnings.append(f"profile {profile} ignored on CPU; running float32")
        return None

    def _diffuse(
        self, image: Image.Image | dict[str, Image.Image], params: ShapeParams, progress: ProgressCallback, run: _Run
    ) -> Any:
        import torch

        def on_step(step: int, _timestep: Any, _outputs: Any) -> None:
            done = step + 1
            progress("shape", _DIFFUSION_END * done / params.steps, f"Diffusion step {done}/{params.steps}")

        generator = torch.Generator(device="cpu").manual_seed(params.seed)
        with run.timed("diffusion"):
            return self.pipeline(
                image=image,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                generator=generator,
                box_v=BOX,
                mc_level=MC_LEVEL,
                octree_resolution=params.octree_resolution,
                num_chunks=params.num_chunks,
                output_type="latent",
                enable_pbar=False,
                callback=on_step,
                callback_steps=1,
            )

    def _decode(self, latents: Any, params: ShapeParams, progress: ProgressCallback, run: _Run) -> Any:
        """Latents to the occupancy grid; the first half of hy3dgen's
        ``vae.latents2mesh``, split out to time and report it separately."""
        import torch

        vae = self.pipeline.vae
        progress("shape", _DIFFUSION_END, f"Decoding occupancy (octree {params.octree_resolution})")
        with run.timed("decode"), torch.inference_mode():
            features = vae(latents / vae.scale_factor)
            grid = vae.volume_decoder(
                features,
                vae.geo_decoder,
                bounds=BOX,
                num_chunks=params.num_chunks,
                mc_level=MC_LEVEL,
                octree_resolution=params.octree_resolution,
                enable_pbar=False,
            )
        progress("shape", _DECODE_END, "Extracting the surface")
        return grid

    def _extract(self, grid: Any, params: ShapeParams, progress: ProgressCallback, run: _Run) -> trimesh.Trimesh:
        extractor = self.pipeline.vae.surface_extractor  # a Hy3dgenSurfaceExtractor (load_pipeline)
        with run.timed("surface"):
            output = extractor.outward_mesh(grid[0], bounds=BOX, mc_level=MC_LEVEL)  # one request, one grid
            if output is None or len(output.mesh_f) == 0:
                raise PipelineError(
                    f"{self.name} produced no surface for this image (the decoded occupancy never crosses "
                    "the iso level); try another seed or a clearer subject."
                )
            mesh = _to_trimesh(output)
        return mesh
