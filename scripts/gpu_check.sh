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
. "$(dirname "$0")/gpu_env.sh"
SMOKE_FLAG=""
TRAIN_SMOKE=""
TRAIN_DEVICE=cuda
if [ "${SMOKE:-0}" = 1 ]; then
  SMOKE_FLAG="--smoke"
  TRAIN_DEVICE=cpu
  TRAIN_SMOKE="--limit 600 --steps 5 --image-size 32 --batch-size 32 --threads 1"
fi

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

# STEPS picks a subset (default fits one 10-min device call: ~8 min). Carry `.gpu` (packed crops).
STEPS=${STEPS:-"scorer selection bench train eval"}
for s in $STEPS; do
  case $s in
    # issue 4: scorer with torch-CUDA fp32/fp16, with/without CUDA graphs, vs model-only (~25 s)
    scorer)    step scorer 120 $PY scripts/gpu_scorer_check.py --out "$OUT/scorer.json" $SMOKE_FLAG ;;
    # issue 5: k-center / BADGE / hybrid on 1M x 512, 10k picks (target <= 30 s for k-center)
    selection) step selection 150 $PY scripts/gpu_selection_check.py --out "$OUT/selection.json" $SMOKE_FLAG ;;
    # issue 7: torch-CUDA fp32/fp16 bench rows on the card (~35 s)
    bench)     step bench 120 $PY scripts/gpu_bench_check.py --out "$OUT/bench_gpu" $SMOKE_FLAG ;;
    # issue 6: DFDC training recipe on the GPU (ResNet-18 128 px bf16, packed crops)
    train)     step train 200 $PY benchmarks/train_dfdc.py --device "$TRAIN_DEVICE" --pack .gpu/dfdc_pack.npz --results "$OUT" $TRAIN_SMOKE ;;
    # issue 8: distil + distilled/random/full evaluation + report (TIME_BUDGET seconds of training)
    eval)      step eval $(( ${TIME_BUDGET:-240} + 45 )) env TIME_BUDGET="${TIME_BUDGET:-240}" LIMIT="$(( ${TIME_BUDGET:-240} + 40 ))" bash scripts/gpu_eval_check.sh ;;
    # issue 24: SimCLR embedder on the packed crops → distill in its space → evaluate with --init (≤ 9 min;
    # not in the default STEPS: run it alone, STEPS=embedder)
    embedder)  step embedder 540 bash scripts/gpu_embedder_check.sh ;;
    # issue 15: demo → engines → score --engine-dir → bench --engine-dir → predict (not in the default STEPS)
    edge)      step edge 300 bash scripts/gpu_edge_check.sh ;;
    *) echo "unknown step $s (known: scorer selection bench train eval edge embedder)" ;;
  esac
done
echo "--- summary"; cat "$summary"
