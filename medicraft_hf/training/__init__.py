"""Reusable pieces of `training/train_ddpm.py`: data, sampler, checkpoints, validation."""
