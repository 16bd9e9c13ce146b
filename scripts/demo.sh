#!/usr/bin/env bash
# The whole msfkit job end to end on data that needs no download (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
OUT=${MSFKIT_DEMO_OUT:-demo_out}
mkdir -p "$OUT"

echo "== 1. a small encoder, saved as a model folder and loaded back with msfkit.load"
python - "$OUT" <<'PY'
import sys
from pathlib import Path

import torch

import msfkit
from msfkit.models import Encoder, EncoderConfig

out = Path(sys.argv[1])
torch.manual_seed(0)
Encoder(EncoderConfig(arch="resnet18", image_size=112, resize=128)).save_pretrained(out / "model")
encoder = msfkit.load(str(out / "model"))
print(f"loaded {encoder.config.arch} from {out / 'model'} (fingerprint {encoder.fingerprint})")

from PIL import Image

photos = sorted(Path("data/photos").glob("*.jpg"))
vectors = encoder.embed([Image.open(p) for p in photos])
sims = vectors @ vectors.T
for i in range(0, len(photos), 7):
    order = sims[i].argsort()[::-1][1:4]
    nbrs = ", ".join(f"{photos[j].stem} ({sims[i, j]:.2f})" for j in order)
    print(f"{photos[i].stem:>14} -> {nbrs}")
PY
msfkit models info "$OUT/model"
