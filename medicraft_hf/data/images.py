"""Read, convert and validate one B-scan image.

Every image becomes an 8-bit grayscale PIL image (mode "L"):
- 8-bit grayscale is kept as is;
- RGB / palette / alpha images are converted with PIL's luminance formula (ITU-R 601-2);
- 16-bit, 32-bit integer and float images are rescaled from their *actual* value range to
  0..255 (clipping a 12-bit scan stored in 16 bits would make it black or white);
  float images already in [0, 1] are scaled by 255 so their contrast is kept.
Unreadable and truncated files raise `InvalidImageError` naming the file.

`read_image` is the one checked reader of image files (builders, `medicraft anatomy-check`,
evaluation inputs): before anything is decoded it refuses what is not a regular file (a
folder named `*.png`, a broken or looping link, a pipe), a file whose header declares more
than the pixel budget (`max_pixels`: `DEFAULT_MAX_PIXELS`, or `$MEDICRAFT_MAX_PIXELS`, or
`--max-pixels`; far below PIL's decompression-bomb limit, so a 100000x100000 header costs
nothing) and a multi-frame file; then it decodes fully (which catches truncated files).
`check_plausible` screens a decoded scan (blank, near-constant or mostly saturated).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from pathlib import Path
from struct import error as struct_error  # PIL's header parsers raise it on short headers

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from medicraft_hf.errors import check_positive_int

# A truncated file must fail, not be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# The pixel budget of one image file, checked from its header before decoding. 4096x4096
# covers every OCT B-scan export we know (Kermany's are at most 1536x768, Spectralis 1536x496)
# at ~30 bytes per pixel while converting (16-bit TIFF), i.e. about 0.5 GB. PIL's own limit
# (`Image.MAX_IMAGE_PIXELS`, ~89 MP, an error only at twice that) would let one file take ~5 GB.
DEFAULT_MAX_PIXELS = 4096 * 4096
MAX_PIXELS_ENV = "MEDICRAFT_MAX_PIXELS"

# Plausibility screen of a decoded scan (8-bit, 0..255), see `check_plausible`.
MIN_SPREAD = 8  # 1st..99th percentile of the grey values: below this the image is blank or near-constant
MAX_SATURATED_FRACTION = 0.5  # more than half of the pixels at 255: a mostly saturated (white) image


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


def max_pixels_budget(max_pixels: int | None = None) -> int:
    """`max_pixels` if given, else `$MEDICRAFT_MAX_PIXELS`, else `DEFAULT_MAX_PIXELS`."""
    if max_pixels is None:
        value = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not value:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(value.replace("_", ""))
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV}={value!r} is not a whole number of pixels; "
                             f"set it to e.g. {DEFAULT_MAX_PIXELS} or unset it") from None
        if max_pixels < 1:
            raise ValueError(f"{MAX_PIXELS_ENV}={value!r} must be a positive number of pixels; unset it for "
                             f"the default {DEFAULT_MAX_PIXELS}")
        return max_pixels
    return check_positive_int("max_pixels", max_pixels)


def check_file(path: str | os.PathLike, name: str | None = None) -> None:
    """Raise `InvalidImageError` unless `path` is a regular file that can be opened.

    Says which: missing, a link to nothing, a link loop, a folder, something else (a pipe
    or device, which a reader would block on).
    """
    name = name or str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidImageError(name, f"broken link (to {os.readlink(path)!r}, which does not exist)",
                                    "fix the link or remove it") from None
        raise InvalidImageError(name, "file not found", "check the path in the folder or manifest") from None
    except OSError as err:  # ELOOP: a link that points back to itself
        reason = "link loop (the link points back to itself)" if os.path.islink(path) else f"cannot be read ({err.strerror})"
        raise InvalidImageError(name, reason, "fix the link or remove it") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidImageError(name, "is a folder, not an image file",
                                "rename the folder (its name ends like an image file) or move it out of the input")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidImageError(name, "is not a regular file (a pipe, socket or device)", "remove it from the input")
    if not os.access(path, os.R_OK):
        raise InvalidImageError(name, "permission denied", "make the file readable or remove it")


def read_image(path, name: str | None = None, *, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (a path or a binary file object) fully, as 8-bit grayscale.

    Checked before decoding: the file itself (`check_file`), the declared size against the
    pixel budget (`max_pixels_budget(max_pixels)`), one frame only. Decoding everything
    here is what catches truncated files. `name` names the file in errors when `path` is a
    file object. Every failure is an `InvalidImageError` naming the file and what to do.
    """
    with _checked_open(path, name, max_pixels) as (image, name):
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise InvalidImageError(
                name, f"has {frames} frames, expected one B-scan per file",
                "export one B-scan per file, or read the volume with `--from vendor`")
        image.load()
        try:
            return to_grayscale(image)
        except ValueError as err:  # e.g. NaN in a float TIFF
            raise InvalidImageError(name, f"cannot convert image ({err})", "re-export the file or remove it") from None


def read_image_size(path, name: str | None = None, *, max_pixels: int | None = None) -> tuple[int, int]:
    """(H, W) from the file's header, with `read_image`'s checks before decoding (nothing is decoded)."""
    with _checked_open(path, name, max_pixels) as (image, _):
        return image.height, image.width


@contextlib.contextmanager
def _checked_open(path, name: str | None, max_pixels: int | None):
    """The opened, not yet decoded image (and its name for errors), inside `read_image`'s checks.

    Any failure inside the block, decoding included, becomes an `InvalidImageError`.
    """
    budget = max_pixels_budget(max_pixels)
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        name = name or str(path)
        check_file(path, name)
    name = name or "<image>"
    try:
        with warnings.catch_warnings():
            # Our budget is far below PIL's: its warning zone is refused by the budget below, not printed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size  # from the header: nothing is decoded yet
                if width * height > budget:
                    raise too_large_error(name, width, height, budget)
                if width == 0 or height == 0:
                    raise InvalidImageError(name, f"declares an empty image ({width}x{height})",
                                            "re-export the file or remove it")
                yield image, name
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as err:  # beyond twice PIL's limit: PIL refuses to open it
        raise InvalidImageError(name, f"decompression bomb: {err}", "re-export the scan at its real size or remove it") from None
    except FileNotFoundError:
        raise InvalidImageError(name, "file not found", "check the path in the folder or manifest") from None
    except IsADirectoryError:
        raise InvalidImageError(name, "is a folder, not an image file", "move it out of the input") from None
    except UnidentifiedImageError:
        raise InvalidImageError(name, "not a readable image", "replace it with a PNG/JPEG/TIFF export or remove it") from None
    except MemoryError:
        raise InvalidImageError(name, "too large to decode in memory", "re-export the scan smaller or remove it") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError, ZeroDivisionError,
            OverflowError, struct_error, NotImplementedError, RuntimeError) as err:
        # Damaged data makes PIL's plugins fail in many ways; each is this file's problem.
        raise InvalidImageError(name, f"truncated or corrupt image ({type(err).__name__}: {err})",
                                "re-export the file or remove it") from None


def too_large_error(name: str, width: int, height: int, budget: int) -> InvalidImageError:
    return InvalidImageError(
        name, f"declares {width}x{height} = {width * height:,} pixels, more than the budget of {budget:,}",
        f"re-export the scan smaller, or raise the budget with --max-pixels (or ${MAX_PIXELS_ENV}) if it is real")


def check_plausible(image: Image.Image, name: str) -> None:
    """Raise `InvalidImageError` for a decoded 8-bit scan that cannot be a B-scan.

    Blank or near-constant: the 1st..99th percentile spread of grey values is below
    `MIN_SPREAD` (of 255). Mostly saturated: more than `MAX_SATURATED_FRACTION` of the
    pixels are 255. (A B-scan is mostly dark vitreous and choroid with bright layers.)
    """
    array = np.asarray(image if image.mode == "L" else to_grayscale(image))
    if array.size == 0:
        raise InvalidImageError(name, "empty image", "re-export the file or remove it")
    lo, hi = np.percentile(array, (1, 99))
    if hi - lo < MIN_SPREAD:
        raise InvalidImageError(
            name, f"blank or near-constant image (grey values {lo:.0f}..{hi:.0f}, 1st..99th percentile; "
            f"a B-scan spreads over at least {MIN_SPREAD})", "re-export the scan or remove it")
    saturated = float(np.count_nonzero(array == 255)) / array.size
    if saturated > MAX_SATURATED_FRACTION:
        raise InvalidImageError(
            name, f"mostly saturated image ({saturated:.0%} of the pixels are white, at most "
            f"{MAX_SATURATED_FRACTION:.0%} expected)", "re-export the scan with its original contrast or remove it")


def load_image(image, origin: str = "<image>", *, max_pixels: int | None = None) -> Image.Image:
    """Whatever a row holds (path, bytes, `{"bytes", "path"}`, PIL, numpy) as 8-bit grayscale.

    Files and bytes go through `read_image` (with its pixel budget, `max_pixels`)."""
    try:
        if isinstance(image, Image.Image):
            return to_grayscale(image)
        if isinstance(image, np.ndarray):
            return array_to_grayscale(image)
        if isinstance(image, (str, os.PathLike)):
            return read_image(image, max_pixels=max_pixels)
        if isinstance(image, dict):
            if image.get("bytes") is not None:
                image = image["bytes"]
            elif image.get("path"):
                return read_image(image["path"], max_pixels=max_pixels)
        if isinstance(image, (bytes, bytearray)):
            return read_image(io.BytesIO(image), name=origin, max_pixels=max_pixels)
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
