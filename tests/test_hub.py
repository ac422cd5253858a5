"""Pushing datasets and pipelines with medicraft_hf.hub, loading them back with the real clients.

Everything goes over HTTP to the session's local Hub server (tests/hub_server.py).
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, load_dataset
from diffusers import DiffusionPipeline
from huggingface_hub import DatasetCard, create_repo
from PIL import Image

from medicraft_hf import cli
from medicraft_hf.data.build import save_dataset_dict
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.hub import HubPushError, push_dataset_dict, push_model_folder
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.schema import empty_row, oct_features
from tests.factories import save_tiny_pipeline

# Deliberately not alphabetical: the order must survive push and load.
CLASSES = ("melanoma", "healthy", "nevus_fluid", "nevus")


def _rows(patients, seed):
    rng = np.random.default_rng(seed)
    for p, patient in enumerate(patients):
        for plane in (0.0, 30.0):
            row = empty_row()
            pixels = rng.integers(0, 256, (16, 32), dtype=np.uint8)
            row.update(image=Image.fromarray(pixels, mode="L"), label=CLASSES[p % len(CLASSES)],
                       patient_id=patient, exam_id=f"{patient}-e0", eye="OD", plane_deg=plane, source="phantom",
                       image_id=f"{patient}-{int(plane)}", ground_truth='{"fovea_x": 16}')
            yield row


def oct_dsdict() -> DatasetDict:
    features = oct_features(CLASSES)

    def split(patients, seed):
        rows = list(_rows(patients, seed))
        return Dataset.from_list(rows, features=features)

    return DatasetDict({"train": split(["pa", "pb", "pc", "pd"], 0), "test": split(["pe", "pf"], 1)})


def assert_same_dataset(loaded: DatasetDict, expected: DatasetDict):
    assert set(loaded) == set(expected)
    for name, ds in expected.items():
        assert loaded[name].features == ds.features  # ClassLabel names AND order, every column type
        assert loaded[name].features["label"].names == list(CLASSES)
        assert loaded[name]["label"] == ds["label"]
        assert loaded[name]["patient_id"] == ds["patient_id"]
        for got, want in zip(loaded[name]["image"], ds["image"]):
            assert np.array_equal(np.asarray(got), np.asarray(want))


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_dataset_dict_is_private_and_loads_back_with_card(hub):
    dsdict = oct_dsdict()
    repo_id = hub.repo_id("oct-phantom")
    card = DatasetCard("---\nlicense: other\n---\n# OCT phantom\n\nMarker text of our card.\n")
    commit = push_dataset_dict(dsdict, repo_id, card=card, retry_wait=0)

    assert hub.repo_is_private(repo_id, "dataset")
    assert commit == hub.server.repo(repo_id, "dataset").branches["main"]
    assert_same_dataset(load_dataset(repo_id), dsdict)
    readme = DatasetCard(hub.files(repo_id, "dataset")["README.md"].decode())
    assert "Marker text of our card." in readme.text
    assert readme.data["license"] == "other"
    assert readme.data["configs"][0]["data_files"] and "dataset_info" in readme.data
    assert "configs" not in card.data  # the caller's card is not modified
    assert_same_dataset(load_oct_dataset(repo_id), dsdict)  # the project's loader, from the Hub


def test_thousand_images_go_up_as_a_few_parquet_shards(hub):
    rng = np.random.default_rng(0)
    features = oct_features(CLASSES)

    def split(first, count):
        rows = empty_row() | {"source": "synthetic"}
        columns = {name: [rows[name]] * count for name in features}
        columns["image"] = [Image.fromarray(rng.integers(0, 256, (16, 32), dtype=np.uint8), mode="L")
                            for _ in range(count)]
        columns["label"] = [i % len(CLASSES) for i in range(count)]
        columns["patient_id"] = [f"s{(first + i) // 12}" for i in range(count)]
        columns["image_id"] = [f"img-{first + i}" for i in range(count)]
        return Dataset.from_dict(columns, features=features)

    dsdict = DatasetDict({"train": split(0, 840), "test": split(840, 168)})
    repo_id = hub.repo_id("oct-synthetic-1k")
    push_dataset_dict(dsdict, repo_id, max_shard_size="200KB", retry_wait=0)
    files = hub.files(repo_id, "dataset")
    shards = sorted(p for p in files if p.startswith("data/"))
    assert 3 <= len(shards) < 20 and all(p.endswith(".parquet") for p in shards)  # shards, not loose images
    loaded = load_dataset(repo_id)
    assert (len(loaded["train"]), len(loaded["test"])) == (840, 168)
    assert loaded["test"]["image_id"] == dsdict["test"]["image_id"]
    assert np.array_equal(np.asarray(loaded["train"][839]["image"]), np.asarray(dsdict["train"][839]["image"]))


def test_non_oct_tables_push_with_oct_schema_off(hub, tmp_path):
    ratings = DatasetDict({"train": Dataset.from_dict({"reviewer": ["r1", "r2"], "verdict": ["ok", "no_fovea"]})})
    repo_id = hub.repo_id("ratings")
    with pytest.raises(ValueError, match="label"):
        push_dataset_dict(ratings, repo_id)  # OCT checks by default
    push_dataset_dict(ratings, repo_id, oct_schema=False, retry_wait=0,
                      card=DatasetCard("---\nlicense: other\n---\n# Ratings\n"))
    assert load_dataset(repo_id)["train"]["verdict"] == ["ok", "no_fovea"]
    assert hub.repo_is_private(repo_id, "dataset")


def test_push_to_a_branch(hub):
    dsdict = oct_dsdict()
    repo_id = hub.repo_id("oct-branch")
    push_dataset_dict(dsdict, repo_id, revision="v1", retry_wait=0)
    assert "v1" in hub.server.repo(repo_id, "dataset").branches
    assert_same_dataset(load_dataset(repo_id, revision="v1"), dsdict)
    assert not any(p.endswith(".parquet") for p in hub.files(repo_id, "dataset", "main"))


def test_cli_push_local_dataset_folder(hub, tmp_path, capsys):
    dsdict = oct_dsdict()
    local = save_dataset_dict(dsdict, tmp_path / "oct-ds")
    repo_id = hub.repo_id("oct-local")
    assert cli.main(["push", str(local), repo_id]) == 0
    assert "private" in capsys.readouterr().out
    assert hub.repo_is_private(repo_id, "dataset")
    assert_same_dataset(load_dataset(repo_id), dsdict)
    # The local README (its text) is what the Hub card shows.
    local_card = DatasetCard.load(local / "README.md")
    hub_card = DatasetCard(hub.files(repo_id, "dataset")["README.md"].decode())
    assert hub_card.text.strip() == local_card.text.strip()


def test_interrupted_push_keeps_local_copy_and_rerun_succeeds(hub, tmp_path, capsys):
    dsdict = oct_dsdict()
    local = save_dataset_dict(dsdict, tmp_path / "oct-ds")
    before = folder_digest(local)
    repo_id = hub.repo_id("oct-interrupted")
    hub.fail_next("POST", rf"/api/datasets/{repo_id}/commit/", status=503, times=100)
    try:
        assert cli.main(["push", str(local), repo_id, "--max-attempts", "1"]) == 1
    finally:
        hub.clear_failures()
    err = capsys.readouterr().err
    assert f"The local copy at {local} is intact" in err and "Run the same push again" in err
    assert folder_digest(local) == before
    assert not any(p.endswith(".parquet") for p in hub.files(repo_id, "dataset"))  # no half commit

    assert cli.main(["push", str(local), repo_id]) == 0
    assert_same_dataset(load_dataset(repo_id), dsdict)
    assert folder_digest(local) == before


def test_transient_failure_is_retried_within_one_push(hub):
    dsdict = oct_dsdict()
    repo_id = hub.repo_id("oct-retried")
    create_repo(repo_id, repo_type="dataset", private=True)
    hub.fail_next("POST", rf"/api/datasets/{repo_id}/commit/", status=500, times=1)
    push_dataset_dict(dsdict, repo_id, retry_wait=0)
    commit_requests = [r for r in hub.requests if r.path.startswith(f"/api/datasets/{repo_id}/commit/")]
    assert [r.status for r in commit_requests][:2] == [500, 200]
    assert_same_dataset(load_dataset(repo_id), dsdict)


def test_private_push_refuses_an_existing_public_repo(hub):
    repo_id = hub.repo_id("oct-public")
    create_repo(repo_id, repo_type="dataset", private=False)
    with pytest.raises(ValueError, match="PUBLIC"):
        push_dataset_dict(oct_dsdict(), repo_id)
    push_dataset_dict(oct_dsdict(), repo_id, private=False, retry_wait=0)
    assert not hub.repo_is_private(repo_id, "dataset")


def test_push_refuses_patient_leakage(hub):
    dsdict = oct_dsdict()
    leaky = DatasetDict({"train": dsdict["train"], "test": dsdict["train"].select([0])})
    with pytest.raises(ValueError):
        push_dataset_dict(leaky, hub.repo_id("oct-leaky"))


def test_push_model_folder_and_load_with_diffusers(hub, tmp_path):
    folder = save_tiny_pipeline(tmp_path / "pipe")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.bin").write_bytes(b"training state, not for the Hub")
    repo_id = hub.repo_id("oct-ddpm")
    push_model_folder(folder, repo_id, retry_wait=0)

    assert hub.repo_is_private(repo_id)
    files = hub.files(repo_id)
    assert {"model_index.json", "pipeline.py", "unet/diffusion_pytorch_model.safetensors",
            "scheduler/scheduler_config.json"} <= set(files)
    assert not any(p.startswith("checkpoint-") for p in files)

    local = OCTDiffusionPipeline.from_pretrained(folder)
    remote = OCTDiffusionPipeline.from_pretrained(repo_id)
    assert remote.class_names == local.class_names
    for key, value in local.unet.state_dict().items():
        assert torch.equal(remote.unet.state_dict()[key], value)
    run = dict(class_labels=["melanoma", "healthy"], num_inference_steps=2, output_type="np")
    expected = local(generator=torch.Generator().manual_seed(0), **run).images
    assert np.array_equal(remote(generator=torch.Generator().manual_seed(0), **run).images, expected)



def test_plain_diffusers_loads_pushed_pipeline_with_its_code(hub, tmp_path):
    folder = save_tiny_pipeline(tmp_path / "pipe")
    repo_id = hub.repo_id("oct-ddpm-plain")
    push_model_folder(folder, repo_id, retry_wait=0)
    plain = DiffusionPipeline.from_pretrained(repo_id, custom_pipeline=repo_id, trust_remote_code=True)
    assert type(plain).__name__ == "OCTDiffusionPipeline"
    run = dict(class_labels=["melanoma"], num_inference_steps=2, output_type="np")
    expected = OCTDiffusionPipeline.from_pretrained(folder)(generator=torch.Generator().manual_seed(0), **run).images
    assert np.array_equal(plain(generator=torch.Generator().manual_seed(0), **run).images, expected)


def test_push_model_folder_refuses_pickled_weights_and_non_pipelines(hub, tmp_path):
    folder = save_tiny_pipeline(tmp_path / "pipe")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="diffusion_pytorch_model.bin"):
        push_model_folder(folder, hub.repo_id("oct-pickle"))
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        push_model_folder(tmp_path, hub.repo_id("oct-nothing"))


def test_cli_push_errors_are_clean(tmp_path, capsys):
    assert cli.main(["push", str(tmp_path), "medicraft-test/x"]) == 2
    assert "neither a saved dataset" in capsys.readouterr().err
    assert cli.main(["push", str(tmp_path), "no-namespace"]) == 2
    assert "needs a namespace" in capsys.readouterr().err


def test_auth_failure_says_how_to_log_in_and_is_not_retried(hub, tmp_path):
    folder = save_tiny_pipeline(tmp_path / "pipe")
    repo_id = hub.repo_id("oct-forbidden")
    hub.fail_next("POST", r"^/api/repos/create$", status=403, times=1)
    with pytest.raises(HubPushError, match=r"(?s)after 1 attempt.*logged in") as err:
        push_model_folder(folder, repo_id, retry_wait=0)
    assert f"The local copy at {folder} is intact" in str(err.value)
    assert (folder / "model_index.json").is_file()
