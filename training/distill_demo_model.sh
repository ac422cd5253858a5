#!/usr/bin/env bash
# How the embedded few-step demo model (medicraft_hf/demo_model_fast/) was made: consistency
# distillation of the demo model (medicraft_hf/demo_model/) on the phantom it was trained on,
# then sample grids beside the teacher's at the same seeds. Resumable: run it again after an
# interruption and distillation continues from the latest checkpoint; a larger STEPS continues a
# finished run (the learning rate is constant after warm-up). CPU (1 thread) by default.
#
#   STEPS=400 bash training/distill_demo_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs}
STEPS=${STEPS:-400}

[ -d "$OUT/phantom-64x128" ] || .venv/bin/medicraft phantom --num-patients 240 --size 64x128 --seed 0 \
  --out "$OUT/phantom-64x128"

OMP_WAIT_POLICY=PASSIVE .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/distill.py \
  --pretrained_teacher_model medicraft_hf/demo_model --dataset_name "$OUT/phantom-64x128" \
  --class_balanced --train_batch_size 8 --learning_rate 1e-4 --lr_warmup_steps 20 --num_ddim_timesteps 25 \
  --use_ema --ema_max_decay 0.95 --max_train_steps "$STEPS" --checkpointing_steps 50 --checkpoints_total_limit 2 \
  --validation_steps 50 --num_validation_images 4 --validation_inference_steps 4 --seed 0 \
  --resume_from_checkpoint latest --output_dir "$OUT/distill-demo"

# Teacher (SDE DPM-Solver++ 20 steps; and LCM at 4 steps before distillation) and student
# (4, 2, 1 steps): the same seeds per column.
.venv/bin/python - "$OUT/distill-demo" <<'EOF'
import sys

from medicraft_hf.models import DEMO_MODEL_DIR, load_pipeline
from medicraft_hf.training.distillation import few_step_scheduler
from medicraft_hf.training.validation import comparison_grid

out = sys.argv[1]
undistilled = load_pipeline(DEMO_MODEL_DIR)
undistilled.scheduler = few_step_scheduler(undistilled.scheduler.config, num_ddim_timesteps=25)
rows = [("teacher, SDE DPM-Solver++ 20 steps", load_pipeline(DEMO_MODEL_DIR, scheduler="sde-dpmsolver++"), 20),
        ("teacher, LCM 4 steps (not distilled)", undistilled, 4)]
rows += [(f"distilled, {s} step{'s' * (s > 1)}", load_pipeline(out), s) for s in (4, 2, 1)]
comparison_grid(rows, per_class=4, seed=0).save(f"{out}/samples/teacher_vs_distilled.png")
print(f"{out}/samples/teacher_vs_distilled.png")
EOF

# Ship: the pipeline folder without checkpoints or logs, plus the comparison grid (the card,
# medicraft_hf/demo_model_fast/README.md, is written by hand from the one distill.py saves).
SHIP=medicraft_hf/demo_model_fast
mkdir -p "$SHIP/samples"
rm -rf "$SHIP/unet" "$SHIP/scheduler"
cp -r "$OUT/distill-demo/unet" "$OUT/distill-demo/scheduler" "$OUT/distill-demo/model_index.json" \
  "$OUT/distill-demo/pipeline.py" "$SHIP/"
cp "$OUT/distill-demo/samples/teacher_vs_distilled.png" "$SHIP/samples/"
