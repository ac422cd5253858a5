#!/usr/bin/env bash
# How the embedded demo model (medicraft_hf/demo_model/) was made: phantom data, training,
# evaluation. Resumable: run it again after an interruption and training continues from the
# latest checkpoint. CPU (2 cores, fp32) by default; on a GPU add --mixed_precision bf16.
#
# The shipped model, in three runs of this script:
#   STEPS=1800 V_STEPS=0 bash training/demo_model.sh   # epsilon model, 1,800 steps
#   STEPS=4400 V_STEPS=0 bash training/demo_model.sh   # resumed at 1,800; cosine recomputed for 4,400
#   STEPS=4400 V_STEPS=3200 bash training/demo_model.sh  # fine-tuned to v_prediction, then evaluated
# (A new model would train with the default v_prediction from the start; see training/README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
STEPS=${STEPS:-4400}
V_STEPS=${V_STEPS:-3200}
LAUNCH=(.venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)
COMMON=(--dataset_name "$OUT/phantom-64x128" --resolution 64x128 --train_batch_size 8 --lr_scheduler cosine
        --lr_warmup_steps 100 --use_ema --class_balanced --cfg_dropout_prob 0.1 --checkpointing_steps 200
        --checkpoints_total_limit 2 --validation_steps 600 --num_validation_images 4 --report_to tensorboard
        --resume_from_checkpoint latest)

.venv/bin/medicraft phantom --num-patients 240 --size 64x128 --seed 0 --out "$OUT/phantom-64x128"

# Stage 1: epsilon prediction from scratch.
OMP_WAIT_POLICY=PASSIVE "${LAUNCH[@]}" training/train_ddpm.py "${COMMON[@]}" --preset cpu-small \
  --prediction_type epsilon --learning_rate 3e-4 --max_train_steps "$STEPS" --seed 0 --output_dir "$OUT/demo-train"
MODEL="$OUT/demo-train"

# Stage 2: the same weights fine-tuned to v_prediction (removes the grey-speckle failures).
if [ "$V_STEPS" -gt 0 ]; then
  OMP_WAIT_POLICY=PASSIVE "${LAUNCH[@]}" training/train_ddpm.py "${COMMON[@]}" --init_from "$OUT/demo-train" \
    --prediction_type v_prediction --learning_rate 2e-4 --max_train_steps "$V_STEPS" --seed 1 \
    --validation_steps 800 --output_dir "$OUT/demo-v"
  MODEL="$OUT/demo-v"
fi

# Evaluation on the phantom's patient-held-out test split: a class-balanced set (150 per class)
# and one with the real training split's size and class mix (804/600/300/300), so TSTR and TRTR
# train on the same counts. Two 1-thread processes use 2 CPU cores better than one
# (batch-invariant sampling); the images are the same either way.
generate_and_evaluate() {  # name, classifier seeds, then the counts arguments of medicraft generate
  local name=$1 seeds=$2; shift 2
  ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 .venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
    --mixed_precision no --dynamo_backend no -m medicraft_hf.generate --model "$MODEL" \
    --out "$OUT/demo-eval/synthetic-$name" --seed 0 "$@"
  .venv/bin/medicraft evaluate --real "$OUT/phantom-64x128" --synthetic "$OUT/demo-eval/synthetic-$name" \
    --out "$OUT/demo-eval/report-$name" --seeds "$seeds"
}
generate_and_evaluate balanced 3 --per-class 150
generate_and_evaluate realmix 5 --counts healthy=804,nevus=600,nevus_fluid=300,melanoma=300
