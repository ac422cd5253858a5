#!/usr/bin/env bash
# How the embedded few-step demo model (medicraft_hf/demo_model_fast/) was made: consistency
# distillation of the demo model (medicraft_hf/demo_model/) on the phantom it was trained on,
# then sample grids beside the teacher's at the same seeds. Resumable: run it again after an
# interruption and distillation continues from the latest checkpoint; a larger STEPS continues a
# finished run (the learning rate is constant after warm-up). CPU (1 thread) by default.
#
#   STEPS=400 bash training/distill_demo_model.sh
#
# The same for another teacher, e.g. the latent demo model on the benchmark data it learned from
# (its latents are encoded once and cached, and its VAE is kept in the saved pipeline):
#   TEACHER=medicraft_hf/demo_model_latent DATA=<benchmark-v1 256x512> RUN=$OUT/distill-latent \
#     SHIP=medicraft_hf/demo_model_latent_fast bash training/distill_demo_model.sh
# A latent student may ship with a fast decoder distilled from its VAE (docs/distillation.md):
#   DECODER=<train_vae.py --preset taesd-* --teacher_vae <teacher> output_dir> (same variables as above)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
STEPS=${STEPS:-400}
TEACHER=${TEACHER:-medicraft_hf/demo_model}
DATA=${DATA:-$OUT/phantom-64x128}
RUN=${RUN:-$OUT/distill-demo}
SHIP=${SHIP:-medicraft_hf/demo_model_fast}

[ -d "$DATA" ] || [ "$DATA" != "$OUT/phantom-64x128" ] || .venv/bin/medicraft phantom --num-patients 240 \
  --size 64x128 --seed 0 --out "$DATA"
[ -d "$DATA" ] || { echo "DATA=$DATA does not exist: give the dataset the teacher was trained on." >&2; exit 2; }

OMP_WAIT_POLICY=PASSIVE .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/distill.py \
  --pretrained_teacher_model "$TEACHER" --dataset_name "$DATA" \
  --class_balanced --train_batch_size 8 --learning_rate 1e-4 --lr_warmup_steps 20 --num_ddim_timesteps 25 \
  --use_ema --ema_max_decay 0.95 --max_train_steps "$STEPS" --checkpointing_steps 50 --checkpoints_total_limit 2 \
  --validation_steps 50 --num_validation_images 4 --validation_inference_steps 4 --seed 0 \
  --resume_from_checkpoint latest --output_dir "$RUN"

# Teacher (SDE DPM-Solver++ 20 steps; and LCM at 4 steps before distillation) and student
# (4, 2, 1 steps): the same seeds per column.
.venv/bin/python - "$RUN" "$TEACHER" <<'EOF'
import sys

from medicraft_hf.models import load_pipeline
from medicraft_hf.training.distillation import few_step_scheduler
from medicraft_hf.training.validation import comparison_grid

out, teacher = sys.argv[1], sys.argv[2]
undistilled = load_pipeline(teacher)
undistilled.scheduler = few_step_scheduler(undistilled.scheduler.config, num_ddim_timesteps=25)
rows = [("teacher, SDE DPM-Solver++ 20 steps", load_pipeline(teacher, scheduler="sde-dpmsolver++"), 20),
        ("teacher, LCM 4 steps (not distilled)", undistilled, 4)]
rows += [(f"distilled, {s} step{'s' * (s > 1)}", load_pipeline(out), s) for s in (4, 2, 1)]
comparison_grid(rows, per_class=4, seed=0).save(f"{out}/samples/teacher_vs_distilled.png")
print(f"{out}/samples/teacher_vs_distilled.png")
EOF

# Ship: the pipeline folder without checkpoints or logs, plus the comparison grid (the card,
# $SHIP/README.md, is written by hand from the one distill.py saves).
mkdir -p "$SHIP/samples"
rm -rf "$SHIP/unet" "$SHIP/scheduler"
cp -r "$RUN/unet" "$RUN/scheduler" "$RUN/model_index.json" "$RUN/pipeline.py" "$SHIP/"
[ ! -d "$RUN/vae" ] || { rm -rf "$SHIP/vae"; cp -r "$RUN/vae" "$SHIP/"; }  # a latent student keeps its VAE
if [ -n "${DECODER:-}" ]; then  # ... or takes the fast decoder: with_vae checks it decodes the same latents
  .venv/bin/python - "$SHIP" "$DECODER" <<'EOF'
import shutil
import sys
import tempfile
from pathlib import Path

from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.training.latents import load_vae

ship, decoder = Path(sys.argv[1]), sys.argv[2]
pipe = OCTDiffusionPipeline.from_pretrained(ship, use_safetensors=True).with_vae(load_vae(decoder))
with tempfile.TemporaryDirectory() as tmp:
    pipe.save_pretrained(tmp)
    shutil.rmtree(ship / "vae")
    shutil.copytree(Path(tmp) / "vae", ship / "vae")
    shutil.copy(Path(tmp) / "model_index.json", ship / "model_index.json")
print(f"{ship}/vae: {type(pipe.vae).__name__} from {decoder}")
EOF
fi
cp "$RUN/samples/teacher_vs_distilled.png" "$SHIP/samples/"
