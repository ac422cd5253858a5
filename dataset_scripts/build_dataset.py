"""Build an OCT dataset from class folders, Kermany OCT2017, a CSV manifest or vendor files.

Same as `medicraft build` (all options: `python dataset_scripts/build_dataset.py --help`), e.g.

    python dataset_scripts/build_dataset.py ~/data/OCT2017 --from kermany --out data/kermany --size 256x512
    medicraft push data/kermany my-org/kermany-oct     # private by default
"""

import sys

from medicraft_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
