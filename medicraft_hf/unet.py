"""`UNet2DModel` presets: one config is the single source of truth for a model's shape."""

from __future__ import annotations

from collections.abc import Sequence

from diffusers import UNet2DModel

from medicraft_hf.parsing import parse_resolution

# name -> (resolution (H, W), block widths, attention on the lowest level, layers per block)
PRESETS: dict[str, dict] = {
    # Trains on 2 CPU cores in about an hour; the demo model's shape.
    "cpu-small": {"sample_size": (64, 128), "block_out_channels": (32, 64, 64, 128), "layers_per_block": 1},
    # The original study's scale (256x512), sized to cost no more per step than its UNet.
    "study-scale": {"sample_size": (256, 512), "block_out_channels": (64, 128, 256, 256, 512), "layers_per_block": 1},
    # Tests: a forward pass in milliseconds.
    "tiny": {"sample_size": (32, 64), "block_out_channels": (16, 32), "layers_per_block": 1},
}


def build_unet(num_classes: int, preset: str = "cpu-small", resolution=None, channels: int = 1) -> UNet2DModel:
    """A class-conditional UNet; `num_classes + 1` embeddings (the last is null).

    `channels` is 1 for grayscale pixels, the VAE's latent channels for a latent model."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown UNet preset {preset!r}; choose one of {sorted(PRESETS)}.")
    cfg = dict(PRESETS[preset])
    if resolution is not None:
        cfg["sample_size"] = parse_resolution(resolution)
    widths = cfg["block_out_channels"]
    levels = len(widths)
    # Attention only at the lowest resolution: cheap, and enough for global layout (one fovea).
    down = ("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",)
    up = ("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1)
    return UNet2DModel(
        sample_size=tuple(cfg["sample_size"]),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(widths),
        layers_per_block=cfg["layers_per_block"],
        down_block_types=down,
        up_block_types=up,
        num_class_embeds=num_classes + 1,
        norm_num_groups=min(8, widths[0]),
    )


def unet_from_pipeline(source, class_names: Sequence[str], resolution) -> UNet2DModel:
    """The UNet of a saved pipeline (folder or Hub id), to start training from its weights.

    Fine-tuning keeps the architecture, so the classes (in label order) and the resolution of
    the new run must be the saved model's.
    """
    from medicraft_hf.models import load_pipeline  # models imports the pipeline (diffusers), only needed here

    pipe = load_pipeline(source)
    if list(pipe.class_names) != list(class_names):
        raise ValueError(f"--init_from {source} was trained on classes {list(pipe.class_names)}, the dataset has "
                         f"{list(class_names)}; pass --class_names in the model's order or train from scratch.")
    if tuple(pipe.image_size) != tuple(parse_resolution(resolution)):
        h, w = pipe.image_size
        raise ValueError(f"--init_from {source} makes {h}x{w} images, the run asks for {resolution}; "
                         f"pass --resolution {h}x{w}.")
    # A fresh module from the config: the loaded one remembers where it came from
    # (`_name_or_path`), a local path that would be written into the new model's config.
    unet = UNet2DModel.from_config({k: v for k, v in pipe.unet.config.items() if k != "_name_or_path"})
    unet.load_state_dict(pipe.unet.state_dict())
    return unet
