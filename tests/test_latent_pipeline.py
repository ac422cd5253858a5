"""OCTDiffusionPipeline with a VAE (latent diffusion) on a tiny real AutoencoderKL + UNet:
sizes, batch invariance, schedulers, save/load, plain diffusers, Hub round trip, bad pairs;
training/train_ddpm.py --vae on cached latents, and medicraft generate from the result."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, DiffusionPipeline, EulerDiscreteScheduler
from safetensors.torch import load_file

from medicraft_hf import cli
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.hub import push_model_folder
from medicraft_hf.models import SCHEDULERS, load_pipeline, scheduler_for
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.unet import build_unet
from medicraft_hf.vae import build_vae, check_divisible, encode
from tests.factories import save_tiny_phantom, tiny_latent_pipeline, tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]
H, W = 32, 64


@pytest.fixture(scope="module")
def pipe():
    p = tiny_latent_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def sample(pipe, labels, seeds=(0,), **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("output_type", "np")
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(class_labels=labels, generator=generators if len(generators) > 1 else generators[0], **kwargs)


def test_latent_pipeline_makes_full_size_grayscale_images(pipe):
    assert pipe.latent_size == (H // 2, W // 2) and pipe.vae_scale_factor == 2 and pipe.image_size == (H, W)
    out = sample(pipe, {"nevus": 1, "melanoma": 1}, seeds=(0, 1))
    assert out.class_labels == [1, 3] and out.images.shape == (2, H, W, 1)
    assert 0 <= out.images.min() and out.images.max() <= 1 and out.images.std() > 0
    pil = sample(pipe, "healthy", output_type="pil").images[0]
    assert pil.mode == "L" and pil.size == (W, H)


def test_decoding_uses_the_scaling_factor(pipe):
    """What the pipeline decodes is latents / scaling_factor: the VAE's own decode of the same."""
    latents = torch.randn(1, 2, H // 2, W // 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        decoded = pipe._decode(latents, one_at_a_time=False)
        expected = pipe.vae.decode(latents / 0.7).sample
    torch.testing.assert_close(decoded, expected, rtol=0, atol=0)
    pixels = torch.rand(2, 1, H, W) * 2 - 1
    with torch.no_grad():
        mean = pipe.vae.encode(pixels).latent_dist.mean
    torch.testing.assert_close(encode(pipe.vae, pixels), mean * 0.7)


def test_batch_invariant_sampling_holds_with_a_vae(pipe):
    """Each image's bytes are independent of the batch it is in and of the thread count."""
    one = [sample(pipe, [label], seeds=(seed,), batch_invariant=True).images[0]
           for label, seed in ((1, 10), (3, 11), (0, 12))]
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            batch = sample(pipe, [1, 3, 0], seeds=(10, 11, 12), batch_invariant=True).images
            for i in range(3):
                np.testing.assert_array_equal(batch[i], one[i])
    finally:
        torch.set_num_threads(threads)


def test_guidance_and_every_scheduler_work_in_latent_space(pipe):
    guided = sample(pipe, [2], guidance_scale=3.0).images
    assert not np.array_equal(guided, sample(pipe, [2]).images)
    for name in SCHEDULERS:
        scheduler = scheduler_for(pipe, name)
        # Latents are not images in [-1, 1]: thresholding them there would clip them.
        assert not scheduler.config.get("thresholding", False), name
        out = sample(pipe.with_scheduler(scheduler), [0, 1], seeds=(0, 1), num_inference_steps=3).images
        assert out.shape == (2, H, W, 1) and np.isfinite(out).all(), name
    for cls in (DDIMScheduler, EulerDiscreteScheduler):  # any diffusers scheduler, by from_config
        out = sample(pipe.with_scheduler(cls.from_config(pipe.scheduler.config)), [0]).images
        assert np.isfinite(out).all()
    assert pipe.with_scheduler(DDPMScheduler()).vae is pipe.vae
    assert scheduler_for(tiny_pipeline(), "unipc").config.thresholding  # pixel models keep it


def test_save_and_load_round_trip_keeps_the_vae(tmp_path, pipe, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe.save_pretrained(tmp_path, safe_serialization=True)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_pipeline(tmp_path)
    assert loaded.vae.config.scaling_factor == 0.7 and loaded.image_size == (H, W)
    # load_pipeline's scheduler swap knows the model is latent.
    assert not load_pipeline(tmp_path, scheduler="sde-dpmsolver++").scheduler.config.thresholding
    np.testing.assert_allclose(sample(loaded, [0, 3], seeds=(0, 1)).images, sample(pipe, [0, 3], seeds=(0, 1)).images,
                               rtol=0, atol=1e-5)


def test_a_pixel_model_saves_without_a_vae_and_loads_as_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_pipeline().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text()).get("vae", [None])[0] is None
    loaded = load_pipeline(tmp_path)
    assert loaded.vae is None and loaded.vae_scale_factor == 1 and loaded.image_size == loaded.latent_size == (H, W)


def test_plain_diffusers_loads_a_latent_model_without_medicraft(tmp_path, pipe):
    model_dir = tmp_path / "model"
    pipe.save_pretrained(model_dir)
    np.save(tmp_path / "expected.npy", sample(pipe, {"nevus": 1}).images)
    site_packages = sysconfig.get_paths()["purelib"]
    code = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.append({site_packages!r})
        assert importlib.util.find_spec("medicraft_hf") is None, "medicraft_hf is importable"
        import numpy as np, torch
        from diffusers import DiffusionPipeline
        pipe = DiffusionPipeline.from_pretrained({str(model_dir)!r}, custom_pipeline={str(model_dir)!r},
                                                 trust_remote_code=True, use_safetensors=True)
        assert type(pipe.vae).__name__ == "AutoencoderKL"
        pipe.set_progress_bar_config(disable=True)
        out = pipe(class_labels={{"nevus": 1}}, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                   output_type="np")
        np.testing.assert_allclose(out.images, np.load({str(tmp_path / "expected.npy")!r}), rtol=0, atol=1e-5)
        print("OK", out.images.shape)
    """)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
                                 "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK (1, {H}, {W}, 1)" in result.stdout


def test_hub_push_round_trip_of_a_latent_model(hub, tmp_path, pipe):
    folder = tmp_path / "pipe"
    pipe.save_pretrained(folder)
    repo_id = hub.repo_id("oct-ldm")
    push_model_folder(folder, repo_id, retry_wait=0)
    assert "vae/diffusion_pytorch_model.safetensors" in hub.files(repo_id)
    remote = OCTDiffusionPipeline.from_pretrained(repo_id)
    for key, value in pipe.vae.state_dict().items():
        assert torch.equal(remote.vae.state_dict()[key], value), key
    plain = DiffusionPipeline.from_pretrained(repo_id, custom_pipeline=repo_id, trust_remote_code=True)
    for loaded in (remote, plain):
        loaded.set_progress_bar_config(disable=True)
        np.testing.assert_array_equal(sample(loaded, ["melanoma"]).images, sample(pipe, ["melanoma"]).images)


def test_a_vae_and_unet_that_disagree_fail_when_put_together():
    vae = build_vae("tiny", (H, W))
    with pytest.raises(ValueError, match="1 input and 1 output channel.*needs its vae"):
        OCTDiffusionPipeline(build_unet(4, preset="tiny", channels=2), DDPMScheduler())
    with pytest.raises(ValueError, match="3 input and 3 output channels, the VAE's latents 2"):
        OCTDiffusionPipeline(build_unet(4, preset="tiny", channels=3), DDPMScheduler(), vae=vae)
    rgb = build_vae("tiny")
    rgb.register_to_config(in_channels=3)
    with pytest.raises(ValueError, match="1 image channel"):
        OCTDiffusionPipeline(build_unet(4, preset="tiny", channels=2), DDPMScheduler(), vae=rgb)
    assert check_divisible("32x64", vae) == (16, 32)
    # Sizes are multiples of 8 (parse_resolution), so only a factor above 8 can fail to divide one.
    deep = AutoencoderKL(in_channels=1, out_channels=1, block_out_channels=(8,) * 5, norm_num_groups=8,
                         down_block_types=("DownEncoderBlock2D",) * 5, up_block_types=("UpDecoderBlock2D",) * 5)
    with pytest.raises(ValueError, match=r"40x64 is not divisible by the VAE's factor 16.*32x64"):
        check_divisible("40x64", deep)


# ------------------------------------------------------------------ training on latents
def load_train_ddpm():
    spec = importlib.util.spec_from_file_location("train_ddpm", ROOT / "training" / "train_ddpm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ddpm_argv(dataset, vae_dir, output_dir, **overrides):
    args = {"dataset_name": dataset, "vae": vae_dir, "output_dir": output_dir, "preset": "tiny",
            "resolution": f"{H}x{W}", "train_batch_size": 2, "max_train_steps": 4, "learning_rate": 1e-3,
            "lr_warmup_steps": 1, "checkpointing_steps": 2, "validation_steps": 4, "num_validation_images": 1,
            "validation_inference_steps": 2, "class_balanced": True, "mixed_precision": "no", "report_to": "none",
            "seed": 3}
    args.update(overrides)
    argv = []
    for key, value in args.items():
        argv += [f"--{key}"] if value is True else [f"--{key}", str(value)] if value is not None else []
    return argv


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, pipe):
    """A VAE folder (the tiny pipeline's, scaling 0.7), the tiny phantom, and a 4-step latent run."""
    root = tmp_path_factory.mktemp("latent-run")
    pipe.vae.save_pretrained(root / "vae")
    dataset = save_tiny_phantom(root / "phantom", size=(H, W))
    train_ddpm = load_train_ddpm()
    train_ddpm.main(ddpm_argv(dataset, root / "vae", root / "run"))
    return root, dataset, train_ddpm


def test_train_ddpm_on_cached_latents_saves_a_latent_pipeline_and_resumes_exactly(latent_run, capsys):
    root, dataset, train_ddpm = latent_run
    run = root / "run"
    saved = load_pipeline(run)
    assert saved.vae is not None and saved.vae.config.scaling_factor == 0.7
    assert saved.unet.config.in_channels == 2 and saved.latent_size == (H // 2, W // 2) and saved.image_size == (H, W)
    assert "_name_or_path" not in json.loads((run / "vae" / "config.json").read_text())  # no local path shipped
    (cache,) = (run / ".latents").glob("latents-*.safetensors")  # encoded once
    latents = load_file(cache)["latents"]
    assert latents.shape[1:] == (2, H // 2, W // 2)
    # The cache holds the scaled posterior means of the training images, in dataset order.
    first = load_oct_dataset(str(dataset))["train"][0]["image"]
    pixels = torch.from_numpy(np.asarray(first, dtype=np.float32) / 127.5 - 1)[None, None]
    torch.testing.assert_close(latents[:1], encode(saved.vae, pixels))

    # Interrupted after step 2, without its cache: resuming re-encodes it and ends in the same weights.
    resumed = root / "resumed"
    resumed.mkdir()
    shutil.copytree(run / "checkpoint-2", resumed / "checkpoint-2")
    shutil.copy(run / ".training_run.json", resumed / ".training_run.json")
    train_ddpm.main(ddpm_argv(dataset, root / "vae", resumed, resume_from_checkpoint="latest"))
    a, b = load_file(run / "checkpoint-4" / "model.safetensors"), load_file(resumed / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(load_file(next((resumed / ".latents").glob("*.safetensors")))["latents"], latents)


def test_medicraft_generate_makes_images_from_a_latent_pipeline(latent_run, tmp_path):
    root, _, _ = latent_run
    assert cli.main(["generate", "--model", str(root / "run"), "--out", str(tmp_path / "synthetic"),
                     "--per-class", "2", "--steps", "2"]) == 0
    ds = load_oct_dataset(str(tmp_path / "synthetic"))["train"]
    assert len(ds) == 4 and {im.size for im in ds["image"]} == {(W, H)}
    assert ds[0]["model_revision"].startswith("sha256:")


def test_latent_training_refuses_mismatched_models_before_work(latent_run, tmp_path):
    root, dataset, train_ddpm = latent_run
    pixel_model = tmp_path / "pixel"
    tiny_pipeline(class_names=["healthy", "nevus"]).save_pretrained(pixel_model)
    with pytest.raises(ValueError, match="1 input and 1 output channels, the VAE's latents 2"):
        train_ddpm.main(ddpm_argv(dataset, root / "vae", tmp_path / "out", init_from=pixel_model))
    with pytest.raises(FileNotFoundError, match="holds no AutoencoderKL"):
        train_ddpm.main(ddpm_argv(dataset, tmp_path, tmp_path / "out2"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
