"""training/distill.py on a tiny teacher: the consistency step by hand, exact resume, a saved
few-step pipeline that plain diffusers loads, bad input refused before anything is written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler, LCMScheduler
from safetensors.torch import load_file

from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.models import load_pipeline
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.schema import CLASS_NAMES
from medicraft_hf.training import checkpoints
from medicraft_hf.training.distillation import ConsistencyDistiller, few_step_scheduler
from medicraft_hf.unet import build_unet
from tests.test_training import tiny_rows

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "distill.py"
H, W = 32, 64


def load_script():
    spec = importlib.util.spec_from_file_location("distill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


distill = load_script()


def teacher_scheduler(prediction_type="v_prediction"):
    return DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                       prediction_type=prediction_type)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    torch.manual_seed(0)
    unet = build_unet(len(CLASS_NAMES), preset="tiny", resolution=(H, W))
    path = tmp_path_factory.mktemp("teacher") / "teacher"
    OCTDiffusionPipeline(unet, teacher_scheduler(), class_names=list(CLASS_NAMES)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    ds = rows_to_dataset(tiny_rows({c: 3 for c in CLASS_NAMES}))
    return save_dataset_dict(DatasetDict({"train": ds}), tmp_path_factory.mktemp("data") / "tiny")


def argv(teacher_dir, dataset_dir, output_dir, **overrides):
    args = {"pretrained_teacher_model": teacher_dir, "dataset_name": dataset_dir, "output_dir": output_dir,
            "train_batch_size": 2, "max_train_steps": 4, "learning_rate": 1e-3, "lr_warmup_steps": 1,
            "num_ddim_timesteps": 10, "checkpointing_steps": 2, "validation_steps": 4, "num_validation_images": 1,
            "validation_inference_steps": 2, "mixed_precision": "no", "seed": 3, "use_ema": True}
    args.update(overrides)
    out = []
    for key, value in args.items():
        if value is True:
            out.append(f"--{key}")
        elif value is not None and value is not False:
            out += [f"--{key}", str(value)]
    return out


# ------------------------------------------------------------------ the distillation step by hand
class PointMassTeacher(torch.nn.Module):
    """The exact model of a one-image data set: it knows x0, so its ODE is solvable by hand."""

    def __init__(self, x0, alphas_cumprod, prediction_type):
        super().__init__()
        self.x0, self.alphas_cumprod, self.prediction_type = x0, alphas_cumprod, prediction_type

    def forward(self, sample, t, class_labels=None):
        alpha = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (sample - alpha.sqrt() * self.x0) / (1 - alpha).sqrt()
        out = eps if self.prediction_type == "epsilon" else alpha.sqrt() * eps - (1 - alpha).sqrt() * self.x0
        return type("Output", (), {"sample": out})()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_teacher_step_follows_the_exact_ode_and_the_boundary_is_the_identity(prediction_type):
    scheduler = few_step_scheduler(teacher_scheduler(prediction_type).config, num_ddim_timesteps=10)
    distiller = ConsistencyDistiller(scheduler, null_class_id=4)
    assert distiller.skip == 100 and distiller.grid.tolist() == list(range(99, 1000, 100))
    # The grid is where LCMScheduler samples: every few-step schedule lies on it.
    for steps in (1, 2, 4):
        scheduler.set_timesteps(steps)
        assert set(scheduler.timesteps.tolist()) <= set(distiller.grid.tolist())

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 4, 8, generator=g) * 2 - 1
    noise, index = distiller.draw(x0, g)
    t, prev_t = distiller.timesteps(torch.tensor([0, 7]))
    assert t.tolist() == [99, 799] and prev_t.tolist() == [0, 699]
    teacher = PointMassTeacher(x0, distiller.alphas_cumprod, prediction_type)
    noisy = distiller.noisy(x0, noise, t)
    # For a point mass the ODE keeps the noise direction: one DDIM step lands on the same noise at t - k.
    stepped = distiller.teacher_step(teacher, noisy, t, prev_t, torch.tensor([0, 1]))
    torch.testing.assert_close(stepped, distiller.noisy(x0, noise, prev_t), atol=1e-4, rtol=1e-4)
    # The consistency function of the exact model gives x0 (up to c_skip, ~1e-5 away from t = 0) ...
    out = teacher(noisy, t).sample
    torch.testing.assert_close(distiller.consistency(out, noisy, t), x0, atol=2e-3, rtol=0)
    # ... and at t = 0 it is the identity (c_skip = 1, c_out = 0), whatever the model says.
    zero = torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(distiller.consistency(torch.randn_like(x0), noisy, zero), noisy)
    assert distiller.loss(x0, x0).item() == 0.0 and distiller.loss(x0, x0 + 1).item() > 0.99


def test_guided_teacher_step_mixes_conditional_and_null_predictions():
    scheduler = few_step_scheduler(teacher_scheduler("epsilon").config, num_ddim_timesteps=10)

    class LabelTeacher(torch.nn.Module):  # predicts its class label as the noise, everywhere
        def forward(self, sample, t, class_labels=None):
            return type("Output", (), {"sample": class_labels.float().view(-1, 1, 1, 1).expand_as(sample)})()

    sample = torch.zeros(1, 1, 2, 2)
    t, prev_t = torch.tensor([499]), torch.tensor([399])
    guided = ConsistencyDistiller(scheduler, null_class_id=4, guidance_scale=3.0)
    plain = ConsistencyDistiller(scheduler, null_class_id=4, guidance_scale=1.0)
    # guidance 3 with cond 1, uncond 4: eps = 4 + 3 * (1 - 4) = -5; the same step as a teacher saying -5.
    expected = plain.teacher_step(LabelTeacher(), sample, t, prev_t, torch.tensor([-5]))
    torch.testing.assert_close(guided.teacher_step(LabelTeacher(), sample, t, prev_t, torch.tensor([1])), expected)


# ------------------------------------------------------------------ the script
@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, teacher_dir, dataset_dir):
    """4 uninterrupted distillation steps."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    assert distill.main(argv(teacher_dir, dataset_dir, out))["global_step"] == 4
    return out


def test_distilled_pipeline_samples_in_few_steps_and_loads_with_plain_diffusers(straight_run, teacher_dir):
    out = straight_run
    pipe = load_pipeline(out)
    assert isinstance(pipe.scheduler, LCMScheduler)
    assert pipe.scheduler.config.original_inference_steps == 10 and pipe.scheduler.config.clip_sample
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file() and (out / "samples" /
                                                                                 "step_0000004.png").is_file()
    card = (out / "README.md").read_text()
    for needle in ("1-4 steps", "LCMScheduler", "after 4 steps of consistency distillation", "guidance", "in pixel space",
                   "Not for diagnosis", "samples/step_0000004.png"):
        assert needle in card, needle
    assert str(out.parent) not in card and str(teacher_dir) not in (out / "unet" / "config.json").read_text()
    # The student moved away from the teacher.
    teacher_w = load_file(teacher_dir / "unet" / "diffusion_pytorch_model.safetensors")
    student_w = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(teacher_w[k], student_w[k]) for k in teacher_w)

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    one = pipe(class_labels=[0, 3], num_inference_steps=1, generator=gens, output_type="np").images
    assert one.shape == (2, H, W, 1) and 0 <= one.min() and one.max() <= 1
    # Plain diffusers, through the pipeline file saved beside the model: the same images.
    plain = DiffusionPipeline.from_pretrained(out, custom_pipeline=str(out), trust_remote_code=True)
    plain.set_progress_bar_config(disable=True)
    for steps in (1, 4):
        ours = pipe(class_labels=[0, 3], num_inference_steps=steps, output_type="np",
                    generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
        theirs = plain(class_labels=[0, 3], num_inference_steps=steps, output_type="np",
                       generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
        assert (ours == theirs).all()
    # Per-image noise: an image does not depend on its batch (batch-invariant path).
    alone = pipe(class_labels=[3], num_inference_steps=4, output_type="np", batch_invariant=True,
                 generator=[torch.Generator().manual_seed(1)]).images
    both = pipe(class_labels=[0, 3], num_inference_steps=4, output_type="np", batch_invariant=True,
                generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
    assert (alone[0] == both[1]).all()


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path, straight_run, teacher_dir, dataset_dir):
    straight = straight_run
    resumed = tmp_path / "resumed"
    distill.main(argv(teacher_dir, dataset_dir, resumed, max_train_steps=2))  # "killed" after checkpoint-2
    assert checkpoints.latest_checkpoint(resumed).name == "checkpoint-2"
    with pytest.raises(ValueError, match="--resume_from_checkpoint latest"):
        distill.main(argv(teacher_dir, dataset_dir, resumed))
    distill.main(argv(teacher_dir, dataset_dir, resumed, resume_from_checkpoint="latest"))
    for part in ("unet/diffusion_pytorch_model.safetensors", "checkpoint-4/model.safetensors",
                 "checkpoint-4/unet_ema/diffusion_pytorch_model.safetensors", "checkpoint-4/noise_rng_0.safetensors"):
        a, b = load_file(straight / part), load_file(resumed / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    state = json.loads((resumed / "checkpoint-4" / checkpoints.STATE_FILE).read_text())
    assert state["global_step"] == 4 and state["run"]["num_ddim_timesteps"] == 10


@pytest.mark.parametrize("overrides, message", [
    ({"class_names": "healthy,nevus"}, r"knows classes \['healthy', 'nevus', 'nevus_fluid', 'melanoma'\]"),
    ({"resolution": "64x128"}, "makes 32x64 images, --resolution asks for 64x128"),
    ({"pretrained_teacher_model": "missing"}, "missing: no such folder, and not a Hub model id"),
])
def test_bad_teacher_or_data_fails_before_anything_is_written(tmp_path, teacher_dir, dataset_dir, overrides,
                                                              message):
    out = tmp_path / "out"
    if overrides.get("pretrained_teacher_model"):
        overrides["pretrained_teacher_model"] = tmp_path / "missing"  # a folder that is not there
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        distill.main(argv(teacher_dir, dataset_dir, out, **overrides))
    assert not out.exists()


def test_output_dir_of_another_run_is_refused(tmp_path, teacher_dir, dataset_dir):
    out = tmp_path / "out"
    distill.main(argv(teacher_dir, dataset_dir, out, max_train_steps=1, checkpointing_steps=1, validation_steps=1))
    with pytest.raises(ValueError, match=r"holds a different run \(num_ddim_timesteps: 10 -> 20"):
        distill.main(argv(teacher_dir, dataset_dir, out, num_ddim_timesteps=20, resume_from_checkpoint="latest"))


# ------------------------------------------------------------------ generation with a few-step model
def test_generate_keeps_a_few_step_models_scheduler_and_defaults_to_its_step_count(tmp_path, straight_run,
                                                                                   teacher_dir):
    from datasets import load_dataset

    from medicraft_hf.cli import main as cli_main
    from medicraft_hf.few_step import sampling_choice

    assert cli_main(["generate", "--model", str(straight_run), "--per-class", "1", "--out", str(tmp_path / "s"),
                     "--seed", "5"]) == 0
    rows = load_dataset(str(tmp_path / "s"), split="train")
    assert set(rows["scheduler"]) == {"lcm"} and set(rows["num_inference_steps"]) == {4}
    assert len(rows) == len(CLASS_NAMES) and set(rows["model_id"]) == {"straight"}
    # The same images as the pipeline itself at 4 steps with each row's seed (nothing else changed them).
    pipe = load_pipeline(straight_run)
    image = pipe(class_labels=[rows[0]["label"]], num_inference_steps=4, batch_invariant=True,
                 generator=[torch.Generator().manual_seed(rows[0]["seed"])]).images[0]
    assert image.tobytes() == rows[0]["image"].tobytes()
    # A named sampler or step count still wins; an ordinary model gets the library defaults.
    assert sampling_choice(straight_run, None, "ddim", 2) == {
        "model": straight_run, "revision": None, "scheduler": "ddim", "num_inference_steps": 2}
    assert sampling_choice(teacher_dir, None, None, None) == {
        "model": teacher_dir, "revision": None, "scheduler": None, "num_inference_steps": 20}
    assert sampling_choice("demo", None, None, None)["model"] is None  # the embedded default, by name


def test_the_shipped_fast_demo_model_is_the_demo_models_unet_with_lcm():
    from medicraft_hf.few_step import FAST_DEMO_MODEL_DIR, embedded_model
    from medicraft_hf.models import DEMO_MODEL_DIR

    assert embedded_model("demo-fast") == FAST_DEMO_MODEL_DIR
    fast, teacher = load_pipeline(FAST_DEMO_MODEL_DIR), load_pipeline(DEMO_MODEL_DIR)
    assert isinstance(fast.scheduler, LCMScheduler) and fast.scheduler.config.original_inference_steps == 25
    assert fast.class_names == teacher.class_names and fast.image_size == teacher.image_size
    strip = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert strip(fast.unet.config) == strip(teacher.unet.config)
    # Size, safetensors only, the current pipeline file and the card: tests/test_embedded.py, for every embedded model.


def test_a_latent_teacher_distills_on_cached_latents_into_a_latent_few_step_pipeline(tmp_path, dataset_dir):
    """A teacher with a VAE: the student trains on the VAE's cached latents, keeps the VAE, and its
    LCM scheduler does not clip (latents are not images in [-1, 1])."""
    from tests.factories import tiny_latent_pipeline

    teacher = tiny_latent_pipeline(resolution=(H, W))
    teacher.scheduler = teacher_scheduler()
    teacher.save_pretrained(tmp_path / "latent-teacher")
    out = tmp_path / "out"
    distill.main(argv(tmp_path / "latent-teacher", dataset_dir, out, max_train_steps=2, checkpointing_steps=2,
                      validation_steps=2))
    assert list((out / ".latents").glob("latents-*.safetensors")), "the latents were not cached"
    pipe = load_pipeline(out)
    assert pipe.vae is not None and isinstance(pipe.scheduler, LCMScheduler)
    assert not pipe.scheduler.config.clip_sample and pipe.unet.config.in_channels == teacher.vae.config.latent_channels
    assert torch.equal(pipe.vae.state_dict()["decoder.conv_out.weight"], teacher.vae.state_dict()["decoder.conv_out.weight"])
    images = pipe([0, 3], num_inference_steps=2, generator=[torch.Generator().manual_seed(i) for i in range(2)],
                  output_type="np").images
    assert images.shape == (2, H, W, 1) and torch.isfinite(torch.from_numpy(images)).all()
    assert (out / "samples" / "step_0000002.png").is_file()
    assert "in the latent space of the teacher's VAE" in (out / "README.md").read_text()


def test_the_teachers_x0_is_clipped_for_pixels_only():
    scheduler = few_step_scheduler(teacher_scheduler("epsilon").config, 10)
    assert scheduler.config.clip_sample and not few_step_scheduler(teacher_scheduler().config, 10,
                                                                    latent=True).config.clip_sample
    big = torch.full((1, 1, 2, 2), 5.0)

    class Zero(torch.nn.Module):  # epsilon 0: x0 = x / sqrt(alpha), far outside [-1, 1]
        def forward(self, x, t, class_labels=None):
            return type("Out", (), {"sample": torch.zeros_like(x)})()

    t, prev = torch.tensor([99]), torch.tensor([89])
    clipped = ConsistencyDistiller(scheduler, null_class_id=4).teacher_step(Zero(), big, t, prev, torch.tensor([0]))
    free = ConsistencyDistiller(scheduler, null_class_id=4, clip_x0=False)
    kept = free.teacher_step(Zero(), big, t, prev, torch.tensor([0]))
    # Unclipped, epsilon 0 keeps x0 = x / sqrt(a_t), so the step lands on sqrt(a_prev) x0; clipped to
    # x0 = 1, the step moves towards 1 and stays far below that.
    assert torch.allclose(kept, free.alphas_cumprod[89].sqrt() * big / free.alphas_cumprod[99].sqrt(), rtol=1e-4)
    assert clipped.max() < kept.min()
