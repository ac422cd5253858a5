"""Build an OCT dataset (Hub layout: README.md + data/*.parquet) from class folders, the
Kermany OCT2017 tree, a CSV manifest or vendor exports (Heidelberg .e2e/.vol, Topcon
.fds/.fda, Bioptigen and Optovue .oct, Zeiss .img, OCT DICOM).

Every image is validated and converted to 8-bit grayscale; patients are split into
train/validation/test (seeded, stratified by class) and checked for leakage; patient ids
are salted hashes (set MEDICRAFT_ID_SALT). Image files get their patient from their name:
<class>-<patient>-<n>.<ext> (Kermany's naming) by default, else --patient-pattern; a
manifest from its patient column. An image without a patient id stops the build, unless
--split-by image (the dataset card then says the split is by image). Bad input stops the
build with a list of every offending file, unless --skip-invalid, which writes the skipped
files to a report beside the output folder (never inside it: file names can carry
identifiers). An interrupted build resumes from its last finished chunk when run again
with the same arguments. More: docs/building.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HELP = "build a dataset from class folders, Kermany OCT2017, a CSV manifest or vendor files"

SOURCES = ("folders", "kermany", "manifest", "vendor")
FIT_POLICIES = ("resize", "crop", "pad", "physical")  # medicraft_hf.data.native_size.FIT_POLICIES (not imported: fast --help)
SPLIT_BY = ("patient", "image")  # medicraft_hf.data.split.SPLIT_BY (not imported: `datasets` costs seconds)
# The library's argument names -> this command's flags (for errors, see medicraft_hf.errors).
FLAGS = {"max_pixels": "--max-pixels", "fit": "--fit"}


def add_arguments(parser) -> None:
    parser.add_argument("input", help="input folder (folders/kermany/vendor) or CSV file (manifest)")
    parser.add_argument("--from", dest="kind", choices=SOURCES, required=True,
                        help="folders: <input>/<class>/<images>; "
                             "kermany: <input>/{train,test}/<CLASS>/<CLASS>-<patient>-<n>.jpeg; "
                             "manifest: a CSV of files and diagnoses; vendor: <input>/<class>/<vendor files: .e2e .vol "
                             ".fds .fda .oct (Bioptigen; Optovue with its .txt) .img .dcm>")
    parser.add_argument("--out", required=True, help="output dataset folder (created; replaced only if it holds a saved dataset)")
    parser.add_argument("--classes", default=None, help="comma-separated class names in label-id order (default: from the input)")
    parser.add_argument("--size", default=None,
                        help="bring every image to HxW (e.g. 256x512) by --fit; without it, all images must share one size")
    parser.add_argument("--fit", choices=FIT_POLICIES, default="resize",
                        help="how --size is reached from a B-scan's native size (recorded in the dataset card): "
                             "resize: stretch; crop: centre crop (pad if smaller); pad: one scale factor, then pad; "
                             "physical: square pixels in mm from the pixel spacing, then as pad (docs/building.md)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient-level split")
    parser.add_argument("--fractions", default="0.7,0.15,0.15", help="train,validation,test fractions of patients")
    parser.add_argument("--split-by", choices=SPLIT_BY, default="patient",
                        help="patient: every image needs a patient id, else the build stops and names the images; "
                             "image: images without one are split one by one, so a patient's B-scans may land in "
                             "several splits (the dataset card says so)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="pixel budget of one image (or vendor B-scan), checked from the file's header before "
                             "decoding; larger files are problems (default: $MEDICRAFT_MAX_PIXELS, else 4096*4096)")
    parser.add_argument("--skip-invalid", action="store_true", help="skip bad files and list each in --report instead of failing")
    parser.add_argument("--report", default=None, help="skip report CSV (default: <out>.skipped.csv beside the output)")
    parser.add_argument("--work-dir", default=None,
                        help="finished chunks of an interrupted build are kept here and reused by a rerun "
                             "(default: <out>.partial)")
    parser.add_argument("--name", default=None, help="dataset name or repo id shown in the card (default: the --out folder name)")
    parser.add_argument("--license", default="other", help="license field of the dataset card")
    parser.add_argument("--description", default="", help="a paragraph for the dataset card")
    group = parser.add_argument_group("folders / vendor")
    group.add_argument("--patient-pattern", default=None,
                       help="regex with a (?P<patient>...) group searched in image file names (default: names "
                            "<class>-<patient>-<n>.<ext> give their patient); a pattern may start with '-'")
    group.add_argument("--img-shape", default="1024x512", help="B-scan DEPTHxWIDTH of Zeiss .img files")
    group.add_argument("--planes", choices=("radial", "parallel"), default="radial",
                       help="for files whose header does not state the scan pattern (.img, .dcm, Optovue .oct): "
                            "radial: N B-scans of a volume are planes i*360/N degrees; parallel: cube scans (no angle)")
    group = parser.add_argument_group("manifest")
    group.add_argument("--images-dir", default=None,
                       help="folder the manifest's file names are relative to (default: the CSV's folder)")
    for key, default in (("file", "filename"), ("label", "diagnosis"), ("patient", "patient_id"),
                         ("exam", "exam_id"), ("eye", "eye")):
        group.add_argument(f"--{key}-column", default=default, help=f"manifest column holding the {key}")
    _accept_patient_patterns_starting_with_dash(parser)


def _accept_patient_patterns_starting_with_dash(parser) -> None:
    """Let `--patient-pattern -(?P<patient>...)` work, not only `--patient-pattern=-(?P<patient>...)`.

    argparse takes every word starting with "-" for an option and then finds the pattern's
    value missing. A word holding "(" (as every patient pattern does, for its group) is
    never an option name, so it is read as a value. (argparse has no public hook for this;
    without the private one the `=` form still works.)
    """
    parse_optional = getattr(parser, "_parse_optional", None)
    if parse_optional is None:
        return

    def _parse_optional(arg_string):
        option, sep, _ = arg_string.partition("=")  # `--patient-pattern=...` stays an option
        names_option = sep and any(name.startswith(option) for name in parser._option_string_actions)
        if arg_string.startswith("-") and "(" in arg_string and not names_option:
            return None  # a value, as any word not starting with "-"
        return parse_optional(arg_string)

    parser._parse_optional = _parse_optional


def _patient_advice(args) -> str:
    """How to give images a patient id, in this command's flags (cf. problems.PATIENT_ID_ADVICE)."""
    image_split = ("or, knowingly, pass --split-by image (a patient's B-scans may then land in several splits, "
                   "and the dataset card says so)")
    if args.kind == "manifest":
        return (f"fill in the manifest's patient column (--patient-column, now {args.patient_column!r}) on every line; "
                f"{image_split}")
    return ("name the image files <class>-<patient>-<n>.<ext> (e.g. CNV-1016042-1.jpeg), pass --patient-pattern with a "
            "(?P<patient>...) group searched in the file names (e.g. --patient-pattern '^(?P<patient>[^_]+)_' for "
            f"<patient>_<n>.png), or list the files in a CSV manifest with a patient column (--from manifest); {image_split}")


def run(args) -> int:
    from medicraft_hf.cards.dataset_card import dataset_card
    from medicraft_hf.data.build import build_dataset_dict, save_dataset_dict
    from medicraft_hf.data.folders import folder_rows, kermany_rows
    from medicraft_hf.data.images import max_pixels_budget
    from medicraft_hf.data.manifest import manifest_rows
    from medicraft_hf.data.native_size import fit_statement
    from medicraft_hf.data.problems import InvalidInputError, MissingPatientIdError, Problems
    from medicraft_hf.errors import ArgumentError
    from medicraft_hf.parsing import parse_fractions, parse_size

    out = Path(args.out)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    size = parse_size(args.size, "--size") if args.size else None
    if args.fit != "resize" and size is None:  # nothing to fit into: say so rather than ignore the flag
        raise ArgumentError("fit", f"{{argument}} {args.fit} needs --size HxW (the training size to fit into).")
    fractions = parse_fractions(args.fractions, "--fractions")
    vendor = {"img_shape": parse_size(args.img_shape, "--img-shape"), "planes": args.planes,
              "max_pixels": max_pixels_budget(args.max_pixels)}

    problems = Problems()
    if args.kind == "kermany":
        class_names, rows = kermany_rows(args.input, classes, problems)
        source = ("Kermany OCT2017 folders (Kermany's own train/test split shares patients; "
                  "it was replaced by a patient-level split)")
    elif args.kind == "manifest":
        columns = {"file": args.file_column, "label": args.label_column, "patient": args.patient_column,
                   "exam": args.exam_column, "eye": args.eye_column}
        class_names, rows = manifest_rows(args.input, classes, problems, columns=columns, images_dir=args.images_dir, **vendor)
        source = "CSV manifest of OCT B-scans"
    else:
        try:
            class_names, rows = folder_rows(args.input, classes, problems, patient_pattern=args.patient_pattern, **vendor)
        except ValueError as err:  # a bad pattern: say which flag
            raise ValueError(f"--patient-pattern: {err}") from None
        source = ("vendor OCT exports read with oct-converter and eyepy" if args.kind == "vendor"
                  else "class folders of OCT B-scans")

    work_dir = Path(args.work_dir) if args.work_dir else out.with_name(out.name + ".partial")
    if work_dir.is_dir():
        print(f"resuming the build from {work_dir}")
    try:
        dsdict = build_dataset_dict(rows, class_names, size=size, seed=args.seed, fractions=fractions,
                                    skip_invalid=args.skip_invalid, problems=problems, work_dir=work_dir,
                                    split_by=args.split_by, max_pixels=vendor["max_pixels"], fit=args.fit)
    except InvalidInputError as err:
        # Not an interruption: the user fixes the input, and the next run must read it afresh.
        shutil.rmtree(work_dir, ignore_errors=True)
        if isinstance(err, MissingPatientIdError):
            raise InvalidInputError(err.text(_patient_advice(args))) from None
        raise
    except Exception:
        # A build that failed (not one interrupted: Ctrl-C, a kill) leaves no <out>.partial behind.
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    notes = [args.description]
    if size:
        notes.append(fit_statement(args.fit, size))
    if args.skip_invalid:
        notes.append(f"{len(problems)} invalid input(s) were skipped; the skip report is kept with the builder, not published.")
    card = dataset_card(dsdict, name=args.name or out.name, source=source, description="\n\n".join(n for n in notes if n),
                        license=args.license)
    save_dataset_dict(dsdict, out, card=card)
    shutil.rmtree(work_dir)
    counts = ", ".join(f"{split}={len(ds)}" for split, ds in dsdict.items())
    print(f"built {out} ({counts}; classes {class_names})")
    if args.skip_invalid:
        report = Path(args.report) if args.report else out.with_name(out.name + ".skipped.csv")
        problems.write_report(report)
        print(f"skipped {len(problems)} invalid input(s); report: {report}")
    return 0
