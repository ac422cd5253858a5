"""Text values shared by the CLI, the scripts and the library: image sizes and split fractions.

Plain Python (no torch, diffusers or datasets), so that commands parse their flags before
importing anything heavy. `what` names the value in errors: a command passes its flag
(`"--size"`), library code its own parameter name (`"Resolution"`).
"""

from __future__ import annotations

from collections.abc import Sequence

SPLIT_NAMES = ("train", "validation", "test")

# The UNet presets halve a model's resolution three times (medicraft_hf.unet).
RESOLUTION_MULTIPLE = 8


def parse_size(value: str | int | Sequence[int], what: str = "Size", multiple_of: int = 1) -> tuple[int, int]:
    """'256x512' / '256' / 256 / (256, 512) -> (height, width), each positive (and a multiple of `multiple_of`)."""
    if isinstance(value, str):
        try:
            dims = tuple(int(p) for p in value.lower().replace("×", "x").split("x"))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not HxW (e.g. 256x512) or a single size.") from None
    elif isinstance(value, int):
        dims = (value,)
    else:
        dims = tuple(int(v) for v in value)
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0 or any(d % multiple_of for d in dims):
        sides = "positive sizes" if multiple_of == 1 else f"positive multiples of {multiple_of}"
        raise ValueError(f"{what} {value!r} must be HxW with {sides}, e.g. 256x512.")
    return dims


def parse_resolution(value: str | int | Sequence[int]) -> tuple[int, int]:
    """A model's resolution: `parse_size` with sides that are multiples of `RESOLUTION_MULTIPLE`."""
    return parse_size(value, what="Resolution", multiple_of=RESOLUTION_MULTIPLE)


def parse_fractions(text: str, what: str = "Fractions") -> dict[str, float]:
    """'0.7,0.15,0.15' -> {"train": 0.7, "validation": 0.15, "test": 0.15}."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != len(SPLIT_NAMES):
        raise ValueError(f"{what} {text!r} needs three numbers: {','.join(SPLIT_NAMES)}")
    return dict(zip(SPLIT_NAMES, values))
