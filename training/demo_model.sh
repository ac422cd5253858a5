#!/usr/bin/env bash
# How the embedded demo model (medicraft_hf/demo_model/) was made: phantom data, training,
# evaluation. Resumable: run it again after an interruption and training continues from the
# latest checkpoint. CPU (2 cores, fp32) by default; on a GPU add --mixed_precision bf16.
# The shipped model: `STEPS=1800 bash training/demo_model.sh`, then `STEPS=4400 bash
# training/demo_model.sh` (resumed at 1800; the cosine schedule is recomputed for 4400 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
STEPS=${STEPS:-1800}

.venv/bin/medicraft phantom --num-patients 240 --size 64x128 --seed 0 --out "$OUT/phantom-64x128"

OMP_WAIT_POLICY=PASSIVE .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/train_ddpm.py --dataset_name "$OUT/phantom-64x128" --preset cpu-small \
  --resolution 64x128 --train_batch_size 8 --learning_rate 3e-4 --lr_scheduler cosine --lr_warmup_steps 100 \
  --max_train_steps "$STEPS" --use_ema --class_balanced --cfg_dropout_prob 0.1 --seed 0 \
  --checkpointing_steps 200 --checkpoints_total_limit 2 --validation_steps 600 --num_validation_images 4 \
  --report_to tensorboard --output_dir "$OUT/demo-train" --resume_from_checkpoint latest

# Evaluation on the phantom's patient-held-out test split. Two 1-thread processes use 2 CPU
# cores better than one (batch-invariant sampling); the images are the same either way.
ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 .venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
  --mixed_precision no --dynamo_backend no -m medicraft_hf.generate --model "$OUT/demo-train" \
  --out "$OUT/demo-eval/synthetic" --per-class 150 --seed 0
.venv/bin/medicraft evaluate --real "$OUT/phantom-64x128" --synthetic "$OUT/demo-eval/synthetic" \
  --out "$OUT/demo-eval/report" --seeds 3
