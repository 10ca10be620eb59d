"""One request's seed applied to every random source the pipeline touches.

The same image and options must give the same GLB, byte for byte. OpenCV's
RNG (GrabCut's colour models, k-means) is per thread and takes a C int, so
the background cut-out seeds it itself, right before use, with
:func:`opencv_seed`; this module seeds the process-wide generators the
backends may draw from (Python's ``random``, NumPy's legacy global, torch's
CPU and CUDA generators when torch is already loaded; it is never imported
just for this).
"""

from __future__ import annotations

import random
import sys

import numpy as np


def opencv_seed(seed: int) -> int:
    """``seed`` (0 to 2**32-1) folded into OpenCV's signed 32-bit range."""
    return int(seed) % 2147483647


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(int(seed) % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(int(seed))  # also seeds every CUDA device
