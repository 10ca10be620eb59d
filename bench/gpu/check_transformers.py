"""Does model loading survive mmgp's safetensors patch with the transformers installed here?

mmgp replaces ``safetensors.safe_open`` (and transformers' and accelerate's copies of it)
when ``mmgp.offload`` is imported. On CUDA the first shape request imports it, so every
later load (another profile's reload, the texture models) runs after the patch. This
imports mmgp first, writes tiny random shape and texture checkpoints, and loads them the
way the backends do. bench/gpu/simulate.sh runs it with the GPU machine's transformers
and with the carried one, which is how the kit's choice was made (see wheels.txt).

    python bench/gpu/check_transformers.py      # exit 0: loads; exit 1: fails (one line says why)
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    import mmgp.offload  # noqa: F401 - first, as on the GPU machine
    import torch

    version = importlib.metadata.version("transformers")
    with tempfile.TemporaryDirectory(prefix="check-transformers-") as root:
        os.environ["HY3DGEN_MODELS"] = root
        from pipeline.backends.hunyuan import load_pipeline
        from pipeline.texture import backend as tb
        from pipeline.weights import resolve_model
        from tests.fixtures.tiny_hunyuan import write_tiny_shape_model
        from tests.fixtures.tiny_paint import REPO_ID, write_tiny_texture_models

        write_tiny_shape_model(Path(root))
        write_tiny_texture_models(Path(root), ("hunyuan3d-paint-v2-0",))
        repo = Path(root) / REPO_ID
        try:
            load_pipeline(resolve_model("hunyuan3d-2"), torch.float32)
            tb.load_paint(repo / "hunyuan3d-paint-v2-0", "cpu", torch.float32)
            tb.load_delight(repo / "hunyuan3d-delight-v2-0", "cpu", torch.float32)
        except Exception as exc:  # noqa: BLE001 - the outcome is the answer
            print(f"transformers {version} after mmgp: fails: {type(exc).__name__}: {exc}")
            return 1
    print(f"transformers {version} after mmgp: shape and texture checkpoints load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
