#!/usr/bin/env bash
# A pixel-space generator trained on a usefulness benchmark's own train split, then measured on
# its patient-held-out test split (docs/benchmark.md): the protocol in which TSTR and TRTR see
# the same real patients. Resumable: run it again after an interruption and each stage
# continues (training from its latest checkpoint, evaluate from its finished classifier runs).
#
#   OUT=/path/outside/the/repo bash training/benchmark_model.sh
# From scratch (no warm start from the embedded demo model, which learned another cohort), the
# demo model's recipe in one stage with v_prediction. CPU (2 cores, fp32) by default; on a GPU
# add --mixed_precision bf16 to LAUNCH.
#
# Latent diffusion at the study's size: VAE=<an autoencoder or latent pipeline> trains the UNet
# on that VAE's latents of the train split (encoded once, cached); the shipped one learned
# benchmark-v1's train patients, none of whom is in benchmark-v2:
#   OUT=... SIZE=256x512 READ=128x256 VAE=medicraft_hf/demo_model_latent bash training/benchmark_model.sh
# READ is the classifier's input size (default SIZE; the 256x512 ceiling reads 128x256).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
PRESET=${PRESET:-benchmark-v2}
SIZE=${SIZE:-64x128}
STEPS=${STEPS:-4000}
PER_CLASS=${PER_CLASS:-150}
READ=${READ:-$SIZE}
VAE=${VAE:-}
DATA="$OUT/$PRESET-$SIZE"
NAME="$OUT/$PRESET-$SIZE${VAE:+-latent}"
MODEL="$NAME-model"
EVAL="$NAME-eval"
LAUNCH=(.venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)

[ -f "$DATA/README.md" ] || .venv/bin/medicraft phantom --preset "$PRESET" --size "$SIZE" --out "$DATA"

OMP_WAIT_POLICY=PASSIVE "${LAUNCH[@]}" training/train_ddpm.py --dataset_name "$DATA" --resolution "$SIZE" \
  --preset cpu-small ${VAE:+--vae "$VAE"} --prediction_type v_prediction --train_batch_size 8 --learning_rate 3e-4 \
  --lr_scheduler cosine --lr_warmup_steps 100 --use_ema --class_balanced --cfg_dropout_prob 0.1 \
  --max_train_steps "$STEPS" --checkpointing_steps 200 --checkpoints_total_limit 2 --validation_steps 1000 \
  --num_validation_images 4 --report_to tensorboard --resume_from_checkpoint latest --seed 0 --output_dir "$MODEL"

# Two 1-thread processes use 2 CPU cores better than one (batch-invariant sampling: same images);
# a finished set is not sampled again, an interrupted one continues.
ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 .venv/bin/accelerate launch \
  --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no -m medicraft_hf.generate \
  --model "$MODEL" --out "$EVAL/synthetic-balanced" --seed 0 --per-class "$PER_CLASS"
.venv/bin/medicraft evaluate --real "$DATA" --synthetic "$EVAL/synthetic-balanced" --out "$EVAL/report-balanced" \
  --seeds 3 --resolution "$READ" --protocols TRTR,TSTR
