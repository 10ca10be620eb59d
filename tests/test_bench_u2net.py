"""bench/u2net_cpu.py's U2-Net is the full-size architecture rembg's u2net.onnx has."""

from __future__ import annotations

import torch

from bench.u2net_cpu import U2Net


def test_full_size_u2net_shape_and_outputs():
    model = U2Net().eval()
    # The published U2-Net has 44.0 M parameters (176.3 MB in float32).
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 44.0) < 0.1
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 64, 64))
    assert len(outputs) == 7  # the fused mask first, then six side outputs, as rembg reads them
    assert all(o.shape == (1, 1, 64, 64) and 0 <= o.min() and o.max() <= 1 for o in outputs)
