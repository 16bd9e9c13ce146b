#!/usr/bin/env bash
# MSF training throughput on one GPU: ResNet50, batch 256, 224 px, bf16, channels_last, bank 1,024,000.
#
#     bash bench/gpu_train.sh [WORK_DIR]        # ~5 minutes on one H100; needs no network
#
# 1. the step alone on batches already on the GPU: MSF (k=5, bank 1,024,000) vs BYOL-asym
#    (the same networks without the bank), eager and with torch.compile;
# 2. end to end through `msfkit train` (data loading, two augmented views, logging) on a folder
#    of 12,800 generated 256 px JPEGs, images/s read from the run's metrics.csv.
# Goal: >= 2,000 images/s on one H100 (the reference code: ~130 images/s per RTX 6000, fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-/tmp/msfkit-gpu-train}
mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

STEP=(bench/train_step.py --device cuda --arch resnet50 --stem imagenet --image-size 224
      --batch-size 256 --bank-sizes 1024000 --precision bf16 --steps 20 --rounds 3)
echo "== step only, eager"
"$PY" "${STEP[@]}"
echo "== step only, torch.compile"
"$PY" "${STEP[@]}" --compile

echo "== end to end: msfkit train on generated JPEGs"
if [ ! -f "$WORK/images/.done" ]; then
    "$PY" - "$WORK/images" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root = Path(sys.argv[1])
rng = np.random.default_rng(0)
for i in range(12_800):  # smooth random colour fields, JPEG-compressed like photos
    d = root / f"{i // 1000:02d}"
    d.mkdir(parents=True, exist_ok=True)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(d / f"{i:05d}.jpg", quality=90)
(root / ".done").touch()
PYEOF
fi
rm -rf "$WORK/run"
WORKERS=$(( $(nproc) - 2 ))
"$PY" -m msfkit.cli train data="$WORK/images" out="$WORK/run" arch=resnet50 stem=imagenet image_size=224 \
    batch_size=256 bank_size=1024000 k=5 precision=bf16 channels_last=true workers="$WORKERS" \
    epochs=4 max_steps=200 knn_every=0 log_every=10 save_every=100 -q
"$PY" - "$WORK/run/metrics.csv" <<'PYEOF'
import csv
import sys

rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["images_per_s"]]
steady = [float(r["images_per_s"]) for r in rows[2:]]  # skip the first windows (start-up, cuDNN autotune)
print(f"msfkit train end to end: {sum(steady) / len(steady):.0f} images/s over steps {rows[2]['step']}-{rows[-1]['step']}")
PYEOF
