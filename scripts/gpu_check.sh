#!/usr/bin/env bash
# Every GPU check of edgedistal in ONE call on a lent GPU (H100/H200, torch CUDA, no TensorRT).
# Results land under $OUT (JSON + logs). Each step has its own time limit so one slow step cannot
# eat the others; a failed step is reported and the rest still run.
#
#   usage: OUT=/path bash scripts/gpu_check.sh            # on the GPU machine
#          SMOKE=1 OUT=/tmp/gpu_smoke bash scripts/gpu_check.sh   # tiny sizes, CPU ok (dry run here)
#
# Data: the DFDC dev crops travel packed in .gpu/dfdc_pack.* (git-ignored, built here with
# `python scripts/pack_dfdc.py`), because ../shared does not travel to the device machine.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 EDGEDISTAL_NO_PROGRESS=1
export EDGEDISTAL_CACHE=${EDGEDISTAL_CACHE:-/tmp/edgedistal-cache}
PY=${PY:-python3}
SMOKE_FLAG=""
[ "${SMOKE:-0}" = 1 ] && SMOKE_FLAG="--smoke"

summary="$OUT/summary.txt"
: > "$summary"
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%-12s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
  tail -n 4 "$OUT/$name.log"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# Steps are appended below as the stages land (scorer, selection, bench, training, evaluation).
