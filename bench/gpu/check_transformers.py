"""Does model loading survive mmgp's safetensors patch with the transformers installed here?

mmgp replaces ``safetensors.safe_open`` (and transformers' and accelerate's copies of it)
when ``mmgp.offload`` is imported. On CUDA the first shape request imports it, so every
later load (another profile's reload, the texture models) runs after the patch. This
imports mmgp first, writes tiny random shape and texture checkpoints and loads them two
ways: with the plain loaders under mmgp's patch ("raw"), and through the backends'
``load()``, which puts safetensors' own functions back for the load
(``pipeline.memory.unpatched_safetensors``). bench/gpu/simulate.sh runs it with the GPU
machine's transformers; the kit's choice is recorded in wheels.txt and the README.

    python bench/gpu/check_transformers.py      # exit 0: the backends load; exit 1: they fail
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _attempt(load) -> str:
    try:
        load()
    except Exception as exc:  # noqa: BLE001 - the outcome is the answer
        return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "loads"


def main() -> int:
    import mmgp.offload  # noqa: F401 - first, as on the GPU machine
    import torch

    version = importlib.metadata.version("transformers")
    with tempfile.TemporaryDirectory(prefix="check-transformers-") as root:
        os.environ["HY3DGEN_MODELS"] = root
        from fakes.tiny_hunyuan import write_tiny_shape_model
        from fakes.tiny_paint import REPO_ID, write_tiny_texture_models
        from pipeline.backends.hunyuan import HunyuanShapeBackend, load_pipeline
        from pipeline.texture import loading
        from pipeline.texture.backend import TextureBackend
        from pipeline.weights import resolve_model

        write_tiny_shape_model(Path(root))
        write_tiny_texture_models(Path(root), ("hunyuan3d-paint-v2-0",))
        repo = Path(root) / REPO_ID

        def raw() -> None:
            load_pipeline(resolve_model("hunyuan3d-2"), torch.float32)
            loading.load_paint(repo / "hunyuan3d-paint-v2-0", "cpu", torch.float32)
            loading.load_delight(repo / "hunyuan3d-delight-v2-0", "cpu", torch.float32)

        def backends() -> None:
            HunyuanShapeBackend("hunyuan3d-2", device="cpu").load()
            TextureBackend(None, "hunyuan3d-paint-v2-0", device="cpu").load()

        raw_result, backend_result = _attempt(raw), _attempt(backends)
    print(f"transformers {version} after mmgp: raw loaders {raw_result}; the backends' load() {backend_result}")
    return 0 if backend_result == "loads" else 1


if __name__ == "__main__":
    sys.exit(main())
