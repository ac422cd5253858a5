"""training/train_vae.py on the phantom at 32x64 with the `tiny` VAE: outputs, exact resume,
bad input; the texture loss and crops it relies on."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from medicraft_hf.training.autoencoder import fft_magnitude_loss, histogram_loss, psnr, random_crops
from medicraft_hf.vae_quality import autocorrelation_width, compare, retina_mask
from tests.factories import save_tiny_phantom

ROOT = Path(__file__).resolve().parents[1]
H, W = 32, 64


def load_script():
    spec = importlib.util.spec_from_file_location("train_vae", ROOT / "training" / "train_vae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_vae = load_script()


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    return save_tiny_phantom(tmp_path_factory.mktemp("data") / "phantom", size=(H, W))


def vae_args(dataset, output_dir, **overrides):
    args = {"dataset_name": dataset, "output_dir": output_dir, "preset": "tiny", "resolution": f"{H}x{W}",
            "crop_size": "16x32", "train_batch_size": 2, "max_train_steps": 6, "learning_rate": 1e-3,
            "lr_warmup_steps": 1, "checkpointing_steps": 3, "validation_steps": 3, "num_validation_images": 2,
            "disc_weight": 0.1, "disc_start": 2, "use_ema": True, "mixed_precision": "no", "seed": 5}
    args.update(overrides)
    argv = []
    for key, value in args.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def test_fft_loss_sees_blur_not_position():
    """The spectrum's magnitude: a blurred copy differs, a shifted copy (same texture elsewhere) does not."""
    speckle = torch.rand(1, 1, 32, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(speckle, 3, stride=1, padding=1)
    shifted = torch.roll(speckle, shifts=(5, 11), dims=(2, 3))
    assert fft_magnitude_loss(speckle, speckle) == 0
    assert fft_magnitude_loss(shifted, speckle) < 1e-5
    assert fft_magnitude_loss(blurred, speckle) > 0.05
    assert (shifted - speckle).abs().mean() > (blurred - speckle).abs().mean()  # L1 alone prefers the blur


def test_histogram_loss_is_the_w1_of_intensities():
    """Blind to where values lie (a permutation costs 0); a brightness shift of 0.1 costs 0.1; a blur that
    keeps the mean but narrows the spread costs what sorting says, by hand for four pixels."""
    speckle = torch.rand(2, 1, 16, 32, generator=torch.Generator().manual_seed(0))
    shuffled = speckle.flatten(1)[:, torch.randperm(16 * 32, generator=torch.Generator().manual_seed(1))]
    assert histogram_loss(shuffled.reshape(speckle.shape), speckle) == 0
    assert torch.isclose(histogram_loss(speckle + 0.1, speckle), torch.tensor(0.1))
    original = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    flattened = torch.full_like(original, 1.5)  # same mean: |1.5-0| + |1.5-1| + |1.5-2| + |1.5-3| = 4, /4
    assert histogram_loss(flattened, original) == 1.0
    assert torch.nn.functional.l1_loss(flattened, original) == 1.0  # here L1 agrees; after a shuffle it would not:
    assert torch.nn.functional.l1_loss(original.flip(-1), original) > histogram_loss(original.flip(-1), original)


def test_crops_follow_the_generator_and_psnr_is_in_db():
    images = torch.arange(2 * 32 * 64, dtype=torch.float32).reshape(2, 1, 32, 64)
    a = random_crops(images, (8, 16), torch.Generator().manual_seed(1))
    assert a.shape == (2, 1, 8, 16)
    assert torch.equal(a, random_crops(images, (8, 16), torch.Generator().manual_seed(1)))
    x = torch.zeros(1, 1, 4, 4)
    assert psnr(x + 0.2, x).item() == pytest.approx(10 * np.log10(4 / 0.04))


def test_train_vae_saves_a_loadable_vae_with_grid_and_resumes_exactly(tmp_path, phantom_dir):
    full = tmp_path / "full"
    assert train_vae.main(vae_args(phantom_dir, full))["global_step"] == 6

    vae = AutoencoderKL.from_pretrained(full)  # safetensors, config with the measured scale
    assert vae.config.in_channels == vae.config.out_channels == 1 and vae.config.latent_channels == 2
    assert vae.config.scaling_factor != 1.0 and np.isfinite(vae.config.scaling_factor)
    assert "scaling_factor" in (full / "README.md").read_text()
    grid = PIL.Image.open(full / "samples" / "step_0000006.png")
    assert grid.mode == "L" and grid.size[1] == 2 * (H + 2)  # two validation scans, one per row
    state = json.loads((full / "checkpoint-6" / "training_state.json").read_text())
    assert state["global_step"] == 6 and (full / "checkpoint-6" / "unet_ema").is_dir()

    # Interrupted after step 3: only checkpoint-3 survives; resuming it ends in the same bytes.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-3", resumed / "checkpoint-3")
    shutil.copy(full / ".training_run.json", resumed / ".training_run.json")
    train_vae.main(vae_args(phantom_dir, resumed, resume_from_checkpoint="latest"))
    for name in ("model.safetensors", "model_1.safetensors"):  # the VAE and the discriminator
        a, b = load_file(full / "checkpoint-6" / name), load_file(resumed / "checkpoint-6" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a = load_file(full / "diffusion_pytorch_model.safetensors")  # EMA weights
    b = load_file(resumed / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((resumed / "config.json").read_text())["scaling_factor"] == vae.config.scaling_factor


@pytest.mark.parametrize("overrides, message", [
    ({"crop_size": "64x64"}, "--crop_size 64x64 is larger than --resolution 32x64"),
    ({"preset": "nope"}, "invalid choice"),
    ({"kl_weight": -1}, "--kl_weight must be a number >= 0"),
])
def test_bad_input_fails_before_training(tmp_path, phantom_dir, overrides, message, capsys):
    with pytest.raises((ValueError, SystemExit)) as caught:
        train_vae.main(vae_args(phantom_dir, tmp_path / "out", **overrides))
    assert message in str(caught.value) + capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoint-1").exists()


def test_speckle_statistics_tell_grain_size_and_histogram_apart():
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 256, (64, 128)).astype(np.uint8)  # grains of one pixel
    coarse = np.kron(rng.integers(0, 256, (16, 32)), np.ones((4, 4))).astype(np.uint8)  # 4x4-pixel grains
    mask = np.zeros((64, 128), bool)
    mask[16:48] = True
    same = compare(fine, fine, mask)
    assert same["psnr"] == np.inf and same["ssim"] == pytest.approx(1) and same["histogram_w1"] == 0
    assert autocorrelation_width(fine, mask, 0) < 1 < 1.5 < autocorrelation_width(coarse, mask, 0) < 3
    assert autocorrelation_width(coarse, mask, 1) == pytest.approx(autocorrelation_width(coarse, mask, 0), abs=0.5)
    darker = compare(fine, (fine // 2).astype(np.uint8), mask)
    assert darker["histogram_w1"] == pytest.approx(np.abs(fine[mask] - fine[mask] // 2).mean(), rel=0.02)
    gt = {"size": [32, 64], "surface_x": [0, 63], "ilm_y": [8, 8], "rpe_y": [16, 24]}
    retina = retina_mask(json.dumps(gt), (64, 128))  # drawn at twice the ground truth's size
    assert retina[16:33, 0].all() and not retina[15, 0] and not retina[33, 0] and retina[16:48, -1].all()


# ---- a distilled decoder: AutoencoderTiny learning a trained VAE's latents (taesd-* presets)

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A `tiny` AutoencoderKL standing in for a trained one: distillation works on any teacher."""
    from medicraft_hf.vae import build_vae

    torch.manual_seed(0)
    teacher = build_vae("tiny", (H, W))
    teacher.register_to_config(scaling_factor=0.7)
    out = tmp_path_factory.mktemp("teacher") / "vae"
    teacher.save_pretrained(out)
    return out


def tiny_args(phantom_dir, output_dir, teacher_dir, **overrides):
    return vae_args(phantom_dir, output_dir, **{"preset": "taesd-f2c2-w8", "teacher_vae": teacher_dir,
                                                "disc_weight": 0, "disc_start": None, **overrides})


def test_distilled_decoder_keeps_the_teachers_scale_decodes_its_latents_and_resumes_exactly(
        tmp_path, phantom_dir, teacher_dir):
    from diffusers import AutoencoderTiny

    full = tmp_path / "full"
    assert train_vae.main(tiny_args(phantom_dir, full, teacher_dir))["global_step"] == 6
    tiny = AutoencoderTiny.from_pretrained(full)
    assert tiny.config.scaling_factor == 0.7 and tiny.config.latent_channels == 2  # the teacher's latents
    assert "Distilled" in (full / "README.md").read_text() and "AutoencoderTiny" in (full / "README.md").read_text()

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-3", resumed / "checkpoint-3")
    shutil.copy(full / ".training_run.json", resumed / ".training_run.json")
    train_vae.main(tiny_args(phantom_dir, resumed, teacher_dir, resume_from_checkpoint="latest"))
    a, b = (load_file(d / "diffusion_pytorch_model.safetensors") for d in (full, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # It replaces its teacher in a latent pipeline: same UNet, images from the tiny decoder.
    from medicraft_hf.pipeline import OCTDiffusionPipeline
    from medicraft_hf.training.latents import load_vae
    from tests.factories import tiny_latent_pipeline

    pipe = tiny_latent_pipeline(resolution=(H, W))
    pipe = OCTDiffusionPipeline(pipe.unet, pipe.scheduler, class_names=pipe.class_names, vae=load_vae(teacher_dir))
    fast = pipe.with_vae(load_vae(full))
    assert type(fast.vae).__name__ == "AutoencoderTiny" and fast.unet is pipe.unet
    latents = torch.randn(2, 2, H // 2, W // 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(fast._decode(latents, False), fast.vae.decode(latents / 0.7).sample)
    images = fast(class_labels=["healthy", "melanoma"], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    assert images.shape == (2, H, W, 1) and np.isfinite(images).all()
    fast.save_pretrained(tmp_path / "fast-pipe")
    assert json.loads((tmp_path / "fast-pipe" / "model_index.json").read_text())["vae"] == ["diffusers",
                                                                                           "AutoencoderTiny"]
    loaded = OCTDiffusionPipeline.from_pretrained(tmp_path / "fast-pipe", use_safetensors=True)
    assert type(loaded.vae).__name__ == "AutoencoderTiny" and loaded.image_size == (H, W)


def test_a_distilled_decoder_for_other_latents_is_refused():
    from medicraft_hf.vae import build_vae
    from tests.factories import tiny_latent_pipeline

    pipe = tiny_latent_pipeline(resolution=(H, W))  # scaling factor 0.7, 2 channels, 2x
    other = build_vae("taesd-f2c2-w8")  # never distilled: scaling factor 1
    with pytest.raises(ValueError, match="distil it from this VAE"):
        pipe.with_vae(other)
    with pytest.raises(ValueError, match="no VAE to replace"):
        from tests.factories import tiny_pipeline
        tiny_pipeline(resolution=(H, W)).with_vae(other)


@pytest.mark.parametrize("overrides, message", [
    ({"teacher_vae": None}, "is distilled: give --teacher_vae"),
    ({"preset": "tiny"}, "--teacher_vae is for the taesd-* presets"),
    ({"preset": "taesd-f4c4-w16", "resolution": "32x64", "crop_size": "16x32"},
     "makes 4 latent channels at 4x per side"),
    ({"encoder_weight": -1}, "--encoder_weight must be a number >= 0"),
])
def test_bad_distillation_input_fails_before_training(tmp_path, phantom_dir, teacher_dir, overrides, message, capsys):
    with pytest.raises((ValueError, SystemExit)) as caught:
        train_vae.main(tiny_args(phantom_dir, tmp_path / "out", teacher_dir, **overrides))
    assert message in str(caught.value) + capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoint-1").exists()
