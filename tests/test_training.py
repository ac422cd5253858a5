"""training/train_ddpm.py on a tiny model: runs, exact resume after SIGKILL, atomic checkpoints,
two CPU processes, bad input, model card and push to the local Hub server."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import Dataset, DatasetDict
from safetensors.torch import load_file

from medicraft_hf.cards.model_card import model_card
from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.models import weights_digest
from medicraft_hf.schema import CLASS_NAMES, empty_row, oct_features
from medicraft_hf.training import checkpoints
from medicraft_hf.training.data import EpochSampler, select_training_split
from tests.launch import accelerate_cpu_launch, free_port, run_group, run_groups

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "train_ddpm.py"
CONFIGS = ROOT / "training" / "accelerate_configs"
H, W = 32, 64


def load_script():
    spec = importlib.util.spec_from_file_location("train_ddpm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_ddpm = load_script()


def tiny_rows(per_class: dict[str, int], size=(H, W), seed=0):
    """Distinct noisy images with a class-dependent bright band; one patient per two images."""
    rng = np.random.default_rng(seed)
    i = 0
    for name, count in per_class.items():
        for _ in range(count):
            lab = CLASS_NAMES.index(name)
            a = rng.integers(0, 60, size).astype(np.uint8)
            a[size[0] // 4 + 3 * lab: size[0] // 4 + 3 * lab + 4] += 150
            row = empty_row()
            row.update(image=PIL.Image.fromarray(a, "L"), label=name, patient_id=f"p{i // 2}", exam_id=f"e{i // 2}",
                       source="phantom")
            yield row
            i += 1


def save_tiny_dataset(path: Path, per_class=None) -> Path:
    per_class = per_class or {c: 5 for c in CLASS_NAMES}
    ds = rows_to_dataset(tiny_rows(per_class))
    return save_dataset_dict(DatasetDict({"train": ds}), path)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return save_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


def base_args(dataset_dir, output_dir, **overrides):
    args = {
        "dataset_name": dataset_dir, "output_dir": output_dir, "preset": "tiny", "resolution": f"{H}x{W}",
        "train_batch_size": 2, "gradient_accumulation_steps": 2, "max_train_steps": 8, "learning_rate": 1e-3,
        "lr_warmup_steps": 2, "checkpointing_steps": 3, "validation_steps": 4, "num_validation_images": 1,
        "validation_inference_steps": 2, "mixed_precision": "no", "report_to": "none", "seed": 7,
    }
    args.update(overrides)
    argv = []
    for key, value in args.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not None and value is not False:
            argv += [f"--{key}", str(value)]
    return argv


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run_script(argv, timeout=180):
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env(),
                            cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def optimizer_state(path: Path) -> dict:
    return torch.load(path / "optimizer.bin", map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ fast unit tests
def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_can_balance_classes():
    labels = [0] * 90 + [1] * 10
    sampler = EpochSampler(labels, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(100)) and first == list(EpochSampler(labels, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first
    balanced = EpochSampler(labels, seed=3, class_balanced=True)
    counts = np.bincount([labels[i] for e in range(20) for i in (balanced.set_epoch(e) or balanced)])
    assert abs(counts[1] / counts.sum() - 0.5) < 0.05  # 10 % of the data, drawn half of the time


def test_latest_ignores_folders_without_the_completion_marker(tmp_path):
    for step in (2, 5):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / checkpoints.STATE_FILE).write_text("{}")
    (tmp_path / "checkpoint-9").mkdir()  # everything but the marker: not a checkpoint
    (tmp_path / "checkpoint-9" / "model.safetensors").write_bytes(b"x")
    (tmp_path / ".checkpoint-12.tmp").mkdir()
    assert checkpoints.latest_checkpoint(tmp_path).name == "checkpoint-5"
    assert [s for s, _ in checkpoints.list_checkpoints(tmp_path)] == [2, 5]
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        checkpoints.resolve_checkpoint(tmp_path, "checkpoint-9")
    assert checkpoints.resolve_checkpoint(tmp_path / "empty", "latest") is None


def test_model_card_says_what_the_model_is_and_is_not():
    card = model_card(class_names=list(CLASS_NAMES), resolution=(64, 128), train_steps=1234,
                      dataset_name="medicraft-test/oct-phantom", class_counts={c: 10 + i for i, c in
                                                                                enumerate(CLASS_NAMES)},
                      preset="cpu-small", scheduler="DPMSolverMultistepScheduler", sample_grid="samples/s.png",
                      evaluation="Accuracy 0.91 (train on synthetic, test on real).")
    text = str(card)
    for needle in ("64x128", "1234", "nevus_fluid", "| 3 | melanoma | 13 |", "Not for diagnosis",
                   "## Limitations", "memorize", "![Samples, one row per class](samples/s.png)",
                   "Accuracy 0.91", "## Expert review", "Pending: run `medicraft review`", "custom_pipeline"):
        assert needle in text, needle
    assert card.data.library_name == "diffusers" and card.data.datasets == ["medicraft-test/oct-phantom"]
    assert "research" in text.lower() and "education" in text.lower()


def test_shipped_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    configs = {p.stem: load_config_from_file(str(p)) for p in CONFIGS.glob("*.yaml")}
    assert set(configs) == {"single_gpu", "multi_gpu", "multi_node", "cpu_2proc"}
    assert configs["single_gpu"].distributed_type == "NO" and configs["single_gpu"].num_processes == 1
    assert configs["multi_gpu"].distributed_type == "MULTI_GPU" and configs["multi_gpu"].num_machines == 1
    assert configs["multi_node"].num_machines == 2 and configs["multi_node"].main_process_port == 29500
    assert configs["cpu_2proc"].num_processes == 2 and configs["cpu_2proc"].mixed_precision == "no"


# ------------------------------------------------------------------ bad input, in-process, before step 1
def write_class_folders(root: Path, mode="RGB", size=(H, W)):
    for name in CLASS_NAMES[:2]:
        (root / name).mkdir(parents=True)
        for i in range(2):
            PIL.Image.new(mode, size[::-1], color=(i * 40,) * len(mode)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_class", r"Unknown class names \['drusen'\]"),
        ("rgb_images", "has mode 'RGB'; OCT B-scans must be 8-bit grayscale"),
        ("too_small", "smaller than --resolution 64x128"),
        ("wrong_aspect", "another aspect ratio than --resolution 32x32"),
        ("empty_split", "has an empty split"),
        ("missing_split", "has no split 'test'"),
        ("class_without_images", r"Classes \['melanoma'\] have no images"),
        ("not_a_run_dir", "holds no training run"),
    ],
)
def test_bad_input_fails_before_the_first_step(tmp_path, dataset_dir, case, message):
    out = tmp_path / "out"
    overrides = {}
    data = dataset_dir
    if case == "unknown_class":
        overrides["class_names"] = "healthy,drusen"
    elif case == "rgb_images":
        data = write_class_folders(tmp_path / "rgb")
    elif case == "too_small":
        overrides["resolution"] = "64x128"
    elif case == "wrong_aspect":
        overrides["resolution"] = "32x32"
    elif case == "empty_split":
        data = tmp_path / "empty"  # a Hub-layout folder whose train parquet has no rows
        (data / "data").mkdir(parents=True)
        (data / "README.md").write_text("# empty")
        Dataset.from_dict({k: [] for k in oct_features()}, features=oct_features()).to_parquet(
            str(data / "data" / "train-00000-of-00001.parquet"))
    elif case == "missing_split":
        overrides["train_split"] = "test"
    elif case == "class_without_images":
        data = save_tiny_dataset(tmp_path / "three", {c: 3 for c in CLASS_NAMES[:3]})
    elif case == "not_a_run_dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = sorted(p.name for p in out.iterdir()) if out.exists() else []
    with pytest.raises(ValueError, match=message):
        train_ddpm.main(base_args(data, out, **overrides))
    after = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert after == before  # nothing trained, nothing written


def test_empty_split_in_memory_is_refused():
    empty = Dataset.from_dict({k: [] for k in oct_features()}, features=oct_features())
    with pytest.raises(ValueError, match=r"Dataset d\['train'\] is empty"):
        select_training_split(DatasetDict({"train": empty}), "train", "d")


def test_output_dir_of_another_run_is_refused(tmp_path, dataset_dir):
    out = tmp_path / "out"
    train_ddpm.main(base_args(dataset_dir, out, max_train_steps=1, checkpointing_steps=1, validation_steps=1,
                              gradient_accumulation_steps=1))
    assert checkpoints.latest_checkpoint(out).name == "checkpoint-1"
    with pytest.raises(ValueError, match=r"holds a different run \(learning_rate: 0.001 -> 0.002"):
        train_ddpm.main(base_args(dataset_dir, out, max_train_steps=2, learning_rate=2e-3,
                                  gradient_accumulation_steps=1))
    with pytest.raises(ValueError, match="--resume_from_checkpoint latest"):
        train_ddpm.main(base_args(dataset_dir, out, max_train_steps=2, gradient_accumulation_steps=1))
    assert [s for s, _ in checkpoints.list_checkpoints(out)] == [1]


def test_init_from_starts_from_a_saved_pipeline_and_refuses_another_shape(tmp_path, dataset_dir):
    first = tmp_path / "eps"
    train_ddpm.main(base_args(dataset_dir, first, max_train_steps=2, gradient_accumulation_steps=1, use_ema=True,
                              prediction_type="epsilon"))
    # A new run from those weights with another objective; lr 0 leaves the weights as loaded.
    second = tmp_path / "v"
    train_ddpm.main(base_args(dataset_dir, second, init_from=first, prediction_type="v_prediction", learning_rate=0,
                              max_train_steps=1, gradient_accumulation_steps=1, use_ema=True))
    assert_same_tensors(load_file(first / "unet" / "diffusion_pytorch_model.safetensors"),
                        load_file(second / "unet" / "diffusion_pytorch_model.safetensors"))
    assert json.loads((second / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    for saved in ("README.md", "unet/config.json", "model_index.json"):  # local paths stay out of the model
        assert str(first) not in (second / saved).read_text(), saved
    assert "- UNet: fine-tuned from `eps`" in (second / "README.md").read_text()

    with pytest.raises(ValueError, match=r"was trained on classes \['healthy', 'nevus', 'nevus_fluid', 'melanoma'\]"):
        train_ddpm.main(base_args(dataset_dir, tmp_path / "c", init_from=first, class_names="healthy,nevus"))
    with pytest.raises(ValueError, match="makes 32x64 images, the run asks for 16x32; pass --resolution 32x64"):
        train_ddpm.main(base_args(dataset_dir, tmp_path / "r", init_from=first, resolution="16x32"))
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()  # refused before writing


def test_cli_prints_one_clean_error_line(tmp_path, dataset_dir):
    result = subprocess.run([sys.executable, str(SCRIPT), *base_args(dataset_dir, tmp_path / "o",
                                                                      class_names="drusen")],
                            capture_output=True, text=True, env=env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("train_ddpm.py: error: Unknown class names ['drusen']")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ checkpoints under SIGKILL
KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch
    from accelerate import Accelerator
    from diffusers import UNet2DModel
    from diffusers.training_utils import EMAModel
    from medicraft_hf.training.checkpoints import save_checkpoint
    from medicraft_hf.unet import build_unet

    out, where = sys.argv[1], sys.argv[2]
    accelerator = Accelerator()
    model = build_unet(4, preset="tiny", resolution=(32, 64))
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)

    class KilledAfterEMA(EMAModel):  # the last file a checkpoint writes before its marker
        def save_pretrained(self, path):
            super().save_pretrained(path)
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)

    ema = KilledAfterEMA(model.parameters(), model_cls=UNet2DModel, model_config=model.config)
    ema.kill = False
    generator = torch.Generator().manual_seed(0)
    save_checkpoint(accelerator, out, 1, ema=ema, noise_generator=generator, state={})
    if where == "during_accelerate_save":
        accelerator.register_save_state_pre_hook(lambda *a: os.kill(os.getpid(), signal.SIGKILL))
    else:
        ema.kill = True
    save_checkpoint(accelerator, out, 2, ema=ema, noise_generator=generator, state={})
    print("not killed")
""")


def test_kill_during_checkpoint_writing_leaves_nothing_latest_would_pick(tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    runs = {where: subprocess.Popen([sys.executable, str(script), str(tmp_path / where), where], env=env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for where in ("during_accelerate_save", "after_all_files_before_marker")}
    for where, proc in runs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
        out = tmp_path / where
        assert (out / ".checkpoint-2.tmp").is_dir() and not (out / "checkpoint-2").exists()
        assert checkpoints.latest_checkpoint(out).name == "checkpoint-1"
        assert checkpoints.resolve_checkpoint(out, "latest").name == "checkpoint-1"
    # Killed after every data file: the folder holds weights, optimizer and EMA, yet it is not a checkpoint.
    partial = tmp_path / "after_all_files_before_marker" / ".checkpoint-2.tmp"
    assert {"model.safetensors", "optimizer.bin", "unet_ema"} <= {p.name for p in partial.iterdir()}
    assert not (partial / checkpoints.STATE_FILE).exists()


@pytest.mark.slow
def test_sigkill_then_resume_latest_equals_uninterrupted_run(tmp_path, dataset_dir, hub):
    repo_id = hub.repo_id("oct-ddpm")
    full = tmp_path / "full"
    log = run_script(base_args(dataset_dir, full, use_ema=True, class_balanced=True, push_to_hub=True,
                               hub_model_id=repo_id, report_to="tensorboard"))
    assert "Weights identical on all 1 processes" in log
    assert [s for s, _ in checkpoints.list_checkpoints(full)] == [3, 6, 8]

    # Same run, killed (SIGKILL) as soon as its first checkpoint is complete.
    killed = tmp_path / "killed"
    argv = base_args(dataset_dir, killed, use_ema=True, class_balanced=True, resume_from_checkpoint="latest")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *argv], env=env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while checkpoints.latest_checkpoint(killed) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [s for s, _ in checkpoints.list_checkpoints(killed)]
    assert done and done[-1] < 8, f"the run was not killed mid-way: {done}"
    log = run_script(argv)
    assert f"Resumed from {killed / f'checkpoint-{done[-1]}'} at step {done[-1]}." in log

    # Identical: weights, optimizer moments, EMA, and the saved pipeline.
    a, b = full / "checkpoint-8", killed / "checkpoint-8"
    assert_same_tensors(load_file(a / "model.safetensors"), load_file(b / "model.safetensors"))
    ema = "unet_ema/diffusion_pytorch_model.safetensors"
    assert_same_tensors(load_file(a / ema), load_file(b / ema))
    pipe_weights = "unet/diffusion_pytorch_model.safetensors"
    assert_same_tensors(load_file(full / pipe_weights), load_file(killed / pipe_weights))
    assert_same_tensors(load_file(full / pipe_weights), load_file(a / ema))  # the pipeline holds the EMA weights
    opt_a, opt_b = optimizer_state(a), optimizer_state(b)
    for key in opt_a["state"]:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a["state"][key][name], opt_b["state"][key][name])
    assert json.loads((a / checkpoints.STATE_FILE).read_text())["global_step"] == 8

    # The pipeline, its card and sample grid were saved and pushed (private); checkpoints stayed local.
    assert sorted(p.name for p in (full / "samples").iterdir()) == ["step_0000004.png", "step_0000008.png"]
    grid = PIL.Image.open(full / "samples" / "step_0000008.png")
    assert grid.mode == "L" and grid.height == len(CLASS_NAMES) * (H + 2)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full / "logs" / "train_ddpm"))
    events.Reload()
    assert events.Tags()["images"] == ["samples"] and {"loss", "lr", "img_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Images("samples")] == [4, 8]
    card = (full / "README.md").read_text()
    assert "samples/step_0000008.png" in card and "Optimization steps: 8" in card and "healthy" in card
    assert str(tmp_path) not in card and "Data: `tiny`" in card  # local paths stay local
    files = hub.files(repo_id)
    assert {"model_index.json", "pipeline.py", "README.md", pipe_weights, "scheduler/scheduler_config.json",
            "samples/step_0000008.png"} <= set(files)
    assert not any(name.startswith(("checkpoint-", "logs", ".checkpoint", ".training_run"))
                   or name.endswith((".bin", ".pkl")) for name in files), sorted(files)
    assert hub.repo_is_private(repo_id)
    assert files[pipe_weights] == (full / pipe_weights).read_bytes()


# ------------------------------------------------------------------ two CPU processes
AUDIT = textwrap.dedent("""
    # Runs train_ddpm.py and records, per rank, what it writes under output_dir and whom it connects to.
    import atexit, json, os, runpy, sys
    out, log, script = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
    rank = os.environ.get("RANK", "0")
    seen = {"writes": [], "connects": []}
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def record(path):
        try:
            path = os.path.realpath(os.fsdecode(path))
        except TypeError:
            return
        if path.startswith(out):
            seen["writes"].append(os.path.relpath(path, out))

    def hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE):
                record(args[0])
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.unlink"):
            record(args[0])
        elif event in ("os.rename", "os.replace"):
            record(args[0]); record(args[1])
        elif event == "socket.connect":
            seen["connects"].append(str(args[1]))

    sys.addaudithook(hook)
    atexit.register(lambda: open(f"{log}.rank{rank}", "w").write(json.dumps(seen)))
    sys.argv = [script] + sys.argv[4:]
    runpy.run_path(script, run_name="__main__")
""")


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_weights_and_only_rank0_writes(tmp_path, dataset_dir, hub):
    audit = tmp_path / "audit.py"
    audit.write_text(AUDIT)
    out, log = tmp_path / "out", tmp_path / "audit"
    repo_id = hub.repo_id("oct-ddpm-2proc")
    argv = base_args(dataset_dir, out, max_train_steps=4, checkpointing_steps=2, validation_steps=4,
                     gradient_accumulation_steps=1, use_ema=True, push_to_hub=True, hub_model_id=repo_id)
    # The shipped config = `--multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no
    # --dynamo_backend no` with ACCELERATE_USE_CPU=1 (gloo).
    cmd = [*accelerate_cpu_launch(config_file=CONFIGS / "cpu_2proc.yaml"),
           str(audit), str(out), str(log), str(SCRIPT), *argv]
    result = run_group(cmd, env={**env(), "ACCELERATE_USE_CPU": "1"}, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    logs = result.stdout + result.stderr
    assert "batch 4 (per device 2 x 2 processes x 1 accumulation)" in logs
    # Both ranks computed the same digest (the script gathers and compares them) ...
    line = next(ln for ln in logs.splitlines() if "Weights identical on all 2 processes" in ln)
    # ... and it is the digest of the weights rank 0 checkpointed.
    saved = load_file(out / "checkpoint-4" / "model.safetensors")
    assert line.endswith(f"(sha256 {weights_digest(saved)[:16]}).")

    rank0, rank1 = (json.loads(Path(f"{log}.rank{r}").read_text()) for r in (0, 1))
    # Rank 1 writes only its own RNG state into the checkpoint folder being built; nothing else.
    allowed = {"random_states_1.pkl", "noise_rng_1.safetensors"}
    for path in rank1["writes"]:
        parts = Path(path).parts
        assert parts[0].startswith(".checkpoint-") and parts[0].endswith(".tmp"), path
        assert len(parts) == 1 or parts[1] in allowed, path
    # (torch.save and safetensors write from C++/Rust, which Python's audit hooks do not see; the
    # per-rank RNG files are checked on disk below.)
    names = {Path(p).name for p in rank0["writes"]}
    assert {"README.md", "step_0000004.png", ".training_run.json", checkpoints.STATE_FILE} <= names
    hub_port = hub.endpoint.rsplit(":", 1)[1].strip("/")
    assert any(hub_port in c for c in rank0["connects"]) and not any(hub_port in c for c in rank1["connects"])
    for step in (2, 4):
        ckpt = out / f"checkpoint-{step}"
        assert {"random_states_0.pkl", "random_states_1.pkl", "noise_rng_0.safetensors",
                "noise_rng_1.safetensors"} <= {p.name for p in ckpt.iterdir()}
    assert "model_index.json" in hub.files(repo_id)


def test_medicraft_train_builds_the_accelerate_launch_command(capsys):
    from medicraft_hf.cli import main as cli

    config = CONFIGS / "single_gpu.yaml"
    assert cli(["train", "--dry_run", "--config_file", str(config), "--", "--dataset_name", "d", "--use_ema"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[1:3] == ["-m", "accelerate.commands.launch"]
    assert printed[3:5] == ["--config_file", str(config)]
    assert printed[5:] == [str(SCRIPT), "--dataset_name", "d", "--use_ema"]
    assert cli(["train", "--dry_run", "--config_file", "missing.yaml", "--", "--use_ema"]) == 2


@pytest.mark.slow
def test_a_killed_rank_stops_the_other_and_leaves_a_resumable_checkpoint(tmp_path, dataset_dir):
    """SIGKILL rank 1 mid-run: rank 0 must not wait forever, and `latest` must resume."""
    import psutil

    out = tmp_path / "out"
    argv = base_args(dataset_dir, out, max_train_steps=400, checkpointing_steps=2, validation_steps=1000,
                     gradient_accumulation_steps=1)
    cmd = [*accelerate_cpu_launch(num_processes=2), str(SCRIPT), *argv]
    launcher = subprocess.Popen(cmd, env={**env(), "ACCELERATE_USE_CPU": "1"}, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while checkpoints.latest_checkpoint(out) is None and launcher.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert checkpoints.latest_checkpoint(out) is not None, "no checkpoint before the kill"
        ranks = {int(p.environ().get("RANK", -1)): p for p in psutil.Process(launcher.pid).children(recursive=True)
                 if "train_ddpm.py" in " ".join(p.cmdline())}
        assert set(ranks) == {0, 1}, ranks
        killed_at = time.time()
        ranks[1].kill()
        # The launcher notices the dead worker and ends the other one (torchrun's agent).
        launcher.wait(timeout=60)
        stopped_after = time.time() - killed_at
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    err = launcher.stderr.read()
    assert launcher.returncode != 0 and stopped_after < 60, err[-3000:]
    assert not ranks[0].is_running() or ranks[0].status() == psutil.STATUS_ZOMBIE
    assert "ChildFailedError" in err or "exitcode" in err, err[-3000:]  # a clear error naming the failed rank

    # Only complete checkpoints count; `latest` is one, and a single process resumes from it.
    step = checkpoints.latest_checkpoint(out).name.split("-")[1]
    assert not any(p.name.startswith(".checkpoint-") and not p.name.endswith(".tmp") for p in out.iterdir())
    log = run_script([*argv[:argv.index("--max_train_steps")], "--max_train_steps", str(int(step) + 2),
                      *argv[argv.index("--max_train_steps") + 2:], "--resume_from_checkpoint", "latest"])
    assert f"Resumed from {out / f'checkpoint-{step}'} at step {step}." in log
    assert f"Done: {int(step) + 2} steps" in log


@pytest.mark.slow
def test_two_nodes_on_loopback_train_agree_and_exit(tmp_path, dataset_dir):
    """training/README.md's multi-node recipe: two launchers (one per "node") on 127.0.0.1, static rendezvous."""
    out = tmp_path / "out"
    argv = base_args(dataset_dir, out, max_train_steps=6, checkpointing_steps=3, validation_steps=6,
                     gradient_accumulation_steps=1, use_ema=True)
    port = free_port()
    cmds = [[*accelerate_cpu_launch(num_processes=2, num_machines=2, machine_rank=rank, port=port), str(SCRIPT), *argv]
            for rank in (0, 1)]
    results = run_groups(cmds, env={**env(), "ACCELERATE_USE_CPU": "1"}, cwd=ROOT, timeout=240)
    for result in results:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        assert "Done: 6 steps" in result.stdout + result.stderr
    logs = results[0].stdout + results[0].stderr
    assert "batch 4 (per device 2 x 2 processes x 1 accumulation)" in logs
    assert "Weights identical on all 2 processes" in logs
    assert [s for s, _ in checkpoints.list_checkpoints(out)] == [3, 6]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in (out / "checkpoint-6").iterdir()}
