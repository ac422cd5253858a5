"""Check the anatomical plausibility of OCT B-scans (a dataset, an image folder or one image).

Each image gets a verdict (ok / doubled_fovea / no_fovea / hypoplastic_fovea / corrupted),
a plausibility score in [0, 1] and its measurements (pits, contrast, continuity). Writes
`anatomy.csv` (one row per image) and `anatomy_summary.json` (counts overall and per
label) to --out and prints the counts. An image folder is listed as `medicraft build` lists
class folders (`medicraft_hf.data.folders.image_files`: symlinked folders followed, hidden
files left out), so both commands see the same images.
"""

from __future__ import annotations

HELP = "anatomical plausibility of B-scans: ok / doubled / absent / hypoplastic fovea / corrupted"


def add_arguments(parser) -> None:
    parser.add_argument("source", help="OCT dataset folder, Hub dataset id, image folder (subfolder = label) or one image")
    parser.add_argument("--out", default=None, help="folder for anatomy.csv and anatomy_summary.json (default: print only)")
    parser.add_argument("--split", default=None, help="only this split of a dataset (default: all splits)")


def folder_items(source: str):
    """(image_id, path, label) of each image of an image folder, the label being its folder's name
    (None at the top); None when `source` is no image folder (a saved dataset, a Hub id, one image)."""
    from pathlib import Path

    from medicraft_hf.data.folders import image_files
    from medicraft_hf.sources import saved_dataset_format

    root = Path(source)
    if not root.is_dir() or saved_dataset_format(root):
        return None
    files = image_files(root)
    if not files:
        return None
    return [(str(p.relative_to(root)), p, p.parent.name if p.parent != root else None) for p in files]


def run(args) -> int:
    import csv
    import io
    from pathlib import Path

    from medicraft_hf.evaluation.anatomy import ANATOMY_VERDICTS, check_images, check_source, summarize
    from medicraft_hf.io import write_json_atomic, write_text_atomic

    # Folders here, not in check_source, so that build and anatomy-check share one listing.
    items = folder_items(args.source)
    results = check_images(items) if items else check_source(args.source, split=args.split)
    summary = summarize(results)
    overall = summary["overall"]
    print(f"{overall['n']} images: " + ", ".join(f"{v}={overall['counts'][v]}" for v in ANATOMY_VERDICTS)
          + f"; ok fraction {overall['ok_fraction']}, mean score {overall['mean_score']}")
    for label, s in summary.get("per_label", {}).items():
        print(f"  {label}: n={s['n']} ok={s['counts']['ok']} ({s['ok_fraction']})")
    if args.out:
        out = Path(args.out)
        columns = ["image_id", "label", "verdict", "score", "num_pits", "pit_depth", "fovea_x", "contrast",
                   "profile_corr", "jump_fraction", "quality", "retina_thickness"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
        write_text_atomic(out / "anatomy.csv", buf.getvalue())
        write_json_atomic(out / "anatomy_summary.json", {"source": str(args.source), "split": args.split, **summary})
        print(f"wrote {out / 'anatomy.csv'} and {out / 'anatomy_summary.json'}")
    return 0
