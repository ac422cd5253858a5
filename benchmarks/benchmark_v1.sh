#!/usr/bin/env bash
# The usefulness benchmark benchmark-v1 end to end (docs/benchmark.md); resumable: rerun the same
# command after an interruption and finished datasets and classifier runs are reused.
#
#   bash benchmarks/benchmark_v1.sh [WORK_DIR] [SYNTHETIC_DATASET]
#
# 1. the benchmark at 64x128 and 256x512 (`medicraft phantom --preset benchmark-v1`);
# 2. the real-data ceiling (TRTR, 3 classifier seeds, intervals) at both sizes; the 256x512
#    benchmark is read at 128x256 by the classifier;
# 3. with SYNTHETIC_DATASET (64x128, e.g. `medicraft generate --per-class 60 --out syn`): the full
#    evaluation of that set against the 64x128 benchmark (TRTR / TSTR / TRSTR, TRTS, fidelity,
#    privacy, anatomy).
set -euo pipefail
WORK=${1:-bench}
SYNTHETIC=${2:-}
MEDICRAFT=${MEDICRAFT:-medicraft}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2}

for size in 64x128 256x512; do
  [ -f "$WORK/benchmark-v1-$size/README.md" ] || \
    $MEDICRAFT phantom --preset benchmark-v1 --size $size --out "$WORK/benchmark-v1-$size"
done
$MEDICRAFT evaluate --real "$WORK/benchmark-v1-64x128" --out "$WORK/ceiling-64x128" --resolution 64x128 --seeds 3
$MEDICRAFT evaluate --real "$WORK/benchmark-v1-256x512" --out "$WORK/ceiling-256x512" --resolution 128x256 --seeds 3
if [ -n "$SYNTHETIC" ]; then
  $MEDICRAFT evaluate --real "$WORK/benchmark-v1-64x128" --synthetic "$SYNTHETIC" --out "$WORK/evaluation-64x128" \
    --resolution 64x128 --seeds 3
fi
