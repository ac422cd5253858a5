"""Push a saved dataset folder or a pipeline folder to the Hugging Face Hub (private by default).

Same as `medicraft push` (all options: `python dataset_scripts/push_to_hub.py --help`), e.g.

    python dataset_scripts/push_to_hub.py data/oct-phantom my-org/oct-phantom
    python dataset_scripts/push_to_hub.py runs/ddpm/pipeline my-org/oct-ddpm --public

then `datasets.load_dataset("my-org/oct-phantom")` or
`OCTDiffusionPipeline.from_pretrained("my-org/oct-ddpm")`.
"""

import sys

from medicraft_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
