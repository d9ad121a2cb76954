# Shared set-up of the GPU scripts (sourced, not run): repo root, $OUT, quiet unbuffered Python,
# an image cache outside the carried tree. Sourced by gpu_check.sh and gpu_eval_check.sh.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 EDGEDISTAL_NO_PROGRESS=1
export EDGEDISTAL_CACHE=${EDGEDISTAL_CACHE:-/tmp/edgedistal-cache}
PY=${PY:-python3}
