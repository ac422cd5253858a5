"""Rows -> a validated `datasets.Dataset` in the OCT schema, and save in the Hub layout.

A *row* is a dict with the schema's columns (`medicraft_hf.schema.oct_features`); its
`image` may be a file path, bytes, `{"bytes", "path"}`, a PIL image or a numpy array. A
row may also carry an `origin` (the file it came from, for error messages and the
skip report); `origin` is never stored in the dataset.
"""

from __future__ import annotations

import itertools
import json
import numbers
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk
from datasets.table import embed_table_storage
from huggingface_hub import DatasetCard

from medicraft_hf.data.images import (
    InvalidImageError,
    check_plausible,
    encode_png,
    load_image,
    max_pixels_budget,
    pixel_hash,
)
from medicraft_hf.data.native_size import check_fit, fit_bscan
from medicraft_hf.data.problems import InvalidInputError, MissingPatientIdError, Problem, Problems
from medicraft_hf.io import atomic_path, write_json_atomic
from medicraft_hf.schema import CLASS_NAMES, EYES, SOURCES, check_schema, oct_features
from medicraft_hf.sources import DATA_DIR, is_dataset_dir

MAX_SHARD_BYTES = 500 * 2**20  # like `push_to_hub`: shards of at most ~500 MB


def _label_id(label, class_names: Sequence[str]) -> int:
    if isinstance(label, str):
        if label not in class_names:
            raise ValueError(f"unknown label {label!r}; known labels are {list(class_names)}")
        return class_names.index(label)
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < len(class_names):
        raise ValueError(f"label {label!r} is not a class name or an id in 0..{len(class_names) - 1}")
    return int(label)


def _check_values(row: Mapping) -> None:
    if row.get("source") not in SOURCES:
        raise ValueError(f"source {row.get('source')!r} is not one of {list(SOURCES)}")
    if row.get("eye") is not None and row["eye"] not in EYES:
        raise ValueError(f"eye {row['eye']!r} is not one of {list(EYES)} or None")


class _RowConverter:
    """Turns input rows into stored rows, remembering what it saw (for duplicates and sizes)."""

    def __init__(self, class_names: list[str], size: tuple[int, int] | None, problems: Problems,
                 max_pixels: int | None = None, fit: str = "resize"):
        self.class_names, self.size, self.problems, self.fit = class_names, size, problems, check_fit(fit)
        self.max_pixels = max_pixels_budget(max_pixels)  # checked before any row is read
        self.features = oct_features(class_names)
        self.seen: dict[str, str] = {}  # pixel hash -> origin of the first row with those pixels
        self.sizes: list[tuple[int, int]] = []  # (H, W) of each written row, for the size check
        self.origins: list[str] = []
        self.labels: Counter = Counter()  # label id -> rows with that label, valid image or not
        self.without_patient: list[str] = []  # origins of written rows that have no patient id

    def convert(self, index: int, row: Mapping) -> dict | None:
        """The stored row, or None (and a problem recorded) when the row is invalid."""
        row = dict(row)
        image = row.pop("image", None)
        origin = row.pop("origin", None) or (str(image) if isinstance(image, (str, os.PathLike)) else None)
        origin = origin or row.get("image_id") or f"row {index}"
        unknown = set(row) - set(self.features)
        if unknown:
            raise ValueError(f"{origin}: columns {sorted(unknown)} are not in the OCT schema {list(self.features)}")
        try:
            _check_values(row)
        except ValueError as err:
            self.problems.add(origin, str(err), "fix the value in the input")
            return None
        try:
            row["label"] = _label_id(row.get("label"), self.class_names)
        except ValueError as err:
            self.problems.add(origin, str(err), "fix the label, or declare the class with --classes")
            return None
        # Counted before the image is read: a class whose files are all broken is not "empty",
        # its files are listed as problems instead.
        self.labels[row["label"]] += 1
        try:
            pil = load_image(image, origin, max_pixels=self.max_pixels)
            if row.get("source") == "real":  # scans from outside; synthetic ones are judged by the anatomy check
                check_plausible(pil, origin)
        except InvalidImageError as err:
            self.problems.add(err.file, err.reason, err.fix)
            return None
        digest = pixel_hash(pil)
        if digest in self.seen:
            self.problems.add(origin, f"duplicate: same pixels as {self.seen[digest]}", "remove one of the two copies")
            return None
        self.seen[digest] = origin
        if self.size is not None:  # the native-size policy (medicraft_hf.data.native_size)
            try:
                pil, (row["depth_spacing_mm"], row["lateral_spacing_mm"]) = fit_bscan(
                    pil, self.size, self.fit, (row.get("depth_spacing_mm"), row.get("lateral_spacing_mm")))
            except ValueError as err:
                self.problems.add(origin, str(err), "choose --fit pad, crop or resize, or a source with pixel spacing")
                return None
        out = {name: None for name in self.features}
        out.update(row)
        out["image"] = {"bytes": encode_png(pil), "path": None}
        out["image_id"] = out["image_id"] or f"img-{digest[:16]}"
        self.sizes.append((pil.height, pil.width))
        self.origins.append(origin)
        if out["patient_id"] is None:
            self.without_patient.append(origin)
        return out

    def dataset(self, indexed_rows: Iterable[tuple[int, Mapping]]) -> Dataset:
        written, finished = [0], [False]

        def generate():
            for index, row in indexed_rows:
                out = self.convert(index, row)
                if out is not None:
                    written[0] += 1
                    yield out
            finished[0] = True

        # A fresh fingerprint: the generator has side effects (problems), never reuse a cache.
        try:
            return Dataset.from_generator(generate, features=self.features, fingerprint=uuid.uuid4().hex)
        except ValueError:  # datasets: 'Instruction "train" corresponds to no data!'
            if not finished[0] or written[0]:
                raise
            # Every row was a problem: an empty dataset, so that the problems are what the caller reports.
            return Dataset.from_dict({name: [] for name in self.features}, features=self.features)

    # Resumable builds: what a finished chunk must remember besides its rows.
    def state(self) -> dict:
        return {"seen": self.seen, "sizes": self.sizes, "origins": self.origins,
                "problems": [asdict(p) for p in self.problems],
                "labels": {str(k): v for k, v in self.labels.items()}, "without_patient": self.without_patient}

    def restore(self, state: dict) -> None:
        self.seen, self.origins = dict(state["seen"]), list(state["origins"])
        self.sizes = [tuple(hw) for hw in state["sizes"]]
        self.problems.items[:] = [Problem(**p) for p in state["problems"]]
        self.labels = Counter({int(k): v for k, v in state.get("labels", {}).items()})
        self.without_patient = list(state.get("without_patient", []))


def _row_key(index: int, row: Mapping) -> str:
    """What identifies an input row across runs (its file, else its id, else its position)."""
    image = row.get("image")
    return str(row.get("origin") or (image if isinstance(image, (str, os.PathLike)) else None) or row.get("image_id") or index)


def _chunked_dataset(converter: _RowConverter, rows: Iterable[Mapping], work_dir: Path, chunk_size: int) -> Dataset:
    """Convert rows chunk by chunk into `work_dir`; chunks finished by an earlier run are reused.

    The input is listed again on a rerun (cheap for files: images are decoded only when
    converted), so the same input and settings must be given; anything else is refused.
    """
    settings = {"class_names": converter.class_names, "size": list(converter.size) if converter.size else None,
                "chunk_size": chunk_size}
    if converter.fit != "resize":  # (so that partial builds made before --fit existed still resume)
        settings["fit"] = converter.fit
    settings_file = work_dir / "settings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text()) != settings:
        raise ValueError(f"{work_dir} holds a partial build made with other settings "
                         f"({settings_file.read_text().strip()}); delete it to start over.")
    write_json_atomic(settings_file, settings)
    chunks: list[Dataset] = []
    rows = enumerate(rows)
    for number in itertools.count():
        batch = itertools.islice(rows, chunk_size)  # lazy: vendor rows hold whole B-scans
        first = next(batch, None)
        if first is None:
            break
        batch = itertools.chain([first], batch)
        chunk_dir, state_file = work_dir / f"chunk-{number:05d}", work_dir / f"chunk-{number:05d}.json"
        if state_file.is_file():  # finished by an earlier run
            state = json.loads(state_file.read_text())
            if state["first_row"] != _row_key(*first):
                raise ValueError(f"The input changed since the partial build in {work_dir}; delete it to start over.")
            for _ in batch:  # skip the rows; listing them re-added loader problems, which restore() resets
                pass
            converter.restore(state)
        else:
            chunk = converter.dataset(batch)
            if len(chunk):  # a chunk whose rows were all problems has only its state
                with atomic_path(chunk_dir) as tmp:
                    chunk.save_to_disk(str(tmp))
            write_json_atomic(state_file, {**converter.state(), "first_row": _row_key(*first)})
        if chunk_dir.is_dir():
            chunks.append(load_from_disk(str(chunk_dir)))
    if not chunks:
        return Dataset.from_dict({name: [] for name in converter.features}, features=converter.features)
    return concatenate_datasets(chunks)


def rows_to_dataset(
    rows: Iterable[Mapping],
    class_names: Sequence[str] = CLASS_NAMES,
    *,
    size: tuple[int, int] | None = None,
    skip_invalid: bool = False,
    problems: Problems | None = None,
    work_dir: str | os.PathLike | None = None,
    chunk_size: int = 2000,
    require_patient_id: bool = False,
    require_every_class: bool = False,
    max_pixels: int | None = None,
    fit: str = "resize",
) -> Dataset:
    """Validate, convert and write rows as a `Dataset` with `oct_features(class_names)`.

    Each image becomes 8-bit grayscale PNG bytes (see `medicraft_hf.data.images`). Rows
    with an unreadable image, an unknown label, the same pixels as an earlier row, or
    (when `size` is None) a size other than the most common one are problems: all of
    them are collected, then an `InvalidInputError` lists them, unless `skip_invalid`,
    in which case those rows are left out and listed in `problems` (pass your own
    `Problems` to write the report). With `size=(H, W)` every image is brought to it by
    the `fit` policy (`medicraft_hf.data.native_size`: resize, crop, pad, physical).
    A missing `image_id` becomes a hash of the pixels (stable and de-identified).

    With a `work_dir`, rows are converted in chunks of `chunk_size` saved there, and a
    rerun after an interruption continues from the last finished chunk.

    `require_patient_id` (a patient-level split follows) makes rows without a
    `patient_id` an error (`MissingPatientIdError`, naming them); `require_every_class`
    makes a class of `class_names` without any row an error. Both come in the same error
    as the problems above, so one round of fixes is enough.

    Image files are read by `medicraft_hf.data.images.read_image`: a file declaring more
    than `max_pixels` (default `images.DEFAULT_MAX_PIXELS`, or `$MEDICRAFT_MAX_PIXELS`) is a
    problem before it is decoded. Real scans (`source="real"`) that are blank, near-constant
    or mostly saturated are problems too (`images.check_plausible`).
    """
    problems = problems if problems is not None else Problems()
    converter = _RowConverter(list(class_names), size, problems, max_pixels, fit)
    if work_dir is None:
        dataset = converter.dataset(enumerate(rows))
    else:
        dataset = _chunked_dataset(converter, rows, Path(work_dir), chunk_size)
    if len(dataset) == 0 and not problems:
        raise InvalidInputError("No images to build a dataset from: the input is empty.")

    sizes = converter.sizes
    if len(set(sizes)) > 1:
        common, count = Counter(sizes).most_common(1)[0]
        for (h, w), origin in zip(sizes, converter.origins):
            if (h, w) != common:
                problems.add(origin, f"size {h}x{w} (HxW) differs from the {count} images of {common[0]}x{common[1]}",
                             "pass --size HxW to resize every image to one size")
        dataset = dataset.select([i for i, hw in enumerate(sizes) if hw == common])

    sections = [problems.message("input")] if problems and not skip_invalid else []
    if require_every_class:
        # Rows seen per class, broken images included; the dataset's labels cover chunks
        # restored from a partial build made before the converter counted labels.
        kept = Counter(dataset["label"])
        counts = {i: max(converter.labels.get(i, 0), kept.get(i, 0)) for i in range(len(class_names))}
        if 0 in counts.values():
            sections.insert(0, empty_classes_message(list(class_names), counts))
    skipped = problems.skipped_files() if skip_invalid else set()
    without_patient = [origin for origin in converter.without_patient if origin not in skipped]
    if require_patient_id and without_patient:
        raise MissingPatientIdError(without_patient, len(converter.origins), others="\n\n".join(sections))
    if sections:
        raise InvalidInputError("\n\n".join(sections))
    if len(dataset) == 0:
        raise InvalidInputError(f"Every input was invalid, nothing left to build.\n{problems.message()}")
    return dataset


def empty_classes_message(names: Sequence[str], counts: Mapping[int, int], what: str = "input") -> str:
    """What `check_classes_present` says about the classes of `names` whose count is 0."""
    empty = [name for i, name in enumerate(names) if counts.get(i, 0) == 0]
    return (f"Class(es) {empty} have no images in the {what}: add images for them, or leave them out "
            f"of the vocabulary (--classes, or remove an empty class folder); classes found: "
            + ", ".join(f"{n}={counts.get(i, 0)}" for i, n in enumerate(names)))


def check_classes_present(dataset: Dataset, what: str = "input") -> None:
    """Raise naming each class of the vocabulary that has no image (an empty class)."""
    names = dataset.features["label"].names
    counts = Counter(dataset["label"])
    if any(counts.get(i, 0) == 0 for i in range(len(names))):
        raise InvalidInputError(empty_classes_message(names, counts, what))


def _has_external_images(ds: Dataset) -> bool:
    column = ds.data.column("image")
    return any(chunk.field("bytes").null_count > chunk.null_count for chunk in column.chunks)



def save_dataset_dict(dsdict: DatasetDict, out_dir: str | os.PathLike, card: DatasetCard | None = None) -> Path:
    """Save as the Hub lays datasets out, atomically: `README.md` + `data/<split>-*.parquet`.

    `datasets.load_dataset(out_dir)` loads it back with the same features (label names
    and their order included); `medicraft_hf.hub.push_dataset_dict` uploads it as is.
    Without a `card`, a default `dataset_card` is written. Replacing an existing folder
    is allowed only when it holds a dataset saved this way.
    """
    from medicraft_hf.cards.dataset_card import add_loading_metadata, dataset_card
    from medicraft_hf.data.split import check_no_patient_leakage

    out_dir = Path(out_dir)
    if not isinstance(dsdict, DatasetDict):
        raise ValueError(f"save_dataset_dict needs a DatasetDict of splits, got {type(dsdict).__name__}")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_dataset_dir(out_dir))):
        raise FileExistsError(f"{out_dir} exists and is not a saved dataset; choose an empty or new --out folder.")
    check_schema(dsdict)
    check_no_patient_leakage(dsdict)
    if card is None:
        sources = sorted({s for ds in dsdict.values() for s in set(ds["source"])})
        card = dataset_card(dsdict, name=out_dir.name, source=", ".join(sources))
    card = DatasetCard(str(card))  # a copy: the loading metadata is added to it, not to the caller's
    add_loading_metadata(card, dsdict, data_dir=DATA_DIR)

    with atomic_path(out_dir) as tmp:
        (tmp / DATA_DIR).mkdir(parents=True)
        for split, ds in dsdict.items():
            num_shards = max(1, int(ds._estimate_nbytes() // MAX_SHARD_BYTES) + 1)
            for index in range(num_shards):
                shard = ds.shard(num_shards=num_shards, index=index, contiguous=True)
                if _has_external_images(shard):  # embed images referenced by path, as push_to_hub does
                    shard = shard.with_format("arrow").map(embed_table_storage, batched=True)
                shard.with_format(None).to_parquet(tmp / DATA_DIR / f"{split}-{index:05d}-of-{num_shards:05d}.parquet")
        card.save(tmp / "README.md")
    return out_dir


def build_dataset_dict(
    rows: Iterable[Mapping],
    class_names: Sequence[str] = CLASS_NAMES,
    *,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    fractions: Mapping[str, float] | None = None,
    skip_invalid: bool = False,
    problems: Problems | None = None,
    work_dir: str | os.PathLike | None = None,
    split_by: str = "patient",
    max_pixels: int | None = None,
    fit: str = "resize",
) -> DatasetDict:
    """rows -> validated dataset -> every class present -> split by patient (leakage-checked).

    Pass the loader's `Problems` so that problems found while listing files and while
    reading images end up in one error (or one skip report), together with empty classes
    and rows without a patient id; `work_dir` makes it resumable. Rows without a patient
    id are refused unless `split_by="image"` (see `split_by_patient`).
    """
    from medicraft_hf.data.split import DEFAULT_FRACTIONS, check_split_by, split_by_patient

    check_split_by(split_by)
    dataset = rows_to_dataset(rows, class_names, size=size, skip_invalid=skip_invalid, problems=problems, work_dir=work_dir,
                              require_patient_id=split_by == "patient", require_every_class=True,
                              max_pixels=max_pixels, fit=fit)
    check_classes_present(dataset)  # again: --skip-invalid may have emptied a class
    return split_by_patient(dataset, seed=seed, fractions=fractions or DEFAULT_FRACTIONS, split_by=split_by)
