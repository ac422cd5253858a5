"""Load an OCT dataset saved by `save_dataset_dict` or pushed to the Hub, with checks."""

from __future__ import annotations

import os
from pathlib import Path

from datasets import DatasetDict, load_dataset, load_from_disk

from medicraft_hf.data.split import check_no_patient_leakage
from medicraft_hf.schema import check_schema
from medicraft_hf.sources import is_hub_id, saved_dataset_format


def load_dataset_folder(path: str | os.PathLike, **kwargs):
    """`load_dataset` on a local folder, read afresh.

    `datasets` caches a local folder under its name and may hand back an earlier dataset
    of the same folder after it was regenerated (seen: `medicraft demo` run twice gave the
    first run's images); re-preparing the Arrow cache costs a second per 10k small images.
    """
    return load_dataset(str(path), download_mode="force_redownload", **kwargs)


def load_oct_dataset(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> DatasetDict:
    """A `DatasetDict` from a local folder (Hub layout or `save_to_disk`) or a Hub repo id.

    Checks the OCT schema, that every split has the same label names in the same order,
    and that no patient is in two splits.
    """
    path = Path(path_or_repo_id)
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is a file; pass the dataset folder (with README.md and data/).")
        layout = saved_dataset_format(path)
        if layout == "disk":
            dsdict = load_from_disk(str(path))
        elif layout == "hub":
            dsdict = load_dataset_folder(path)
        else:
            raise FileNotFoundError(f"{path} holds no saved dataset (no README.md with data/*.parquet, nor a "
                                    "save_to_disk folder); build one with `medicraft build`.")
    elif is_hub_id(path_or_repo_id):
        dsdict = load_dataset(str(path_or_repo_id), revision=revision)
    else:
        raise FileNotFoundError(f"{path_or_repo_id} is neither a local dataset folder nor a Hub repo id like 'org/name'.")
    if not isinstance(dsdict, DatasetDict):
        dsdict = DatasetDict({"train": dsdict})
    check_schema(dsdict, name=str(path_or_repo_id))
    names = {split: tuple(ds.features["label"].names) for split, ds in dsdict.items()}
    if len(set(names.values())) > 1:
        raise ValueError(f"{path_or_repo_id}: splits disagree on label names/order: {names}; rebuild the dataset.")
    check_no_patient_leakage(dsdict)
    return dsdict
