"""The `DatasetCard` every built OCT dataset gets: classes, counts, splits, privacy, loading."""

from __future__ import annotations

from collections import Counter

from datasets import DatasetDict
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from medicraft_hf.schema import class_names_of

SPLIT_STATEMENT = (
    "Splits are made **by patient**: every patient's B-scans are in exactly one split "
    "(the 12 radial B-scans of one exam are near-duplicates, so an image-level split would leak "
    "test images into training). The split is seeded and stratified by each patient's class "
    "(their most frequent label). A leakage check, run on every build and every load, fails "
    "when a patient id or an identical image appears in two splits."
)

DEID_STATEMENT = (
    "No clinical identifier is stored. `patient_id` and `exam_id` are salted one-way hashes "
    "(`medicraft_hf.deid.pseudonym`); names, birth dates, clinic ids, DICOM tags and vendor "
    "header fields are never copied; file names are not kept; `image_id` is a hash of the "
    "pixels. Re-identification risk from the images themselves (e.g. retinal vessel patterns) "
    "remains and governs how the data may be shared: keep the repository private unless the "
    "data owner approves."
)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _counts_table(dsdict: DatasetDict, class_names: list[str]) -> str:
    splits = list(dsdict)
    counts = {split: Counter(ds["label"]) for split, ds in dsdict.items()}
    patients = {split: len(set(ds["patient_id"])) for split, ds in dsdict.items()}
    lines = ["| class | " + " | ".join(splits) + " | total |", "|---|" + "---|" * (len(splits) + 1)]
    for i, name in enumerate(class_names):
        row = [counts[s].get(i, 0) for s in splits]
        lines.append(f"| {i}: `{name}` | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    total = [len(dsdict[s]) for s in splits]
    lines.append("| **images** | " + " | ".join(map(str, total)) + f" | {sum(total)} |")
    lines.append("| **patients** | " + " | ".join(str(patients[s]) for s in splits) + f" | {sum(patients.values())} |")
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
    repo_id = name if "/" in name else f"<your-org>/{name}"
    pretty = name.split("/")[-1]

    data = DatasetCardData(
        license=license,
        pretty_name=pretty,
        task_categories=["image-classification"],
        tags=["medical", "ophthalmology", "oct", "medicraft-hf"],
        size_categories=[_size_category(total)],
    )
    missing_ids = {s: sum(p is None for p in ds["patient_id"]) for s, ds in dsdict.items()}
    warnings = ""
    if any(missing_ids.values()):
        warnings = (
            "\n> **Warning:** " + ", ".join(f"{n} {s}" for s, n in missing_ids.items() if n)
            + " image(s) have no patient id; each was split as its own patient, so near-duplicate "
            "B-scans of one eye may sit in different splits.\n"
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
        SPLIT_STATEMENT + warnings,
        "## De-identification",
        DEID_STATEMENT,
        "## How to load",
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("{repo_id}")  # private repos: log in first (`hf auth login`)\n'
        'ds["train"].features["label"].names\n```\n\n'
        "or, with the schema check and the leakage check:\n\n"
        "```python\nfrom medicraft_hf.data.load import load_oct_dataset\n\n"
        f'ds = load_oct_dataset("{repo_id}")\n```',
        "## Columns",
        "`image` (grayscale PNG), `label`, `patient_id`, `exam_id`, `eye` (OD/OS), `plane_deg` "
        "(radial plane angle), `source` (real/phantom/synthetic), `image_id`, `ground_truth` "
        "(phantom only, JSON), and provenance filled by synthetic rows: `model_id`, "
        "`model_revision`, `scheduler`, `num_inference_steps`, `guidance_scale`, `seed`.",
    ]
    for title, text in (extra_sections or {}).items():
        body += [f"## {title}", text.strip()]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(part for part in body if part) + "\n"
    card = DatasetCard(content)
    add_loading_metadata(card, dsdict)
    return card
