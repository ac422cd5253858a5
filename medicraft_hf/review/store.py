"""Ratings as data: an append-only store of expert ratings, exposed as a `datasets.Dataset`.

Each rating is one small JSON file, `<store>/<reviewer>/<rating_id>.json`. The rating id is
a hash of the round, the reviewer and the image reference, so the same reviewer rating the
same image twice (a double click, a retried request, a second browser tab, a restarted app)
maps to the same file. Files are written to a temporary name, fsynced and then hard-linked
to their final name: the link fails when the file exists, so the first rating wins, no
rating is ever half-written, and two reviewers (or two app processes) can write at once
without a lock. Nothing is kept in memory: a crash or a closed browser loses nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value, concatenate_datasets

from medicraft_hf.deid import pseudonym
from medicraft_hf.io import fsync_dir
from medicraft_hf.review.verdicts import normalize_origin, normalize_verdict

# What a rating says about which image it rates: the dataset's de-identified image_id and
# the synthetic provenance (model and seed). Never a patient identifier.
IMAGE_REF_FIELDS: tuple[str, ...] = ("image_id", "dataset", "label", "source", "model_id", "model_revision", "seed")

RATING_FEATURES = Features(
    {
        "rating_id": Value("string"),
        "round": Value("string"),
        "reviewer": Value("string"),  # a pseudonym such as "r-3f9a1c2b7d4e"
        "image_id": Value("string"),
        "dataset": Value("string"),  # the rated dataset (path name or Hub id)
        "label": Value("string"),  # class name of the rated image
        "source": Value("string"),  # real / phantom / synthetic: the truth of the Turing test
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
    }
)


def reviewer_pseudonym(name: str) -> str:
    """The stored name of a reviewer: a salted hash of what they type, stable across sessions."""
    name = str(name or "").strip()
    if not name:
        raise ValueError("Enter a reviewer name (any nickname; only a pseudonym of it is stored).")
    if name.startswith("r-") and len(name) == 14:  # already a pseudonym
        return name
    return pseudonym(name.lower(), prefix="r")


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
    """A folder of ratings; safe for several reviewers and several app processes at once."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"Ratings store {self.directory} is a file; pass a folder.")

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
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(rating.get("reviewer") or "")):
            raise ValueError(f"Reviewer {rating.get('reviewer')!r} is not a pseudonym; use reviewer_pseudonym(name).")
        return rating

    @staticmethod
    def _link_new(rating: dict, final: Path) -> bool:
        """Write `rating` to `final` unless it exists: fsynced temp file, then a hard link."""
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rating.", suffix=".tmp", dir=final.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(rating, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, final)  # atomic, and fails if the file exists
            except FileExistsError:
                return False
            except OSError as err:
                raise OSError(
                    f"Cannot store rating in {final.parent}: this filesystem refuses hard links ({err}); "
                    "put the ratings folder on a local disk."
                ) from err
            fsync_dir(final.parent)
            return True
        finally:
            os.unlink(tmp)

    def reviewer_ratings(self, reviewer: str) -> list[dict]:
        """One reviewer's ratings (latest correction of each), oldest first."""
        return _latest(self._read(p) for p in (self.directory / reviewer).glob("*.json"))

    def ratings(self) -> list[dict]:
        """All stored ratings (each in its latest correction), oldest first."""
        return _latest(self._read(p) for p in self.directory.glob("*/*.json"))

    def __len__(self) -> int:
        # First verdicts only: corrections (`*.c<k>.json`) replace, they do not add.
        return sum(1 for p in self.directory.glob("*/*.json") if p.suffixes == [".json"])

    def to_dataset(self) -> Dataset:
        return ratings_to_dataset(self.ratings())

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"Unreadable rating file {path}: {err}. Move it aside and reload.") from err
        row = {name: row.get(name) for name in RATING_FEATURES}
        row["correction"] = row["correction"] or 0
        return row


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


def load_ratings(source: str | os.PathLike | Dataset, revision: str | None = None) -> Dataset:
    """Ratings from a store folder, a saved ratings dataset (folder or Hub id) or a Dataset."""
    if isinstance(source, Dataset):
        missing = [c for c in RATING_FEATURES if c not in source.column_names]
        if missing:
            raise ValueError(f"Ratings dataset lacks columns {missing}; build it with RatingsStore.")
        return source.select_columns(list(RATING_FEATURES)).cast(RATING_FEATURES)
    path = Path(source)
    if path.is_dir() and not any(path.glob("**/*.parquet")):
        return RatingsStore(path).to_dataset()
    import datasets

    from medicraft_hf.data.load import load_dataset_folder

    is_hub_id = str(source).count("/") == 1 and not str(source).startswith((".", "/", "~"))
    if not path.exists() and not is_hub_id:
        raise FileNotFoundError(f"No ratings folder or dataset at {source}: pass a ratings folder or a Hub id 'org/name'.")
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"{source} is a file; pass the ratings folder.")
    loaded = load_dataset_folder(path) if path.exists() else datasets.load_dataset(str(source), revision=revision)
    dataset = concatenate_datasets(list(loaded.values())) if isinstance(loaded, DatasetDict) else loaded
    return load_ratings(dataset)


def merge_ratings(sources: Iterable[str | os.PathLike | Dataset]) -> Dataset:
    """Ratings of several stores (e.g. one per reviewer or site), each rating once.

    A rating present in several sources (a copied store, a repo pushed to before) is kept
    once, in its latest correction.
    """
    parts = [load_ratings(s) for s in sources]
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
