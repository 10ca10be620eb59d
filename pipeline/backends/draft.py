"""Draft backend: the subject's silhouette inflated into a closed, textured mesh.

No weights, no GPU, well under a second (``bench/draft.py``; the README's
"Performance" section has the figures): it gives every face of the service a
shape to show while (or instead of) running Hunyuan3D. The geometry is
:mod:`pipeline.mesh.inflate`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from PIL import Image

from ..mesh.inflate import inflate_silhouette
from ..options import GenerationOptions
from ..progress import ProgressCallback
from ..types import ShapeOutput


class DraftBackend:
    """Instant CPU backend: silhouette inflation, textured by projection."""

    name = "draft"

    def load(self) -> None:
        """Nothing to load: the draft backend has no model."""

    def generate(
        self,
        image: Image.Image,
        options: GenerationOptions,
        progress: ProgressCallback,
        views: Mapping[str, Image.Image] | None = None,
    ) -> ShapeOutput:
        """``views`` is refused before a backend runs (:func:`pipeline.views.require_multiview`)."""
        start = time.perf_counter()
        progress("shape", 0.0, "Inflating the silhouette")
        rgba = np.asarray(image.convert("RGBA"))
        mesh = inflate_silhouette(rgba, options.max_faces, textured=options.generate_texture)
        elapsed = time.perf_counter() - start
        progress("shape", 1.0, f"Draft mesh: {len(mesh.faces)} faces")
        return ShapeOutput(
            mesh=mesh,
            model="draft",
            textured=options.generate_texture,
            profile=None,
            timings={"shape": elapsed},
        )
