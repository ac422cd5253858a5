"""What a reviewer sees next: the images of a round, in a seeded order of their own.

A round is a dataset of generated scans (and, when blinded, real scans mixed in) plus a
ratings store. Each reviewer gets the round's images in an order drawn from
(seed, round, reviewer), so two reviewers see different orders and one reviewer sees the
same order after a restart. Where a reviewer is in that order is read from the store,
never kept in memory: they resume at their first unrated image.

The truth of every scan is fixed when the round is drawn, by the set it was drawn from:
a scan of `real` is real (whatever its `source` column says: the phantom stands in for
real scans), a scan of the rated dataset is synthetic, with its `model_id@revision`. It is
written to `<store>/.rounds/<round>.json` and copied into each rating (`truth`,
`model_version`); the report reads nothing else to score the Turing test.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from datasets import Dataset
from PIL import Image

from medicraft_hf.review.store import MalformedRating, RatingsStore, make_rating, rating_id
from medicraft_hf.schema import class_names_of

_META_COLUMNS = ("image_id", "label", "source", "model_id", "model_revision", "seed")


REVIEW_ORDERS = ("random", "uncertain-first")


def default_anatomy_check(image):
    from medicraft_hf.evaluation.anatomy import check_anatomy

    return check_anatomy(image)


@dataclass(frozen=True)
class ReviewItem:
    """One image of a round: its reference (stored with each rating) and where to read it."""

    ref: dict  # image_id, dataset, label, source, model_id, model_revision, seed, truth, model_version
    part: int  # 0: the rated dataset, 1: the real dataset mixed in (blinded rounds)
    row: int

    @property
    def image_id(self) -> str:
        return self.ref["image_id"]


def load_review_dataset(source: str, split: str | None = None, revision: str | None = None) -> Dataset:
    """The scans of a saved OCT dataset (folder or Hub id): one split, or every split together."""
    from datasets import concatenate_datasets

    from medicraft_hf.data.load import load_oct_dataset

    dsdict = load_oct_dataset(source, revision=revision)
    if split is not None:
        if split not in dsdict:
            raise ValueError(f"{source} has no split {split!r}; it has {list(dsdict)}.")
        return dsdict[split]
    return concatenate_datasets(list(dsdict.values()))


class ReviewRound:
    """The images of one review round and the store their ratings go to.

    Args:
        dataset: the scans to rate (OCT schema), usually generated ones.
        store: a `RatingsStore` or its folder.
        real: real scans to mix in; makes the round blinded (a visual Turing test):
            the reviewer also answers "real or synthetic?". As many real scans as rated
            ones are drawn (seeded), or all of them when there are fewer.
        dataset_name / real_name: how ratings name the datasets (a path name or Hub id).
        round_name: ratings of different rounds never collide; reports group by it.
        seed: seeds the real-scan draw and every reviewer's order.
        anatomy_check: `image -> AnatomyResult` stored beside each expert verdict so the
            report can compare them; None to skip it.
        order: ``"random"`` (each reviewer's own seeded order) or ``"uncertain-first"``
            (the scans the anatomy check is least confident about first, ties in the
            reviewer's seeded order): expert time goes where the check needs it. Not for
            blinded rounds, where the order would tell real scans from generated ones.
    """

    def __init__(
        self,
        dataset: Dataset,
        store: RatingsStore | str,
        *,
        real: Dataset | None = None,
        dataset_name: str = "dataset",
        real_name: str = "real",
        round_name: str = "round-1",
        seed: int = 0,
        anatomy_check: Callable | None = default_anatomy_check,
        order: str = "random",
    ):
        if order not in REVIEW_ORDERS:
            raise ValueError(f"Unknown review order {order!r}; choose one of {list(REVIEW_ORDERS)}.")
        if order == "uncertain-first" and (real is not None or anatomy_check is None):
            raise ValueError("The uncertain-first order needs the anatomy check and a round without real scans mixed "
                             "in (in a blinded round it would give away which scans are real); use the random order.")
        self.store = store if isinstance(store, RatingsStore) else RatingsStore(store)
        self.store.check_writable()  # refused now, not at the first verdict
        self.round_name = str(round_name)
        self.seed = int(seed)
        self.blinded = real is not None
        self.anatomy_check = anatomy_check
        self.parts = [dataset] + ([real] if real is not None else [])
        items = _items(dataset, 0, dataset_name)
        if real is not None:
            real_items = _items(real, 1, real_name)
            if not real_items:
                raise ValueError(f"The real dataset {real_name!r} to mix in is empty.")
            random.Random(f"{self.seed}:real").shuffle(real_items)
            items += real_items[: len(items)]
        if not items:
            raise ValueError(f"Nothing to review: {dataset_name!r} has no rows.")
        # (width, height) of the rated scans; real scans mixed in are shown at this size.
        self.display_size = dataset[0]["image"].size
        self.items = {}
        for item in items:
            if item.image_id in self.items:
                raise ValueError(
                    f"image_id {item.image_id!r} occurs twice in the round ({dataset_name!r}, {real_name!r}); "
                    "ratings reference images by image_id, so it must be unique."
                )
            self.items[item.image_id] = item
        self._ids = sorted(self.items)
        self.manifest_path = self._record_draw()
        # The check's confidence per scan: deterministic, so a restarted app keeps the order.
        self._confidence = ({i: self.anatomy_check(self.image(self.items[i])).confidence for i in self._ids}
                            if order == "uncertain-first" else None)

    def _record_draw(self):
        """Write the truth of every scan of the round (`.rounds/<round>.json`), once.

        A restarted app draws the same round and finds it recorded; a round of the same
        name whose scans have another truth (another dataset under an old round name) is
        refused, since its ratings could not be told apart.
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.round_name)
        if safe != self.round_name:
            safe += "-" + hashlib.sha256(self.round_name.encode()).hexdigest()[:8]
        path = self.store.directory / ".rounds" / f"{safe}.json"
        truth = {i: {f: self.items[i].ref[f] for f in ("truth", "model_version", "dataset", "source")} for i in self._ids}
        record = {"round": self.round_name, "seed": self.seed, "blinded": self.blinded, "images": truth,
                  "drawn_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if self.store.write_once(path, record):
            return path
        import json

        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))["images"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} (the recorded draw of round {self.round_name!r}) is unreadable: {err}. "
                             "Move it aside or name the round differently.") from err
        clash = sorted(i for i in set(earlier) & set(truth) if earlier[i] != truth[i])
        if clash:
            raise ValueError(
                f"Round {self.round_name!r} was drawn earlier with other scans under the same ids (e.g. {clash[0]!r}: "
                f"{earlier[clash[0]]} then, {truth[clash[0]]} now); name this round differently (--round)."
            )
        if set(truth) - set(earlier):  # more scans added to the round: the record grows
            self.store.replace_json(path, {**record, "images": {**earlier, **truth}})
        return path

    def pseudonym(self, name: str) -> str:
        """The pseudonym a reviewer's ratings are stored under (salted with the store's secret)."""
        return self.store.pseudonym(name)

    def __len__(self) -> int:
        return len(self._ids)

    def order(self, reviewer: str) -> list[str]:
        """The reviewer's image ids in their own seeded random order (least confident
        anatomy verdicts first, for the uncertain-first order)."""
        ids = list(self._ids)
        random.Random(f"{self.seed}:{self.round_name}:{reviewer}").shuffle(ids)
        if self._confidence is not None:
            ids.sort(key=self._confidence.__getitem__)  # stable: ties keep the seeded order
        return ids

    def _rated(self, reviewer: str, image_id: str) -> bool:
        return self.store.has(rating_id(self.round_name, reviewer, self.items[image_id].ref), reviewer)

    def next_item(self, reviewer: str) -> tuple[int, ReviewItem] | None:
        """(position, item) of the reviewer's first unrated image, or None when done."""
        for position, image_id in enumerate(self.order(reviewer)):
            if not self._rated(reviewer, image_id):
                return position, self.items[image_id]
        return None

    def previous_item(self, reviewer: str, before: str | None = None) -> tuple[int, ReviewItem] | None:
        """(position, item) of the reviewer's last rated image before image `before` in their
        order (before the end when None), to correct a verdict; None when there is none."""
        order = self.order(reviewer)
        end = order.index(before) if before in self.items else len(order)
        for position in range(end - 1, -1, -1):
            if self._rated(reviewer, order[position]):
                return position, self.items[order[position]]
        return None

    def rating_of(self, reviewer: str, image_id: str) -> dict | None:
        """The reviewer's current rating of an image (latest correction), or None.

        Raises `MalformedRating` when the image is rated but every file of its rating is
        malformed (the reviewer can still correct it).
        """
        rid = rating_id(self.round_name, reviewer, self.items[image_id].ref)
        rating = next((r for r in self.store.reviewer_ratings(reviewer) if r["rating_id"] == rid), None)
        if rating is None and self.store.has(rid, reviewer):
            path = self.store.path_of(rid, reviewer)
            why = next((w for f, w in self.store.problems if f == str(path)), "unreadable")
            raise MalformedRating(path, why)
        return rating

    def progress(self, reviewer: str) -> tuple[int, int]:
        """(rated, total) for the reviewer in this round."""
        return sum(self._rated(reviewer, i) for i in self._ids), len(self._ids)

    def image(self, item: ReviewItem):
        """The scan as the reviewer sees it.

        In a blinded round real scans are shown at the generated scans' size: a sharper or
        differently sized image would give its origin away.
        """
        image = self.parts[item.part][item.row]["image"]
        if item.part == 1 and image.size != self.display_size:
            image = image.resize(self.display_size, Image.LANCZOS)
        return image

    def record(self, name: str, image_id: str, verdict: str, **kwargs) -> tuple[dict, bool]:
        """`rate` under the pseudonym of the reviewer called `name` (see `pseudonym`)."""
        return self.rate(self.pseudonym(name), image_id, verdict, **kwargs)

    def rate(
        self,
        reviewer: str,
        image_id: str,
        verdict: str,
        *,
        origin_guess: str | None = None,
        comment: str | None = None,
        shown_at: float | None = None,
        correction: bool = False,
    ) -> tuple[dict, bool]:
        """Store one verdict of the reviewer with pseudonym `reviewer` (once); returns (stored
        rating, True if this call stored it). An OSError means nothing was stored: retry.

        A second verdict on a rated image is ignored (a retry or a double click), unless
        `correction=True`: then it replaces the reviewer's earlier verdict (kept on disk).
        """
        item = self.items.get(image_id)
        if item is None:
            raise ValueError(f"Image {image_id!r} is not part of round {self.round_name!r}.")
        auto_verdict = auto_score = None
        try:
            earlier = self.rating_of(reviewer, image_id) if correction else None
        except MalformedRating:
            earlier = None
        if earlier is not None:  # the check's verdict on the image does not change
            auto_verdict, auto_score = earlier["auto_verdict"], earlier["auto_score"]
        elif self.anatomy_check is not None and not self._rated(reviewer, image_id):
            result = self.anatomy_check(self.image(item))
            auto_verdict, auto_score = result.verdict, result.score
        rating = make_rating(
            round_name=self.round_name,
            reviewer=reviewer,
            image_ref=item.ref,
            verdict=verdict,
            comment=comment,
            blinded=self.blinded,
            origin_guess=origin_guess if self.blinded else None,
            auto_verdict=auto_verdict,
            auto_score=auto_score,
            position=self.order(reviewer).index(image_id),
            seconds=None if not shown_at else max(0.0, time.time() - float(shown_at)),
        )
        if correction:
            return self.store.correct(rating), True
        return self.store.add(rating)


def _items(dataset: Dataset, part: int, name: str) -> list[ReviewItem]:
    missing = [c for c in _META_COLUMNS if c not in dataset.column_names]
    if missing or "image" not in dataset.column_names:
        raise ValueError(f"Dataset {name!r} lacks OCT schema columns {missing or ['image']}; see medicraft_hf.schema.")
    names = class_names_of(dataset)
    meta = dataset.select_columns(list(_META_COLUMNS)).to_list()
    items = []
    for row, m in enumerate(meta):
        if not m["image_id"]:
            raise ValueError(f"Row {row} of {name!r} has no image_id; rebuild the dataset with medicraft tools.")
        ref = {**m, "dataset": name, "label": names[m["label"]] if m["label"] is not None else None,
               **truth_of(part, m)}
        items.append(ReviewItem(ref=ref, part=part, row=row))
    return items


def truth_of(part: int, meta: dict) -> dict:
    """The truth of a drawn scan, by the set it was drawn from (not by its `source` column).

    Part 1 (the real set mixed in) is real, even where its rows say `phantom`; part 0 (the
    rated dataset) is synthetic, named by `model_id@revision`. A rated dataset of real or
    phantom rows (a check of the reviewers) is real / phantom, with no model version.
    """
    if part == 1:
        return {"truth": "real", "model_version": "real"}
    if meta.get("model_id") is None and meta.get("model_revision") is None:
        source = meta.get("source") or "unknown"
        return {"truth": "real" if source == "real" else "synthetic", "model_version": source}
    return {"truth": "synthetic", "model_version": f"{meta.get('model_id')}@{meta.get('model_revision') or 'unknown'}"}
