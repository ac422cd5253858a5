"""medicraft-hf: class-conditional diffusion for OCT B-scans on the Hugging Face stack."""

import os

# MKL's strict reproducible mode: its matrix products then give the same bits whatever the
# thread count and memory alignment, on one CPU type (Intel's "conditional numerical
# reproducibility"). MKL reads this once, at its first call, so it is set before anything
# here imports torch; a value the user set is kept. Generated datasets rely on it.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from medicraft_hf.schema import CLASS_NAMES, DEFAULT_SIZE, oct_features  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CLASS_NAMES", "DEFAULT_SIZE", "oct_features", "__version__"]
