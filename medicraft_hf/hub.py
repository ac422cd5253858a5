"""Share datasets and models on the Hugging Face Hub: private by default, retried, atomic.

    push_dataset_dict(dsdict_or_local_dir, "org/oct-phantom", card=card)
    push_model_folder("runs/ddpm/pipeline", "org/oct-ddpm")

Datasets go up as parquet shards through `DatasetDict.push_to_hub` (one commit), so
`load_dataset("org/name")` gives back the same features, ClassLabel names and order
included. Models go up as one `upload_folder` commit. A commit is atomic on the Hub: a
failed push leaves the repo at its last complete commit and never touches the local
copy, so the remedy for a failure is always to run the same push again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
from datasets import DatasetDict, load_dataset
from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import HfHubHTTPError

from medicraft_hf.data.load import load_dataset_folder, load_oct_dataset
from medicraft_hf.data.split import check_no_patient_leakage
from medicraft_hf.errors import RunError
from medicraft_hf.schema import check_schema
from medicraft_hf.sources import is_dataset_dir

logger = logging.getLogger(__name__)

# Server answers worth retrying: timeouts, conflicts with a concurrent commit, rate
# limits and server errors. Anything else (401, 403, 404, bad input) fails at once.
TRANSIENT_STATUS_CODES = (408, 409, 412, 429, 500, 502, 503, 504)
DEFAULT_MAX_SHARD_SIZE = "200MB"
# Never publish pickled weights (they run code when loaded); safetensors only.
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Training leftovers that are not part of a model repo.
MODEL_IGNORE_PATTERNS = ["checkpoint-*/**", "checkpoint-*", "logs/**", ".*", "**/.*", "*.tmp"]


class HubPushError(RunError):
    """A push failed; the message says what is intact and how to retry."""


def is_model_dir(path: str | os.PathLike) -> bool:
    """A diffusers pipeline folder (what `save_pretrained` writes)."""
    return (Path(path) / "model_index.json").is_file()


def push_dataset_dict(
    dsdict_or_local_dir: DatasetDict | str | os.PathLike,
    repo_id: str,
    *,
    card: DatasetCard | None = None,
    private: bool = True,
    revision: str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    commit_message: str = "Upload OCT dataset",
    oct_schema: bool = True,
    merge: Callable[[DatasetDict, DatasetDict], DatasetDict] | None = None,
    what: str | None = None,
    max_attempts: int = 3,
    retry_wait: float = 2.0,
) -> str:
    """Push an OCT `DatasetDict` (or a dataset folder saved in Hub layout) to a dataset repo.

    The card (for a folder: its README.md, unless `card` is given) is pushed after the
    shards, with the `dataset_info`/`configs` YAML that `push_to_hub` wrote merged into it,
    so the Hub copy keeps both the card's text and what `load_dataset` needs.
    OCT datasets are checked first (schema, no patient in two splits); pass
    `oct_schema=False` for other tables (e.g. expert ratings).
    `merge(on_hub, dsdict)` returns what to push when the repo already holds data (read
    afresh on every attempt), so that pushes from several places keep the union (ratings).
    `what` names the data in errors (default: "dataset" and the folder).
    Returns the commit id of the final state of `revision` (default branch if None).
    """
    local_dir = None
    if isinstance(dsdict_or_local_dir, DatasetDict):
        dsdict = dsdict_or_local_dir
    else:
        local_dir = Path(dsdict_or_local_dir)
        dsdict = _load_local_dataset_dict(local_dir, oct_schema)
        if card is None:
            card = DatasetCard.load(local_dir / "README.md")
    if local_dir is None and oct_schema:
        check_schema(dsdict)
        check_no_patient_leakage(dsdict)
    what = what or (f"dataset {local_dir}" if local_dir else "dataset")
    api = HfApi()

    def push():
        _ensure_repo(api, repo_id, "dataset", private=private, revision=revision)
        pushed = dsdict
        if merge is not None and any(f.endswith(".parquet") for f in
                                     api.list_repo_files(repo_id, repo_type="dataset", revision=revision)):
            on_hub = load_dataset(repo_id, revision=revision)
            pushed = merge(on_hub if isinstance(on_hub, DatasetDict) else DatasetDict({"train": on_hub}), dsdict)
        pushed.push_to_hub(repo_id, revision=revision, max_shard_size=max_shard_size, commit_message=commit_message)
        if card is not None:
            _push_merged_card(api, card, repo_id, revision)
        return api.repo_info(repo_id, repo_type="dataset", revision=revision).sha

    return _with_retries(push, what=what, repo_id=repo_id, local_dir=local_dir,
                         max_attempts=max_attempts, retry_wait=retry_wait)


def push_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    revision: str | None = None,
    commit_message: str = "Upload OCT diffusion pipeline",
    max_attempts: int = 3,
    retry_wait: float = 2.0,
) -> str:
    """Push a saved pipeline folder (model_index.json, unet/, scheduler/, ...) as one commit.

    Refuses pickled weight files (safetensors only) and skips training leftovers
    (`checkpoint-*`, `logs/`, hidden files). Returns the commit id.
    """
    folder = Path(folder)
    if not is_model_dir(folder):
        raise FileNotFoundError(
            f"{folder} is not a saved pipeline folder (no model_index.json); "
            "save one with pipe.save_pretrained(folder) or training/train_ddpm.py."
        )
    pickled = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*")
        if p.suffix in PICKLE_WEIGHT_SUFFIXES and not p.relative_to(folder).parts[0].startswith(("checkpoint-", "logs"))
    )
    if pickled:
        raise ValueError(
            f"{folder} holds pickled weight files {pickled}; only safetensors are published. "
            "Re-save the pipeline with save_pretrained(..., safe_serialization=True) and delete them."
        )
    api = HfApi()

    def push():
        _ensure_repo(api, repo_id, "model", private=private, revision=revision)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision,
                                 commit_message=commit_message, ignore_patterns=MODEL_IGNORE_PATTERNS)
        return info.oid

    return _with_retries(push, what=f"model folder {folder}", repo_id=repo_id, local_dir=folder,
                         max_attempts=max_attempts, retry_wait=retry_wait)


def _load_local_dataset_dict(local_dir: Path, oct_schema: bool) -> DatasetDict:
    if not is_dataset_dir(local_dir):
        raise FileNotFoundError(
            f"{local_dir} is not a saved dataset (expected README.md and data/*.parquet); "
            "build one with `medicraft phantom` / `medicraft build` or save_dataset_dict()."
        )
    if oct_schema:
        return load_oct_dataset(local_dir)  # checks schema, label order and patient leakage
    dsdict = load_dataset_folder(local_dir)
    return dsdict if isinstance(dsdict, DatasetDict) else DatasetDict({"train": dsdict})


def _ensure_repo(api: HfApi, repo_id: str, repo_type: str, *, private: bool, revision: str | None) -> None:
    """Create the repo (private unless asked otherwise); refuse to publish into a public repo by default."""
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if private and not api.repo_info(repo_id, repo_type=repo_type).private:
        raise ValueError(
            f"{repo_type} repo {repo_id} already exists and is PUBLIC, but this push is private by default. "
            "Pass --public (public=True / private=False) if publishing there is intended, or choose another repo id."
        )
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)


def _push_merged_card(api: HfApi, card: DatasetCard, repo_id: str, revision: str | None) -> None:
    """Push `card` as README.md, keeping the loader YAML (`dataset_info`, `configs`) now on the Hub."""
    hub_card = DatasetCard.load(api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision))
    merged = DatasetCard(str(card))  # a copy: the caller's card is left as it was
    for key in ("dataset_info", "configs"):
        if key in hub_card.data:
            merged.data[key] = hub_card.data[key]
    merged.push_to_hub(repo_id, repo_type="dataset", revision=revision, commit_message="Update dataset card")


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return err.response.status_code in TRANSIENT_STATUS_CODES
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def _with_retries(push: Callable[[], str], *, what: str, repo_id: str, local_dir: Path | None,
                  max_attempts: int, retry_wait: float) -> str:
    for attempt in range(1, max_attempts + 1):
        try:
            return push()
        except (HfHubHTTPError, httpx2.HTTPError, OSError) as err:
            if attempt < max_attempts and _is_transient(err):
                wait = retry_wait * 2 ** (attempt - 1)
                logger.warning("Push of %s to %s failed (%s); retry %d/%d in %.0f s",
                               what, repo_id, err, attempt, max_attempts - 1, wait)
                time.sleep(wait)
                continue
            intact = f"The local copy at {local_dir} is intact" if local_dir else "The in-memory dataset is unchanged"
            status = getattr(getattr(err, "response", None), "status_code", None)
            fix = (f"Check that you are logged in (`hf auth login` or HF_TOKEN) with write access to "
                   f"{repo_id.split('/')[0]}, then run the same push again"
                   if status in (401, 403) else "Run the same push again to retry")
            raise HubPushError(
                f"Pushing {what} to {repo_id} failed after {attempt} attempt(s): {err}\n"
                f"{intact}, and the Hub repo still holds its last complete commit (a commit is all or nothing). "
                f"{fix} (`medicraft push <path> {repo_id}`); files already uploaded are not sent twice."
            ) from err
    raise AssertionError("unreachable")
