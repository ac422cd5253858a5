"""The shared small helpers: size and fraction parsing, Hub ids, and what counts as a saved dataset."""

from __future__ import annotations

import subprocess
import sys

import pytest
from datasets import DatasetDict

from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.evaluation.anatomy import check_source
from medicraft_hf.hub import is_dataset_dir
from medicraft_hf.parsing import parse_fractions, parse_resolution, parse_size
from medicraft_hf.sources import check_repo_id, is_hub_id, is_repo_id, public_name, saved_dataset_format
from tests.test_data_build import phantomish_rows


def test_parse_size_and_resolution():
    assert parse_size("256x512") == parse_size("256X512") == parse_size("256×512") == (256, 512)
    assert parse_size("20") == parse_size(20) == (20, 20)
    assert parse_size((8, 12)) == (8, 12) and parse_size("7x9") == (7, 9)
    with pytest.raises(ValueError, match=r"--size 'big' is not HxW"):
        parse_size("big", "--size")
    with pytest.raises(ValueError, match=r"--img-shape '0x4' must be HxW with positive sizes"):
        parse_size("0x4", "--img-shape")
    with pytest.raises(ValueError, match=r"1x2x3"):
        parse_size("1x2x3")
    assert parse_resolution("64x128") == (64, 128) and parse_resolution(64) == (64, 64)
    with pytest.raises(ValueError, match=r"Resolution '60x128' must be HxW with positive multiples of 8"):
        parse_resolution("60x128")


def test_parse_fractions():
    assert parse_fractions("0.5,0.25,0.25") == {"train": 0.5, "validation": 0.25, "test": 0.25}
    for bad in ("0.5,0.5", "a,b,c", ""):
        with pytest.raises(ValueError, match=r"--fractions .* needs three numbers: train,validation,test"):
            parse_fractions(bad, "--fractions")


def test_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("org/name", "medicraft-hf/demo"):
        assert is_repo_id(text) and is_hub_id(text) and check_repo_id(text) == text
    for text in ("name", "a/b/c", "org/", "/org", "./org/name", "../x", "~/name", "/abs/path"):
        assert not is_repo_id(text) and not is_hub_id(text)
    with pytest.raises(ValueError, match=r"--push-to-hub 'noslash' needs a namespace: <user-or-org>/<name>"):
        check_repo_id("noslash", "--push-to-hub")
    (tmp_path / "org" / "name").mkdir(parents=True)  # a local folder shaped like a repo id is local
    assert is_repo_id("org/name") and not is_hub_id("org/name")
    assert public_name("org/name") == "name" and public_name("other/name") == "other/name" and public_name(None) is None


def test_saved_dataset_is_one_rule_where_the_old_checks_disagreed(tmp_path):
    """A project folder with a README.md and a data/ folder of its own files (no parquet).

    Before, `save_dataset_dict` took it for a saved dataset and replaced it (deleting the
    files), `load_oct_dataset` tried to load it, the anatomy check took it for a dataset
    (data/ was enough), and only `push` refused it. Now none takes it for a dataset.
    """
    dsdict = DatasetDict({"train": rows_to_dataset(phantomish_rows(2, 1))})
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "README.md").write_text("# My notes\n")
    save_dataset_dict(dsdict, tmp_path / "scan")
    scan = next((tmp_path / "scan" / "data").glob("*.parquet"))
    image = dsdict["train"][0]["image"]
    image.save(project / "data" / "scan.png")

    assert saved_dataset_format(project) is None and not is_dataset_dir(project)
    with pytest.raises(FileExistsError, match="is not a saved dataset"):
        save_dataset_dict(dsdict, project)
    assert (project / "data" / "scan.png").is_file() and (project / "README.md").read_text() == "# My notes\n"
    with pytest.raises(FileNotFoundError, match="holds no saved dataset"):
        load_oct_dataset(project)
    assert [r["image_id"] for r in check_source(str(project))] == ["data/scan.png"]  # an image folder

    # What save_dataset_dict writes is the Hub layout, replaced, loaded and pushed as such.
    assert scan.is_file() and saved_dataset_format(tmp_path / "scan") == "hub" and is_dataset_dir(tmp_path / "scan")
    save_dataset_dict(dsdict, tmp_path / "scan")
    assert len(load_oct_dataset(tmp_path / "scan")["train"]) == 2
    dsdict.save_to_disk(tmp_path / "disk")
    assert saved_dataset_format(tmp_path / "disk") == "disk" and not is_dataset_dir(tmp_path / "disk")
    assert len(load_oct_dataset(tmp_path / "disk")["train"]) == 2


def test_helper_modules_import_no_torch():
    code = ("import sys, medicraft_hf.parsing, medicraft_hf.sources; "
            "assert not {'torch', 'diffusers'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
