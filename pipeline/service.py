"""The one pipeline object the faces share: image in, GLB out.

``ImageTo3D`` is created once per process. It owns the background remover and
the process's only backend cache (shape backends by name, texture backends by
paint model), so every model loads once and is reused. Both faces
call :meth:`ImageTo3D.generate` with validated :class:`GenerationOptions` and
translate :class:`GenerationResult` into their own wire format.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from . import GENERATOR
from .backends.lifecycle import ModelBackend
from .errors import (
    InputError,
    PipelineError,
    WeightsMissingError,
    bound_message,
    echo,
    failed_stage,
    is_out_of_memory,
)
from .models import AUTO, AUTO_MULTIVIEW_PREFERENCE, DEFAULT_PAINT_MODEL, DRAFT, MULTIVIEW_MODELS
from .options import GenerationOptions
from .progress import ProgressCallback, RunLog, null_progress
from .settings import Settings, load_settings
from .types import GenerationResult, ShapeBackend

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .texture.backend import TextureBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """Which backend serves a request, and a sentence saying why."""

    name: str
    notice: str


class ImageTo3D:
    """Image-to-3D pipeline; one instance per process.

    ``draft_fallback`` decides what ``model="auto"`` does when no Hunyuan3D
    weights are on disk: the app serves the draft backend with a visible
    notice, the worker fails with a clear error (a panel user asked for a real
    model and must not silently get a draft).
    """

    def __init__(self, settings: Settings | None = None, *, draft_fallback: bool = True) -> None:
        self.settings = settings or load_settings()
        self.draft_fallback = draft_fallback
        self._backends: dict[str, ShapeBackend] = {}  # shape backends by model name
        self._textures: dict[str, TextureBackend] = {}  # texture backends by paint model
        self._background = None
        self._lock = threading.Lock()
        self._restart_requested = False  # set by a GPU OOM the request survived (texturing)

    # -- model selection -------------------------------------------------
    def choose_model(self, requested: str, *, multiview: bool = False, at_startup: bool = False) -> ModelChoice:
        """``multiview``: the request carries views, so ``auto`` picks among
        the multi-view models, and finding none is an error in every face
        (the draft backend cannot use views). ``at_startup``: the choice comes
        from HY3D_MODEL, not from a request's field, and the error message says so."""
        if requested == DRAFT:
            return ModelChoice(DRAFT, "Serving the draft backend (silhouette inflation, no weights needed).")
        if requested != AUTO:
            return ModelChoice(requested, f"Serving {requested}.")
        from . import weights

        if multiview:
            return self._choose_multiview()
        found = weights.resolve_auto_model()
        if found is not None:
            return ModelChoice(found, f"Serving {found} (auto: the best Hunyuan3D variant whose weights are present).")
        searched = ", ".join(weights.searched_locations())
        hint = f"Download them with `{weights.download_command('hunyuan3d-2-turbo')}`"
        if self.draft_fallback:
            return ModelChoice(
                DRAFT,
                f"Hunyuan3D weights not found in {searched}; serving draft models. {hint}.",
            )
        if at_startup:
            what, advice = "HY3D_MODEL is auto", "or set HY3D_MODEL=draft to serve the draft backend"
        elif self.settings.default_model == DRAFT:
            # HY3D_MODEL=draft is already set: the request itself asked for auto.
            what, advice = (
                "Field 'model' is auto",
                "or send model 'draft' (or leave 'model' out: this worker's default is draft)",
            )
        else:
            what, advice = "Field 'model' is auto", "or send model 'draft' (or set HY3D_MODEL=draft on the worker)"
        raise WeightsMissingError(
            f"{what} but no Hunyuan3D weights were found in {searched}. {hint}, {advice}.",
            searched=weights.searched_locations(),
        )

    @staticmethod
    def _choose_multiview() -> ModelChoice:
        from . import weights

        found = weights.resolve_auto_model(multiview=True)
        if found is not None:
            return ModelChoice(found, f"Serving {found} (auto: the best multi-view variant whose weights are present).")
        raise WeightsMissingError(
            f"Field 'views' needs a multi-view model but no multi-view weights ({', '.join(MULTIVIEW_MODELS)}) "
            f"were found in {', '.join(weights.searched_locations())}; download them with "
            f"`{weights.download_command(AUTO_MULTIVIEW_PREFERENCE[-1])}`.",
            searched=weights.searched_locations(),
        )

    def backend(self, name: str) -> ShapeBackend:
        """The cached backend for ``name``, creating it once (its models load on first use)."""
        backend = self._backends.get(name)
        if backend is None:
            from .backends import create_backend

            backend = create_backend(name, self.settings)
            self._backends[name] = backend
        return backend

    def texture_backend(self, paint_model: str = DEFAULT_PAINT_MODEL) -> TextureBackend:
        """The cached texture backend for ``paint_model``, created on first use
        (its models load on its first ``paint`` or ``load``).

        Only one variant keeps its models: asking for another releases the rest,
        because two sets (6.6 GiB fp16 each) rarely fit beside the shape model.
        A missing model raises :class:`WeightsMissingError` each time, so weights
        added later are found.
        """
        from .texture.backend import TextureBackend

        backend = self._textures.get(paint_model)
        if backend is None:
            # The constructor refuses an unknown paint model and missing weights (nothing is cached then).
            backend = self._textures[paint_model] = TextureBackend(self.settings, paint_model)
        for other in self._textures.values():
            if other is not backend and other.loaded:
                other.release()
        return backend

    def use_texture_backend(self, backend: TextureBackend) -> None:
        """Serve ``backend`` for its paint model from now on (benches: fewer
        sampling steps), releasing the one it replaces."""
        old = self._textures.get(backend.paint_model)
        if old is not None and old is not backend:
            old.release()
        self._textures[backend.paint_model] = backend

    def release(self) -> None:
        """Release every cached backend's models (and on CUDA their GPU memory)
        and forget the backends; the next request creates and loads them again."""
        for backend in [*self._backends.values(), *self._textures.values()]:
            if isinstance(backend, ModelBackend):
                backend.release()
        self._backends.clear()
        self._textures.clear()

    def warm_up(self, model: str | None = None) -> ModelChoice:
        """Load the configured model now (worker start-up) rather than in the
        first request, and pay the mesh code's one-off costs (imports, numba)."""
        from . import mesh

        choice = self.choose_model(model or self.settings.default_model, at_startup=model is None)
        backend = self.backend(choice.name)
        backend.load()
        mesh.warm_up()
        if _under_mmgp(backend):
            # Requests are textured by default: loading the texture models now
            # lets the first request profile both pipelines at once instead of
            # reloading the shape model to add them (pipeline.memory).
            from .weights import texture_weights_present

            if texture_weights_present(DEFAULT_PAINT_MODEL):
                from .memory import PROFILES

                texture = self.texture_backend(DEFAULT_PAINT_MODEL)
                texture.load()
                PROFILES.include(shape=backend, texture=texture)
        return choice

    @property
    def background(self):
        if self._background is None:
            from .background import BackgroundRemover

            self._background = BackgroundRemover(self.settings)
        return self._background

    # -- the request path -----------------------------------------------
    def generate(
        self,
        image: bytes | str | Image.Image,
        options: GenerationOptions,
        progress: ProgressCallback = null_progress,
        views: Mapping[str, Any] | None = None,
    ) -> GenerationResult:
        """Run one request end to end. Thread-safe: requests are serialised,
        because there is one accelerator and the models are shared.

        ``views`` (the request's ``views`` field: left/back/right, each in any
        form ``image`` accepts) goes to a multi-view model with ``image`` as
        the front; see :mod:`pipeline.views`."""
        from .views import check_views, require_multiview

        views = check_views(views)
        require_multiview(options.model, views)
        with self._lock:
            return self._generate(image, options, progress, views)

    def _generate(
        self, image, options: GenerationOptions, progress: ProgressCallback, views: dict[str, Any]
    ) -> GenerationResult:
        started = time.perf_counter()
        from .seeding import seed_everything

        seed_everything(options.seed)  # same request, same bytes
        self._restart_requested = False
        run = RunLog()
        warnings = run.warnings

        progress("decode", 0.0, "Decoding image")
        with run.timed("decode"):
            with _per_view(run, "decode", views):
                rgba = self._decode(image)
            rgba_views = self._decode_views(views, progress, run)
        progress("decode", 1.0, f"Image {rgba.width}x{rgba.height}" + (f" + {len(views)} views" if views else ""))

        # After the cheap input checks, before any slow work: a model whose
        # weights are missing fails here (the backend resolves its weights
        # when created), not after background removal.
        choice = self.choose_model(options.model, multiview=bool(views))
        if options.model == AUTO and choice.name == DRAFT:
            warnings.append(choice.notice)
        backend = self.backend(choice.name)

        progress("background", 0.0, "Removing background")
        with run.timed("background"):
            with _per_view(run, "background", views if options.remove_background else {}):
                rgba = self._remove_background(rgba, options, warnings)
            rgba_views = self._remove_view_backgrounds(rgba_views, options, warnings, progress, run)
        progress("background", 1.0, "Background done")

        texture_timings: dict[str, float] = {}
        progress("shape", 0.0, f"Generating shape with {choice.name}")
        if _under_mmgp(backend):
            self._profile_both(backend, options, texture_timings)
        with run.timed("shape"):
            if rgba_views:
                shape = backend.generate(rgba, options, progress, views=rgba_views)
            else:  # the single-view call every backend (and test stand-in) takes
                shape = backend.generate(rgba, options, progress)
        warnings.extend(shape.warnings)
        progress("shape", 1.0, f"Shape: {len(shape.mesh.faces)} faces")

        mesh, textured = shape.mesh, shape.textured
        rasterizer = None
        progress("texture", 0.0, "Texturing")
        with run.timed("texture"):
            if options.generate_texture and not textured:
                mesh, rasterizer = self._paint(mesh, rgba, options, progress, warnings, texture_timings)
                textured = rasterizer is not None
        progress("texture", 1.0, "Texture done" if textured else "No texture")
        if _under_mmgp(backend):
            from .memory import PROFILES

            PROFILES.unload_all()  # no model stays on the GPU between jobs

        progress("export", 0.0, "Writing GLB")
        with run.timed("export"):
            from .export import export_glb

            extras = {
                "options": options.to_dict(),
                "model": choice.name,
                "generator": GENERATOR,
                **({"views": ["front", *rgba_views]} if rgba_views else {}),
            }
            glb = export_glb(mesh, extras=extras, include_normals=options.smooth_normals)
        progress("export", 1.0, f"GLB {len(glb)} bytes")

        preview_png = None
        if options.preview:
            with run.timed("preview"):
                from .preview import render_preview_png

                preview_png = render_preview_png(mesh)

        timings = {
            **run.timings,
            **{f"{choice.name}.{k}": round(v, 4) for k, v in shape.timings.items()},
            **{f"texture.{k}": round(v, 4) for k, v in texture_timings.items()},
        }
        return GenerationResult(
            glb=glb,
            textured=textured,
            model=choice.name,
            seed=options.seed,
            profile=shape.profile,
            faces=int(len(mesh.faces)),
            vertices=int(len(mesh.vertices)),
            timings=timings,
            warnings=warnings,
            execution_time=round(time.perf_counter() - started, 4),
            options=options.to_dict(),
            mesh=mesh,
            extras=extras,
            texture_rasterizer=rasterizer,
            preview_png=preview_png,
            refresh_worker=self._restart_requested,
        )

    @staticmethod
    def reexport(result: GenerationResult, jpeg_quality: int, max_texture_size: int | None) -> bytes:
        """The same model with a smaller texture encoding (for payload budgets)."""
        from .export import export_glb

        return export_glb(
            result.mesh,
            extras=result.extras,
            jpeg_quality=jpeg_quality,
            max_texture_size=max_texture_size,
            include_normals=bool(result.options.get("smooth_normals", True)),
        )

    def _texture_failed(self, exc: Exception, warnings: list[str]) -> None:
        """Turn a failure anywhere in texturing into a warning naming the
        stage; after a GPU OOM the process is flagged for a restart."""
        stage = failed_stage(exc) or "texture"
        if is_out_of_memory(exc):
            self._restart_requested = True
            log.warning("texturing ran out of GPU memory in the %s stage", stage)
            warnings.append(
                f"Texturing ran out of GPU memory in the {stage} stage; returned the untextured model "
                "(lower 'texture_size' to texture it)."
            )
            return
        log.error("texturing failed in the %s stage; returning the untextured model", stage, exc_info=exc)
        detail = f"{exc}" if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {echo(str(exc))}"
        warnings.append(
            bound_message(f"Texturing failed in the {stage} stage ({detail}); returned the untextured model.")
        )

    def _decode(self, image, field: str = "image") -> Image.Image:
        from . import image_io

        if isinstance(image, str):
            return image_io.decode_base64_image(image, self.settings, field)
        if isinstance(image, (bytes, bytearray)):
            return image_io.load_image(bytes(image), self.settings, field)
        if hasattr(image, "convert"):  # an already-decoded PIL image (scripting)
            return image_io.from_pil(image, self.settings, field)
        raise InputError(f"Field '{field}' must be base64 text or image bytes.")

    def _decode_views(self, views: dict[str, Any], progress: ProgressCallback, run: RunLog) -> dict:
        """Each view through the same checks as ``image``, named ``views.<view>``;
        progress counts the pictures (the front is the first) and timings
        report ``decode.<view>``."""
        from .views import view_field

        decoded = {}
        total = len(views) + 1
        for index, (view, value) in enumerate(views.items(), start=1):
            progress("decode", index / total, f"Decoding view {view} ({index + 1}/{total})")
            with run.timed(f"decode.{view}"):
                decoded[view] = self._decode(value, view_field(view))
        return decoded

    def _remove_view_backgrounds(
        self, views: dict, options: GenerationOptions, warnings: list[str], progress: ProgressCallback, run: RunLog
    ) -> dict:
        """Background removal on every view, as on ``image``. A view's warning
        is prefixed with its name unless the front already said the same."""
        if not views or not options.remove_background:
            return views
        total = len(views) + 1
        said = set(warnings)
        cut = {}
        for index, (view, rgba) in enumerate(views.items(), start=1):
            progress("background", index / total, f"Removing background of view {view} ({index + 1}/{total})")
            with run.timed(f"background.{view}"):
                result = self.background.remove(rgba)
            warnings.extend(f"View {view}: {w}" for w in result.warnings if w not in said)
            cut[view] = result.image
        return cut

    def _remove_background(self, rgba, options: GenerationOptions, warnings: list[str]):
        if not options.remove_background:
            return rgba
        result = self.background.remove(rgba, seed=options.seed)
        warnings.extend(result.warnings)
        return result.image

    def _paint(self, mesh, rgba, options: GenerationOptions, progress, warnings: list[str], timings: dict):
        """Texture a face-reduced mesh with Hunyuan3D-Paint. Missing texture
        weights do not fail the job: the untextured model comes back with a
        warning saying what is missing and how to fetch it. Returns the mesh
        and the rasterizer that baked it (None when nothing was painted)."""
        from .weights import DELIGHT_SUBFOLDER, TEXTURE_DOWNLOAD_COMMAND, texture_weights_present

        if not texture_weights_present(options.paint_model):
            warnings.append(
                f"generate_texture was requested but the texture weights ({options.paint_model}, "
                f"{DELIGHT_SUBFOLDER}) are not installed; returned the untextured model. "
                f"Fetch them with `{TEXTURE_DOWNLOAD_COMMAND}`."
            )
            return mesh, None
        try:
            result = self.texture_backend(options.paint_model).paint(
                mesh, rgba, options.texture_size, progress, profile=options.profile
            )
        except Exception as exc:  # noqa: BLE001 - a texture failure must not throw the finished shape away
            self._texture_failed(exc, warnings)
            return mesh, None
        warnings.extend(result.warnings)
        timings.update(result.timings)
        return result.mesh, result.rasterizer

    def _profile_both(self, backend: ModelBackend, options: GenerationOptions, timings: dict) -> None:
        """On CUDA, put the request's profile over the shape model and the
        texture models in one mmgp call before any model runs: a textured
        request brings the texture models in (loading them the first time), a
        plain one keeps those already loaded (mmgp leaves them on the host)
        and never loads them. A profile switch reloads both; the texture
        side's reload is reported as ``texture.load`` even when the request
        paints nothing."""
        from .memory import PROFILES
        from .weights import texture_weights_present

        texture = None
        if options.generate_texture and texture_weights_present(options.paint_model):
            texture = self.texture_backend(options.paint_model)
        PROFILES.use(options.profile, shape=backend, texture=texture)
        member = PROFILES.texture
        if not options.generate_texture and member is not None and member._load_s:
            timings["load"] = member.take_load_s()


def _under_mmgp(backend: ShapeBackend) -> TypeGuard[ModelBackend]:
    """Whether ``backend`` runs under mmgp memory profiles (Hunyuan3D on CUDA).
    The class check also admits stand-ins that only implement ``generate``."""
    return isinstance(backend, ModelBackend) and backend.under_mmgp


def _per_view(run: RunLog, stage: str, views: dict):
    """Time the front as ``<stage>.front`` when the request has views (their
    own steps are ``<stage>.<view>``), so timings report every view."""
    return run.timed(f"{stage}.front") if views else contextlib.nullcontext()
