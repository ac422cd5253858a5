"""Hugging Face cards (README.md with YAML metadata) for OCT datasets and models."""
