#!/usr/bin/env bash
# How the fast decoder of the distilled latent demo model (medicraft_hf/demo_model_latent_fast/vae)
# was made: a diffusers AutoencoderTiny (preset taesd-f4c4-w16) distilled from the latent demo
# model's f4c4 VAE on the benchmark data that VAE learned, so it decodes the same latents about
# 10x cheaper (docs/distillation.md). Resumable: run it again after an interruption. CPU, 1 thread:
# about 1 h for 2,000 steps on a shared 2-core machine.
#
#   DATA=<benchmark-v1 256x512> OUT=/path/outside/the/repo bash training/fast_decoder.sh
# then ship it with the distilled UNet:
#   DECODER=$OUT/fast-decoder TEACHER=medicraft_hf/demo_model_latent DATA=... RUN=<distill run> \
#     SHIP=medicraft_hf/demo_model_latent_fast bash training/distill_demo_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
DATA=${DATA:-$OUT/benchmark-v1-256x512}
TEACHER=${TEACHER:-medicraft_hf/demo_model_latent}
STEPS=${STEPS:-2000}
[ -d "$DATA" ] || .venv/bin/medicraft phantom --preset benchmark-v1 --size 256x512 --out "$DATA"

# L1 + FFT magnitude on the reconstructions of the teacher's latents, the encoder's MSE to those
# latents, a patch discriminator from the middle of the run (as the teacher was trained).
OMP_WAIT_POLICY=PASSIVE .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/train_vae.py \
  --dataset_name "$DATA" --resolution 256x512 --preset taesd-f4c4-w16 --teacher_vae "$TEACHER" \
  --crop_size 128x128 --train_batch_size 8 --learning_rate 5e-4 --lr_warmup_steps 100 --use_ema \
  --disc_weight 0.05 --disc_start $((STEPS / 2)) --max_train_steps "$STEPS" --checkpointing_steps 100 \
  --checkpoints_total_limit 2 --validation_steps 250 --num_validation_images 4 --resume_from_checkpoint latest \
  --seed 0 --report_to tensorboard --output_dir "$OUT/fast-decoder"
