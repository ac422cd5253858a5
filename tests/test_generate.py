"""Synthetic dataset generation: numbering, exactness, resume after SIGKILL, several
processes, balancing, the anatomy filter, bad input and a 1,000-image Hub round trip.

Everything runs the real pipeline on a tiny untrained UNet at 16x32 (speed, not looks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from datasets import DatasetDict, load_dataset

from medicraft_hf.cli import main
from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.generate import (
    DONE_FILE,
    WORK_SUFFIX,
    AnatomyFilter,
    balance_counts,
    check_counts,
    generate_dataset,
    generate_images,
    image_seed,
    parse_counts,
    plan_indices,
    plan_next_round,
)
from medicraft_hf.models import load_pipeline, make_scheduler
from medicraft_hf.schema import CLASS_NAMES, check_schema
from tests.factories import save_tiny_pipeline, tiny_pipeline
from tests.launch import accelerate_cpu_launch, run_group

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = (16, 32)
FAST = dict(num_inference_steps=2, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("gen") / "tiny-oct", resolution=SIZE)


def dataset_rows(out_dir: Path) -> list[dict]:
    """Every row of a generated dataset's parquet shards (image bytes included), by image id."""
    files = sorted((out_dir / "data").glob("*.parquet"))
    assert files, f"no parquet shards in {out_dir}/data"
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["image_id"])


def pixels(row) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])), dtype=np.int16)


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "MEDICRAFT_DEBUG": "1"}


# ------------------------------------------------------------------ numbering and counts
def test_numbering_seeds_and_counts():
    assert plan_indices({"healthy": 2, "melanoma": 3}, CLASS_NAMES) == [0, 3, 4, 7, 11]
    small, large = plan_indices({"nevus": 2}, CLASS_NAMES), plan_indices({"nevus": 5, "healthy": 1}, CLASS_NAMES)
    assert set(small) < set(large)  # a larger run contains a smaller run's images
    seeds = [image_seed(0, i) for i in range(5000)] + [image_seed(1, i) for i in range(5000)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    assert image_seed(0, 1) != image_seed(1, 0)
    # Fixed forever (any process, Python version or PYTHONHASHSEED): resumed runs and published
    # datasets' `seed` column depend on it. Computed independently of image_seed, with
    # int.from_bytes(hashlib.sha256(b"medicraft-generate/3/9").digest()[:8], "big") >> 1.
    assert [image_seed(3, 9), image_seed(0, 0), image_seed(0, 1)] == [
        2615971919591743113, 6151829979995526712, 2445476817496184681]

    assert check_counts({"melanoma": 2, 0: 1}, CLASS_NAMES) == {"healthy": 1, "melanoma": 2}
    assert parse_counts("nevus=3, melanoma=40") == {"nevus": 3, "melanoma": 40}
    for bad, match in [({"glaucoma": 1}, "Unknown class 'glaucoma'"), ({"nevus": 0}, "positive integer"),
                       ({"nevus": -2}, "positive integer"), ({"nevus": 2.5}, "positive integer"),
                       ({"nevus": True}, "positive integer"), ({}, "non-empty")]:
        with pytest.raises(ValueError, match=match):
            check_counts(bad, CLASS_NAMES)
    for bad, match in [("nevus", "class=N"), ("nevus=x", "positive integer"), ("nevus=1,nevus=2", "twice"), ("", "No counts")]:
        with pytest.raises(ValueError, match=match):
            parse_counts(bad)

    # Anatomy-filter rounds: a pure function of the results, more candidates where too few passed.
    assert plan_next_round({0: 10, 1: 4}, {0: 10, 1: 4}, {0: 5, 1: 4}) == {0: 23, 1: 4}
    assert plan_next_round({0: 10}, {0: 10}, {0: 0}) == {0: 100}  # nothing passed: up to the cap at once
    assert plan_next_round({0: 10}, {0: 100}, {0: 3}) is None  # cap reached: give up


# ------------------------------------------------------------------ in-memory rows, exactness
def test_generate_images_rows_are_schema_rows_and_exact():
    pipe = tiny_pipeline(resolution=SIZE)
    pipe.scheduler = make_scheduler("sde-dpmsolver++", pipe.scheduler.config)  # draws noise at every step
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(seed=7, num_inference_steps=3, model_id="org/tiny", model_revision="abc123")
    rows = list(generate_images(pipe, {"nevus": 3, "melanoma": 2}, batch_size=2, **kwargs))

    assert [r["index"] for r in rows] == [1, 3, 5, 7, 9]
    assert [CLASS_NAMES[r["label"]] for r in rows] == ["nevus", "melanoma", "nevus", "melanoma", "nevus"]
    assert all(r["seed"] == image_seed(7, r["index"]) for r in rows)
    assert {(r["model_id"], r["model_revision"], r["scheduler"], r["num_inference_steps"], r["guidance_scale"], r["source"])
            for r in rows} == {("org/tiny", "abc123", "sde-dpmsolver++", 3, 1.0, "synthetic")}
    assert len({r["image_id"] for r in rows}) == 5 and all(r["patient_id"] == r["image_id"] for r in rows)
    dataset = rows_to_dataset([{k: v for k, v in r.items() if k != "index"} for r in rows])
    check_schema(dataset)

    def arrays(rs):
        return np.stack([np.asarray(r["image"], dtype=np.int16) for r in rs])

    # Same settings: bit-identical; resuming a stream mid-batch gives the same images.
    again = list(generate_images(pipe, {"nevus": 3, "melanoma": 2}, batch_size=2, **kwargs))
    assert np.array_equal(arrays(rows), arrays(again))
    tail = list(generate_images(pipe, {"nevus": 3, "melanoma": 2}, batch_size=2, start_index=3, **kwargs))
    assert [r["index"] for r in tail] == [7, 9] and np.array_equal(arrays(tail), arrays(rows[3:]))
    # Any batch size and thread count: the same bytes.
    threads = torch.get_num_threads()
    try:
        for batch_size, num_threads in [(1, 1), (5, 2), (3, 1)]:
            torch.set_num_threads(num_threads)
            got = arrays(generate_images(pipe, {"nevus": 3, "melanoma": 2}, batch_size=batch_size, **kwargs))
            assert np.array_equal(got, arrays(rows)), (batch_size, num_threads)
    finally:
        torch.set_num_threads(threads)
    # Another seed: other images.
    other = arrays(generate_images(pipe, {"nevus": 3, "melanoma": 2}, batch_size=2, **{**kwargs, "seed": 8}))
    assert np.abs(other - arrays(rows)).mean() > 5


# ------------------------------------------------------------------ datasets on disk
def _evaluation_report(path: Path) -> Path:
    from medicraft_hf.evaluation.report import SUMMARY_METRICS

    summary = {m: {"TSTR": {"mean": 0.81, "std": 0.02}} for m in SUMMARY_METRICS}
    summary.update(fid=12.5, kid=0.01, kid_se=0.001, precision=0.7, recall=0.6, fid_real_heldout=3.0,
                   kid_real_heldout=0.001, near_copies=0, near_copy_rate=0.0, n_synthetic=5,
                   anatomy_ok_rate=0.9, anatomy_ok_rate_real=0.95)
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(json.dumps({"usefulness": {"TSTR": {}}, "summary": summary}))
    return path / "report.json"


def test_generate_dataset_hub_layout_card_rerun_and_other_runs(model_dir, tmp_path):
    out = tmp_path / "synthetic"
    result = generate_dataset(out, {"healthy": 2, "melanoma": 3}, model=model_dir, scheduler="ddpm", seed=5, **FAST)
    assert result.counts == {"healthy": 2, "melanoma": 3} and result.rejection_rate == 0.0
    assert not out.with_name(out.name + WORK_SUFFIX).exists()  # working shards cleaned up

    loaded = load_dataset(str(out))["train"]
    assert loaded.features["label"].names == list(CLASS_NAMES) and len(loaded) == 5
    assert Counter(loaded["label"]) == {0: 2, 3: 3}
    assert set(loaded["model_id"]) == {"tiny-oct"}  # the folder name, never an absolute path
    assert all(r.startswith("sha256:") for r in loaded["model_revision"])
    assert set(loaded["scheduler"]) == {"ddpm"} and set(loaded["num_inference_steps"]) == {2}
    assert loaded[0]["image"].size == (32, 16) and loaded[0]["image"].mode == "L"
    load_oct_dataset(out)  # schema + leakage checks
    card = (out / "README.md").read_text()
    for text in ("Synthetic — not for diagnosis", "| scheduler | `ddpm` |", "| base seed | 5 |", "load_dataset("):
        assert text in card

    # The same command again: nothing to do, nothing rewritten; with a report: the card gains it.
    before = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    generate_dataset(out, {"healthy": 2, "melanoma": 3}, model=model_dir, scheduler="ddpm", seed=5,
                     evaluation_report=_evaluation_report(tmp_path / "evaluation"), **FAST)
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == before
    card = (out / "README.md").read_text()
    assert "## Evaluation" in card and "0.810" in card and "FID 12.50" in card
    assert len(load_dataset(str(out))["train"]) == 5  # loading metadata kept in the rewritten card

    # Another run's settings in the same folder: refused, then replaced with --overwrite.
    with pytest.raises(FileExistsError, match=r"another generation run \(different seed\).*--overwrite"):
        generate_dataset(out, {"healthy": 2, "melanoma": 3}, model=model_dir, scheduler="ddpm", seed=6, **FAST)
    generate_dataset(out, {"healthy": 2, "melanoma": 3}, model=model_dir, scheduler="ddpm", seed=6, overwrite=True, **FAST)
    # (read the parquet: `load_dataset` may serve its cache of the folder's earlier content)
    assert {r["seed"] for r in dataset_rows(out)} == {image_seed(6, i) for i in (0, 3, 4, 7, 11)}
    assert json.loads((out / DONE_FILE).read_text())["run"]["settings"]["seed"] == 6


def test_balance_to_fills_minority_classes_and_checks_the_vocabulary(model_dir, tmp_path):
    rng = np.random.default_rng(0)
    have = {"healthy": 5, "nevus": 2, "nevus_fluid": 4, "melanoma": 1}
    rows = [{"image": rng.integers(0, 255, SIZE, dtype=np.uint8), "label": name, "patient_id": f"p{name}{i}",
             "source": "phantom"} for name, n in have.items() for i in range(n)]
    real = tmp_path / "real"
    save_dataset_dict(DatasetDict({"train": rows_to_dataset(rows)}), real)

    assert balance_counts(real, CLASS_NAMES) == {"nevus": 3, "nevus_fluid": 1, "melanoma": 4}
    out = tmp_path / "balanced"
    assert main(["generate", "--model", str(model_dir), "--out", str(out), "--balance-to", str(real),
                 "--steps", "1", "--batch-size", "4"]) == 0
    assert Counter(load_dataset(str(out))["train"]["label"]) == {1: 3, 2: 1, 3: 4}

    with pytest.raises(ValueError, match=r"model's classes \['a', 'b'\] do not match.*\['healthy'"):
        generate_dataset(tmp_path / "x", pipe=tiny_pipeline(class_names=("a", "b"), resolution=SIZE), balance_to=real, **FAST)
    reordered = tuple(reversed(CLASS_NAMES))
    with pytest.raises(ValueError, match="names and order must be equal"):
        generate_dataset(tmp_path / "y", pipe=tiny_pipeline(class_names=reordered, resolution=SIZE), balance_to=real, **FAST)
    with pytest.raises(ValueError, match="no split 'validation'"):
        balance_counts(real, CLASS_NAMES, split="validation")


def test_cli_bad_input_gives_clear_errors(model_dir, tmp_path, capsys):
    base = ["generate", "--model", str(model_dir), "--steps", "1"]
    cases = [
        (["--out", str(tmp_path / "a"), "--counts", "glaucoma=3"], "Unknown class 'glaucoma'; the model knows ['healthy'"),
        (["--out", str(tmp_path / "a"), "--counts", "nevus=0"], "must be a positive integer, got 0"),
        (["--out", str(tmp_path / "a"), "--counts", "nevus=2.5"], "must be a positive integer, got '2.5'"),
        (["--out", str(tmp_path / "a"), "--per-class", "-1"], "must be a positive integer, got -1"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--anatomy-threshold", "0.3"], "need --anatomy-filter"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--anatomy-filter", "--anatomy-threshold", "1.5"], "in [0, 1]"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--batch-size", "0"], "--batch-size must be a positive integer"),
        # Checked once, by the layer that owns the value (the pipeline), named as the CLI names it.
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--guidance-scale", "-1"],
         "--guidance-scale must be a number >= 0, got -1.0"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--seed", "-3"], "--seed must be a non-negative integer, got -3"),
        (["--out", str(tmp_path / "a"), "--per-class", "1", "--push-to-hub", "noslash"], "needs a namespace"),
        (["--out", str(tmp_path / "a"), "--balance-to", str(tmp_path / "missing")], "missing"),
    ]
    for args, message in cases:
        assert main(base + args) == 2, args
        err = capsys.readouterr().err
        assert "medicraft generate: error:" in err and message in err, (args, err)
    assert not (tmp_path / "a").exists()  # bad input writes nothing

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(base + ["--out", str(foreign), "--per-class", "1"]) == 2
    assert "is not the output of this generation run" in capsys.readouterr().err
    assert main(base + ["--out", str(foreign), "--per-class", "1", "--overwrite"]) == 2
    assert "not a dataset" in capsys.readouterr().err and (foreign / "notes.txt").exists()

    # Shards of an unfinished run with other settings: refused, named, not mixed.
    work = tmp_path / ("half" + WORK_SUFFIX)
    work.mkdir()
    (work / "run.json").write_text(json.dumps({"format": 1, "settings": {"seed": 99}}))
    assert main(base + ["--out", str(tmp_path / "half"), "--per-class", "1"]) == 2
    assert "holds the shards of another generation run" in capsys.readouterr().err


# ------------------------------------------------------------------ anatomy filter
def test_anatomy_filter_regenerates_until_counts_are_met(model_dir, tmp_path):
    def brightness(image):  # a deterministic stand-in QC: passes the brighter half of the images
        return SimpleNamespace(verdict="ok", score=float(np.asarray(image).mean()) / 255)

    first = list(generate_images(load_pipeline(model_dir, scheduler="dpmsolver++"), {"nevus": 8},
                                 num_inference_steps=2, batch_size=4))
    threshold = float(np.median([brightness(r["image"]).score for r in first]))
    runs = []
    for name, flush_every in (("a", 1), ("b", 64)):
        result = generate_dataset(tmp_path / name, {"nevus": 4, "melanoma": 3}, model=model_dir, flush_every=flush_every,
                                  anatomy_filter=AnatomyFilter(threshold, check=brightness), **FAST)
        runs.append(dataset_rows(tmp_path / name))
        assert result.counts == {"nevus": 4, "melanoma": 3}
        assert sum(result.rejected.values()) > 0 and 0 < result.rejection_rate < 1
        assert all(result.candidates[c] - result.rejected[c] >= n for c, n in result.counts.items())
        card = (tmp_path / name / "README.md").read_text()
        assert "## Anatomy filter" in card and f"{100 * result.rejection_rate:.1f}%" in card
    assert [r["image"]["bytes"] for r in runs[0]] == [r["image"]["bytes"] for r in runs[1]]  # deterministic
    assert Counter(r["label"] for r in runs[0]) == {1: 4, 3: 3}
    assert all(brightness(pixels(r)).score >= threshold for r in runs[0])

    # A calibration written by the review tools sets the threshold (here 0: everything passes).
    from medicraft_hf.review.calibrate import write_calibration

    calibration = write_calibration({"threshold": 0.0}, tmp_path / "calibration.json")
    assert main(["generate", "--model", str(model_dir), "--out", str(tmp_path / "calibrated"), "--counts", "healthy=2",
                 "--steps", "1", "--anatomy-filter", "--anatomy-calibration", str(calibration)]) == 0
    assert "least **0.000** were kept" in (tmp_path / "calibrated" / "README.md").read_text()

    # The real anatomy check: untrained noise is "corrupted" (score 0), so a cut above 0 never fills.
    result = generate_dataset(tmp_path / "real0", {"healthy": 2}, model=model_dir, anatomy_filter=AnatomyFilter(0.0), **FAST)
    assert result.rejection_rate == 0.0
    # A library error speaks the library's words (the CLI names the flag).
    with pytest.raises(ValueError, match=r"anatomy filter passed too few images.*'healthy': '0/1'.*lower the anatomy "
                                         r"threshold"):
        generate_dataset(tmp_path / "real5", {"healthy": 1}, model=model_dir, anatomy_filter=AnatomyFilter(0.5), **FAST)


def test_library_errors_speak_library_names_and_the_callers_pipe_is_left_alone(model_dir, tmp_path):
    from medicraft_hf.errors import ArgumentError

    pipe = load_pipeline(model_dir, scheduler="ddim")
    scheduler, config = pipe.scheduler, dict(pipe.scheduler.config)
    for kwargs, message in [({"num_inference_steps": 0}, "num_inference_steps must be a positive integer, got 0"),
                            ({"guidance_scale": -1.0}, "guidance_scale must be a number >= 0, got -1.0"),
                            ({"batch_size": 0}, "batch_size must be a positive integer, got 0")]:
        with pytest.raises(ArgumentError, match=message) as caught:
            generate_dataset(tmp_path / "bad", {"nevus": 1}, pipe=pipe, **kwargs)
        assert "--" not in str(caught.value)
    assert not (tmp_path / "bad").exists()

    # Another sampler for this run only: the caller's pipe keeps its scheduler object and config.
    result = generate_dataset(tmp_path / "ok", {"nevus": 2}, pipe=pipe, scheduler="dpmsolver++", num_inference_steps=1)
    assert result.settings.scheduler == "dpmsolver++"
    assert pipe.scheduler is scheduler and dict(pipe.scheduler.config) == config
    # Without a scheduler name, the pipe's own kind is used (not swapped for the default).
    assert generate_dataset(tmp_path / "own", {"nevus": 1}, pipe=pipe, num_inference_steps=1).settings.scheduler == "ddim"


# ------------------------------------------------------------------ resume and processes
@pytest.mark.slow
def test_killed_run_resumed_by_two_processes_equals_the_uninterrupted_run(model_dir, tmp_path):
    """SIGKILL mid-run, then `accelerate launch` with 2 processes finishes it: same bytes as one clean run."""
    settings = ["--model", str(model_dir), "--per-class", "20", "--steps", "5", "--batch-size", "3", "--seed", "3"]
    reference = tmp_path / "reference"
    assert main(["generate", "--out", str(reference), *settings]) == 0

    killed = tmp_path / "killed"
    shards = tmp_path / ("killed" + WORK_SUFFIX) / "shards"
    proc = subprocess.Popen([sys.executable, "-m", "medicraft_hf.generate", "--out", str(killed), *settings,
                             "--flush-every", "3"], env=child_env(), stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(shards.glob("shard-*.parquet"))) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 2 <= len(list(shards.glob("shard-*.parquet"))) < 27 and not killed.exists()  # killed mid-run

    # Resume: the same command, now over two CPU processes (the documented accelerate invocation)
    # and another batch size.
    launch = [*accelerate_cpu_launch(num_processes=2),
              "-m", "medicraft_hf.generate", "--out", str(killed), *settings, "--flush-every", "3", "--batch-size", "4"]
    proc = run_group(launch, env={**child_env(), "ACCELERATE_USE_CPU": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("80 synthetic images") == 1  # only the main process finalizes and reports

    got, want = dataset_rows(killed), dataset_rows(reference)
    assert len(got) == len(want) == 80
    # Every column but the pixels is identical: none lost, none duplicated, same seeds and provenance.
    assert [{k: v for k, v in r.items() if k != "image"} for r in got] == \
        [{k: v for k, v in r.items() if k != "image"} for r in want]
    # Pixels too, although the 2 processes ran with other thread counts and batches.
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(got, want))


# ------------------------------------------------------------------ Hub
@pytest.mark.slow
def test_push_1000_images_interrupted_then_retried_and_loaded_back(hub, model_dir, tmp_path, capsys):
    """A Hub model in, a 1,000-image Hub dataset out; a failed push is retried by the same command."""
    from medicraft_hf.hub import push_model_folder

    model_repo = hub.repo_id("tiny-oct-model")
    model_commit = push_model_folder(model_dir, model_repo, retry_wait=0)
    out, repo_id = tmp_path / "oct-synthetic", hub.repo_id("oct-synthetic")
    command = ["generate", "--model", model_repo, "--out", str(out), "--per-class", "250", "--steps", "1",
               "--batch-size", "250", "--push-to-hub", repo_id]
    hub.fail_next("POST", rf"/api/datasets/{repo_id}/commit/", status=503, times=100)
    try:
        assert main(command) == 1
    finally:
        hub.clear_failures()
    assert "medicraft generate: error:" in capsys.readouterr().err
    assert len(load_dataset(str(out))["train"]) == 1000  # the local dataset is intact

    assert main(command) == 0  # the same command again: only the push is redone
    assert "pushed to dataset repo" in capsys.readouterr().out
    assert hub.repo_is_private(repo_id, "dataset")
    files = hub.files(repo_id, "dataset")
    data = [p for p in files if p.startswith("data/")]
    assert data and all(p.endswith(".parquet") for p in data) and len(data) < 10  # shards, not loose images
    loaded = load_dataset(repo_id)["train"]
    assert len(loaded) == 1000 and loaded.features["label"].names == list(CLASS_NAMES)
    assert Counter(loaded["label"]) == {0: 250, 1: 250, 2: 250, 3: 250}
    assert len(set(loaded["image_id"])) == 1000 and set(loaded["source"]) == {"synthetic"}
    # Provenance names the Hub model and the exact commit it was loaded from.
    assert set(loaded["model_id"]) == {model_repo} and set(loaded["model_revision"]) == {model_commit}
    assert "not for diagnosis" in files["README.md"].decode()
