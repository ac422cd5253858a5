"""Where a dataset or a model comes from: a Hub repo id, or a local folder in a known layout.

Plain Python (no torch, diffusers or datasets), so that commands can tell sources apart
before importing anything heavy. Every loader, card, command and the Space ask here.

A saved dataset is a folder in one of two layouts:
- "hub": `README.md` + `data/*.parquet`, what `save_dataset_dict` writes, what
  `push_dataset_dict` uploads and what the Hub holds; the only layout replaced or pushed;
- "disk": what `Dataset(Dict).save_to_disk` writes (`dataset_dict.json` or `state.json`),
  which the loaders also read.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = "data"  # the Hub layout's folder of parquet shards

_LOCAL_PREFIXES = (".", "/", "~")


def is_repo_id(text: str | os.PathLike) -> bool:
    """Shaped like a Hub repo id, `<user-or-org>/<name>` (whether or not a local path has that name)."""
    text = os.fspath(text)
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith(_LOCAL_PREFIXES)


def is_hub_id(source: str | os.PathLike) -> bool:
    """A source to fetch from the Hub: shaped like `org/name`, and no local path of that name."""
    return is_repo_id(source) and not os.path.exists(source)


def check_repo_id(repo_id: str, what: str = "repo_id") -> str:
    """`repo_id` if it can name a Hub repo to push to; else an `ArgumentError` (a ValueError)
    naming `what`, which the CLI renames to its flag."""
    from medicraft_hf.errors import ArgumentError

    if not is_repo_id(repo_id):
        raise ArgumentError(what, f"{{argument}} {repo_id!r} needs a namespace: <user-or-org>/<name>")
    return repo_id


def public_name(source: str | os.PathLike | None):
    """A local path as its last part (cards and provenance are shared; local paths may say too much),
    anything else (a Hub id, None) as it is."""
    return Path(source).name if source and os.path.exists(source) else source


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """A dataset saved in the Hub layout: what `save_dataset_dict` writes, replaces and pushes."""
    return saved_dataset_format(path) == "hub"


def saved_dataset_format(path: str | os.PathLike) -> str | None:
    """"hub" or "disk" for a folder holding a saved dataset in that layout (see above), else None."""
    path = Path(path)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if (path / "README.md").is_file() and any((path / DATA_DIR).glob("*.parquet")):
        return "hub"
    return None
