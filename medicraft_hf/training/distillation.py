"""Consistency distillation of a class-conditional pixel DDPM into a 1-4-step generator.

The student learns the teacher's probability-flow ODE in the latent-consistency-model (LCM)
form (Luo et al. 2023; diffusers' `examples/consistency_distillation` does it for latent text
models): from a noisy image at a timestep `t` of a coarse grid of `num_ddim_timesteps`, the
student's clean-image estimate must equal the (EMA) target's estimate one DDIM step of the
teacher later, at `t - k`. The boundary scalings are `LCMScheduler`'s own, and the grid is the
one `LCMScheduler.set_timesteps` samples from, so training and sampling agree by construction.

Classifier-free guidance is distilled in at a fixed teacher scale (`guidance_scale`; 1.0, the
project's default, needs one teacher call per step). Labels are dropped to the null class as
in training, so the student keeps an unconditional mode too. `UNet2DModel` has no
guidance-embedding input (`time_cond_proj_dim` is `UNet2DConditionModel`'s), so a w-embedding
would need another model class.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from diffusers import LCMScheduler

# Pixel models clip clean-image estimates to the image range: the teacher's DPM-Solver++
# thresholds the same way (medicraft_hf.models), and without it early steps saturate.
_CLIP = {"clip_sample": True, "clip_sample_range": 1.0, "thresholding": False}


def few_step_scheduler(teacher_scheduler_config, num_ddim_timesteps: int, latent: bool = False) -> LCMScheduler:
    """The sampler a distilled model ships with: the teacher's noise schedule, LCM steps.

    `latent=True` (a teacher with a VAE): no clipping, latents are not images in [-1, 1]."""
    # Only LCMScheduler's own settings: the teacher's solver options would be saved along and
    # warned about at every load.
    known = inspect.signature(LCMScheduler.__init__).parameters
    config = {k: v for k, v in dict(teacher_scheduler_config).items() if k in known}
    clip = {**_CLIP, "clip_sample": False} if latent else _CLIP
    return LCMScheduler.from_config(config, original_inference_steps=num_ddim_timesteps, set_alpha_to_one=True,
                                    **clip)


class ConsistencyDistiller:
    """The pieces of one distillation step; tensors stay on the device of `alphas_cumprod`.

    Args:
        scheduler: the student's `LCMScheduler` (noise schedule, prediction type, scalings).
        num_ddim_timesteps: the teacher's ODE solver grid (`original_inference_steps`).
        guidance_scale: the teacher's classifier-free guidance, distilled into the student.
        null_class_id: the label of the unconditional embedding.
        clip_x0: clip the teacher's clean estimates to [-1, 1] (pixels; not for latents).
    """

    def __init__(self, scheduler: LCMScheduler, null_class_id: int, guidance_scale: float = 1.0,
                 loss_type: str = "huber", huber_c: float = 0.001, clip_x0: bool = True):
        if loss_type not in ("huber", "l2"):
            raise ValueError(f"loss_type must be 'huber' or 'l2', got {loss_type!r}.")
        num_train = scheduler.config.num_train_timesteps
        num_ddim = scheduler.config.original_inference_steps
        if not 1 <= num_ddim <= num_train:
            raise ValueError(f"num_ddim_timesteps must be in 1..{num_train}, got {num_ddim}.")
        self.scheduler = scheduler
        self.prediction_type = scheduler.config.prediction_type
        self.alphas_cumprod = scheduler.alphas_cumprod.float()
        self.skip = num_train // num_ddim  # k: the teacher's DDIM step, in training timesteps
        # The LCM grid: k-1, 2k-1, ..., num_ddim*k-1 (LCMScheduler.set_timesteps samples from it).
        self.grid = torch.arange(1, num_ddim + 1) * self.skip - 1
        self.null_class_id = null_class_id
        self.guidance_scale = float(guidance_scale)
        self.loss_type = loss_type
        self.huber_c = huber_c
        self.clip_x0 = clip_x0

    def to(self, device) -> ConsistencyDistiller:
        self.alphas_cumprod = self.alphas_cumprod.to(device)
        self.grid = self.grid.to(device)
        return self

    def _alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[t].view(-1, 1, 1, 1)

    def clean_estimate(self, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 from a model output of the scheduler's prediction type."""
        alpha = self._alpha(t)
        if self.prediction_type == "epsilon":
            return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
        if self.prediction_type == "v_prediction":
            return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
        if self.prediction_type == "sample":
            return model_output
        raise ValueError(f"Unsupported prediction_type {self.prediction_type!r}.")

    def consistency(self, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The consistency function f(x, t) = c_skip(t) x + c_out(t) x0(x, t), as `LCMScheduler.step`."""
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition_discrete(t.float())
        return c_skip.view(-1, 1, 1, 1) * sample + c_out.view(-1, 1, 1, 1) * self.clean_estimate(
            model_output, sample, t)

    def draw(self, clean: torch.Tensor, generator: torch.Generator):
        """Noise and grid positions for a batch, from `generator` (CPU; saved in checkpoints)."""
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)
        index = torch.randint(0, len(self.grid), (clean.shape[0],), generator=generator).to(clean.device)
        return noise, index

    def timesteps(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, t - k) for grid positions; t - k is 0 at the first position (the boundary)."""
        start = self.grid[index]
        return start, (start - self.skip).clamp(min=0)

    def noisy(self, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = self._alpha(t)
        return alpha.sqrt() * clean + (1 - alpha).sqrt() * noise

    @torch.no_grad()
    def teacher_step(self, teacher, sample: torch.Tensor, t: torch.Tensor, prev_t: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
        """One DDIM (probability-flow ODE) step of the guided teacher from t to prev_t."""
        if self.guidance_scale == 1.0:
            output = teacher(sample, t, class_labels=labels).sample
        else:
            both = teacher(torch.cat([sample, sample]), torch.cat([t, t]),
                           class_labels=torch.cat([labels, torch.full_like(labels, self.null_class_id)])).sample
            cond, uncond = both.chunk(2)
            output = uncond + self.guidance_scale * (cond - uncond)
        x0 = self.clean_estimate(output.float(), sample, t)
        if self.clip_x0:
            x0 = x0.clamp(-1, 1)
        alpha, alpha_prev = self._alpha(t), self._alpha(prev_t)
        # The noise direction that goes with the clipped x0 (DPM-Solver++ data prediction does the same).
        eps = (sample - alpha.sqrt() * x0) / (1 - alpha).sqrt()
        return alpha_prev.sqrt() * x0 + (1 - alpha_prev).sqrt() * eps

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_type == "l2":
            return F.mse_loss(prediction.float(), target.float())
        # Pseudo-Huber, as the LCM distillation script: robust to a few large per-pixel errors.
        return torch.mean(torch.sqrt((prediction.float() - target.float()) ** 2 + self.huber_c ** 2) - self.huber_c)
