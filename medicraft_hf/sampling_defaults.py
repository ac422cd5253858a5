"""Sampling defaults and sampler names: plain constants, importable without torch/diffusers.

The CLI builds its parsers from these (so `medicraft --help` starts in a second), and
`medicraft_hf.models` / `medicraft_hf.generate` use the same values.
"""

# Sampler names `make_scheduler` understands. The fast default is DPM-Solver++ in its
# stochastic (SDE) form: see `medicraft_hf.models.SCHEDULERS` for why.
SCHEDULER_NAMES = ("sde-dpmsolver++", "dpmsolver++", "unipc", "ddim", "ddpm", "lcm")
DEFAULT_SCHEDULER = "sde-dpmsolver++"

# 20 steps: 50x fewer UNet calls than the original project's 1000-step DDPM
# (benchmarks/bench_sampling.py measures the speed-up).
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE_SCALE = 1.0  # plain conditional sampling; > 1 follows the class more strongly
DEFAULT_BATCH_SIZE = 8
DEFAULT_ANATOMY_THRESHOLD = 0.5
FLUSH_EVERY = 64  # images per working shard: what a kill can cost at most, per process
# A consistency-distilled model (training/distill.py, LCMScheduler) samples in 1-4 steps; 4 by default.
FEW_STEP_DEFAULT_STEPS = 4
