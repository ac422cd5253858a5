"""The `DatasetCard` every built OCT dataset gets: classes, counts, splits, privacy, loading."""

from __future__ import annotations

from collections import Counter

from datasets import DatasetDict
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from medicraft_hf.schema import class_names_of
from medicraft_hf.sources import is_repo_id

SPLIT_STATEMENT = (
    "Splits are made **by patient**: every patient's B-scans are in exactly one split "
    "(the 12 radial B-scans of one exam are near-duplicates, so an image-level split would leak "
    "test images into training). The split is seeded and stratified by each patient's class "
    "(their most frequent label). A leakage check, run on every build and every load, fails "
    "when a patient id or an identical image appears in two splits."
)

# Said instead of SPLIT_STATEMENT when some rows have no patient id (`split_by="image"`): the
# card must never claim a patient-level split that was not made.
IMAGE_SPLIT_STATEMENT = (
    "Splits are made **by image**, not by patient: the images carry no patient id, so each was "
    "split as its own patient, and a patient's B-scans (the near-duplicate planes of one exam "
    "included) may appear in several splits. Test scores on this dataset may therefore be "
    "optimistic for unseen patients. The split is seeded and stratified by class. A leakage check, "
    "run on every build and every load, fails when an identical image appears in two splits."
)
MIXED_SPLIT_STATEMENT = (
    "Images with a patient id are split **by patient** (each such patient's B-scans are in exactly "
    "one split); images without one were split **by image**: each was split as its own patient, so "
    "a patient's B-scans may appear in several splits. The split is seeded and stratified by each "
    "patient's class. A leakage check, run on every build and every load, fails when a patient id "
    "or an identical image appears in two splits."
)

DEID_STATEMENT = (
    "No clinical identifier is stored. `patient_id` and `exam_id` of real images are salted one-way hashes "
    "(`medicraft_hf.deid.pseudonym`); names, birth dates, clinic ids, DICOM tags and vendor "
    "header fields are never copied; file names are not kept. {image_ids} Re-identification risk from "
    "the images themselves (e.g. retinal vessel patterns) remains and governs how the data may be "
    "shared: keep the repository private unless the data owner approves."
)

# What `image_id` is, by the prefix each maker gives it (medicraft_hf.data.build,
# medicraft_hf.data.phantom, medicraft_hf.generate).
IMAGE_ID_FORMS: tuple[tuple[str, str], ...] = (
    ("img-", "`img-<16 hex digits>`: the start of a SHA-256 of the decoded pixels (the id of a built row "
             "that came without one)"),
    ("phantom-", "`phantom-s<seed>-<patient>-<plane>` (phantom images): the phantom's seed, the patient's "
                 "number and the plane angle in degrees"),
    ("synthetic-", "`synthetic-<run tag>-<index>` (synthetic images): the run tag is the first 8 hex digits of "
                   "a SHA-256 of the generation settings (model id and revision, scheduler, steps, guidance "
                   "scale, base seed, class names, image size), not of the pixels; the index is the image's "
                   "number in the run"),
)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def image_id_statement(dsdict: DatasetDict) -> str:
    """What the dataset's `image_id`s are, by their form (e.g. a pixel hash for built real images)."""
    ids = [i for ds in dsdict.values() for i in ds["image_id"]]
    forms = [text for prefix, text in IMAGE_ID_FORMS if any(i.startswith(prefix) for i in ids)]
    if any(not i.startswith(tuple(prefix for prefix, _ in IMAGE_ID_FORMS)) for i in ids):
        forms.append("as given in the input rows")
    if len(forms) == 1:
        return f"`image_id` is {forms[0]}."
    return "`image_id` is one of: " + "; ".join(forms) + "."


def split_statement(dsdict: DatasetDict) -> str:
    """How the rows were split: by patient, or (rows without a patient id) by image."""
    missing = {s: sum(p is None for p in ds["patient_id"]) for s, ds in dsdict.items()}
    total, without = sum(len(ds) for ds in dsdict.values()), sum(missing.values())
    if not without:
        return SPLIT_STATEMENT
    counts = ", ".join(f"{n} {s}" for s, n in missing.items() if n)
    note = (f"\n\n> **Warning:** {counts} image(s) have no patient id; each was split as its own patient, "
            "so near-duplicate B-scans of one eye may sit in different splits.")
    return (IMAGE_SPLIT_STATEMENT if without == total else MIXED_SPLIT_STATEMENT) + note


def _counts_table(dsdict: DatasetDict, class_names: list[str]) -> str:
    splits = list(dsdict)
    counts = {split: Counter(ds["label"]) for split, ds in dsdict.items()}
    # Known patients only: an image without an id is no patient the table could count.
    patients = {split: len({p for p in ds["patient_id"] if p is not None}) for split, ds in dsdict.items()}
    lines = ["| class | " + " | ".join(splits) + " | total |", "|---|" + "---|" * (len(splits) + 1)]
    for i, name in enumerate(class_names):
        row = [counts[s].get(i, 0) for s in splits]
        lines.append(f"| {i}: `{name}` | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    total = [len(dsdict[s]) for s in splits]
    lines.append("| **images** | " + " | ".join(map(str, total)) + f" | {sum(total)} |")
    missing = {split: sum(p is None for p in ds["patient_id"]) for split, ds in dsdict.items()}

    def cell(known: int, unknown: int) -> str:
        if not unknown:
            return str(known)
        return f"{known} (+ {unknown} image(s) without id)" if known else f"unknown ({unknown} image(s) without id)"

    lines.append("| **patients** | " + " | ".join(cell(patients[s], missing[s]) for s in splits)
                 + f" | {cell(sum(patients.values()), sum(missing.values()))} |")
    return "\n".join(lines)


def add_loading_metadata(card: DatasetCard, dsdict: DatasetDict, data_dir: str = "data") -> DatasetCard:
    """Put `configs` and `dataset_info` (features with label order) into the card's YAML.

    This is what `load_dataset` reads (locally and on the Hub) to find the parquet shards
    of each split and to restore the `ClassLabel` names in their order.
    """
    features = next(iter(dsdict.values())).features
    splits = SplitDict()
    for split, ds in dsdict.items():
        splits.add(SplitInfo(name=split, num_examples=len(ds)))
    DatasetInfosDict({"default": DatasetInfo(features=features, splits=splits)}).to_dataset_card_data(card.data)
    configs = {"default": {"data_files": [{"split": s, "path": f"{data_dir}/{s}-*"} for s in dsdict]}}
    MetadataConfigs(configs).to_dataset_card_data(card.data)
    return card


def dataset_card(
    dsdict: DatasetDict,
    *,
    name: str,
    source: str,
    description: str = "",
    license: str = "other",
    extra_sections: dict[str, str] | None = None,
) -> DatasetCard:
    """A dataset card with classes and counts per split, split and privacy statements, loading.

    `name` is the repo id (`org/name`) or a bare name; `source` says where the images
    come from (e.g. "Kermany OCT2017 class folders", "phantom", "synthetic: <model>").
    `extra_sections` ({title: markdown}) lets generation, evaluation and review append
    their own sections.
    """
    if not isinstance(dsdict, DatasetDict) or not dsdict:
        raise ValueError("dataset_card needs a non-empty DatasetDict of splits.")
    class_names = class_names_of(dsdict)
    total = sum(len(ds) for ds in dsdict.values())
    repo_id = name if is_repo_id(name) else f"<your-org>/{name}"
    pretty = name.split("/")[-1]

    data = DatasetCardData(
        license=license,
        pretty_name=pretty,
        task_categories=["image-classification"],
        tags=["medical", "ophthalmology", "oct", "medicraft-hf"],
        size_categories=[_size_category(total)],
    )
    body = [
        f"# {pretty}",
        description.strip(),
        f"**Source:** {source}  \n**License:** `{license}`  \n**Images:** {total} grayscale OCT B-scans "
        f"in the medicraft-hf schema (`medicraft_hf.schema.oct_features`).",
        "## Classes and counts per split",
        "Label ids follow this order (a `ClassLabel`; names and order survive save, push and load):\n\n"
        + _counts_table(dsdict, class_names),
        "## Splits",
        split_statement(dsdict),
        "## De-identification",
        DEID_STATEMENT.format(image_ids=image_id_statement(dsdict)),
        "## How to load",
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("{repo_id}")  # private repos: log in first (`hf auth login`)\n'
        'ds["train"].features["label"].names\n```\n\n'
        "or, with the schema check and the leakage check:\n\n"
        "```python\nfrom medicraft_hf.data.load import load_oct_dataset\n\n"
        f'ds = load_oct_dataset("{repo_id}")\n```',
        "## Columns",
        "`image` (grayscale PNG), `label`, `patient_id`, `exam_id`, `eye` (OD/OS), `plane_deg` "
        "(radial plane angle), `bscan_index`, `position_mm` (raster scans), `depth_spacing_mm` and "
        "`lateral_spacing_mm` (pixel size of the stored image; vendor files that state it), "
        "`source` (real/phantom/synthetic), `image_id`, `ground_truth` "
        "(phantom only, JSON), and provenance filled by synthetic rows: `model_id`, "
        "`model_revision`, `scheduler`, `num_inference_steps`, `guidance_scale`, `seed`.",
    ]
    for title, text in (extra_sections or {}).items():
        body += [f"## {title}", text.strip()]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(part for part in body if part) + "\n"
    card = DatasetCard(content)
    add_loading_metadata(card, dsdict)
    return card
