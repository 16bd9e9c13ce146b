#!/usr/bin/env bash
# msfkit end to end on data that needs no download: train a small MSF encoder on Fashion-MNIST,
# embed images, index them, search, find duplicates, and evaluate with the paper's protocols.
# 3.5-5.5 minutes on a 2-core CPU (3 of them training). Outputs go to demo_out/ (MSFKIT_DEMO_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
OUT=${MSFKIT_DEMO_OUT:-demo_out}
rm -rf "$OUT"
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. train: MSF (weak/strong views, k=5) on Fashion-MNIST, ResNet18 at 32 px, time-boxed to 3 minutes"
msfkit train --preset demo out="$OUT/run"
# the k-NN monitor scored the random-init network at step 0 on the same images: the baseline
python -c "import json, sys; k = json.load(open(sys.argv[1]))['provenance']['knn_monitor']; print(f\"k-NN ({k['k']}-NN, msf protocol, {k['train_images']} train / {k['val_images']} test images): this model {k['top1']:.2f}%, the same network at random init {k['random_init_top1']:.2f}%\")" "$OUT/run/model/config.json"
msfkit models info "$OUT/run/model"

step "2. a labelled image folder: 100 train + 100 test images per class, as PNG files"
msfkit datasets export fashion-mnist "$OUT/fashion-mnist" --per-class 100

step "3. embed the train folder (class sub-folders become labels); a rerun skips what is done"
msfkit embed "$OUT/fashion-mnist/train" -m "$OUT/run/model" -o "$OUT/store"
msfkit embed "$OUT/fashion-mnist/train" -m "$OUT/run/model" -o "$OUT/store"
python -c "import msfkit, sys; s = msfkit.open_store(sys.argv[1]); print(len(s), 'vectors of', s.dim, 'dims'); print(s.meta.head(3).to_string())" "$OUT/store"

step "4. index the store (auto: exact search at this size) and search it with three test images"
msfkit index "$OUT/store" -o "$OUT/index"
queries=()
for class in sneaker bag trouser; do
  first=("$OUT/fashion-mnist/test/$class"/*.png)
  queries+=("${first[0]}")
done
msfkit search "$OUT/index" "${queries[@]}" -k 5 --grid "$OUT/search.png" --html "$OUT/search.html"
echo "contact sheet: $OUT/search.png   gallery: $OUT/search.html"

step "5. near-duplicates among 28 real photos plus re-encoded copies of two and a 2%-cropped copy of one"
mkdir -p "$OUT/photos"
cp data/photos/*.jpg "$OUT/photos/"
python - "$OUT/photos" <<'PY'
import sys
from pathlib import Path

from PIL import Image

d = Path(sys.argv[1])
Image.open(d / "puppy.jpg").save(d / "puppy-copy.jpg", quality=75)
Image.open(d / "guitar.jpg").save(d / "guitar-copy.jpg", quality=60)
sunrise = Image.open(d / "sunrise.jpg")
w, h = sunrise.size
sunrise.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(d / "sunrise-cropped.jpg", quality=90)
PY
msfkit embed "$OUT/photos" -m "$OUT/run/model" -o "$OUT/photo-store" -q --draft
msfkit index "$OUT/photo-store" -o "$OUT/photo-index"
# The threshold is measured, not guessed: copies of the photos against their nearest distinct ones.
msfkit dedup "$OUT/photo-index" --threshold auto --html "$OUT/duplicates.html"

step "6. evaluate: k-NN with the paper's protocol (msf) and DINO's, then a fast linear probe"
msfkit eval -m "$OUT/run/model" --train "$OUT/fashion-mnist/train" --val "$OUT/fashion-mnist/test" \
  --knn --protocol msf --protocol dino --features-dir "$OUT/eval-features"
msfkit eval -m "$OUT/run/model" --train "$OUT/fashion-mnist/train" --val "$OUT/fashion-mnist/test" \
  --linear --preset fast --head-out "$OUT/linear-head" --features-dir "$OUT/eval-features" \
  --plot "$OUT/eval-plots" --card "$OUT/run/model"

step "done: model folder $OUT/run/model (its README.md now holds the results), index $OUT/index"
