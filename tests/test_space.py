"""The Space (space/app.py) launched on 127.0.0.1 and called with gradio_client, like a user's script."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

import datasets
import gradio as gr
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from huggingface_hub import RepoCard
from PIL import Image

from medicraft_hf.schema import CLASS_NAMES, check_schema
from tests.factories import save_tiny_pipeline, tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "space"


def load_space_module(name: str = "app"):
    """Import space/<name>.py (the Space folder is a plain folder, not a package)."""
    spec = importlib.util.spec_from_file_location(f"medicraft_space_{name}", SPACE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app():
    return load_space_module()


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    """One launched app per module (start-up costs seconds) on an untrained 32x64 model."""
    model_dir = save_tiny_pipeline(tmp_path_factory.mktemp("space-model") / "tiny")
    demo = app.build_demo(model=model_dir)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def generate(client, class_choice="all classes, balanced", num_images=6, seed=0, scheduler="dpmsolver++",
             steps=2, guidance=1.0):
    return client.predict(class_choice, num_images, seed, scheduler, steps, guidance, api_name="/generate")


def label_of(caption: str) -> str:
    return caption.split(" · ")[0]


# ---------------------------------------------------------------------- over HTTP
def test_balanced_batch_has_right_count_size_and_downloads(client):
    gallery, files, status = generate(client, num_images=6)

    assert len(gallery) == 6
    for item in gallery:
        image = Image.open(item["image"])
        assert image.size == (64, 32)  # (W, H) of the tiny 32x64 model
        assert image.mode == "L"
        assert re.fullmatch(r"\w+ · \w+ \(\d\.\d\d\)", item["caption"]), item["caption"]
    # 6 over 4 classes: the first two classes get the remainder.
    assert Counter(label_of(item["caption"]) for item in gallery) == {
        "healthy": 2, "nevus": 2, "nevus_fluid": 1, "melanoma": 1}
    assert "6 images" in status

    zip_path = next(f for f in files if f.endswith(".zip"))
    parquet_path = next(f for f in files if f.endswith(".parquet"))
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        assert sorted(n for n in names if n.endswith(".png")) == sorted(
            f"{i:03d}_{label_of(item['caption'])}.png" for i, item in enumerate(gallery))
        metadata = zf.read("metadata.csv").decode().splitlines()
        assert metadata[0].startswith("file_name,label,") and len(metadata) == 7
        first = np.asarray(Image.open(zf.open("000_healthy.png")))
    assert np.array_equal(first, np.asarray(Image.open(gallery[0]["image"])))

    ds = datasets.Dataset.from_parquet(parquet_path)
    check_schema(ds)
    assert ds.features["label"].names == list(CLASS_NAMES)
    assert Counter(ds.features["label"].int2str(ds["label"])) == {"healthy": 2, "nevus": 2, "nevus_fluid": 1,
                                                                   "melanoma": 1}
    assert set(ds["source"]) == {"synthetic"}
    assert set(ds["num_inference_steps"]) == {2} and set(ds["scheduler"]) == {"dpmsolver++"}
    assert set(ds["model_id"]) == {"tiny"} and len(set(ds["seed"])) == 6  # each image has its own noise seed
    assert np.array_equal(np.asarray(ds[0]["image"]), first)


def test_one_class_and_same_seed_same_images(client):
    gallery, _, _ = generate(client, "melanoma", num_images=3, seed=5, scheduler="unipc", steps=3, guidance=2.0)
    again, _, _ = generate(client, "melanoma", num_images=3, seed=5, scheduler="unipc", steps=3, guidance=2.0)
    other, _, _ = generate(client, "melanoma", num_images=3, seed=6, scheduler="unipc", steps=3, guidance=2.0)

    assert [label_of(item["caption"]) for item in gallery] == ["melanoma"] * 3
    pixels = [np.asarray(Image.open(item["image"])) for item in gallery]
    assert all(np.array_equal(a, np.asarray(Image.open(b["image"]))) for a, b in zip(pixels, again))
    assert not np.array_equal(pixels[0], np.asarray(Image.open(other[0]["image"])))


def test_a_new_request_first_empties_gallery_downloads_and_status_together(client):
    generate(client, num_images=2)  # an earlier result on the page
    job = client.submit("nevus", 3, 1, "ddim", 2, 1.0, api_name="/generate")
    gallery, files, status = job.result()
    updates = job.outputs()
    assert updates[0] == ([], None, "Generating 3 images (tiny, ddim, 2 steps, guidance 1, seed 1)…")
    assert len(gallery) == 3 and len(files) == 2 and status.startswith("**3 images** in ")
    assert updates[-1][2] == status


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 17}, "Number of images must be between 1 and 16, got 17."),  # above MAX_IMAGES
        ({"num_images": 0}, "Number of images must be between 1 and 16, got 0."),
        ({"num_images": 2.5}, "Number of images must be a whole number between 1 and 16, got 2.5."),
        ({"seed": -1}, "Seed must be between 0 and 2147483647, got -1."),
        ({"seed": 1.5}, "Seed must be a whole number between 0 and 2147483647, got 1.5."),  # not rounded
        ({"steps": 101}, "Steps must be between 1 and 100, got 101."),  # above MAX_STEPS
        ({"guidance": -1.0}, "Guidance must be between 0 and 10, got -1."),
        ({"guidance": 10.5}, "Guidance must be between 0 and 10, got 10.5."),
        ({"class_choice": "glaucoma"}, "Class must be 'all classes, balanced' or one of ['healthy', 'nevus', "
                                       "'nevus_fluid', 'melanoma'], got 'glaucoma'."),
        ({"scheduler": "euler"}, "Scheduler must be one of ['ddim', 'ddpm', 'dpmsolver++', 'lcm', "
                                 "'sde-dpmsolver++', 'unipc'], got 'euler'."),
        ({"model": "demo"}, "Model must be one of ['tiny'], got 'demo'."),  # only the named model is served
        # LCM's schedule is a subset of the model's original_inference_steps grid (50 by default).
        ({"scheduler": "lcm", "steps": 60}, "Steps must be at most 50 with LCMScheduler (its "
                                            "original_inference_steps), got 60."),
    ],
)
def test_bad_input_gets_an_error_naming_the_field(client, kwargs, message):
    """The caller reads our message (field, range, value), not Gradio's "Value 17 is greater than
    maximum value 16.", and the page's status line says it beside an emptied gallery."""
    generate(client, num_images=1)  # an earlier result on the page
    args = {"class_choice": "all classes, balanced", "num_images": 6, "seed": 0, "scheduler": "dpmsolver++",
            "steps": 2, "guidance": 1.0, **kwargs}
    job = client.submit(*args.values(), api_name="/generate")
    with pytest.raises(AppError) as raised:
        job.result()
    assert str(raised.value) == message
    assert job.outputs() == [([], None, f"**Not generated:** {message}")]


# ---------------------------------------------------------------------- pure functions
def test_check_request_bounds_the_work(app):
    assert app.check_request(app.MAX_IMAGES, 3, "ddim", app.MAX_STEPS, 0) == (app.MAX_IMAGES, 3, "ddim",
                                                                                app.MAX_STEPS, 0.0)
    for bad, match in [
        ((app.MAX_IMAGES + 1, 0, "ddim", 10, 1.0), "Number of images must be between 1 and 16"),
        ((2, 0, "ddim", app.MAX_STEPS + 1, 1.0), "Steps must be between 1 and 100"),
        ((2, -1, "ddim", 10, 1.0), "Seed"),
        ((2.5, 0, "ddim", 10, 1.0), "whole number"),
        ((2, 0, "ddim", 10, "strong"), "Guidance must be a number"),
        ((2, 0, "ddim", 10, 11), "Guidance must be between 0 and 10, got 11"),
        ((2, 0, "ddim", 10, float("nan")), "Guidance must be between 0 and 10, got nan"),
        ((2, 0, "heun", 10, 1.0), r"Scheduler must be one of .*, got 'heun'"),
    ]:
        with pytest.raises(ValueError, match=match):
            app.check_request(*bad)


def test_class_counts(app):
    names = list(CLASS_NAMES)
    assert app.class_counts(app.ALL_CLASSES, 2, names) == {"healthy": 1, "nevus": 1}
    assert app.class_counts(app.ALL_CLASSES, 9, names) == {"healthy": 3, "nevus": 2, "nevus_fluid": 2,
                                                          "melanoma": 2}
    assert app.class_counts("nevus", 5, names) == {"nevus": 5}
    with pytest.raises(ValueError, match="Class must be .*, got 'drusen'"):
        app.class_counts("drusen", 1, names)


@pytest.mark.parametrize("class_names", [list(CLASS_NAMES), ["normal", "lesion"]])
@pytest.mark.parametrize("models", [{"demo-fast": ("lcm", 4), "demo": ("sde-dpmsolver++", 20)},
                                    {"tiny": ("sde-dpmsolver++", 20)}, {"distilled": ("lcm", 4)}])
def test_examples_are_valid_requests(app, class_names, models):
    presets = app.examples(class_names, models)
    for model, choice, *numbers in presets:
        app.check_request(*numbers)
        assert sum(app.class_counts(choice, numbers[0], class_names).values()) == numbers[0]
        assert model in models
        if models[model][0] == "lcm":  # a few-step model's presets keep its own sampler
            assert numbers[2:4] == list(models[model])
    assert {p[1] for p in presets} <= {app.ALL_CLASSES, *class_names}
    assert {p[0] for p in presets} == set(models)


def test_bounded_queue_and_extra_tabs(app):
    built = []
    demo = app.build_demo(model=tiny_pipeline(), extra_tabs={"Review": lambda: built.append(gr.Markdown("review"))})
    assert demo._queue.default_concurrency_limit == app.QUEUE_CONCURRENCY == 1
    assert demo._queue.max_size == app.QUEUE_SIZE
    tabs = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["Generate", "Review"] and len(built) == 1


def test_model_comes_from_env_var_else_the_demo_model(app, tmp_path, monkeypatch):
    from medicraft_hf import models
    from medicraft_hf.models import DEMO_MODEL_DIR

    monkeypatch.setenv("MEDICRAFT_MODEL", str(save_tiny_pipeline(tmp_path / "from-env")))
    pipe, model_id, revision = app.load_model()
    assert model_id == "from-env" and pipe.image_size == (32, 64) and revision.startswith("sha256:")

    monkeypatch.delenv("MEDICRAFT_MODEL")
    # The demo model ships inside the package: without the variable, it is what the Space serves.
    assert (DEMO_MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors").is_file(), "the demo model is missing"
    pipe, model_id, revision = app.load_model()
    assert model_id == "medicraft-hf/demo" and pipe.image_size == (64, 128)
    assert Path(pipe.name_or_path).resolve() == DEMO_MODEL_DIR.resolve() and revision.startswith("sha256:")

    # Without the variable the Space serves every embedded model, the demo model first.
    served = app.load_models()
    assert list(served) == ["demo", "demo-fast", "demo-latent", "demo-latent-fast"] == list(app.EMBEDDED_CHOICES)
    assert [model_id for _, model_id, _ in served.values()] == [
        "medicraft-hf/demo", "medicraft-hf/demo-fast", "medicraft-hf/demo-latent", "medicraft-hf/demo-latent-fast"]
    assert served["demo"][2] == revision and len({r for _, _, r in served.values()}) == 4
    assert served["demo-latent"][0].image_size == (256, 512)

    # Had the package lost it, the Space would say so instead of starting on nothing.
    monkeypatch.setattr(models, "DEMO_MODEL_DIR", tmp_path / "no-demo")
    with pytest.raises(FileNotFoundError, match="demo model is missing"):
        app.load_model()


# ---------------------------------------------------------------------- Space files
def test_space_readme_is_valid_space_yaml():
    card = RepoCard.load(SPACE / "README.md", repo_type="space")
    data = card.data
    assert data.sdk == "gradio" and data.app_file == "app.py"
    assert data.sdk_version == gr.__version__  # the version the tests ran
    assert data.title and data.emoji and data.license and data.colorFrom and data.colorTo
    assert len(data.short_description) <= 60


def test_space_requirements_cover_the_library():
    lines = [line.split("#")[0].strip() for line in (SPACE / "requirements.txt").read_text().splitlines()]
    required = {re.split(r"[<>=!\[ ;@]", line)[0].lower().replace("_", "-") for line in lines
                if line and not line.startswith("-")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {re.split(r"[<>=!\[ ;@]", dep)[0].lower().replace("_", "-") for dep in project["dependencies"]}
    assert needed <= required, f"space/requirements.txt lacks {sorted(needed - required)}"
    assert "gradio" not in required  # Spaces install gradio from sdk_version; a second pin conflicts


def test_assembled_space_imports_its_own_copy_of_the_library(tmp_path):
    space_mod = load_space_module("assemble")
    out = space_mod.assemble_space(tmp_path / "space")
    assert {p.name for p in out.iterdir()} >= {"app.py", "README.md", "requirements.txt", "medicraft_hf"}
    assert not list(out.rglob("__pycache__"))
    # On Spaces `python app.py` puts the Space folder first on sys.path: the copy wins.
    where = "import importlib.util; print(importlib.util.find_spec('medicraft_hf').origin)"
    found = subprocess.run([sys.executable, "-c", where],
                           cwd=out, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found).resolve().is_relative_to(out.resolve())


# ---------------------------------------------------------------------- cancelled requests
def test_a_cancelled_request_leaves_the_next_one_alone(app, client, monkeypatch):
    """`job.cancel()` mid-request frees the queue slot while the worker thread may still finish
    its pipeline call: the next request on the SAME scheduler gets its own scheduler (no
    IndexError in DPM-Solver++'s multistep state), the images a fresh run gives, and it waits
    for the abandoned call (batch-invariant sampling runs one call at a time)."""
    import threading
    import time

    active, most = [0], [0]
    guard = threading.Lock()
    real_predict = app.OCTDiffusionPipeline._predict

    def counting_predict(self, *args, **kwargs):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return real_predict(self, *args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(app.OCTDiffusionPipeline, "_predict", counting_predict)
    fresh, _, _ = generate(client, "nevus", num_images=3, seed=11, scheduler="dpmsolver++", steps=4, guidance=2.0)
    expected = [np.asarray(Image.open(item["image"])) for item in fresh]

    for _ in range(2):  # the failure came every time: twice is enough to see it
        job = client.submit("all classes, balanced", 16, 3, "dpmsolver++", 30, 2.0, api_name="/generate")
        deadline = time.time() + 60
        while not job.outputs() and time.time() < deadline:  # the first update: sampling has begun
            time.sleep(0.05)
        assert job.outputs(), "the long request never started"
        time.sleep(0.3)  # mid-way through a pipeline call
        # Gradio answers the cancel once the worker's current pipeline call has returned, which
        # can outlast the client's HTTP timeout: cancel from a thread, as an impatient user does.
        cancelling = threading.Thread(target=_quietly, args=(job.cancel,), daemon=True)
        cancelling.start()
        time.sleep(0.2)
        again, _, status = generate(client, "nevus", num_images=3, seed=11, scheduler="dpmsolver++", steps=4,
                                    guidance=2.0)
        assert status.startswith("**3 images** in ")
        assert all(np.array_equal(a, np.asarray(Image.open(b["image"])))
                   for a, b in zip(expected, again, strict=True))
        cancelling.join(timeout=60)
    assert most[0] == 1, f"{most[0]} pipeline calls sampled at once"


def _quietly(call) -> None:
    try:
        call()
    except Exception:  # e.g. httpx.ReadTimeout: the cancel is sent either way
        pass


# ---------------------------------------------------------------------- the embedded models
def test_embedded_space_offers_every_embedded_model(app, tmp_path_factory, monkeypatch):
    """Without MEDICRAFT_MODEL the page serves demo (SDE DPM-Solver++, 20 steps: the default),
    demo-fast, demo-latent and demo-latent-fast; choosing a model sets its own sampler, and each
    request is made by the chosen model, with the pixels the library gives for the same request."""
    from medicraft_hf.generate import generate_images
    from medicraft_hf.models import FAST_DEMO_MODEL_DIR, load_pipeline

    LATENT_DEMO_MODEL_DIR = app.EMBEDDED_MODELS["demo-latent"].folder
    monkeypatch.delenv("MEDICRAFT_MODEL", raising=False)
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        page_defaults = {c["props"].get("elem_id"): c["props"].get("value") for c in demo.config["components"]}
        assert page_defaults["model"] == "demo" and page_defaults["scheduler"] == "sde-dpmsolver++"
        assert page_defaults["steps"] == 20

        gallery, files, status = client.predict("nevus", 2, 5, "lcm", 4, 1.0, "demo-fast", api_name="/generate")
        assert "demo-fast, lcm, 4 steps" in status
        ds = datasets.Dataset.from_parquet(next(f for f in files if f.endswith(".parquet")))
        assert set(ds["model_id"]) == {"medicraft-hf/demo-fast"} and set(ds["scheduler"]) == {"lcm"}
        expected = [row["image"] for row in generate_images(load_pipeline(FAST_DEMO_MODEL_DIR), {"nevus": 2},
                                                             seed=5, num_inference_steps=4)]
        assert all(np.array_equal(np.asarray(a), np.asarray(Image.open(b["image"])))
                   for a, b in zip(expected, gallery, strict=True))

        # Six values: the page's default model.
        _, files, status = client.predict("nevus", 1, 5, "sde-dpmsolver++", 2, 1.0, api_name="/generate")
        assert "demo, sde-dpmsolver++, 2 steps" in status
        assert set(datasets.Dataset.from_parquet(next(f for f in files if f.endswith(".parquet")))["model_id"]) \
            == {"medicraft-hf/demo"}
        # The latent model at the study's resolution: the same request path, decoded by its VAE.
        gallery, files, status = client.predict("melanoma", 1, 3, "sde-dpmsolver++", 2, 1.0, "demo-latent",
                                                api_name="/generate")
        assert "demo-latent, sde-dpmsolver++, 2 steps" in status
        expected = next(generate_images(load_pipeline(LATENT_DEMO_MODEL_DIR), {"melanoma": 1}, seed=3,
                                        num_inference_steps=2))["image"]
        got = np.asarray(Image.open(gallery[0]["image"]))
        assert got.shape == (256, 512) and np.array_equal(np.asarray(expected), got)
        with pytest.raises(AppError, match="Steps must be at most 25 with LCMScheduler"):
            client.predict("nevus", 1, 5, "lcm", 30, 1.0, "demo-fast", api_name="/generate")
    finally:
        demo.close()

    generator = app.Generator(app.load_models(), tmp_path_factory.mktemp("space-work"))
    assert generator.sampling_defaults() == {"demo": ("sde-dpmsolver++", 20), "demo-fast": ("lcm", 4),
                                             "demo-latent": ("sde-dpmsolver++", 20), "demo-latent-fast": ("lcm", 4)}
    assert [update["value"] for update in generator.on_model_change("demo")] == ["sde-dpmsolver++", 20]
    assert [update["value"] for update in generator.on_model_change("demo-fast")] == ["lcm", 4]
