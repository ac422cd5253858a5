"""Few-step (consistency-distilled) models in generation: which model a name means, and which
sampler and step count it gets when the user names none.

A distilled model (`training/distill.py`) ships with the `LCMScheduler` it was distilled for;
swapping in the library's default sampler (SDE DPM-Solver++, 20 steps) would throw the
distillation away. So a few-step model keeps its own scheduler and defaults to
`FEW_STEP_DEFAULT_STEPS`; every other model gets the library defaults, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from medicraft_hf.embedded import embedded_model  # (also re-exported: tests and the Space import it from here)
from medicraft_hf.models import FAST_DEMO_MODEL_DIR, model_id_of  # noqa: F401 (FAST_DEMO_MODEL_DIR re-exported)
from medicraft_hf.sampling_defaults import DEFAULT_SCHEDULER, DEFAULT_STEPS, FEW_STEP_DEFAULT_STEPS

FEW_STEP_SCHEDULERS = ("LCMScheduler",)


def scheduler_class_of(model, revision: str | None = None) -> str | None:
    """The scheduler class a saved pipeline (folder or Hub id) ships with, read from its config only."""
    if model is None:
        return None
    path = Path(model) / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        from medicraft_hf.sources import is_hub_id

        if not is_hub_id(model):
            return None  # not a pipeline folder: loading it names the problem
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(str(model), "scheduler/scheduler_config.json", revision=revision))
        except Exception:  # unreachable or no such file: loading the model names the problem
            return None
    return json.loads(path.read_text()).get("_class_name")


def is_few_step_pipeline(pipe) -> bool:
    return type(pipe.scheduler).__name__ in FEW_STEP_SCHEDULERS


def sampling_choice(model, revision: str | None, scheduler: str | None, steps: int | None) -> dict:
    """`generate_dataset` keyword arguments for a model name/folder/id and the user's choices (None: default).

    A few-step model is loaded here, so that it keeps its own scheduler when none is named.
    """
    source = embedded_model(model)
    few_step = scheduler_class_of(source, revision) in FEW_STEP_SCHEDULERS
    choice = {"model": source, "revision": revision, "scheduler": scheduler,
              "num_inference_steps": steps if steps is not None else
              (FEW_STEP_DEFAULT_STEPS if few_step else DEFAULT_STEPS)}
    if few_step and scheduler is None:
        from medicraft_hf.models import load_pipeline

        choice["pipe"] = load_pipeline(source, revision=revision)
        choice["model"] = model_id_of(source)
    return choice


def default_sampling(pipe) -> tuple[str, int]:
    """The scheduler name and step count a loaded model samples with when the user names none."""
    return ("lcm", FEW_STEP_DEFAULT_STEPS) if is_few_step_pipeline(pipe) else (DEFAULT_SCHEDULER, DEFAULT_STEPS)
