"""The embedded-model table: every entry ships (weights and the package data that installs them),
and every place that names embedded models reads it."""

import tomllib
from pathlib import Path

import pytest

from medicraft_hf.embedded import DEFAULT_EMBEDDED, EMBEDDED_MODELS, embedded_help, embedded_of_folder
from medicraft_hf.few_step import embedded_model
from medicraft_hf.models import load_pipeline, model_id_of

ROOT = Path(__file__).resolve().parents[1]


def weight(model) -> int:
    """Bytes on disk of an embedded model's folder."""
    return sum(f.stat().st_size for f in model.folder.rglob("*") if f.is_file())


@pytest.mark.parametrize("name", list(EMBEDDED_MODELS))
def test_every_embedded_model_ships_and_is_installed(name):
    model = EMBEDDED_MODELS[name]
    assert model.shipped, f"{model.folder} has no model_index.json"
    assert list(model.folder.glob("*/*.safetensors")), f"{model.folder} holds no safetensors weights"
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert f"{model.folder.name}/**/*" in package_data["medicraft_hf"], "pyproject's package-data misses it"
    assert "Not for diagnosis" in (model.folder / "README.md").read_text(), "no model card, or one without its limits"
    # Plain diffusers loads it through the pipeline file saved beside it: that file must be the current one.
    assert (model.folder / "pipeline.py").read_text() == (ROOT / "medicraft_hf" / "pipeline.py").read_text(), \
        f"{model.folder}/pipeline.py is stale: copy medicraft_hf/pipeline.py over it"
    assert weight(model) < 50e6, "over the 50 MB an embedded model may weigh"
    pickles = [f for f in model.folder.rglob("*") if f.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    assert not pickles, "weights as safetensors only"


def test_the_demo_model_and_the_latent_demo_model_fit_in_50_mb_together():
    # Issue 18: the study's resolution may not make the package heavier than that.
    assert weight(EMBEDDED_MODELS["demo"]) + weight(EMBEDDED_MODELS["demo-latent"]) < 50e6


def test_names_folders_and_public_ids_map_to_one_another():
    assert DEFAULT_EMBEDDED == "demo"
    assert embedded_model("demo") is None  # the default: load_pipeline(None)
    assert model_id_of(None) == EMBEDDED_MODELS["demo"].model_id
    for name, model in EMBEDDED_MODELS.items():
        assert embedded_of_folder(model.folder) is model
        assert model_id_of(model.folder) == model.model_id
        assert f"'{name}' ({model.summary})" in embedded_help()
        if name != DEFAULT_EMBEDDED:
            assert embedded_model(name) == model.folder
        assert Path(load_pipeline(name).name_or_path).resolve() == model.folder.resolve()  # the library, by name
    assert embedded_of_folder(ROOT) is None
    assert embedded_model("./demo-fast") == "./demo-fast"  # a path stays a path


@pytest.mark.parametrize("name", list(EMBEDDED_MODELS))
def test_the_main_job_runs_on_every_embedded_model(name, tmp_path):
    """`medicraft demo --model NAME`: a balanced dataset in the model's size with its id, a grid, verdicts."""
    import json

    from datasets import load_dataset
    from PIL import Image

    from medicraft_hf.cli import main

    model = EMBEDDED_MODELS[name]
    assert main(["demo", "--model", name, "--per-class", "1", "--steps", "2", "--grid-per-class", "1",
                 "--out", str(tmp_path)]) == 0
    train = load_dataset(str(tmp_path / "synthetic"), split="train")
    height, width = load_pipeline(model.folder).image_size
    assert sorted(train["label"]) == [0, 1, 2, 3] and set(train["model_id"]) == {model.model_id}
    assert {row["image"].size for row in train} == {(width, height)}
    assert Image.open(tmp_path / "samples_grid.png").size[1] >= 4 * height  # one row per class
    assert json.loads((tmp_path / "anatomy_summary.json").read_text())["total"] == 4
