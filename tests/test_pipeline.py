"""OCTDiffusionPipeline: labels, guidance, output types, save/load, scheduler swap, plain diffusers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
import textwrap

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.schema import CLASS_NAMES
from tests.factories import save_tiny_pipeline, tiny_pipeline

H, W = 32, 64


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def sample(pipe, labels, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("output_type", "np")
    return pipe(class_labels=labels, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_labels_as_names_ids_lists_and_counts(pipe):
    assert sample(pipe, "melanoma").class_labels == [3]
    assert sample(pipe, 1).class_labels == [1]
    assert sample(pipe, ["healthy", 2, "1"]).class_labels == [0, 2, 1]
    out = sample(pipe, {"nevus": 2, "melanoma": 1, "healthy": 0})
    assert out.class_labels == [1, 1, 3]
    assert out.images.shape == (3, H, W, 1)
    assert sample(pipe, None).class_labels == [0, 1, 2, 3]  # one per class
    assert pipe.null_class_id == len(CLASS_NAMES) == pipe.unet.config.num_class_embeds - 1


def test_labels_as_torch_tensors_and_numpy_arrays(pipe):
    """A 0-dim tensor or array is one label, a 1-dim one a list of labels."""
    assert sample(pipe, torch.tensor([0, 3])).class_labels == [0, 3]
    assert sample(pipe, torch.tensor(2)).class_labels == [2]
    assert sample(pipe, torch.tensor([1, 1], dtype=torch.int32)).class_labels == [1, 1]
    assert sample(pipe, np.array([1, 3])).class_labels == [1, 3]
    assert sample(pipe, np.array(["nevus", "melanoma"])).class_labels == [1, 3]
    assert sample(pipe, np.int64(3)).class_labels == [3]
    np.testing.assert_array_equal(sample(pipe, torch.tensor([1, 3])).images, sample(pipe, [1, 3]).images)
    for bad, message in [(torch.tensor([[0, 1]]), "0- or 1-dimensional"), (torch.tensor([0.0]), "name or an id"),
                         (torch.tensor(True), "name or an id"), (torch.tensor([4]), "out of range"),
                         (torch.tensor([], dtype=torch.long), "No images requested")]:
        with pytest.raises(ValueError, match=message):
            pipe(class_labels=bad, num_inference_steps=1)


def test_same_labels_by_name_or_id_give_the_same_images(pipe):
    by_name = sample(pipe, ["nevus", "melanoma"]).images
    by_id = sample(pipe, [1, 3]).images
    np.testing.assert_array_equal(by_name, by_id)


def test_output_types_are_grayscale_and_rectangular(pipe):
    pil = sample(pipe, [0, 1], output_type="pil").images
    assert [im.size for im in pil] == [(W, H)] * 2 and {im.mode for im in pil} == {"L"}
    arr = sample(pipe, [0, 1], output_type="np").images
    assert arr.shape == (2, H, W, 1) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    pt = sample(pipe, [0, 1], output_type="pt").images
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 1, H, W)
    np.testing.assert_allclose(pt.permute(0, 2, 3, 1).numpy(), arr)
    np.testing.assert_array_equal(np.asarray(pil[0]), np.round(arr[0, ..., 0] * 255).astype(np.uint8))


def test_seed_reproducible_and_per_image_generators(pipe):
    a = sample(pipe, [0, 1], seed=3).images
    np.testing.assert_array_equal(a, sample(pipe, [0, 1], seed=3).images)
    assert not np.array_equal(a, sample(pipe, [0, 1], seed=4).images)
    # One generator per image: an image does not depend on what else is in the batch.
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    both = pipe(class_labels=[0, 2], generator=gens([7, 8]), num_inference_steps=2, output_type="np").images
    alone = pipe(class_labels=[2], generator=gens([8]), num_inference_steps=2, output_type="np").images
    np.testing.assert_allclose(both[1], alone[0], atol=1e-5)


def test_classifier_free_guidance_uses_the_null_class(pipe):
    plain = sample(pipe, ["nevus"], guidance_scale=1.0).images
    guided = sample(pipe, ["nevus"], guidance_scale=3.0).images
    assert not np.allclose(plain, guided)
    # guidance_scale = 0 is pure unconditional: the null class, whatever the label asked.
    uncond_a = sample(pipe, ["nevus"], guidance_scale=0.0).images
    uncond_b = sample(pipe, ["melanoma"], guidance_scale=0.0).images
    np.testing.assert_allclose(uncond_a, uncond_b, atol=1e-6)
    # ... and exactly the null class's own denoising, done here step by step with the same noise.
    generator = torch.Generator().manual_seed(0)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    x = randn_tensor((1, 1, H, W), generator=generator) * scheduler.init_noise_sigma
    scheduler.set_timesteps(2)
    null = torch.tensor([pipe.null_class_id])
    assert pipe.null_class_id == pipe.unet.config.num_class_embeds - 1  # the last embedding, kept for CFG
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = pipe.unet(scheduler.scale_model_input(x, t), t, class_labels=null).sample
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
    null_image = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(uncond_a, null_image, rtol=0, atol=1e-5)
    # The null class is none of the real classes (the UNet's embeddings differ even untrained).
    for real in range(len(pipe.class_names)):
        assert np.abs(sample(pipe, [real]).images - null_image).max() > 1e-3, pipe.class_names[real]


def test_save_and_from_pretrained_round_trip_offline(tmp_path, pipe, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "pipeline.py").is_file()
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert "class_names" in json.loads((tmp_path / "model_index.json").read_text())
    loaded = OCTDiffusionPipeline.from_pretrained(tmp_path, use_safetensors=True)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.class_names == list(CLASS_NAMES) and loaded.image_size == (H, W)
    # CPU kernels may split reductions by the threads free at the time (MKL/oneDNN): last-bit noise only.
    np.testing.assert_allclose(sample(pipe, [0, 3]).images, sample(loaded, [0, 3]).images, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler,
                                           EulerDiscreteScheduler, DDPMScheduler])
def test_schedulers_swap_via_from_config(pipe, scheduler_cls):
    swapped = OCTDiffusionPipeline(unet=pipe.unet, scheduler=scheduler_cls.from_config(pipe.scheduler.config),
                                   class_names=pipe.class_names)
    swapped.set_progress_bar_config(disable=True)
    out = sample(swapped, [0, 1], num_inference_steps=3).images
    assert out.shape == (2, H, W, 1) and np.isfinite(out).all()
    np.testing.assert_allclose(out, sample(swapped, [0, 1], num_inference_steps=3).images, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_labels": "drusen"}, "Unknown class 'drusen'"),
        ({"class_labels": 4}, "out of range"),
        ({"class_labels": {"nevus": -1}}, "non-negative integer"),
        ({"class_labels": {"nevus": 0}}, "No images requested"),
        ({"class_labels": [0, 1], "generator": [torch.Generator()]}, "one per image"),
        ({"class_labels": 0, "output_type": "jpg"}, "output_type"),
        ({"class_labels": 0, "num_inference_steps": 0}, "num_inference_steps"),
        ({"class_labels": 0, "guidance_scale": -1.0}, "guidance_scale"),
        ({"class_labels": 0, "latents": torch.zeros(1, 1, 8, 8)}, "latents have shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs)


def test_unet_and_class_names_must_match():
    unet = tiny_pipeline().unet
    with pytest.raises(ValueError, match="do not match"):
        OCTDiffusionPipeline(unet, DDPMScheduler(), class_names=["a", "b"])


def test_plain_diffusers_loads_saved_model_without_medicraft(tmp_path, pipe):
    """A saved model loads through diffusers' custom-pipeline mechanism with medicraft_hf absent."""
    model_dir = save_tiny_pipeline(tmp_path / "model")
    expected = sample(pipe, {"nevus": 1, "melanoma": 1}).images
    np.save(tmp_path / "expected.npy", expected)
    site_packages = sysconfig.get_paths()["purelib"]
    # -I -S: no repo on sys.path and no .pth files, so the editable install of medicraft_hf is invisible.
    code = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.append({site_packages!r})
        assert importlib.util.find_spec("medicraft_hf") is None, "medicraft_hf is importable"
        import numpy as np, torch
        from diffusers import DiffusionPipeline
        pipe = DiffusionPipeline.from_pretrained({str(model_dir)!r}, custom_pipeline={str(model_dir)!r},
                                                 trust_remote_code=True, use_safetensors=True)
        assert type(pipe).__name__ == "OCTDiffusionPipeline" and "medicraft" not in type(pipe).__module__
        pipe.set_progress_bar_config(disable=True)
        out = pipe(class_labels={{"nevus": 1, "melanoma": 1}}, num_inference_steps=2,
                   generator=torch.Generator().manual_seed(0), output_type="np")
        np.testing.assert_allclose(out.images, np.load({str(tmp_path / "expected.npy")!r}), rtol=0, atol=1e-5)
        print("OK", type(pipe).__module__, out.class_labels)
    """)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
                                 "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout and "[1, 3]" in result.stdout


def test_pil_images_decode_back_to_the_same_pixels(pipe):
    """The PIL output, stored as datasets store it (PNG bytes), decodes to the float output rounded to 8 bits."""
    labels = ["healthy", "melanoma"]
    floats = sample(pipe, labels, output_type="np").images
    feature = datasets.Image()
    for i, image in enumerate(sample(pipe, labels, output_type="pil").images):
        stored = feature.encode_example(image)["bytes"]
        assert stored.startswith(b"\x89PNG"), "8-bit grayscale images are stored as lossless PNG"
        decoded = np.asarray(PIL.Image.open(io.BytesIO(stored)))
        assert decoded.dtype == np.uint8 and decoded.shape == (H, W)
        np.testing.assert_array_equal(decoded, np.round(floats[i, ..., 0] * 255).astype(np.uint8))


def test_sampling_defaults_live_once():
    """pipeline.py imports no medicraft_hf module (it is copied beside every model), so its
    default step count is written there too: this keeps the two equal."""
    import inspect

    from medicraft_hf import pipeline, sampling_defaults

    assert pipeline.DEFAULT_STEPS == sampling_defaults.DEFAULT_STEPS
    call = inspect.signature(pipeline.OCTDiffusionPipeline.__call__).parameters
    assert call["num_inference_steps"].default == sampling_defaults.DEFAULT_STEPS
    assert call["guidance_scale"].default == sampling_defaults.DEFAULT_GUIDANCE_SCALE
