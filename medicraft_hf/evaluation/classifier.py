"""The downstream classifier: a transformers ViT trained with the HF `Trainer`.

Offline the model is built from a small `ViTConfig` (grayscale input, `num_channels=1`);
`model_name_or_path` starts from a pretrained checkpoint instead (its head is replaced for
our labels, grayscale is repeated to its channels and resized to its image size).
The same model gives the feature space of the fidelity and privacy audits: the CLS
token after the final layer norm, i.e. the input of the classification head.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification, set_seed
from transformers.trainer_callback import PrinterCallback

from medicraft_hf.evaluation.inputs import ImageSet


@dataclass
class ClassifierSettings:
    """How the classifier is built and trained; defaults fit 64x128 OCT on 2 CPU cores
    (measured on the 64x128 phantom: batch 16 x 450 steps matched batch 32 x 450 steps at half
    the cost; 900 steps at batch 32 scored lower)."""

    # Training length, one rule for every protocol. With a validation set and `patience` > 0:
    # evaluate every `eval_every` steps, stop after `patience` evaluations without a better
    # validation balanced accuracy, keep the best checkpoint; `max_steps` is the cap. Otherwise
    # exactly `max_steps` optimizer steps (compute-matched: TRSTR's larger set gets no extra
    # budget), or `epochs` passes when set.
    max_steps: int = 450
    epochs: float | None = None
    eval_every: int = 50
    patience: int = 0
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    # Classifier input (H, W); None: the evaluation resolution. Smaller inputs average out
    # speckle and cut the tokens, hence the cost, by the square of the factor.
    input_size: tuple[int, int] | None = None
    patch_size: int | None = None  # None: input height // patch_divisor
    # 16: 4 at 64x128 and 8 at 128x256, 16x32 patches. Chosen on a tuning cohort (docs/benchmark.md,
    # session 13): the 8x16 patches of height // 8 found a thin detachment in fewer planes.
    patch_divisor: int = 16
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    model_name_or_path: str | None = None  # a pretrained ViT checkpoint, when available
    hflip: bool = True  # random left-right flips while training (OD and OS scans are mirror images)
    # Random up-down shifts while training, up to this fraction of the height (edge rows repeated):
    # the retina sits at another depth in every exam, and a ViT learns position from its patches.
    vshift: float = 0.1

    @classmethod
    def with_budget(cls, patience: int = 6, max_steps: int | None = None, **kwargs) -> "ClassifierSettings":
        """The usefulness benchmark's training rule (`medicraft evaluate`'s defaults): early stopping
        with `patience`, capped at 3000 steps; `patience=0`: a fixed `max_steps` (450)."""
        return cls(max_steps=max_steps or (3000 if patience else 450), patience=patience, **kwargs)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def build_vit_config(class_names, resolution: tuple[int, int], settings: ClassifierSettings) -> ViTConfig:
    h, w = tuple(settings.input_size or resolution)
    patch = settings.patch_size or max(2, h // settings.patch_divisor)
    if h % patch or w % patch:
        raise ValueError(f"Classifier input {h}x{w} is not divisible by the ViT patch size {patch}; choose a multiple.")
    return ViTConfig(
        image_size=(h, w),
        patch_size=patch,
        num_channels=1,
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        intermediate_size=2 * settings.hidden_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)},
    )


def build_classifier(class_names, resolution, settings: ClassifierSettings) -> ViTForImageClassification:
    if settings.model_name_or_path:
        return ViTForImageClassification.from_pretrained(
            settings.model_name_or_path,
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={name: i for i, name in enumerate(class_names)},
            ignore_mismatched_sizes=True,  # a new head for our labels
            use_safetensors=True,
        )
    return ViTForImageClassification(build_vit_config(class_names, resolution, settings))


class ImageSetDataset(torch.utils.data.Dataset):
    """`ImageSet` rows as {"image": uint8 (H, W), "label": int} for the Trainer."""

    def __init__(self, images: ImageSet):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images.images[i], "label": int(self.images.labels[i])}


class GrayscaleCollator:
    """Grayscale uint8 images -> `pixel_values` in [-1, 1] shaped for the model's config."""

    def __init__(self, config: ViTConfig, hflip: bool = False, vshift: float = 0.0):
        self.hflip, self.vshift = hflip, vshift
        self.num_channels = config.num_channels
        size = config.image_size
        self.size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)

    def pixel_values(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0).unsqueeze(1)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x.expand(-1, self.num_channels, -1, -1).contiguous()

    def __call__(self, rows):
        x = self.pixel_values(np.stack([r["image"] for r in rows]))
        if self.hflip:  # torch's RNG, seeded by the Trainer: same seed -> same flips
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
        if self.vshift:
            x = shift_rows(x, torch.randint(-round(self.vshift * x.shape[-2]), round(self.vshift * x.shape[-2]) + 1,
                                            (len(x),)))
        return {"pixel_values": x, "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long)}


def shift_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Each image (N, C, H, W) moved down by its shift in rows (up when negative); the rows it
    uncovers repeat the image's edge row (the vitreous above, the choroid below)."""
    out = x.clone()
    for i, s in enumerate(shifts.tolist()):
        if s > 0:
            out[i, :, s:] = x[i, :, :-s]
            out[i, :, :s] = x[i, :, :1]
        elif s < 0:
            out[i, :, :s] = x[i, :, -s:]
            out[i, :, s:] = x[i, :, -1:]
    return out


class ValidationMetrics:
    """`compute_metrics` for the Trainer: the project's `evaluate` metric on softmax probabilities."""

    def __init__(self, class_names):
        from medicraft_hf.evaluation.protocols import load_metric

        self.metric, self.class_names = load_metric(), list(class_names)

    def __call__(self, eval_pred) -> dict:
        logits = torch.as_tensor(np.asarray(eval_pred.predictions), dtype=torch.float64)
        probs = logits.softmax(-1).numpy()
        out = self.metric.compute(predictions=probs.tolist(), references=np.asarray(eval_pred.label_ids).tolist(),
                                  class_names=self.class_names)
        return {k: v for k, v in out.items() if k in ("accuracy", "balanced_accuracy", "macro_f1")}


class BestCheckpointTrainer(Trainer):
    """`Trainer` whose `load_best_model_at_end` restores every weight of the best checkpoint.

    transformers 5.24's `Trainer._load_best_model` reads the checkpoint's safetensors with
    `load_state_dict(strict=False)`; `save_pretrained` writes the ViT's encoder under its
    legacy key names (`vit.encoder.layer.*`), so those keys miss and the encoder silently
    keeps the last step's weights beside the best step's embeddings and head. Loading the
    checkpoint with `from_pretrained` (which maps the names) and then strictly fixes that.
    """

    def _load_best_model(self) -> None:
        best = type(self.model).from_pretrained(self.state.best_model_checkpoint, use_safetensors=True)
        self.model.load_state_dict(best.state_dict(), strict=True)


@dataclass
class TrainingRecord:
    """What a run reached: the steps trained, the best validation step and its score, the validation curve."""

    steps: int
    best_step: int | None = None
    best_validation_balanced_accuracy: float | None = None
    stopped_early: bool = False
    curve: list | None = None  # [(step, validation balanced accuracy)]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def train_classifier(
    train: ImageSet, class_names, resolution, settings: ClassifierSettings, seed: int,
    validation: ImageSet | None = None, record: list | None = None,
) -> ViTForImageClassification:
    """Train a fresh classifier on `train` with the HF Trainer; same seed -> same model.

    With `validation` and `settings.patience` > 0 it stops early on the validation balanced
    accuracy and returns the best checkpoint. A `TrainingRecord` is appended to `record`.
    """
    from transformers import EarlyStoppingCallback

    set_seed(seed)  # the weights are initialised before the Trainer seeds anything
    model = build_classifier(class_names, resolution, settings)
    early = validation is not None and settings.patience > 0
    if early:
        step_args = dict(eval_strategy="steps", eval_steps=settings.eval_every, save_strategy="steps",
                         save_steps=settings.eval_every, save_total_limit=1, load_best_model_at_end=True,
                         metric_for_best_model="balanced_accuracy", greater_is_better=True, save_only_model=True,
                         per_device_eval_batch_size=128)
    else:
        step_args = dict(save_strategy="no")
    with tempfile.TemporaryDirectory(prefix="medicraft-vit-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=settings.epochs or 1,
            max_steps=settings.max_steps if settings.epochs is None else -1,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            warmup_steps=0.1,  # a ratio of the total steps
            lr_scheduler_type="cosine",
            seed=seed,
            data_seed=seed,
            report_to="none",
            logging_strategy="no",
            remove_unused_columns=False,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            **step_args,
        )
        trainer = BestCheckpointTrainer(
            model=model,
            args=args,
            train_dataset=ImageSetDataset(train),
            eval_dataset=ImageSetDataset(validation) if early else None,
            data_collator=GrayscaleCollator(model.config, hflip=settings.hflip, vshift=settings.vshift),
            compute_metrics=ValidationMetrics(class_names) if early else None,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=settings.patience)] if early else None,
        )
        trainer.remove_callback(PrinterCallback)  # no per-run loss dicts on stdout
        trainer.train()
        state = trainer.state
        curve = [(h["step"], round(h["eval_balanced_accuracy"], 4)) for h in state.log_history
                 if "eval_balanced_accuracy" in h]
        if record is not None:
            best = max(curve, key=lambda c: c[1]) if curve else None  # the first of equal bests, as the Trainer keeps
            record.append(TrainingRecord(
                steps=state.global_step, best_step=best[0] if best else None,
                best_validation_balanced_accuracy=best[1] if best else None,
                stopped_early=early and state.global_step < state.max_steps, curve=curve or None))
    return trainer.model.eval()


@torch.no_grad()
def embed_and_predict(model: ViTForImageClassification, images: ImageSet, batch_size: int = 128):
    """(features, probabilities): the CLS features the head sees, and its softmax."""
    model.eval()
    collate = GrayscaleCollator(model.config)
    device = next(model.parameters()).device
    features, probs = [], []
    for start in range(0, len(images), batch_size):
        x = collate.pixel_values(images.images[start : start + batch_size]).to(device)
        cls = model.vit(pixel_values=x).last_hidden_state[:, 0]
        features.append(cls.float().cpu())
        probs.append(model.classifier(cls).float().softmax(-1).cpu())
    return torch.cat(features).numpy(), torch.cat(probs).numpy()
