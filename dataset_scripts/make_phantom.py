"""Make the procedural OCT phantom dataset (same as `medicraft phantom`).

    python dataset_scripts/make_phantom.py --num-patients 40 --size 256x512 --out data/phantom
"""

import sys

from medicraft_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["phantom", *sys.argv[1:]]))
