"""Golden test: the shipped demo model's output for fixed seeds is pinned.

A change to the sampler, the scheduler or its config, the pipeline's maths (guidance, scaling,
output conversion) or the demo weights moves these numbers and fails the test; float noise
between CPUs and thread counts does not.

How the tolerances were chosen (measured on x86-64 AVX2, torch 2.13, diffusers 0.42; pixels in [0, 1]):
  * the same run with 1 or 2 threads: bit-identical; batch_invariant=False (oneDNN on),
    ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE, MKL_ENABLE_INSTRUCTIONS=SSE4_2 (alone and
    combined): at most 3e-6 on any pixel and 5e-8 on a mean or std. Diffusion amplifies little:
    multiplying every weight by (1 + 1e-5 * N(0, 1)) moves a pixel by at most 8e-5.
  * maths changes move the pinned slice (S, largest change) and the per-image mean/std (M) by:
    guidance 1.0 -> 1.5 S 0.23, M 7e-3; 1.0 -> 1.1 S 7e-2, M 1.4e-3; one more or one fewer step
    S 0.22, M 1.1e-2; another scheduler (dpmsolver++, ddim, unipc) S >= 0.35, M >= 9e-3;
    thresholding off S 4.8e-3, M 4.4e-4; timestep_spacing "trailing" S 4.3e-3, M 7.5e-4;
    final_sigmas_type "sigma_min" S 7.2e-3; the UNet's last conv scaled by 1.001 S 1.3e-3, M 2.8e-4.
So PIXEL_ATOL = 1e-3 (a quarter of a grey level, 300x the CPU noise) and STAT_ATOL = 1e-4
(2000x the CPU noise) hold across CPUs and still catch each of those changes. (AVX-512 and
aarch64 were not at hand to measure: the kernel variants above stand in for them.)

Regenerate the constants only when the demo model or the sampling maths change on purpose (a new
demo model, a deliberate sampler fix), never to make a failure on another CPU go away (that would
be a 300x jump in float noise: find its cause). From the repository root run
`.venv/bin/python -m tests.test_golden`; it prints them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

STEPS = 4
SEEDS = (0, 1, 2, 3)  # image i is class i (one per class), from torch.Generator().manual_seed(SEEDS[i])
ROW, COLUMNS = 36, slice(None, None, 16)  # a row through the retina, every 16th column
PIXEL_ATOL = 1e-3
STAT_ATOL = 1e-4

# Produced by `python -m tests.test_golden` (the `sample()` below) on x86-64 AVX2, torch 2.13.0,
# diffusers 0.42.1, with the demo model of commit ef0fc71.
EXPECTED_SLICE = [
    [0.397527, 0.633302, 0.386606, 0.430551, 0.375218, 0.51341, 0.355033, 0.439914],
    [0.531674, 0.549397, 0.688932, 0.3461, 0.424263, 0.565753, 0.506001, 0.654634],
    [0.353163, 0.54375, 0.481282, 0.590211, 0.508355, 0.571051, 0.423064, 0.409199],
    [0.485824, 0.688229, 0.349109, 0.621502, 0.238332, 0.262654, 0.529121, 0.677921],
]
EXPECTED_MEAN = [0.163372, 0.183997, 0.191533, 0.170985]
EXPECTED_STD = [0.15096, 0.168391, 0.168936, 0.154896]


def sample() -> np.ndarray:
    """The demo model's images (N, H, W) for the pinned settings."""
    from medicraft_hf.models import load_pipeline

    pipe = load_pipeline()  # the demo model shipped in medicraft_hf/demo_model, with its own scheduler
    out = pipe(class_labels=None, num_inference_steps=STEPS, guidance_scale=1.0,
               generator=[torch.Generator().manual_seed(s) for s in SEEDS], output_type="np", batch_invariant=True)
    assert out.class_labels == [0, 1, 2, 3]
    return out.images[..., 0]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return sample()


def test_demo_model_output_is_pinned(images):
    assert images.shape == (4, 64, 128) and images.dtype == np.float32
    hint = "the demo model's output moved: see tests/test_golden.py's docstring before regenerating"
    np.testing.assert_allclose(images[:, ROW, COLUMNS], EXPECTED_SLICE, rtol=0, atol=PIXEL_ATOL, err_msg=hint)
    np.testing.assert_allclose(images.mean(axis=(1, 2)), EXPECTED_MEAN, rtol=0, atol=STAT_ATOL, err_msg=hint)
    np.testing.assert_allclose(images.std(axis=(1, 2)), EXPECTED_STD, rtol=0, atol=STAT_ATOL, err_msg=hint)


if __name__ == "__main__":
    x = sample()
    print("EXPECTED_SLICE =", np.round(x[:, ROW, COLUMNS].astype(float), 6).tolist())
    print("EXPECTED_MEAN =", np.round(x.mean(axis=(1, 2)).astype(float), 6).tolist())
    print("EXPECTED_STD =", np.round(x.std(axis=(1, 2)).astype(float), 6).tolist())
