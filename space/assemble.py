"""Assemble the folder to upload as a Hugging Face Space: the app, its card and requirements,
and a copy of the medicraft_hf package (with the embedded demo model).

A Space installs `requirements.txt` before its files are in place, so the library cannot
be installed from a local path there; a copy beside app.py is imported instead (Python
puts the app's folder first on sys.path). Usage:

    python space/assemble.py build/space
    hf upload <namespace>/<space-name> build/space --repo-type space --private
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from medicraft_hf.io import atomic_path

SPACE_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = SPACE_DIR.parent / "medicraft_hf"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")


def assemble_space(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the Space folder to `out_dir` atomically and return it."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder or pass --overwrite.")
    if not (PACKAGE_DIR / "demo_model" / "model_index.json").is_file():
        print(f"note: no demo model in {PACKAGE_DIR / 'demo_model'}; set MEDICRAFT_MODEL in the Space's variables.")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name in SPACE_FILES:
            shutil.copy2(SPACE_DIR / name, tmp / name)
        shutil.copytree(PACKAGE_DIR, tmp / "medicraft_hf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write (upload it as the Space repository)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir")
    args = parser.parse_args(argv)
    print(f"Space folder ready: {assemble_space(args.out_dir, overwrite=args.overwrite)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
