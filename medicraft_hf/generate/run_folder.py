"""A run's folders: `<out>.partial/` (shards + run.json) while it runs, `<out>` when done.

The shards are the state: a restart samples only what they lack. A folder holding
another run's images is refused, never mixed.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from datasets import Features, Value

from medicraft_hf.errors import RunError
from medicraft_hf.generate.numbering import image_index
from medicraft_hf.generate.settings import GenerationSettings
from medicraft_hf.schema import oct_features
from medicraft_hf.shards import INDEX_COLUMN, ShardStore
from medicraft_hf.sources import is_dataset_dir

WORK_SUFFIX = ".partial"  # <out>.partial/: shards and run.json while the run is unfinished
RUN_FILE = "run.json"
DONE_FILE = ".medicraft-generate.json"  # in <out>: the settings and statistics of the finished run
# 2: batch-invariant sampling; 3: one thread per UNet call and MKL's strict mode (older runs cannot be continued)
FORMAT_VERSION = 3


def work_dir_of(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + WORK_SUFFIX)


def work_features(class_names: Sequence[str]) -> Features:
    """The schema plus what the working shards also keep: the index and the filter's verdict."""
    features = oct_features(class_names)
    features.update({INDEX_COLUMN: Value("int64"), "accepted": Value("bool"),
                     "anatomy_verdict": Value("string"), "anatomy_score": Value("float32")})
    return features


def run_record(settings: GenerationSettings, counts: dict[str, int], split: str,
               anatomy_threshold: float | None) -> dict:
    """What identifies a run on disk (run.json, and the finished dataset's DONE_FILE)."""
    return {"format": FORMAT_VERSION, "settings": asdict(settings), "counts": counts, "split": split,
            "anatomy_threshold": anatomy_threshold}


def differences(recorded: dict, record: dict) -> list[str]:
    """Names of the settings in which a recorded run differs from this one."""
    def flat(r):
        return {**r.get("settings", {}), **{k: v for k, v in r.items() if k != "settings"}}

    a, b = flat(json.loads(json.dumps(recorded))), flat(json.loads(json.dumps(record)))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is unreadable ({err}); use a new --out or --overwrite.") from err


def prepare_out(out_dir: Path, record: dict, overwrite: bool, is_main: bool) -> bool:
    """Check the output folders belong to this run (or are new); True when it is finished."""
    work_dir = work_dir_of(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file; --out must be a folder (new, empty, or this run's).")
    done_file = out_dir / DONE_FILE
    ours = done_file.is_file() or not out_dir.exists() or not any(out_dir.iterdir())
    if overwrite:
        if out_dir.exists() and not ours and not is_dataset_dir(out_dir):
            raise FileExistsError(f"{out_dir} holds files that are not a dataset; --overwrite only replaces a "
                                  "dataset folder. Choose a new --out.")
        if is_main:
            shutil.rmtree(work_dir, ignore_errors=True)
            if out_dir.exists():
                shutil.rmtree(out_dir)
        return False
    if done_file.is_file():
        differ = differences(read_json(done_file).get("run", {}), record)
        if differ:
            raise FileExistsError(f"{out_dir} holds another generation run (different {', '.join(differ)}); "
                                  "use a new --out, or --overwrite to replace it.")
        if not work_dir.exists():
            return True
    elif not ours:
        raise FileExistsError(f"{out_dir} exists and is not the output of this generation run; "
                              "use a new --out, or --overwrite to replace it.")
    run_file = work_dir / RUN_FILE
    if run_file.is_file():
        differ = differences(read_json(run_file), record)
        if differ:
            raise FileExistsError(f"{work_dir} holds the shards of another generation run (different "
                                  f"{', '.join(differ)}); use a new --out, or --overwrite to discard them.")
    elif work_dir.exists() and any(work_dir.iterdir()):
        raise FileExistsError(f"{work_dir} exists and is not a generation run's working folder; "
                              "remove it or use a new --out.")
    return False


def select_kept(store: ShardStore, counts_by_id: dict[int, int], num_classes: int):
    """Global indices kept (first passing images of each class) and per-class statistics."""
    cols = store.read_columns([INDEX_COLUMN, "accepted", "anatomy_verdict"])
    if len(set(cols[INDEX_COLUMN])) != len(cols[INDEX_COLUMN]):
        raise RunError(f"{store.directory} holds an image twice; the run is corrupt, use --overwrite.")
    accepted = dict(zip(cols[INDEX_COLUMN], cols["accepted"]))
    keep, candidates, rejected, verdicts = [], Counter(), Counter(), Counter()
    for c, want in counts_by_id.items():
        passed = [i for i in (image_index(c, k, num_classes) for k in range(len(accepted))) if accepted.get(i)][:want]
        if len(passed) < want:
            raise RunError(f"{store.directory} holds {len(passed)} passing images of class {c}, {want} needed.")
        keep += passed
    for index, ok, verdict in zip(cols[INDEX_COLUMN], cols["accepted"], cols["anatomy_verdict"]):
        candidates[index % num_classes] += 1
        if not ok:
            rejected[index % num_classes] += 1
            verdicts[verdict] += 1
    return sorted(keep), candidates, rejected, verdicts
