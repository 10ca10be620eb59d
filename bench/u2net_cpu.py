"""Benchmark: what rembg's U2-Net costs on the CPU, at the worker's input size.

onnxruntime from PyPI has CPU providers only, so on a GPU host background
removal runs on the CPU. No weights can be downloaded here, so this builds the
full-size U2-Net (Qin et al. 2020: RSU-7..RSU-4F encoder and decoder, six side
outputs, 44 M parameters, as rembg's 176 MB ``u2net.onnx``) with random
weights, exports it at rembg's 1 x 3 x 320 x 320 input, and times it. Random
weights cost exactly what trained ones do: the graph and the shapes are the same.

It times onnxruntime's session alone, then ``rembg.remove`` through rembg's
own ``u2net_custom`` session on a real photo (skimage's astronaut, scaled to
1024 px as a panel frame would be after decoding), at 1, 2 and all threads.

    python -m bench.u2net_cpu [--runs 5] [--threads 1 2 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_seconds

SIZE = 320  # rembg's U2netSession input


class ConvBnRelu(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _up_to(x, ref):
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of ``height`` levels: pooled encoder, a dilated bottom, a decoder, plus the input conv."""

    def __init__(self, height: int, cin: int, mid: int, cout: int):
        super().__init__()
        self.inp = ConvBnRelu(cin, cout)
        self.enc = nn.ModuleList([ConvBnRelu(cout, mid)] + [ConvBnRelu(mid, mid) for _ in range(height - 2)])
        self.bottom = ConvBnRelu(mid, mid, dilation=2)
        self.dec = nn.ModuleList([ConvBnRelu(2 * mid, mid) for _ in range(height - 2)] + [ConvBnRelu(2 * mid, cout)])

    def forward(self, x):
        hin = self.inp(x)
        skips, h = [], hin
        for i, conv in enumerate(self.enc):
            if i:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for i, (conv, skip) in enumerate(zip(self.dec, reversed(skips), strict=False)):
            # The dilated bottom keeps the deepest level's size; every later level is twice as large.
            h = conv(torch.cat([_up_to(h, skip) if i else h, skip], 1))
        return h + hin


class RSU4F(nn.Module):
    """The bottom stages' RSU: dilations 1, 2, 4, 8 instead of pooling."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.inp = ConvBnRelu(cin, cout)
        self.enc = nn.ModuleList([ConvBnRelu(cout, mid, 1), ConvBnRelu(mid, mid, 2), ConvBnRelu(mid, mid, 4)])
        self.bottom = ConvBnRelu(mid, mid, 8)
        self.dec = nn.ModuleList(
            [ConvBnRelu(2 * mid, mid, 4), ConvBnRelu(2 * mid, mid, 2), ConvBnRelu(2 * mid, cout, 1)]
        )

    def forward(self, x):
        hin = self.inp(x)
        skips, h = [], hin
        for conv in self.enc:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for conv, skip in zip(self.dec, reversed(skips), strict=False):
            h = conv(torch.cat([h, skip], 1))
        return h + hin


class U2Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleList(
            [
                RSU(7, 3, 32, 64),
                RSU(6, 64, 32, 128),
                RSU(5, 128, 64, 256),
                RSU(4, 256, 128, 512),
                RSU4F(512, 256, 512),
                RSU4F(512, 256, 512),
            ]
        )
        self.decoder = nn.ModuleList(
            [
                RSU4F(1024, 256, 512),
                RSU(4, 1024, 128, 256),
                RSU(5, 512, 64, 128),
                RSU(6, 256, 32, 64),
                RSU(7, 128, 16, 64),
            ]
        )
        self.side = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in (64, 64, 128, 256, 512, 512)])
        self.fuse = nn.Conv2d(6, 1, 1)

    def forward(self, x):
        feats, h = [], x
        for i, stage in enumerate(self.encoder):
            if i:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = stage(h)
            feats.append(h)
        outs = [feats[-1]]
        h = feats[-1]
        for stage, skip in zip(self.decoder, reversed(feats[:-1]), strict=False):
            h = stage(torch.cat([_up_to(h, skip), skip], 1))
            outs.append(h)
        # Side outputs from the finest decoder stage to the bottom encoder stage.
        sides = [_up_to(conv(o), x) for conv, o in zip(self.side, reversed(outs), strict=False)]
        fused = self.fuse(torch.cat(sides, 1))
        return tuple(torch.sigmoid(s) for s in [fused] + sides)


def export_random_u2net(path: Path, seed: int = 0) -> int:
    """Write a random-weight full-size U2-Net to ``path``; return its parameter count."""
    torch.manual_seed(seed)
    model = U2Net().eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            input_names=["input.1"],
            output_names=[f"d{i}" for i in range(7)],
            opset_version=17,
            dynamo=False,
        )
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 0], help="intra-op threads; 0 = all cores")
    args = parser.parse_args(argv)
    import onnxruntime as ort
    import rembg
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS)
    results = {}
    with tempfile.TemporaryDirectory(prefix="u2net-") as tmp:
        os.environ["U2NET_HOME"] = tmp  # rembg opens custom models only from inside its home
        path = Path(tmp) / "u2net_random.onnx"
        params = export_random_u2net(path)
        print(
            f"U2-Net: {params / 1e6:.1f} M parameters, ONNX {path.stat().st_size / 1e6:.0f} MB, "
            f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}, {os.cpu_count()} cores"
        )
        feed = {"input.1": np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)}
        for threads in args.threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            net_s = median_seconds(lambda session=session: session.run(None, feed), args.runs, warm_up=True)
            os.environ["OMP_NUM_THREADS"] = str(threads or os.cpu_count())  # rembg sizes its session from this
            rembg_session = rembg.new_session("u2net_custom", model_path=str(path))
            remove_s = median_seconds(lambda s=rembg_session: rembg.remove(photo, session=s), args.runs, warm_up=True)
            results[threads] = {"session_run_s": net_s, "rembg_remove_s": remove_s}
            print(
                f"threads={threads or 'all'}: session.run {net_s:.3f} s, rembg.remove (1024 px photo) "
                f"{remove_s:.3f} s (medians of {args.runs})",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()
