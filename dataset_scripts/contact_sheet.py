"""Contact sheet of the phantom: every class (3 planes each) and every defect.

    python dataset_scripts/contact_sheet.py --size 256x512 --out docs/phantom_contact_sheet.png
"""

import argparse

from medicraft_hf.data.phantom import DEFECTS, contact_sheet
from medicraft_hf.io import atomic_path
from medicraft_hf.parsing import parse_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x512", help="HxW of each B-scan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-defects", action="store_true", help="classes only")
    parser.add_argument("--out", default="docs/phantom_contact_sheet.png")
    args = parser.parse_args()
    sheet = contact_sheet(parse_size(args.size, "--size"), seed=args.seed, defects=() if args.no_defects else DEFECTS)
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
