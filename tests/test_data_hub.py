"""A built dataset goes to the (local, HTTP) Hub and comes back through `load_oct_dataset`."""

from __future__ import annotations

import pytest
from datasets import load_dataset

from medicraft_hf.cli import main
from medicraft_hf.data.load import load_oct_dataset
from tests.data_inputs import kermany_tree


def test_build_push_load_by_repo_id(hub, tmp_path):
    out = tmp_path / "kermany"
    assert main(["build", str(kermany_tree(tmp_path / "OCT2017")), "--from", "kermany", "--out", str(out),
                 "--classes", "NORMAL,DRUSEN,DME,CNV"]) == 0
    local = load_oct_dataset(out)
    repo_id = hub.repo_id("kermany-mini")
    assert main(["push", str(out), repo_id, "--revision", "v1"]) == 0
    assert hub.repo_is_private(repo_id, "dataset")

    back = load_oct_dataset(repo_id, revision="v1")
    assert back["train"].features["label"].names == ["NORMAL", "DRUSEN", "DME", "CNV"]
    for split, ds in local.items():
        assert back[split]["image_id"] == ds["image_id"] and back[split]["label"] == ds["label"]
    card = hub.files(repo_id, "dataset", "v1")["README.md"].decode()
    assert "**by patient**" in card and f'load_dataset("{out.name}")' not in card
    assert list(load_dataset(repo_id, revision="v1")) == list(local)

    with pytest.raises(FileNotFoundError, match="neither a local dataset folder nor a Hub repo id"):
        load_oct_dataset(tmp_path / "nope" / "deeper" / "x")
