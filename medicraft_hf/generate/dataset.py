"""`generate_dataset`: a balanced synthetic dataset on disk (and the Hub), resumably.

Orchestration only: the settings (`settings`), which images (`numbering`, `counts`),
sampling (`sampling`), the filter (`anatomy_filter`), the folders (`run_folder`) and the
card (`card`) each live in their own module.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import torch
from datasets import DatasetDict

from medicraft_hf.generate.anatomy_filter import MAX_CANDIDATES_PER_IMAGE, plan_next_round
from medicraft_hf.generate.card import evaluation_section, synthetic_dataset_card
from medicraft_hf.generate.counts import balance_counts, check_counts
from medicraft_hf.generate.numbering import blocks, image_index
from medicraft_hf.generate.result import GenerationResult
from medicraft_hf.generate.run_folder import (
    DONE_FILE,
    RUN_FILE,
    prepare_out,
    read_json,
    run_record,
    select_kept,
    work_dir_of,
    work_features,
)
from medicraft_hf.generate.sampling import sample_block
from medicraft_hf.generate.settings import GenerationOptions, GenerationSettings, model_id_of_pipe, model_revision_of
from medicraft_hf.io import write_json_atomic, write_text_atomic
from medicraft_hf.models import DEFAULT_SCHEDULER, load_pipeline, model_id_of, scheduler_for
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS
from medicraft_hf.schema import oct_features
from medicraft_hf.shards import INDEX_COLUMN, ShardStore


def generate_dataset(
    out_dir: str | os.PathLike,
    counts=None,
    *,
    per_class: int | None = None,
    balance_to=None,
    balance_split: str = "train",
    balance_revision: str | None = None,
    model=None,
    revision: str | None = None,
    pipe: OCTDiffusionPipeline | None = None,
    scheduler: str | None = None,
    num_inference_steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    seed: int = 0,
    **options,
) -> GenerationResult:
    """Generate a synthetic `DatasetDict` into `out_dir` (Hub layout), resumably.

    What: `counts` (`{class: n}`), `per_class`, or `balance_to` (a real dataset: fill each
    class up to its majority). The model: `pipe`, or `model` (folder or Hub id; None = the
    demo model). `scheduler` names a sampler (default: `pipe`'s own, or the library's
    default for a loaded model); `pipe` itself is never changed. `options` are the fields of
    `GenerationOptions` (batch size, split, anatomy filter, card, overwrite, push...).

    Under `accelerate launch` every process calls this; they split the work, and the main
    process writes the dataset and its card and pushes it (private unless `private=False`).
    Run the same call again to resume or to retry a push.
    """
    from accelerate import PartialState

    options = GenerationOptions(**options)
    if sum(x is not None for x in (counts, per_class, balance_to)) != 1:
        raise ValueError("Give exactly one of: counts per class, per_class, or a dataset to balance (balance_to).")
    state = PartialState(cpu=_use_cpu())
    out_dir = Path(out_dir).absolute()
    pipe, settings = _pipeline_and_settings(pipe, model, revision, scheduler, num_inference_steps, guidance_scale, seed)
    pipe.to(state.device)  # (moves a caller's UNet too: a copy would double the accelerator's memory)
    class_names = list(pipe.class_names)
    if per_class is not None:
        counts = {name: per_class for name in class_names}
    counts = check_counts(counts, class_names) if counts is not None else balance_counts(
        balance_to, class_names, balance_split, balance_revision)
    if options.evaluation_report is not None:
        evaluation_section(options.evaluation_report)  # a missing or foreign report fails now, not after sampling
    threshold = None if options.anatomy_filter is None else float(options.anatomy_filter.threshold)
    record = run_record(settings, counts, options.split, threshold)
    store = ShardStore(work_dir_of(out_dir) / "shards", work_features(class_names))

    # The main process checks and prepares the folders first; the others then check them too.
    finished = False
    if state.is_main_process:
        finished = prepare_out(out_dir, record, options.overwrite, True)
        if not finished:
            store.directory.mkdir(parents=True, exist_ok=True)
            if not (work_dir_of(out_dir) / RUN_FILE).is_file():
                write_json_atomic(work_dir_of(out_dir) / RUN_FILE, record)
    state.wait_for_everyone()
    if not state.is_main_process:
        finished = prepare_out(out_dir, record, False, False)
    counts_by_id = {class_names.index(n): c for n, c in counts.items()}
    if not finished:
        _sample_all(pipe, store, settings, options, counts_by_id, state)

    result = GenerationResult(out_dir=out_dir, counts=counts, settings=settings, split=options.split,
                              anatomy_threshold=threshold)
    if not state.is_main_process:
        return result
    card_name = options.name or options.push_to_hub or out_dir.name
    if finished:
        stats = read_json(out_dir / DONE_FILE)["statistics"]
        result.candidates, result.rejected = stats["candidates"], stats["rejected"]
        result.rejected_verdicts = stats["rejected_verdicts"]
        if options.evaluation_report is not None:  # the card gains the evaluation of this dataset
            _rewrite_card(result, card_name, options.evaluation_report)
    else:
        _finalize(store, result, record, counts_by_id, card_name, options.evaluation_report)
        shutil.rmtree(work_dir_of(out_dir))

    if options.push_to_hub:
        from medicraft_hf.hub import push_dataset_dict

        result.pushed_commit = push_dataset_dict(out_dir, options.push_to_hub, private=options.private,
                                                 commit_message="Upload synthetic OCT dataset (medicraft generate)")
    return result


def _pipeline_and_settings(pipe, model, revision, scheduler, num_inference_steps, guidance_scale, seed):
    """Our own pipeline object (the caller's is left as it was) and the run's settings."""
    if pipe is None:
        own = load_pipeline(model, revision=revision, scheduler=scheduler or DEFAULT_SCHEDULER)
        model_id, model_revision = model_id_of(model), model_revision_of(model, revision, own)
    else:
        # A fresh scheduler object either way: its state belongs to this job alone.
        new_scheduler = scheduler_for(pipe, scheduler) if scheduler else \
            type(pipe.scheduler).from_config(pipe.scheduler.config)
        own = pipe.with_scheduler(new_scheduler)  # the same UNet (and VAE, if any)
        model_id = model_id_of(model) if model is not None else model_id_of_pipe(pipe)
        model_revision = None
    own.set_progress_bar_config(disable=True)
    settings = GenerationSettings.of(own, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                     seed=seed, model_id=model_id, model_revision=model_revision)
    return own, settings


def _sample_all(pipe, store: ShardStore, settings: GenerationSettings, options: GenerationOptions,
                counts_by_id: dict[int, int], state) -> None:
    """Sample every image this process owns that is not on disk yet, in rounds (see `plan_next_round`)."""
    from tqdm.auto import tqdm

    num_classes = len(settings.class_names)
    planned, covered = dict(counts_by_id), {c: 0 for c in counts_by_id}
    bar = tqdm(desc="generate", unit="img", disable=not (options.progress and state.is_main_process))
    while planned != covered:  # one round without the anatomy filter; more while images fail it
        done = set(store.read_columns([INDEX_COLUMN])[INDEX_COLUMN])
        round_plan = sorted(image_index(c, k, num_classes) for c in planned for k in range(covered[c], planned[c]))
        bar.total, bar.n = sum(planned.values()), len(done)
        buffer: list[dict] = []
        todo = [i for i in round_plan if i not in done]
        for block in blocks(todo, options.batch_size)[state.process_index :: state.num_processes]:
            rows = sample_block(pipe, block, settings)
            for row in rows:
                if options.anatomy_filter is not None:
                    options.anatomy_filter.judge(row)
                else:
                    row.update(accepted=True, anatomy_verdict=None, anatomy_score=None)
            buffer += rows
            bar.update(len(rows) * state.num_processes)
            if len(buffer) >= options.flush_every:
                store.write(buffer)
                buffer = []
        if buffer:
            store.write(buffer)
        state.wait_for_everyone()
        cols = store.read_columns([INDEX_COLUMN, "accepted"])
        accepted = Counter(i % num_classes for i, ok in zip(cols[INDEX_COLUMN], cols["accepted"])
                           if ok and i // num_classes < planned[i % num_classes])
        covered, planned = planned, plan_next_round(counts_by_id, planned, accepted)
        if planned is None:
            short = {settings.class_names[c]: f"{accepted[c]}/{n}" for c, n in counts_by_id.items() if accepted[c] < n}
            raise ValueError(
                f"The anatomy filter passed too few images after {MAX_CANDIDATES_PER_IMAGE} candidates per requested "
                f"image (passed/needed: {short}); lower the anatomy threshold or use a better model. "
                f"The sampled images stay in {store.directory.parent} for inspection.")
    bar.close()


def _finalize(store: ShardStore, result: GenerationResult, record: dict, counts_by_id: dict[int, int],
              card_name: str, evaluation_report) -> None:
    """Kept images, in index order, -> `result.out_dir` in Hub layout with a card (main process)."""
    from medicraft_hf.data.build import save_dataset_dict

    class_names = list(result.settings.class_names)
    keep, candidates, rejected, verdicts = select_kept(store, counts_by_id, len(class_names))
    result.candidates = {class_names[c]: candidates[c] for c in counts_by_id}
    result.rejected = {class_names[c]: rejected[c] for c in counts_by_id}
    result.rejected_verdicts = dict(sorted(verdicts.items()))

    dataset = store.load(cache_dir=store.directory.parent / "cache")  # memory-mapped, not in RAM
    position = {index: p for p, index in enumerate(dataset[INDEX_COLUMN])}
    dataset = dataset.select([position[i] for i in keep])
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in oct_features(class_names)])
    dsdict = DatasetDict({result.split: dataset})
    save_dataset_dict(dsdict, result.out_dir,
                      card=synthetic_dataset_card(dsdict, result, card_name, evaluation_report))
    write_json_atomic(result.out_dir / DONE_FILE, {"run": record, "statistics": result.statistics()})


def _rewrite_card(result: GenerationResult, name: str, evaluation_report) -> None:
    from medicraft_hf.cards.dataset_card import add_loading_metadata
    from medicraft_hf.data.load import load_oct_dataset
    from medicraft_hf.sources import DATA_DIR

    dsdict = load_oct_dataset(result.out_dir)
    card = add_loading_metadata(synthetic_dataset_card(dsdict, result, name, evaluation_report), dsdict,
                                data_dir=DATA_DIR)
    write_text_atomic(result.out_dir / "README.md", str(card))


def _use_cpu() -> bool:
    """CPU processes: asked for, or launched as several processes on a machine without CUDA.

    (`PartialState()` alone sees no distributed setup there and every rank would act as main.)
    """
    from accelerate.utils import parse_flag_from_env

    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1
    return parse_flag_from_env("ACCELERATE_USE_CPU") or (launched and not torch.cuda.is_available())
