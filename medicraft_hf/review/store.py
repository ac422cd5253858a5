"""Ratings as data: an append-only store of expert ratings, exposed as a `datasets.Dataset`.

Each rating is one small JSON file, `<store>/<reviewer>/<rating_id>.json`. The rating id is
a hash of the round, the reviewer and the image reference, so the same reviewer rating the
same image twice (a double click, a retried request, a second browser tab, a restarted app)
maps to the same file. Files are written to a temporary name, fsynced and then hard-linked
to their final name: the link fails when the file exists, so the first rating wins, no
rating is ever half-written, and two reviewers (or two app processes) can write at once
without a lock. Nothing is kept in memory: a crash or a closed browser loses nothing.

Files honour the process umask (a store shared by a group's accounts works). A file that
is not a rating (bad JSON, a list, a missing field, an unknown verdict) is skipped and
reported by name (`RatingsStore.problems`), never a crash. Reviewers are stored as salted
pseudonyms; the salt is a per-deployment secret (`MEDICRAFT_REVIEW_SALT`, or `.salt` in the
store, created on first use), never a public default. Folders whose names start with a dot
(`.rounds/`, the truth of each round's draw) are not reviewers.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import secrets
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value, concatenate_datasets

from medicraft_hf.deid import pseudonym
from medicraft_hf.io import fsync_dir
from medicraft_hf.review.verdicts import ORIGINS, VERDICTS, normalize_origin, normalize_verdict

# What a rating says about which image it rates: the dataset's de-identified image_id, the
# synthetic provenance (model and seed) and the truth recorded when the round was drawn
# (`truth`: real / synthetic, by the set the image was drawn from; `model_version`).
# Never a patient identifier.
IMAGE_REF_FIELDS: tuple[str, ...] = ("image_id", "dataset", "label", "source", "model_id", "model_revision", "seed",
                                     "truth", "model_version")
# Columns a ratings dataset made before they existed may lack (read as None: "not recorded").
_LATER_FIELDS = ("truth", "model_version")
SALT_ENV = "MEDICRAFT_REVIEW_SALT"
SALT_FILE = ".salt"
_REVIEWER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

RATING_FEATURES = Features(
    {
        "rating_id": Value("string"),
        "round": Value("string"),
        "reviewer": Value("string"),  # a pseudonym such as "r-3f9a1c2b7d4e"
        "image_id": Value("string"),
        "dataset": Value("string"),  # the rated dataset (path name or Hub id)
        "label": Value("string"),  # class name of the rated image
        "source": Value("string"),  # the row's schema source (real / phantom / synthetic), as in the dataset
        "model_id": Value("string"),
        "model_revision": Value("string"),
        "seed": Value("int64"),
        "verdict": Value("string"),  # one of review.verdicts.VERDICTS
        "comment": Value("string"),
        "blinded": Value("bool"),  # the reviewer did not know real from synthetic
        "origin_guess": Value("string"),  # "real" / "synthetic" / None (unblinded)
        "auto_verdict": Value("string"),  # the automatic anatomy check on the same image
        "auto_score": Value("float32"),
        "position": Value("int32"),  # place of the image in this reviewer's order
        "seconds": Value("float32"),  # time from showing the image to the verdict
        "created_at": Value("string"),  # ISO 8601, UTC
        "correction": Value("int32"),  # 0: the first verdict; k: the reviewer's k-th correction of it
        # The truth of the Turing test, recorded when the round was drawn: "real" for a scan
        # drawn from the real set, "synthetic" for one drawn from the rated (generated) set.
        "truth": Value("string"),
        "model_version": Value("string"),  # model_id@revision of a generated scan; "real" for real ones
    }
)

REQUIRED_FIELDS = ("rating_id", "round", "reviewer", "image_id", "verdict", "created_at")


class RatingsStoreError(ValueError):
    """A ratings store that cannot be used (e.g. not writable); said before any rating is taken."""


def reviewer_pseudonym(name: str, salt: str) -> str:
    """The stored name of a reviewer: a salted hash of what they type, stable across sessions.

    Every name is hashed, including one shaped like a pseudonym (`r-...`): a real name never
    reaches the store, and typing another reviewer's pseudonym gives a different one.
    `salt` is the deployment's secret (`RatingsStore.salt`).
    """
    name = str(name or "").strip()
    if not name:
        raise ValueError("Enter a reviewer name (any nickname; only a pseudonym of it is stored).")
    if not salt:
        raise ValueError("Reviewer pseudonyms need the deployment's secret salt (RatingsStore.salt).")
    return pseudonym(name.lower(), salt=f"medicraft-review\x00{salt}", prefix="r")


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (one thread at a time)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def rating_id(round_name: str, reviewer: str, image_ref: Mapping) -> str:
    """Deterministic id of one reviewer's rating of one image in one round."""
    key = [round_name, reviewer] + [image_ref.get(f) for f in ("image_id", "model_id", "model_revision", "seed")]
    return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()[:20]


def make_rating(
    *,
    round_name: str,
    reviewer: str,
    image_ref: Mapping,
    verdict: str,
    comment: str | None = None,
    blinded: bool = False,
    origin_guess: str | None = None,
    auto_verdict: str | None = None,
    auto_score: float | None = None,
    position: int | None = None,
    seconds: float | None = None,
    created_at: str | None = None,
) -> dict:
    """A validated rating row in `RATING_FEATURES`."""
    verdict = normalize_verdict(verdict)
    comment = (comment or "").strip() or None
    if verdict == "other" and not comment:
        raise ValueError("A verdict of 'other' needs a comment saying what is wrong.")
    origin_guess = normalize_origin(origin_guess)
    if blinded and origin_guess is None:
        raise ValueError("This round is blinded: answer 'real or synthetic?' before the verdict.")
    if not image_ref.get("image_id"):
        raise ValueError(f"The rated image has no image_id: {dict(image_ref)!r}.")
    if image_ref.get("truth") not in (None, *ORIGINS):
        raise ValueError(f"truth must be one of {list(ORIGINS)} (the set the scan was drawn from), "
                         f"got {image_ref.get('truth')!r}.")
    row = {name: None for name in RATING_FEATURES}
    row.update({f: image_ref.get(f) for f in IMAGE_REF_FIELDS})
    row.update(
        rating_id=rating_id(round_name, reviewer, image_ref),
        round=round_name,
        reviewer=reviewer,
        verdict=verdict,
        comment=comment,
        blinded=bool(blinded),
        origin_guess=origin_guess,
        auto_verdict=normalize_verdict(auto_verdict) if auto_verdict is not None else None,
        auto_score=None if auto_score is None else float(auto_score),
        position=position,
        seconds=None if seconds is None else float(seconds),
        created_at=created_at or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        correction=0,
    )
    return row


class RatingsStore:
    """A folder of ratings; safe for several reviewers and several app processes at once.

    Args:
        directory: the store folder.
        salt: the secret that salts reviewer pseudonyms; default `$MEDICRAFT_REVIEW_SALT`,
            else the store's `.salt` file, created (random) on first use.
    """

    def __init__(self, directory: str | os.PathLike, salt: str | None = None):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"Ratings store {self.directory} is a file; pass a folder.")
        self._salt = salt or os.environ.get(SALT_ENV) or None
        self.problems: list[tuple[str, str]] = []  # (file, why) of files skipped by the last read

    @property
    def salt(self) -> str:
        """The deployment's secret salt: given, from the environment, or the store's `.salt`."""
        if self._salt is None:
            path = self.directory / SALT_FILE
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                self._write_new(path, secrets.token_hex(32) + "\n")  # first writer wins
            salt = path.read_text(encoding="utf-8").strip()
            if len(salt) < 16:
                raise RatingsStoreError(f"The salt in {path} is too short to be a secret; delete the file to make a new one.")
            self._salt = salt
        return self._salt

    def pseudonym(self, name: str) -> str:
        """The pseudonym under which `name`'s ratings are stored in this deployment."""
        return reviewer_pseudonym(name, self.salt)

    def check_writable(self) -> None:
        """Refuse a store this process cannot write (before any reviewer starts), clearly."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".write-check.{os.getpid()}.{secrets.token_hex(4)}"
            if not self._write_new(probe, "ok\n"):
                raise OSError(errno.EEXIST, "probe file exists")
            probe.unlink()
        except OSError as err:
            raise RatingsStoreError(
                f"Ratings store {self.directory} cannot be written ({err.strerror or err}): no rating could be "
                "saved. Pass a folder this account can write (for a group, a group-writable folder)."
            ) from err

    def write_once(self, path: Path, obj) -> bool:
        """Write JSON `obj` to `path` unless it exists (True if this call wrote it)."""
        return self._write_new(path, json.dumps(obj, sort_keys=True, indent=1) + "\n")

    def replace_json(self, path: Path, obj) -> None:
        """Write JSON `obj` to `path`, replacing it atomically (mode from the umask)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        if not self._write_new(tmp, json.dumps(obj, sort_keys=True, indent=1) + "\n"):
            raise OSError(errno.EEXIST, f"temporary file {tmp} exists")
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def path_of(self, rating_id_: str, reviewer: str) -> Path:
        return self.directory / reviewer / f"{rating_id_}.json"

    def has(self, rating_id_: str, reviewer: str) -> bool:
        return self.path_of(rating_id_, reviewer).exists()

    def add(self, rating: Mapping) -> tuple[dict, bool]:
        """Store a rating once. Returns (the stored rating, True if this call stored it).

        When the same rating id is already stored, the stored rating is returned untouched
        (first write wins), so retries and double submissions never make a duplicate.
        """
        rating = self._checked(rating)
        final = self.path_of(rating["rating_id"], rating["reviewer"])
        if not self._link_new(rating, final):
            return self._read(final), False
        return rating, True

    def correct(self, rating: Mapping) -> dict:
        """Store a reviewer's corrected verdict for an image they rated; the latest one counts.

        Corrections are new files beside the first verdict (`<rating_id>.c<k>.json`), so
        nothing is overwritten; `ratings()` gives each rating once, in its latest version.
        """
        rating = self._checked(rating)
        if not self.has(rating["rating_id"], rating["reviewer"]):
            raise ValueError("There is no earlier verdict on this image to correct; rate it first.")
        folder = self.directory / rating["reviewer"]
        for k in itertools.count(1):
            rating["correction"] = k
            if self._link_new(rating, folder / f"{rating['rating_id']}.c{k}.json"):
                return rating

    def _checked(self, rating: Mapping) -> dict:
        rating = dict(rating)
        unknown = set(rating) - set(RATING_FEATURES)
        if unknown:
            raise ValueError(f"Unknown rating fields {sorted(unknown)}; expected {list(RATING_FEATURES)}.")
        if not _REVIEWER.fullmatch(str(rating.get("reviewer") or "")):
            raise ValueError(f"Reviewer {rating.get('reviewer')!r} is not a pseudonym; use reviewer_pseudonym(name).")
        return rating

    @classmethod
    def _link_new(cls, rating: dict, final: Path) -> bool:
        """Write `rating` to `final` unless it exists: fsynced temp file, then a hard link."""
        return cls._write_new(final, json.dumps(rating, sort_keys=True))

    @staticmethod
    def _write_new(final: Path, text: str) -> bool:
        """Write `text` to `final` unless it exists (atomic, fsynced; mode from the umask)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rating.", suffix=".tmp", dir=final.parent)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a group store needs the umask's mode
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, final)  # atomic, and fails if the file exists
            except FileExistsError:
                return False
            except OSError as err:
                if err.errno in (errno.EPERM, errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise OSError(err.errno,
                                  f"cannot store a rating in {final.parent}: this filesystem refuses hard links "
                                  f"({err.strerror}); put the ratings folder on a local disk") from err
                raise
            fsync_dir(final.parent)
            return True
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def reviewer_ratings(self, reviewer: str) -> list[dict]:
        """One reviewer's ratings (latest correction of each), oldest first; malformed files are
        skipped and listed in `problems`."""
        return self._read_all(sorted((self.directory / reviewer).glob("*.json")))

    def ratings(self) -> list[dict]:
        """All stored ratings (each in its latest correction), oldest first; malformed files are
        skipped and listed in `problems`."""
        return self._read_all(self._files())

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*/*.json") if _REVIEWER.fullmatch(p.parent.name))

    def _read_all(self, paths) -> list[dict]:
        rows, problems = [], []
        for path in paths:
            try:
                rows.append(self._read(path))
            except MalformedRating as err:
                problems.append((str(path), err.why))
        self.problems = problems
        return _latest(rows)

    def __len__(self) -> int:
        # First verdicts only: corrections (`*.c<k>.json`) replace, they do not add.
        return sum(1 for p in self._files() if p.suffixes == [".json"])

    def to_dataset(self) -> Dataset:
        return ratings_to_dataset(self.ratings())

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MalformedRating(path, f"unreadable ({err})") from err
        return checked_row(row, path)


class MalformedRating(ValueError):
    """A file in a ratings store that is not a rating; readers skip it and name it."""

    def __init__(self, path, why: str):
        self.path, self.why = str(path), why
        super().__init__(f"{path} is not a rating: {why}. Move it aside (it is skipped).")


def checked_row(row, path="a rating") -> dict:
    """A stored rating in `RATING_FEATURES`, or `MalformedRating` saying what is wrong with it."""
    if not isinstance(row, dict):
        raise MalformedRating(path, f"a JSON {type(row).__name__}, not an object")
    missing = [f for f in REQUIRED_FIELDS if not isinstance(row.get(f), str) or not row.get(f)]
    if missing:
        raise MalformedRating(path, f"missing or empty {missing}")
    if row["verdict"] not in VERDICTS:
        raise MalformedRating(path, f"unknown verdict {row['verdict']!r}")
    if row.get("origin_guess") not in (None, *ORIGINS) or row.get("truth") not in (None, *ORIGINS):
        raise MalformedRating(path, "origin_guess / truth is neither real nor synthetic")
    out = {name: row.get(name) for name in RATING_FEATURES}
    for name, kind in (("correction", int), ("seed", int), ("position", int), ("auto_score", float), ("seconds", float)):
        value = out[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise MalformedRating(path, f"{name} is {value!r}, not a number")
        if value is not None and kind is int and value != int(value):
            raise MalformedRating(path, f"{name} is {value!r}, not a whole number")
    for name in ("round", "reviewer", "image_id", "dataset", "label", "source", "model_id", "model_revision",
                 "comment", "auto_verdict", "created_at", "model_version"):
        if out[name] is not None and not isinstance(out[name], str):
            raise MalformedRating(path, f"{name} is {out[name]!r}, not text")
    if out["blinded"] is not None and not isinstance(out["blinded"], bool):
        raise MalformedRating(path, f"blinded is {out['blinded']!r}, not true/false")
    out["correction"] = int(out["correction"] or 0)
    return out


def _latest(rows: Iterable[Mapping]) -> list[dict]:
    """Each rating once, in its latest correction; ordered by creation time."""
    latest = {}
    for row in rows:
        kept = latest.get(row["rating_id"])
        if kept is None or (row["correction"] or 0) > (kept["correction"] or 0):
            latest[row["rating_id"]] = dict(row)
    return sorted(latest.values(), key=lambda r: (r["created_at"], r["rating_id"]))


def ratings_to_dataset(rows: Iterable[Mapping]) -> Dataset:
    rows = [{name: row.get(name) for name in RATING_FEATURES} for row in rows]
    columns = {name: [row[name] for row in rows] for name in RATING_FEATURES}
    return Dataset.from_dict(columns, features=RATING_FEATURES)


def load_ratings(source: str | os.PathLike | Dataset, revision: str | None = None,
                 problems: list | None = None) -> Dataset:
    """Ratings from a store folder, a saved ratings dataset (folder or Hub id) or a Dataset.

    Files of a store folder that are not ratings are skipped: their (file, why) pairs are
    appended to `problems`, or given as warnings when it is None.
    """
    if isinstance(source, Dataset):
        for name in _LATER_FIELDS:  # made before the field existed: not recorded
            if name not in source.column_names:
                source = source.add_column(name, [None] * len(source))
        missing = [c for c in RATING_FEATURES if c not in source.column_names]
        if missing:
            raise ValueError(f"Ratings dataset lacks columns {missing}; build it with RatingsStore.")
        return source.select_columns(list(RATING_FEATURES)).cast(RATING_FEATURES)
    path = Path(source)
    if path.is_dir() and not any(path.glob("**/*.parquet")):
        store = RatingsStore(path)
        dataset = store.to_dataset()
        if problems is not None:
            problems.extend(store.problems)
        for file, why in store.problems if problems is None else ():
            warnings.warn(f"Skipped {file}: not a rating ({why}).", stacklevel=2)
        return dataset
    import datasets

    from medicraft_hf.data.load import load_dataset_folder
    from medicraft_hf.sources import is_hub_id

    if not path.exists() and not is_hub_id(source):
        raise FileNotFoundError(f"No ratings folder or dataset at {source}: pass a ratings folder or a Hub id 'org/name'.")
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"{source} is a file; pass the ratings folder.")
    loaded = load_dataset_folder(path) if path.exists() else datasets.load_dataset(str(source), revision=revision)
    dataset = concatenate_datasets(list(loaded.values())) if isinstance(loaded, DatasetDict) else loaded
    return load_ratings(dataset)


def merge_ratings(sources: Iterable[str | os.PathLike | Dataset], problems: list | None = None) -> Dataset:
    """Ratings of several stores (e.g. one per reviewer or site), each rating once.

    A rating present in several sources (a copied store, a repo pushed to before) is kept
    once, in its latest correction. Skipped files go to `problems` (see `load_ratings`).
    """
    parts = [load_ratings(s, problems=problems) for s in sources]
    if not parts:
        raise ValueError("No ratings to merge: pass at least one store.")
    return ratings_to_dataset(_latest(concatenate_datasets(parts).to_list()))


def push_ratings(ratings: Dataset, repo_id: str, *, private: bool = True, revision: str | None = None) -> str:
    """Add ratings to a (private by default) Hub dataset repo; returns the commit id.

    The repo's ratings are merged in first, so sites and reviewers can push their own
    stores one after another and the repo keeps the union (each rating once). Ratings are
    not OCT images: `push_dataset_dict` skips its OCT checks for them.
    """
    from huggingface_hub import DatasetCard

    from medicraft_hf.hub import push_dataset_dict

    ratings = load_ratings(ratings)
    card = DatasetCard(
        "---\n"
        "tags:\n- medicraft-hf\n- expert-review\n- oct\n"
        "---\n\n"
        "# Expert ratings of OCT scans\n\nRatings by pseudonymous reviewers (`reviewer`), one row per "
        "rating and round. Each row references a rated image by its de-identified "
        "`image_id` and, for synthetic images, the model, revision and seed that made it. Made with "
        "`medicraft review`; summarize with `medicraft review-report`.\n"
    )

    def merge(on_hub: DatasetDict, new: DatasetDict) -> DatasetDict:
        return DatasetDict({"train": merge_ratings([*on_hub.values(), new["train"]])})

    return push_dataset_dict(DatasetDict({"train": ratings}), repo_id, card=card, private=private, revision=revision,
                             commit_message="Add expert ratings", oct_schema=False, merge=merge, what="ratings")
