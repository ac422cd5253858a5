"""The models that ship inside the package, by the name `--model`, the Space and provenance use.

One table, so that the CLI's help, `load_pipeline`, the provenance columns and the Space's
Model menu cannot disagree. Light on purpose (no diffusers import): `medicraft --help` reads it.
A local folder of the same name as an embedded model is passed as a path (./demo-fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).parent


@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # what --model and the Space's Model menu call it
    folder: Path
    model_id: str  # what provenance columns and cards call it
    summary: str  # one phrase for help texts and the Space's Model label

    @property
    def shipped(self) -> bool:
        return (self.folder / "model_index.json").is_file()


# The first is the default model.
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (
    # Trained on the phantom (issue: demo model); its card says how and how good.
    EmbeddedModel("demo", _HERE / "demo_model", "medicraft-hf/demo", "64x128, 20 steps; the default"),
    # The demo model distilled to 4 steps (training/distill.py; docs/distillation.md).
    EmbeddedModel("demo-fast", _HERE / "demo_model_fast", "medicraft-hf/demo-fast",
                  "64x128, distilled to 4 steps, about 3.5x faster"),
    # The study's resolution: a UNet on the latents of a VAE 4x smaller per side (docs/latent.md).
    EmbeddedModel("demo-latent", _HERE / "demo_model_latent", "medicraft-hf/demo-latent",
                  "256x512, latent diffusion (VAE 4x per side), 20 steps"),
    # The latent model distilled to 4 steps: the VAE's decode bounds the gain, quality falls (docs/distillation.md).
    EmbeddedModel("demo-latent-fast", _HERE / "demo_model_latent_fast", "medicraft-hf/demo-latent-fast",
                  "256x512, latent, distilled to 4 steps: 1.9x faster, lower quality"),
)}
DEFAULT_EMBEDDED = next(iter(EMBEDDED_MODELS))


def embedded_help() -> str:
    """The `--model` help text's list of embedded models."""
    return ", ".join(f"'{m.name}' ({m.summary})" for m in EMBEDDED_MODELS.values())


def embedded_of_folder(folder) -> EmbeddedModel | None:
    """The embedded model stored in `folder`, if it is one."""
    try:
        resolved = Path(str(folder)).resolve()
    except (OSError, ValueError):
        return None
    return next((m for m in EMBEDDED_MODELS.values() if m.folder.resolve() == resolved), None)


def embedded_model(model):
    """The folder of an embedded model's name (None for the default, "demo"), else `model` unchanged."""
    if model == DEFAULT_EMBEDDED:
        return None
    if isinstance(model, str) and model in EMBEDDED_MODELS:
        embedded = EMBEDDED_MODELS[model]
        if not embedded.shipped:
            raise FileNotFoundError(f"The embedded model {model!r} is missing from {embedded.folder}; reinstall "
                                    "medicraft-hf or pass a model folder / Hub id.")
        return embedded.folder
    return model
