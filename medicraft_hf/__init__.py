"""medicraft-hf: class-conditional diffusion for OCT B-scans on the Hugging Face stack."""

from medicraft_hf.schema import CLASS_NAMES, DEFAULT_SIZE, oct_features

__version__ = "0.1.0"

__all__ = ["CLASS_NAMES", "DEFAULT_SIZE", "oct_features", "__version__"]
