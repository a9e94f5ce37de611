#!/usr/bin/env bash
# The GPU check for a lent H100/H200 machine (see bench/gpu_check.py for the steps); at most ~520 s of steps (--deadline).
# That machine has Python 3.12 and its own torch but no ultralytics or optuna and no network: the wheels
# travel in .whl/ (README "GPU check" says how to fetch them) and install into /tmp/site.
# Results: gpu_check.md and gpu_check.json under $OUT when set, else bench/results/gpu_check/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ " $* " != *" --rehearse-on-cpu "* ]]; then
  if ! $PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU is visible to torch here; run it on a GPU machine (or pass --rehearse-on-cpu)" >&2
    exit 2
  fi
fi
if ! $PY -c "import ultralytics, optuna" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 YOLO_OFFLINE=1
export AUTOTUNE_CACHE=${AUTOTUNE_CACHE:-${TMPDIR:-/tmp}/autotune-gpu-check}
exec $PY bench/gpu_check.py "$@"
