"""Collect every bad input instead of stopping at the first, then fail or skip explicitly.

Nothing is ever dropped silently: without ``skip_invalid`` the build fails with one error
naming every offending file and what to do; with it, each skipped file goes to a report.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass

from medicraft_hf.io import write_text_atomic

# How many problems an error message lists before pointing at the rest.
MAX_LISTED = 20


class InvalidInputError(ValueError):
    """Input files or values that cannot become a dataset (the CLI prints it as one error)."""


# How to give images a patient id, in the library's terms (the CLI says it in flags).
PATIENT_ID_ADVICE = (
    "name the image files `<class>-<patient>-<n>.<ext>` (e.g. `CNV-1016042-1.jpeg`), pass `patient_pattern` "
    "(a regular expression with a `(?P<patient>...)` group) to `folder_rows`, or list the files in a CSV "
    "manifest with a patient column (`manifest_rows`); or, knowingly, split by image with `split_by=\"image\"` "
    "(a patient's B-scans may then land in several splits, and the dataset card says so)"
)


class MissingPatientIdError(InvalidInputError):
    """Images without a patient id where the split must be by patient.

    `files` names them (file, manifest line or image id), `total` is how many images were
    read. `others` is the rest of the same error (other problems found in the same pass),
    so that one error lists everything; `advice` says how to give ids (the CLI passes its
    flags).
    """

    def __init__(self, files, total: int, others: str = "", advice: str = PATIENT_ID_ADVICE):
        self.files, self.total, self.others = [str(f) for f in files], int(total), others
        super().__init__(self.text(advice))

    def text(self, advice: str) -> str:
        lines = [f"Cannot split by patient: {len(self.files)} of {self.total} image(s) have no patient id, "
                 "so one patient's near-duplicate B-scans could land in several splits:"]
        lines += [f"  - {f}" for f in self.files[:MAX_LISTED]]
        if len(self.files) > MAX_LISTED:
            lines.append(f"  ... and {len(self.files) - MAX_LISTED} more.")
        lines.append(f"Give every image a patient id: {advice}.")
        return "\n".join(lines) + (f"\n\n{self.others}" if self.others else "")


@dataclass(frozen=True)
class Problem:
    file: str  # the offending file (or "<where>" for a value), as the user named it
    reason: str  # what is wrong
    fix: str  # what to do about it

    def __str__(self) -> str:
        return f"{self.file}: {self.reason} -> {self.fix}"


class Problems:
    """An ordered list of `Problem`s found while building one dataset."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file, reason: str, fix: str) -> None:
        self.items.append(Problem(str(file), reason, fix))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def skipped_files(self) -> set[str]:
        return {p.file for p in self.items}

    def message(self, what: str = "input") -> str:
        lines = [f"{len(self.items)} problem(s) in the {what}:"]
        lines += [f"  - {p}" for p in self.items[:MAX_LISTED]]
        if len(self.items) > MAX_LISTED:
            lines.append(f"  ... and {len(self.items) - MAX_LISTED} more (run with --skip-invalid to get a full report).")
        lines.append("Fix or remove these files, or pass --skip-invalid to skip them (every skipped file is listed in a report).")
        return "\n".join(lines)

    def raise_if_any(self, what: str = "input") -> None:
        if self.items:
            raise InvalidInputError(self.message(what))

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["file", "reason", "fix"], lineterminator="\n")
        writer.writeheader()
        for problem in self.items:
            writer.writerow(asdict(problem))
        return buf.getvalue()

    def write_report(self, path: str | os.PathLike) -> None:
        """Write every problem (one CSV row per skipped file) atomically.

        Keep the report beside the dataset, not inside it: file names of clinical exports
        can carry identifiers and must not be pushed with the data.
        """
        write_text_atomic(path, self.to_csv())
