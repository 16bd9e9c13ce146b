#!/usr/bin/env bash
# Time `msfkit embed` on a GPU machine: the same benchmark as bench/embed.py (naive loop, model-only
# ceiling, msfkit fp32/bf16, fidelity), on CUDA, plus nvJPEG decoding on the GPU as an option.
#
#   bash bench/gpu_embed.sh                     # 2000 photos at 1-12 MP, ResNet50 at 224
#   GPU_DECODE=1 IMAGES=5000 MIN_MP=0.1 MAX_MP=0.5 bash bench/gpu_embed.sh   # ImageNet-sized files
#
# Set-up: uses .venv when its torch sees a GPU; otherwise runs scripts/setup.sh (needs the network
# once) and checks again. PYTHON=/path/to/python skips both and uses that interpreter as it is.
# The goal on one H100: >= 3,000 images/s from JPEG files. The photos are written once into
# data/bench/ (about 3 GB for 2000 photos at 1-12 MP).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=${IMAGES:-2000}
MIN_MP=${MIN_MP:-1}
MAX_MP=${MAX_MP:-12}
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-}        # empty: msfkit's default (cores, at most 16)

if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  PY=.venv/bin/python
  if ! { [ -x "$PY" ] && "$PY" -c "import torch, msfkit; assert torch.cuda.is_available()" 2>/dev/null; }; then
    bash scripts/setup.sh
  fi
fi
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "torch sees no GPU: install a CUDA build of torch"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {torch.get_num_threads()} CPU threads")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nproc

args=(--device cuda --images "$IMAGES" --min-mp "$MIN_MP" --max-mp "$MAX_MP" --batch-size "$BATCH")
[ -n "$WORKERS" ] && args+=(--workers "$WORKERS")
[ "${GPU_DECODE:-0}" = 1 ] && args+=(--gpu-decode)
echo "+ $PY bench/embed.py ${args[*]}"
"$PY" bench/embed.py "${args[@]}"
