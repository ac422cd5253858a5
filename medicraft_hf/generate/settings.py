"""What a generation run is: the settings its images depend on, and how the job runs.

`GenerationSettings` is everything an image's pixels depend on (equal settings, equal
images; its hash tags the image ids). `GenerationOptions` is how the job runs (batch
size, output, filter, push), which never changes an image. Both check their values once,
here, in the library's names; the CLI and the Space rename them (`medicraft_hf.errors`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from medicraft_hf.errors import ArgumentError, check_non_negative_int, check_positive_int
from medicraft_hf.models import SCHEDULERS, model_id_of, weights_digest
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_BATCH_SIZE, FLUSH_EVERY
from medicraft_hf.sources import check_repo_id, is_hub_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything an image depends on; equal settings give identical images."""

    model_id: str
    model_revision: str
    scheduler: str
    num_inference_steps: int
    guidance_scale: float
    seed: int
    class_names: tuple[str, ...]
    image_size: tuple[int, int]

    @property
    def tag(self) -> str:
        """8 hex digits naming this sampling setup in image ids (unique across runs)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]

    @classmethod
    def of(cls, pipe: OCTDiffusionPipeline, *, num_inference_steps: int, guidance_scale: float, seed: int,
           model_id: str | None = None, model_revision: str | None = None) -> GenerationSettings:
        """The settings of sampling with `pipe` (checked by the pipeline, which owns them)."""
        pipe.check_inputs(num_inference_steps, guidance_scale)
        check_non_negative_int("seed", seed)
        return cls(
            model_id=model_id or model_id_of_pipe(pipe),
            model_revision=model_revision or weights_revision(pipe),
            scheduler=scheduler_name(pipe.scheduler),
            num_inference_steps=num_inference_steps,
            guidance_scale=float(guidance_scale),
            seed=seed,
            class_names=tuple(pipe.class_names),
            image_size=tuple(pipe.image_size),
        )

    @classmethod
    def from_record(cls, record: dict) -> GenerationSettings:
        """Back from the JSON a run folder keeps (`asdict` form)."""
        fields = dict(record)
        return cls(**{**fields, "class_names": tuple(fields["class_names"]), "image_size": tuple(fields["image_size"])})


@dataclass(frozen=True)
class GenerationOptions:
    """How a `generate_dataset` job runs; none of it changes an image.

    Args:
        batch_size: images per pipeline call (memory and speed only).
        split: the split name the dataset is saved under.
        anatomy_filter: keep only images that pass it (`AnatomyFilter`); None keeps all.
        evaluation_report: a `medicraft evaluate` report whose summary goes into the card.
        name: the dataset's name in its card (default: the Hub id or the folder name).
        overwrite: replace a dataset folder that holds another run.
        push_to_hub: a Hub dataset id to push to when done (private unless `private=False`).
        flush_every: images per working shard (what a kill can cost at most, per process).
        progress: show a progress bar (main process).
    """

    batch_size: int = DEFAULT_BATCH_SIZE
    split: str = "train"
    anatomy_filter: object | None = None
    evaluation_report: str | os.PathLike | None = None
    name: str | None = None
    overwrite: bool = False
    push_to_hub: str | None = None
    private: bool = True
    flush_every: int = FLUSH_EVERY
    progress: bool = True

    def __post_init__(self):
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("flush_every", self.flush_every)
        if not self.split or not all(part.isidentifier() for part in str(self.split).split("-")):
            raise ArgumentError("split", f"{{argument}} must be a simple name such as 'train', got {self.split!r}.")
        if self.push_to_hub is not None:
            check_repo_id(self.push_to_hub, "push_to_hub")


# ---------------------------------------------------------------------------- provenance
def scheduler_name(scheduler) -> str:
    """The `SCHEDULERS` name of a scheduler object, else its class name."""
    for name, (cls, overrides) in SCHEDULERS.items():
        if type(scheduler) is cls and all(scheduler.config.get(k) == v for k, v in overrides.items()):
            return name
    return type(scheduler).__name__


def weights_revision(pipe: OCTDiffusionPipeline) -> str:
    """A content hash of the UNet (and VAE) weights: the revision of a model that is not on the Hub."""
    weights = dict(pipe.unet.state_dict())
    if getattr(pipe, "vae", None) is not None:  # a pixel model's hash stays what it was
        weights.update({f"vae.{k}": v for k, v in pipe.vae.state_dict().items()})
    return f"sha256:{weights_digest(weights)[:16]}"


def model_revision_of(model, revision: str | None, pipe: OCTDiffusionPipeline) -> str:
    """The Hub commit a Hub model was loaded from, else a hash of the local weights."""
    if model is not None and is_hub_id(model):
        from huggingface_hub import try_to_load_from_cache

        # diffusers just downloaded the model into the Hub cache, in a folder named after the commit.
        cached = try_to_load_from_cache(str(model), "model_index.json", revision=revision)
        if isinstance(cached, str):
            return Path(cached).parent.name
        logger.warning("%s is not in the Hub cache; recording a hash of its weights as its revision.", model)
    return weights_revision(pipe)


def model_id_of_pipe(pipe) -> str:
    """The name provenance records for a loaded pipeline (the demo model by its public name)."""
    source = getattr(pipe, "name_or_path", None)
    if not source:
        return "in-memory"
    return model_id_of(source)


def machine_kind() -> str:
    """What bit-exact reproduction depends on: torch build and CPU instruction set (or GPU)."""
    kind = f"torch {torch.__version__}, CPU {torch.backends.cpu.get_cpu_capability()}"
    if torch.cuda.is_available():
        kind += f", GPU {torch.cuda.get_device_name()}"
    return kind
