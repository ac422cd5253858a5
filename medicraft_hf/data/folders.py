"""Class folders (`<root>/<class>/...`) and the Kermany OCT2017 layout as distributed.

Each file under a class folder becomes one row (an image file) or one row per B-scan (a
vendor file, see `medicraft_hf.data.vendor`). Hidden files (names starting with ".",
e.g. `.DS_Store`) are ignored; any other file that is not an image or vendor export is
reported as a problem, never dropped silently. Symlinked folders are followed
(`visible_files`, which `medicraft anatomy-check` lists folders with too).

Image files named `<class>-<patient>-<n>.<ext>` (Kermany's naming, the most common one)
carry their patient id by default; other names need a `patient_pattern`, else their
rows have no patient id and a patient-level split refuses them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from medicraft_hf.data.images import IMAGE_EXTENSIONS, InvalidImageError
from medicraft_hf.data.problems import Problems
from medicraft_hf.data.vendor import VENDOR_EXTENSIONS, ZEISS_IMG_SHAPE, vendor_rows
from medicraft_hf.data.vendor_formats import companion_of
from medicraft_hf.deid import pseudonym

KERMANY_SPLITS = ("train", "test", "val")
# `CNV-1016042-1.jpeg`: class, patient, image number (Kermany et al., Cell 2018).
KERMANY_FILE = re.compile(r"^(?P<label>[A-Za-z]+)-(?P<patient>[A-Za-z0-9]+)-(?P<index>\d+)\.jpe?g$", re.IGNORECASE)
# The same naming in any class folder and image format: `<class>-<patient>-<n>.<ext>`. The
# class may hold "-" (the patient id may not), e.g. `nevus-fluid-0042-3.png`.
CLASS_PATIENT_FILE = re.compile(r"^(?P<label>.+)-(?P<patient>[A-Za-z0-9_]+)-(?P<index>\d+)\.[A-Za-z0-9]+$")


# What a file under a class folder may be: an image or a vendor export.
FILE_EXTENSIONS = (*IMAGE_EXTENSIONS, *VENDOR_EXTENSIONS)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def visible_files(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` (sorted), hidden names (".*") left out, symlinked folders followed.

    `medicraft build` and `medicraft anatomy-check` both list folders with this, so they
    agree on what a folder holds (pathlib's `rglob` does not enter symlinked folders
    before Python 3.13). A link to a folder listed already, or to one above (a cycle), is
    not entered.
    """
    files, seen = [], {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here, keep = os.path.realpath(dirpath), []
        for name in dirnames:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in FILE_EXTENSIONS:
                # A folder named like an image (`scan.png/`) is listed as a file, so that the
                # reader reports it ("is a folder"), instead of vanishing or being entered.
                files.append(Path(dirpath, name))
                continue
            real = os.path.realpath(os.path.join(dirpath, name))
            if real not in seen and not here.startswith(real + os.sep):
                seen.add(real)
                keep.append(name)
        dirnames[:] = keep
        # Broken and looping links come here too (os.walk cannot tell them from files): the
        # reader names them.
        files += [Path(dirpath, name) for name in filenames if not name.startswith(".")]
    return sorted(files)


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files (`IMAGE_EXTENSIONS`) among `visible_files(folder)`."""
    return [p for p in visible_files(folder) if p.suffix.lower() in IMAGE_EXTENSIONS]


def file_rows(
    path: Path,
    label: str,
    problems: Problems,
    *,
    patient: str | None = None,
    img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
    planes: str = "radial",
    salt: str | None = None,
    max_pixels: int | None = None,
) -> Iterator[dict]:
    """Rows of one file: an image file gives one row, a vendor file one row per B-scan.

    `patient` is a raw patient identifier (hashed here); vendor files bring their own.
    Vendor files are read here (with `max_pixels` per B-scan); image files when converted.
    """
    suffix = path.suffix.lower()
    if suffix in VENDOR_EXTENSIONS:
        try:
            yield from vendor_rows(path, label, img_shape=img_shape, planes=planes, salt=salt, max_pixels=max_pixels,
                                   problems=problems)
        except InvalidImageError as err:
            problems.add(err.file, err.reason, err.fix)
    elif suffix in IMAGE_EXTENSIONS:
        yield {
            "image": str(path),
            "label": label,
            "patient_id": pseudonym(patient, salt=salt) if patient else None,
            "source": "real",
            "origin": str(path),
        }
    elif companion_of(path) is not None:
        return  # an Optovue .txt filespec, read with its .oct
    else:
        problems.add(path, f"not an image ({', '.join(IMAGE_EXTENSIONS)}) or vendor file ({', '.join(VENDOR_EXTENSIONS)})",
                     "remove it from the class folder or convert it")


def _class_folders(root: Path, class_names: Sequence[str] | None, problems: Problems) -> tuple[list[str], dict[str, Path]]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; pass the folder that holds one sub-folder per class.")
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _visible(p)}
    for path in sorted(root.iterdir()):
        if path.is_file() and _visible(path):
            problems.add(path, "file is not inside a class folder", "move it into the folder of its class or remove it")
        elif not path.exists() and _visible(path):
            problems.add(path, "link to a missing file or folder", "fix the link or remove it")
    if class_names is None:
        if not folders:
            raise FileNotFoundError(f"{root} has no class sub-folders; expected <root>/<class>/<image files>.")
        class_names = list(folders)  # alphabetical, like `imagefolder`; pass class_names to choose the order
    for name, folder in folders.items():
        if name not in class_names:
            problems.add(folder, f"class folder {name!r} is not in the class list {list(class_names)}",
                         "add it to --classes or move the folder out of the input")
    return list(class_names), {name: folders[name] for name in class_names if name in folders}


def folder_rows(
    root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    problems: Problems | None = None,
    *,
    patient_pattern: str | None = None,
    img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
    planes: str = "radial",
    salt: str | None = None,
    max_pixels: int | None = None,
) -> tuple[list[str], Iterator[dict]]:
    """`<root>/<class>/**/<file>` -> (class names, rows).

    Class names default to the folder names in alphabetical order. An image file's patient
    id comes from its name: `<class>-<patient>-<n>.<ext>` by default (`CLASS_PATIENT_FILE`;
    a file naming another class than its folder is a problem), or `patient_pattern`, a
    regular expression with a `patient` group searched in each image file name (a file it
    does not match is a problem). Image files named otherwise get no patient id, which a
    patient-level split refuses. Vendor files always carry their patient (hashed).
    """
    problems = problems if problems is not None else Problems()
    root = Path(root)
    class_names, folders = _class_folders(root, class_names, problems)
    try:
        pattern = re.compile(patient_pattern) if patient_pattern else None
    except re.error as err:
        raise ValueError(f"patient pattern {patient_pattern!r} is not a regular expression ({err})") from None
    if pattern is not None and "patient" not in pattern.groupindex:
        raise ValueError(f"patient pattern {patient_pattern!r} needs a named group (?P<patient>...)")

    def rows():
        for label, folder in folders.items():
            for path in visible_files(folder):
                patient = None
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    try:
                        patient = _patient_of(path, label, class_names, pattern)
                    except ValueError as err:
                        problems.add(path, str(err), "rename the file or fix the pattern" if pattern is not None
                                     else "move it to the folder of its class")
                        continue
                yield from file_rows(path, label, problems, patient=patient, img_shape=img_shape, planes=planes, salt=salt,
                                     max_pixels=max_pixels)

    return class_names, rows()


def _patient_of(path: Path, label: str, class_names: Sequence[str], pattern: re.Pattern | None) -> str | None:
    """The raw patient id in an image file's name; None when the default naming is not used.

    Raises ValueError when `pattern` does not match, or when a default-named file names
    another class of the vocabulary than its folder (a misfiled scan, as in `kermany_rows`).
    """
    if pattern is not None:
        # The patient must come from the name, not from its extension (`[a-z0-9]+` would find "png").
        stem_end = len(path.name) - len(path.suffix)
        matches = [m for m in pattern.finditer(path.name) if m.group("patient")]
        if not matches:
            raise ValueError(f"file name does not match the patient pattern {pattern.pattern!r}")
        for match in matches:
            if match.end("patient") <= stem_end:
                return match.group("patient")
        raise ValueError(f"the patient pattern {pattern.pattern!r} matches only the extension "
                         f"({matches[0].group('patient')!r}) in this file name, not a patient id")
    match = CLASS_PATIENT_FILE.match(path.name)
    if not match:
        return None
    named = match.group("label").lower()
    if named == label.lower():
        return match.group("patient")
    if named in {c.lower() for c in class_names}:
        raise ValueError(f"file name says class {match.group('label')!r} but it is in folder {label!r}")
    return None  # `<something>-<x>-<n>` whose prefix is no class: not this naming


def kermany_rows(
    root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    problems: Problems | None = None,
    *,
    salt: str | None = None,
) -> tuple[list[str], Iterator[dict]]:
    """The Kermany OCT2017 tree as distributed: `{train,test,val}/<CLASS>/<CLASS>-<patient>-<n>.jpeg`.

    The patient id comes from the file name (then hashed). Kermany's own train/test split
    shares patients, so its split folders are merged and the caller re-splits by patient.
    A file whose name does not follow the pattern, or names another class than its
    folder, is a problem.
    """
    problems = problems if problems is not None else Problems()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; pass the OCT2017 folder holding train/ and test/.")
    splits = [root / s for s in KERMANY_SPLITS if (root / s).is_dir()]
    if not splits:
        raise FileNotFoundError(f"{root} has none of the Kermany split folders {KERMANY_SPLITS}; "
                                "for plain <root>/<class>/ folders use --from folders.")
    for path in sorted(root.iterdir()):
        if _visible(path) and path.name not in KERMANY_SPLITS:
            problems.add(path, "not a Kermany split folder", f"remove it; expected only {KERMANY_SPLITS}")
    if class_names is None:
        class_names = sorted({p.name for s in splits for p in s.iterdir() if p.is_dir() and _visible(p)})
    class_names = list(class_names)
    per_split = [_class_folders(s, class_names, problems)[1] for s in splits]

    def rows():
        for folders in per_split:
            for label, folder in folders.items():
                for path in visible_files(folder):
                    match = KERMANY_FILE.match(path.name)
                    if not match:
                        problems.add(path, "file name is not <CLASS>-<patient>-<n>.jpeg",
                                     "rename it as Kermany names files, or remove it")
                        continue
                    if match.group("label").upper() != label.upper():
                        problems.add(path, f"file name says class {match.group('label')!r} but it is in folder {label!r}",
                                     "move it to the folder of its class")
                        continue
                    yield from file_rows(path, label, problems, patient=match.group("patient"), salt=salt)

    return class_names, rows()
