#!/usr/bin/env bash
# Issue 24 screening on DFDC dev: selection in the embedder's space vs the three random baselines,
# a logistic head on the frozen embeddings, 20 paired seeds, budgets 1-20 %. Choose on val, then
# one test run. Needs the working folder of benchmarks/pretrain_dfdc.py (manifest.parquet +
# scores/ with the embeddings of every row). Minutes on 2 CPU cores; re-running reuses the subsets.
#
#   bash benchmarks/screen_embedder_dfdc.sh runs/pretrain_dfdc runs/screen_dfdc
set -euo pipefail
W=${1:-runs/pretrain_dfdc}
OUT=${2:-runs/screen_dfdc}
PY=${PY:-.venv/bin/python}
M="$W/manifest.parquet"
S="$W/scores"
mkdir -p "$OUT/sel"
ARMS=()
for st in balanced+typiclust balanced+probcover balanced+kcenter mundig mundig_div; do
  name=${st//+/_}
  d="$OUT/sel/$name"
  if [ ! -f "$d/distilled.parquet" ]; then
    rm -rf "$d"
    "$PY" -m edgedistal.cli distill --manifest "$M" --scores "$S" --strategy "$st" --budget 0.2 \
      --seed-size 0.005 --device cpu -o "$d" > "$OUT/sel/$name.log" 2>&1
  fi
  ARMS+=(--distilled "$name=$d")
done
for split in val test; do
  "$PY" -m edgedistal.cli evaluate --protocol screen --split "$split" --manifest "$M" --features "$S" \
    "${ARMS[@]}" --seeds 20 -o "$OUT/screen_$split"
done
