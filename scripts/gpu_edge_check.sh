#!/usr/bin/env bash
# Issue 15: the edge chain on the machine it runs on — quick demo → engines → score → bench →
# predict. With TensorRT + a GPU, `engines` builds real engines and every later command uses
# them; without, the ONNX Runtime fallback models (same names, same sidecars). Results in $OUT.
#   usage: OUT=/path bash scripts/gpu_edge_check.sh     (run by gpu_check.sh STEPS=edge)
set -eu
. "$(dirname "$0")/gpu_env.sh"
ED="$PY -m edgedistal.cli"
D="$OUT/edge_demo"
$ED demo --quick --out "$D"
$ED engines --export-dir "$D/export_edge" --out "$D/engines" --demo-if-missing --demo-checkpoint "$D/detector.pt"
for p in fp16 int8; do
  $ED score --manifest "$D/manifest.parquet" --engine-dir "$D/engines" --precision $p --out "$D/scores_$p"
done
$ED bench --demo --demo-dir "$D" --engine-dir "$D/engines" --iters 20 --out "$OUT/bench_edge"
$ED predict "$D/data/fake" --engine-dir "$D/engines" --precision int8 --detector none --out "$OUT/predict_edge.json" | tail -n 5
