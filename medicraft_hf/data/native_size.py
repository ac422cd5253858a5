"""From a B-scan's native size (496x512, 496x768, 496x1024, 1024x512, ...) to the training size.

The user chooses the policy (`medicraft build --size HxW --fit POLICY`); the dataset card
records it, since each one changes what a pixel means:

- ``resize``: stretch to HxW (bilinear). The physical aspect changes with the native size:
  the original project squashed 496x512 into 256x512 this way.
- ``crop``: cut the centre HxW, no resampling; a side shorter than the target is padded
  with black. Keeps pixels as acquired; loses the margins.
- ``pad``: scale by one factor for both axes so the whole B-scan fits, then pad with black.
  Keeps the pixel aspect of the file.
- ``physical``: resample so that a pixel is as tall as it is wide in millimetres (from the
  row's pixel spacing), then fit and pad as ``pad``. Rows without a pixel spacing are
  problems. Keeps the anatomy's true proportions, so scans of different devices agree.

Each returns the new pixel spacing (depth, lateral) in mm, None where unknown.
"""

from __future__ import annotations

from PIL import Image

from medicraft_hf.data.images import resize

FIT_POLICIES = ("resize", "crop", "pad", "physical")
PAD_VALUE = 0  # black, as the vitreous and the space below the choroid

_STATEMENTS = {
    "resize": "stretched to {h}x{w} (HxW, bilinear; the physical aspect ratio is not kept)",
    "crop": "centre-cropped to {h}x{w} (HxW) without resampling; sides shorter than that were padded with black",
    "pad": "scaled by one factor for both axes to fit {h}x{w} (HxW, bilinear) and padded with black (pixel aspect kept)",
    "physical": ("resampled to square pixels in millimetres from each scan's pixel spacing, then fitted into "
                 "{h}x{w} (HxW, bilinear) and padded with black (physical aspect kept)"),
}


def check_fit(policy: str) -> str:
    if policy not in FIT_POLICIES:
        raise ValueError(f"fit must be one of {FIT_POLICIES}, got {policy!r}")
    return policy


def fit_statement(policy: str, size: tuple[int, int]) -> str:
    """What the dataset card says about the images' size."""
    return f"Every B-scan was {_STATEMENTS[check_fit(policy)].format(h=size[0], w=size[1])} (`--fit {policy}`)."


def _scaled(value, factor):
    return None if value is None else float(value) * factor


def _pad_centre(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    h, w = size
    canvas = Image.new(image.mode, (w, h), PAD_VALUE)
    # A side larger than the target is cut around its centre (crop), a smaller one padded.
    left, top = (w - image.width) // 2, (h - image.height) // 2
    canvas.paste(image, (left, top))
    return canvas


def fit_bscan(image: Image.Image, size: tuple[int, int], policy: str = "resize",
              spacing: tuple = (None, None)) -> tuple[Image.Image, tuple]:
    """`image` at `size` (H, W) by `policy`, and its new (depth, lateral) spacing in mm.

    Raises ValueError for ``physical`` when the spacing is unknown.
    """
    check_fit(policy)
    h, w = size
    depth, lateral = spacing
    if (image.height, image.width) == (h, w) and policy != "physical":
        return image, (depth, lateral)
    if policy == "resize":
        out = resize(image, size)
        return out, (_scaled(depth, image.height / h), _scaled(lateral, image.width / w))
    if policy == "crop":
        return _pad_centre(image, size), (depth, lateral)
    if policy == "physical":
        if not depth or not lateral:
            raise ValueError("no pixel spacing (depth and lateral) for --fit physical")
        # First make pixels square at the finer of the two spacings (no detail lost), then fit.
        pixel = min(depth, lateral)
        tall, wide = max(1, round(image.height * depth / pixel)), max(1, round(image.width * lateral / pixel))
        image = resize(image, (tall, wide))
        depth = lateral = pixel
    factor = min(h / image.height, w / image.width)
    new_h, new_w = max(1, round(image.height * factor)), max(1, round(image.width * factor))
    out = _pad_centre(resize(image, (new_h, new_w)), size)
    return out, (_scaled(depth, image.height / new_h), _scaled(lateral, image.width / new_w))
