"""ONNX and TorchScript exports against the PyTorch model: agreement on real photos, and speed.

    .venv/bin/python bench/export.py                 # ResNet50 at 224 px, CPU, 16 photos, 3 rounds

The model has random weights (seed 0; speed and agreement do not depend on training). Each round
runs the three in turn on the same preprocessed batch; the table gives the median images/s, the
spread (min-max) and the ratio to PyTorch eager, and the largest absolute difference of the
exported embeddings from PyTorch's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from msfkit.models import Encoder, EncoderConfig  # noqa: E402
from msfkit.models.deploy import export_deployable  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime as ort

    torch.manual_seed(0)
    size = args.image_size
    encoder = Encoder(EncoderConfig(arch=args.arch, image_size=size, resize=round(size * 256 / 224))).eval()
    photos = sorted((REPO / "data" / "photos").glob("*.jpg"))[: args.images]
    pixels = torch.stack([encoder.preprocess(Image.open(p)) for p in photos])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, _ = export_deployable(encoder, Path(tmp) / "e.onnx")
        ts_path, _ = export_deployable(encoder, Path(tmp) / "e.pt")
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        graph = torch.jit.load(str(ts_path))
        runners = {
            "pytorch eager": lambda: encoder.embed(pixels, batch_size=len(pixels)),
            "onnxruntime": lambda: session.run(None, {"pixels": pixels.numpy()})[0],
            "torchscript": lambda: graph(pixels).numpy(),
        }
        with torch.no_grad():
            outputs = {name: run() for name, run in runners.items()}  # also the warm-up
            times: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(args.rounds):
                for name, run in runners.items():
                    t = time.perf_counter()
                    run()
                    times[name].append(len(pixels) / (time.perf_counter() - t))
    base = statistics.median(times["pytorch eager"])
    threads = torch.get_num_threads()
    print(f"{args.arch} at {size} px, {len(pixels)} photos, CPU, {threads} threads, {args.rounds} rounds")
    print(f"{'':16}{'images/s':>10}{'(min-max)':>16}{'x eager':>9}{'max |diff|':>12}")
    for name, rates in times.items():
        diff = float(np.abs(outputs[name] - outputs["pytorch eager"]).max())
        spread = f"{min(rates):.1f}-{max(rates):.1f}"
        rate = statistics.median(rates)
        print(f"{name:16}{rate:>10.1f}{spread:>16}{rate / base:>9.2f}{diff:>12.2e}")


if __name__ == "__main__":
    main()
