#!/usr/bin/env bash
# A usefulness benchmark end to end (docs/benchmark.md); resumable: rerun the same command after
# an interruption and finished datasets and classifier runs are reused.
#
#   bash benchmarks/benchmark.sh [PRESET] [WORK_DIR] [SYNTHETIC_DATASET]
#
# PRESET is benchmark-v2 (the default) or benchmark-v1 (`medicraft phantom --help` lists them).
# 1. the benchmark at 64x128 and 256x512 (`medicraft phantom --preset PRESET`);
# 2. the real-data ceiling (TRTR, 3 classifier seeds, intervals) at both sizes; the 256x512
#    benchmark is read at 128x256 by the classifier;
# 3. with SYNTHETIC_DATASET (64x128, e.g. `medicraft generate --per-class 60 --out syn`): the full
#    evaluation of that set against the 64x128 benchmark (TRTR / TSTR / TRSTR, TRTS, fidelity,
#    privacy, anatomy).
set -euo pipefail
PRESET=${1:-benchmark-v2}
WORK=${2:-bench}
SYNTHETIC=${3:-}
MEDICRAFT=${MEDICRAFT:-medicraft}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2}

for size in 64x128 256x512; do
  [ -f "$WORK/$PRESET-$size/README.md" ] || \
    $MEDICRAFT phantom --preset "$PRESET" --size $size --out "$WORK/$PRESET-$size"
done
$MEDICRAFT evaluate --real "$WORK/$PRESET-64x128" --out "$WORK/$PRESET-ceiling-64x128" --resolution 64x128 --seeds 3
$MEDICRAFT evaluate --real "$WORK/$PRESET-256x512" --out "$WORK/$PRESET-ceiling-256x512" --resolution 128x256 --seeds 3
if [ -n "$SYNTHETIC" ]; then
  $MEDICRAFT evaluate --real "$WORK/$PRESET-64x128" --synthetic "$SYNTHETIC" --out "$WORK/$PRESET-evaluation-64x128" \
    --resolution 64x128 --seeds 3
fi
