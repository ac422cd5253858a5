"""medicraft-hf Space: generate OCT B-scans of a chosen class and see each one's anatomy check.

Runs on Hugging Face Spaces and locally (`python space/app.py`). The model is a saved
pipeline folder or a Hub id named by the `MEDICRAFT_MODEL` environment variable
(optionally `MEDICRAFT_MODEL_REVISION`); without it, the models embedded in medicraft-hf
(`medicraft_hf/embedded.py`), offered as a choice, `demo` first (the default). Generation and
the anatomy check are library calls: this file only wires controls to them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import torch

from medicraft_hf.embedded import EMBEDDED_MODELS
from medicraft_hf.errors import ArgumentError
from medicraft_hf.few_step import default_sampling, embedded_model
from medicraft_hf.generate import (
    annotate_anatomy,
    generate_images,
    model_id_of_pipe,
    model_revision_of,
    write_batch_downloads,
)
from medicraft_hf.models import SCHEDULERS, load_pipeline, model_id_of, scheduler_for
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_GUIDANCE_SCALE

# Bounded work per request: at most MAX_IMAGES images of at most MAX_STEPS denoising
# steps (x2 UNet calls with guidance), one request at a time (QUEUE_CONCURRENCY), and at
# most QUEUE_SIZE requests waiting; more are turned away with a "queue is full" message.
MAX_IMAGES = 16
MAX_STEPS = 100
MAX_GUIDANCE = 10.0
MAX_SEED = 2**31 - 1
QUEUE_CONCURRENCY = 1
QUEUE_SIZE = 20
# Images denoised together, one per core: batch-invariant sampling runs a batch's images side
# by side on one thread each, so the first images arrive after one image's time. The gallery
# fills in one batch at a time.
BATCH_SIZE = max(1, torch.get_num_threads())
# Request folders (zip + parquet) older than this are deleted.
KEEP_DOWNLOADS_S = 3600

ALL_CLASSES = "all classes, balanced"
# Served when no model is named: the embedded models, the demo model first (the default).
# demo-fast is not the default: paired against demo on the usefulness benchmark its quality
# did not stay within the margin set beforehand (docs/distillation.md).
EMBEDDED_CHOICES = tuple(name for name, m in EMBEDDED_MODELS.items() if m.shipped)



# ---------------------------------------------------------------------- pure functions
def check_request(num_images, seed, scheduler, steps, guidance) -> tuple[int, int, str, int, float]:
    """Validate one request's numbers (API callers skip the sliders); ValueError names the field and the bad value.

    Each message starts with the field's label in the page, e.g. "Steps must be between 1 and 100, got 101."
    """
    num_images = _as_int("Number of images", num_images, 1, MAX_IMAGES)
    seed = _as_int("Seed", seed, 0, MAX_SEED)
    steps = _as_int("Steps", steps, 1, MAX_STEPS)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"Scheduler must be one of {sorted(SCHEDULERS)}, got {scheduler!r}.")
    try:
        guidance = float(guidance)
    except (TypeError, ValueError):
        raise ValueError(f"Guidance must be a number between 0 and {MAX_GUIDANCE:g}, got {guidance!r}.") from None
    if not 0 <= guidance <= MAX_GUIDANCE:  # (NaN fails too)
        raise ValueError(f"Guidance must be between 0 and {MAX_GUIDANCE:g}, got {guidance:g}.")
    return num_images, seed, scheduler, steps, guidance


def _as_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or value is None or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}.") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}.")
    return number


def class_counts(choice: str, num_images: int, class_names: list[str]) -> dict[str, int]:
    """Images per class: all to one class, or spread evenly (the first classes get the rest)."""
    if choice == ALL_CLASSES:
        base, extra = divmod(num_images, len(class_names))
        return {name: base + (i < extra) for i, name in enumerate(class_names) if base + (i < extra)}
    if choice not in class_names:
        raise ValueError(f"Class must be {ALL_CLASSES!r} or one of {class_names}, got {choice!r}.")
    return {choice: num_images}


def examples(class_names: list[str], models: dict[str, tuple[str, int]]) -> list[list]:
    """Presets (model, class, images, seed, scheduler, steps, guidance) for any label vocabulary.
    The model comes first so the table shows it: presets of two models differ only there.

    `models` maps each served model's name to its default (scheduler, steps), the first being
    the Space's default. With the default classes: all balanced and melanoma on each model at
    its own sampler (melanoma with guidance 2 where guidance was not distilled away: a few-step
    model learned guidance 1); healthy with UniPC and nevus_fluid with DDIM on a model that is
    not few-step, if one is served.
    """
    rare, common, other = class_names[-1], class_names[0], class_names[min(2, len(class_names) - 1)]
    presets = []
    for name, (scheduler, steps) in models.items():
        presets += [[name, ALL_CLASSES, 8, 0, scheduler, steps, DEFAULT_GUIDANCE_SCALE],
                    [name, rare, 4, 7, scheduler, steps, DEFAULT_GUIDANCE_SCALE if scheduler == "lcm" else 2.0]]
    full = next((name for name, (scheduler, _) in models.items() if scheduler != "lcm"), None)
    if full is not None:
        presets += [[full, common, 4, 42, "unipc", 20, 1.0], [full, other, 4, 3, "ddim", 50, 1.5]]
    return presets


def caption(row: dict, class_names: list[str]) -> str:
    """Gallery caption: class · anatomy check verdict (plausibility score in [0, 1])."""
    return f"{class_names[row['label']]} · {row['anatomy_verdict']} ({row['anatomy_score']:.2f})"


def summary(rows: list[dict], class_names: list[str], seconds: float, first_s: float, settings: str) -> str:
    per_class = Counter(class_names[row["label"]] for row in rows)
    verdicts = Counter(row["anatomy_verdict"] for row in rows)
    return (
        f"**{len(rows)} images** in {seconds:.1f} s (first after {first_s:.1f} s) · {settings}  \n"
        f"Per class: {', '.join(f'{k} {v}' for k, v in per_class.items())} · "
        f"Anatomy check: {', '.join(f'{k} {v}' for k, v in verdicts.most_common())}"
    )


def _prune_downloads(work_dir: Path, max_age_s: float = KEEP_DOWNLOADS_S) -> None:
    now = time.time()
    for folder in work_dir.iterdir():
        if folder.is_dir() and now - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------- the app
class Generator:
    """Holds the loaded models (name -> (pipeline, model id, revision), the default first); each
    request samples with its own scheduler (sharing the model's UNet)."""

    def __init__(self, models: dict[str, tuple[OCTDiffusionPipeline, str, str]], work_dir: Path):
        self.models = models
        self.work_dir = work_dir
        names = {tuple(pipe.class_names) for pipe, _, _ in models.values()}
        if len(names) != 1:
            raise ValueError(f"The served models must share their classes, got {sorted(names)}.")

    @property
    def class_names(self) -> list[str]:
        return next(iter(self.models.values()))[0].class_names

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def sampling_defaults(self) -> dict[str, tuple[str, int]]:
        """Each model's default (scheduler, steps): what the page shows when it is chosen."""
        return {name: default_sampling(pipe) for name, (pipe, _, _) in self.models.items()}

    def pipeline_for(self, model: str, scheduler: str, steps: int, guidance: float) -> OCTDiffusionPipeline:
        """A pipeline with a new scheduler object: a scheduler keeps state while it samples, so a
        request abandoned mid-way (a cancel) must not share it with the next one. ValueError
        when the steps do not suit that scheduler (an LCM schedule's limit)."""
        if model not in self.models:
            raise ValueError(f"Model must be one of {list(self.models)}, got {model!r}.")
        own = self.models[model][0]
        pipe = own.with_scheduler(scheduler_for(own, scheduler))
        try:
            pipe.check_inputs(steps, guidance)
        except ArgumentError as err:
            raise ValueError(err.say("Steps")) from None
        # The denoising loop's tqdm bar, which gr.Progress(track_tqdm=True) shows step by step.
        pipe.set_progress_bar_config(desc="Denoising", leave=False)
        return pipe

    def on_model_change(self, model):
        """The chosen model's own sampler and step count (a few-step model: LCM, 4 steps)."""
        scheduler, steps = self.sampling_defaults().get(model, (None, None))
        return gr.update(value=scheduler), gr.update(value=steps)

    def generate(self, class_choice, num_images, seed, scheduler, steps, guidance, model=None,
                 progress=gr.Progress(track_tqdm=True)):
        """Stream the gallery one batch at a time; the last update adds the downloads.

        Gallery, downloads and status line change together: a new request first empties the
        gallery and the downloads and says what it is making, and an error replaces the
        status line too (a bad value: its message, which names the field), so no old status
        stays beside a gallery it does not describe.
        """
        try:
            num_images, seed, scheduler, steps, guidance = check_request(num_images, seed, scheduler, steps, guidance)
            counts = class_counts(class_choice, num_images, self.class_names)
            model = self.default_model if model is None else model
            pipe = self.pipeline_for(model, scheduler, steps, guidance)
        except ValueError as err:
            yield [], None, f"**Not generated:** {err}"
            raise gr.Error(str(err)) from None

        _, model_id, model_revision = self.models[model]
        settings = f"{model}, {scheduler}, {steps} steps, guidance {guidance:g}, seed {seed}"
        yield [], None, f"Generating {num_images} images ({settings})…"
        progress(0, desc=f"Generating {num_images} images ({settings})")
        start = time.perf_counter()
        first_s = None
        rows, gallery = [], []
        try:
            images = generate_images(pipe, counts, seed=seed, num_inference_steps=steps, guidance_scale=guidance,
                                     batch_size=BATCH_SIZE, model_id=model_id, model_revision=model_revision)
            for row in images:
                rows.append(annotate_anatomy(row))
                gallery.append((row["image"], caption(row, self.class_names)))
                first_s = first_s if first_s is not None else time.perf_counter() - start
                progress(len(rows) / num_images, desc=f"{len(rows)}/{num_images} images")
                if len(rows) % BATCH_SIZE == 0 and len(rows) < num_images:
                    yield gallery, None, f"{len(rows)}/{num_images} images…"
        except Exception:
            yield [], None, f"**Generation failed** after {len(rows)} of {num_images} images ({settings})."
            raise

        _prune_downloads(self.work_dir)
        try:
            downloads = write_batch_downloads(rows, self.class_names, self.work_dir / uuid.uuid4().hex)
        except ValueError as err:  # e.g. rows_to_dataset refusing two identical images
            message = f"The images were made but the download could not be written: {err}"
            yield gallery, None, f"**{len(rows)} images, no download:** {err}"
            raise gr.Error(message) from None
        message = summary(rows, self.class_names, time.perf_counter() - start, first_s, settings)
        yield gallery, [str(p) for p in downloads], message


def load_model(model: str | Path | OCTDiffusionPipeline | None = None) -> tuple[OCTDiffusionPipeline, str, str]:
    """The pipeline, and the model id and revision provenance records.

    The model is the argument (a folder, a Hub id, or an embedded model's name: "demo",
    "demo-fast"), else $MEDICRAFT_MODEL (at $MEDICRAFT_MODEL_REVISION), else the demo.
    """
    if isinstance(model, OCTDiffusionPipeline):
        return model, model_id_of_pipe(model), model_revision_of(None, None, model)
    if model is None:
        model = os.environ.get("MEDICRAFT_MODEL") or None
    revision = os.environ.get("MEDICRAFT_MODEL_REVISION") or None
    model = embedded_model(model)
    pipe = load_pipeline(model, revision=revision)
    return pipe, model_id_of(model), model_revision_of(model, revision, pipe)


def load_models(model: str | Path | OCTDiffusionPipeline | None = None) -> dict[str, tuple]:
    """What the Space serves, by the name its Model menu shows: the named model alone (the
    argument, else $MEDICRAFT_MODEL), else the embedded EMBEDDED_CHOICES, default first."""
    if model is None:
        model = os.environ.get("MEDICRAFT_MODEL") or None
    if model is not None:
        loaded = load_model(model)
        return {loaded[1]: loaded}
    return {name: load_model(name) for name in EMBEDDED_CHOICES}


def build_demo(model: str | Path | OCTDiffusionPipeline | None = None,
               extra_tabs: dict[str, Callable[[], None]] | None = None) -> gr.Blocks:
    """The Space's Blocks, queued and bounded, ready to `.launch()`.

    `extra_tabs` maps a tab title to a function that builds that tab's components (for
    example the expert-review app); without it the generator is the whole page.
    """
    generator = Generator(load_models(model), Path(tempfile.mkdtemp(prefix="medicraft-space-")))
    pipe = generator.models[generator.default_model][0]
    served = ", ".join(f"`{model_id}` ({p.image_size[0]}×{p.image_size[1]} px)"
                       for p, model_id, _ in generator.models.values())

    # Gradio deletes its cached copies of outputs (gallery images, downloads) after an hour.
    with gr.Blocks(title="medicraft-hf: synthetic OCT B-scans", delete_cache=(600, KEEP_DOWNLOADS_S)) as demo:
        gr.Markdown(
            "# Synthetic OCT B-scans\n"
            f"Class-conditional diffusion models: {served}; classes "
            f"{', '.join(pipe.class_names)}. Each image is checked for plausible retinal anatomy "
            "(one fovea, ordered layers). Synthetic images are for teaching and research, not diagnosis."
        )
        if extra_tabs:
            with gr.Tabs():
                with gr.Tab("Generate"):
                    _generate_tab(generator)
                for title, build in extra_tabs.items():
                    with gr.Tab(title):
                        build()
        else:
            _generate_tab(generator)
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def model_label(models: dict) -> str:
    """The Model menu's label: what each embedded model is (a named model needs no gloss)."""
    if set(models) <= set(EMBEDDED_MODELS):
        return "Model (" + "; ".join(f"{name}: {EMBEDDED_MODELS[name].summary}" for name in models) + ")"
    return "Model"


def _generate_tab(generator: Generator) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            # Labels start with the field names that check_request's messages use.
            defaults = generator.sampling_defaults()
            scheduler_default, steps_default = defaults[generator.default_model]
            model = gr.Dropdown(list(generator.models), value=generator.default_model, elem_id="model",
                                label=model_label(generator.models),
                                interactive=len(generator.models) > 1)
            class_choice = gr.Dropdown([ALL_CLASSES, *generator.class_names], value=ALL_CLASSES, label="Class")
            num_images = gr.Slider(1, MAX_IMAGES, value=8, step=1, label=f"Number of images (max {MAX_IMAGES})",
                                   elem_id="num_images")
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed (same seed, same images)")
            scheduler = gr.Dropdown(list(SCHEDULERS), value=scheduler_default, label="Scheduler",
                                    elem_id="scheduler")
            steps = gr.Slider(1, MAX_STEPS, value=steps_default, step=1, label=f"Steps (max {MAX_STEPS})",
                              elem_id="steps")
            guidance = gr.Slider(0.0, MAX_GUIDANCE, value=DEFAULT_GUIDANCE_SCALE, step=0.5,
                                 label="Guidance (1 = plain class-conditional; higher follows the class more)")
            run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Generated B-scans: class · anatomy check (plausibility 0-1)", columns=3,
                                 height="auto", object_fit="contain", format="png", elem_id="gallery")
            status = gr.Markdown(elem_id="status")
            downloads = gr.File(label="Download the batch (zip of PNGs, parquet in the OCT schema)",
                                file_count="multiple", elem_id="downloads")
    # The model goes last: API callers that send the first six values get the default model.
    inputs = [class_choice, num_images, seed, scheduler, steps, guidance, model]
    # Choosing a model sets its own sampler and steps (a distilled model needs LCM).
    model.input(generator.on_model_change, inputs=model, outputs=[scheduler, steps], api_name=False)
    # Not cached: caching would run every preset at start-up.
    gr.Examples(examples(generator.class_names, defaults),
                inputs=[model, class_choice, num_images, seed, scheduler, steps, guidance], label="Presets",
                cache_examples=False)
    # preprocess=False: the values arrive as sent, and check_request / class_counts answer a bad
    # one naming the field. (Gradio's own range and choice checks would answer first, naming no
    # field: "Value 17 is greater than maximum value 16.") These inputs are plain JSON values.
    run.click(generator.generate, inputs=inputs, outputs=[gallery, downloads, status], api_name="generate",
              preprocess=False)


if __name__ == "__main__":
    build_demo().launch()
