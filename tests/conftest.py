"""Test session setup: no outside hosts, a fresh HF cache, tiny shared fixtures.

Environment variables are set at import time, before any test imports
huggingface_hub / datasets / diffusers (they freeze settings at import).
"""

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="medicraft-test-hf-home-")
os.environ.update(
    {
        "HF_HOME": _HF_HOME,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
