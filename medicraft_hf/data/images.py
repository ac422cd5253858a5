"""Read, convert and validate one B-scan image.

Every image becomes an 8-bit grayscale PIL image (mode "L"):
- 8-bit grayscale is kept as is;
- RGB / palette / alpha images are converted with PIL's luminance formula (ITU-R 601-2);
- 16-bit, 32-bit integer and float images are rescaled from their *actual* value range to
  0..255 (clipping a 12-bit scan stored in 16 bits would make it black or white);
  float images already in [0, 1] are scaled by 255 so their contrast is kept.
Unreadable and truncated files raise `InvalidImageError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# A truncated file must fail, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class InvalidImageError(ValueError):
    """An image that cannot be read or converted; `reason` and `fix` go into reports."""

    def __init__(self, file, reason: str, fix: str):
        self.file, self.reason, self.fix = str(file), reason, fix
        super().__init__(f"{file}: {reason} -> {fix}")


def rescale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map the array's actual range [min, max] linearly onto 0..255 (a constant image -> 0)."""
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("image contains NaN or infinite values")
    lo, hi = float(array.min()), float(array.max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def array_to_grayscale(array: np.ndarray) -> Image.Image:
    """A 2-D (H, W) or channel-last (H, W, 1|3|4) array as an 8-bit grayscale image."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        if array.dtype != np.uint8:
            array = rescale_to_uint8(array)
        return Image.fromarray(array[..., :3], mode="RGB").convert("L")
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D B-scan (H, W) or (H, W, C), got shape {array.shape}")
    if array.dtype == np.uint8:
        return Image.fromarray(array, mode="L")
    if array.dtype == np.bool_:
        return Image.fromarray(array.astype(np.uint8) * 255, mode="L")
    if np.issubdtype(array.dtype, np.floating) and array.size and 0.0 <= array.min() and array.max() <= 1.0:
        return Image.fromarray(np.round(array * 255.0).astype(np.uint8), mode="L")
    return Image.fromarray(rescale_to_uint8(array), mode="L")


def to_grayscale(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit grayscale (see the module docstring for the rules)."""
    if image.mode == "L":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return array_to_grayscale(np.asarray(image))
    if image.mode in ("P", "PA", "1", "LA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    return image.convert("L")


def read_image(path, name: str | None = None) -> Image.Image:
    """Decode an image file (a path or a binary file object) fully, as 8-bit grayscale.

    Decoding everything here is what catches truncated files. `name` names the file in
    errors when `path` is a file object.
    """
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        name = name or str(path)
    try:
        with Image.open(path) as image:
            image.load()
            if getattr(image, "n_frames", 1) > 1:
                raise InvalidImageError(
                    name, f"has {image.n_frames} frames, expected one B-scan per file",
                    "export one B-scan per file, or read the volume with `--from vendor`")
            return to_grayscale(image)
    except InvalidImageError:
        raise
    except FileNotFoundError:
        raise InvalidImageError(name, "file not found", "check the path in the folder or manifest") from None
    except UnidentifiedImageError:
        raise InvalidImageError(name, "not a readable image", "replace it with a PNG/JPEG/TIFF export or remove it") from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "cannot convert image" if isinstance(err, ValueError) else "truncated or corrupt image"
        raise InvalidImageError(name, f"{reason} ({err})", "re-export the file or remove it") from None


def load_image(image, origin: str = "<image>") -> Image.Image:
    """Whatever a row holds (path, bytes, `{"bytes", "path"}`, PIL, numpy) as 8-bit grayscale."""
    try:
        if isinstance(image, Image.Image):
            return to_grayscale(image)
        if isinstance(image, np.ndarray):
            return array_to_grayscale(image)
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        if isinstance(image, dict):
            if image.get("bytes") is not None:
                image = image["bytes"]
            elif image.get("path"):
                return read_image(image["path"])
        if isinstance(image, (bytes, bytearray)):
            return read_image(io.BytesIO(image), name=origin)
    except InvalidImageError:
        raise
    except ValueError as err:
        raise InvalidImageError(origin, f"cannot convert image ({err})", "pass a 2-D grayscale array or an image file") from None
    raise InvalidImageError(origin, f"unsupported image value of type {type(image).__name__}",
                            "pass a file path, bytes, a PIL image or a numpy array")


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to (height, width) with antialiased bilinear interpolation (no crop)."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BILINEAR)


def pixel_hash(image: Image.Image) -> str:
    """sha256 of the decoded pixels (and size): equal for the same scan in any file format."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def encode_png(image: Image.Image, compress_level: int = 3) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
