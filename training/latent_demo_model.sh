#!/usr/bin/env bash
# How the latent demo model (256x512: VAE + class-conditional UNet on its latents) is made:
# phantom data, the autoencoder, the UNet on cached latents, evaluation. Resumable: run it
# again after an interruption and each stage continues from its latest checkpoint (a finished
# stage is a no-op). CPU (2 cores, fp32) by default; on a GPU add --mixed_precision bf16.
#
#   OUT=/path/outside/the/repo bash training/latent_demo_model.sh
# Trained on the usefulness benchmark's data (`medicraft phantom --preset benchmark-v1`,
# docs/benchmark.md) and evaluated on its patient-held-out test split. The VAE preset
# (compression) was chosen by the measurements in docs/latent.md. Budget on 2 CPU cores, one
# thread: the VAE ~1.2 s/step (64x64 crops, batch 8), the latent UNet ~3 s/step.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
VAE_PRESET=${VAE_PRESET:-f4c4}
VAE_STEPS=${VAE_STEPS:-2500}
STEPS=${STEPS:-4000}
CROP=${CROP:-64x64}
DATA="$OUT/benchmark-v1-256x512"
LAUNCH=(.venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)
COMMON=(--dataset_name "$DATA" --resolution 256x512 --checkpoints_total_limit 2 --report_to tensorboard
        --resume_from_checkpoint latest --seed 0)

[ -f "$DATA/README.md" ] || .venv/bin/medicraft phantom --preset benchmark-v1 --size 256x512 --out "$DATA"

# Stage 1: the autoencoder, on random crops (fully convolutional), L1 + FFT magnitude + KL,
# a patch discriminator from the middle of the run.
OMP_WAIT_POLICY=PASSIVE "${LAUNCH[@]}" training/train_vae.py "${COMMON[@]}" --preset "$VAE_PRESET" \
  --crop_size "$CROP" --train_batch_size 8 --learning_rate 2e-4 --lr_warmup_steps 100 --use_ema \
  --disc_weight 0.05 --disc_start $((VAE_STEPS / 2)) --max_train_steps "$VAE_STEPS" \
  --checkpointing_steps 250 --validation_steps 500 --output_dir "$OUT/latent-vae"

# Stage 2: the UNet on the VAE's latents of the training split (encoded once, cached in
# $OUT/latent-demo/.latents/); the saved pipeline holds the VAE.
OMP_WAIT_POLICY=PASSIVE "${LAUNCH[@]}" training/train_ddpm.py "${COMMON[@]}" --vae "$OUT/latent-vae" \
  --preset cpu-small --train_batch_size 8 --learning_rate 3e-4 --lr_warmup_steps 100 --use_ema --class_balanced \
  --cfg_dropout_prob 0.1 --max_train_steps "$STEPS" --checkpointing_steps 200 --validation_steps 1000 \
  --num_validation_images 2 --output_dir "$OUT/latent-demo"

# Evaluation on the benchmark's patient-held-out test split, read at 128x256 like its 256x512
# ceiling (docs/benchmark.md); the VAE's reconstructions judged by the same real-trained classifier.
ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 .venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
  --mixed_precision no --dynamo_backend no -m medicraft_hf.generate --model "$OUT/latent-demo" \
  --out "$OUT/latent-eval/synthetic-balanced" --seed 0 --per-class 150
.venv/bin/medicraft evaluate --real "$DATA" --synthetic "$OUT/latent-eval/synthetic-balanced" \
  --out "$OUT/latent-eval/report-balanced" --seeds 3 --resolution 128x256 --protocols TRTR,TSTR
OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_vae_compression.py --dataset "$DATA" --split test --every 6 \
  --vae "$OUT/latent-vae" --classifier "$OUT/latent-eval/report-balanced/runs/TRTR-seed0-model" \
  --json "$OUT/latent-eval/vae-quality.json"

# Ship: the pipeline folder without checkpoints, logs or the latent cache, plus the run's last
# validation grid and the evaluation's real-vs-synthetic sheet (the card,
# medicraft_hf/demo_model_latent/README.md, is written by hand from the evaluation; vae/ keeps its own card).
SHIP=medicraft_hf/demo_model_latent
mkdir -p "$SHIP/samples" "$SHIP/vae"
rm -rf "$SHIP/unet" "$SHIP/scheduler"
cp -r "$OUT/latent-demo/unet" "$OUT/latent-demo/scheduler" "$OUT/latent-demo/model_index.json" \
  "$OUT/latent-demo/pipeline.py" "$SHIP/"
cp "$OUT/latent-demo/vae/config.json" "$OUT/latent-demo/vae/diffusion_pytorch_model.safetensors" "$SHIP/vae/"
cp "$OUT/latent-demo/samples/step_$(printf %07d "$STEPS").png" \
  "$OUT/latent-eval/report-balanced/samples_real_vs_synthetic.png" "$SHIP/samples/"
