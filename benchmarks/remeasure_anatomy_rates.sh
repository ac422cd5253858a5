#!/bin/bash
# Re-measure every anatomy "ok" rate the README, the model cards and docs quote
# (docs/anatomy_validation.md, last table): the same generate commands and seeds as the
# quoted evaluations, then `medicraft anatomy-check`. About 75 min on 2 CPU cores.
# Paired differences (the cards' intervals): bootstrap the ok-difference over images with the
# same index (the last field of image_id) in two sets' anatomy.csv.
# Usage: bash benchmarks/remeasure_anatomy_rates.sh [OUT_DIR]   (default: ../runs/remeasure)
# Each step is skipped when its anatomy_summary.json exists (rerun = resume).
set -e
R=$(realpath -m "${1:-$(dirname "$0")/../../runs/remeasure}")  # outside the repository
cd "$(dirname "$0")/.."
M=.venv/bin/medicraft
export OMP_NUM_THREADS=2
check() {  # source out [split]
  if [ ! -f "$2/anatomy_summary.json" ]; then
    $M anatomy-check "$1" --out "$2" ${3:+--split $3}
  fi
}
gen() {  # model out steps per_class
  if [ ! -f "$2/README.md" ] || ! ls "$2"/data/*.parquet >/dev/null 2>&1; then
    $M generate --model "$1" --out "$2" --per-class "$4" --seed 0 ${3:+--steps $3}
  fi
}
date
# 1. 64x128 benchmark-v1: real test + demo 600 + demo-fast 4 and 2 steps
[ -f $R/bench64/README.md ] || $M phantom --preset benchmark-v1 --size 64x128 --out $R/bench64
check $R/bench64 $R/check-bench64-test test
gen demo $R/demo-150pc "" 150; check $R/demo-150pc $R/check-demo-150pc
gen demo-fast $R/fast4-150pc 4 150; check $R/fast4-150pc $R/check-fast4-150pc
gen demo-fast $R/fast2-150pc 2 150; check $R/fast2-150pc $R/check-fast2-150pc
date
# 2. 256x512 benchmark-v1: real test + demo-latent 600 + demo-latent-fast 4 and 2 steps
[ -f $R/bench256/README.md ] || $M phantom --preset benchmark-v1 --size 256x512 --out $R/bench256
check $R/bench256 $R/check-bench256-test test
gen demo-latent $R/latent-150pc "" 150; check $R/latent-150pc $R/check-latent-150pc
gen demo-latent-fast $R/lfast4-150pc 4 150; check $R/lfast4-150pc $R/check-lfast4-150pc
gen demo-latent-fast $R/lfast2-150pc 2 150; check $R/lfast2-150pc $R/check-lfast2-150pc
date
# 3. the demo model's training phantom: real test 420; the session-6 200-scan sets
[ -f $R/phantom64/README.md ] || $M phantom --num-patients 240 --size 64x128 --seed 0 --out $R/phantom64
check $R/phantom64 $R/check-phantom64-test test
gen demo $R/demo-50pc "" 50; check $R/demo-50pc $R/check-demo-50pc
gen demo-fast $R/fast4-50pc 4 50; check $R/fast4-50pc $R/check-fast4-50pc
gen demo-fast $R/fast2-50pc 2 50; check $R/fast2-50pc $R/check-fast2-50pc
gen demo-fast $R/fast1-50pc 1 50; check $R/fast1-50pc $R/check-fast1-50pc
date
echo ALL DONE
