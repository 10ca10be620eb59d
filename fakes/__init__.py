"""Stand-ins that tests and benches share: tiny random-weight checkpoints in
the real on-disk layouts (Hunyuan3D-DiT and its VAE, Hunyuan3D-Paint and
delight, U2-Net ONNX), a fake RunPod platform, an mmgp recorder, synthetic
images with ground truth and loopback server helpers. Nothing here ships in
the image.

Thread counts are pinned on import, before anything imports numba or
onnxruntime: on a shared 2-core machine a busy-waiting OpenMP or numba pool
made tests 5-10x slower. ``tests/conftest.py`` applies the same values over
whatever the environment had.
"""

import os

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}
for _name, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_name, _value)
