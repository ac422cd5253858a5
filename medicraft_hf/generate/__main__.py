"""`python -m medicraft_hf.generate ...` (e.g. under `accelerate launch -m`) = `medicraft generate ...`."""

import sys

from medicraft_hf.cli import main

sys.exit(main(["generate", *sys.argv[1:]]))
