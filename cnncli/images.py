"""A user's images for `cnncli predict`: read them, and make a photo of a digit look like MNIST.

    inputs = read_image_inputs(["seven.jpg", "digits/", "x.npy"])   # one entry per image
    for item in inputs:
        if item.error: ...                        # one line, "path: reason"; the rest still load
        x = prepare_digit(item.image)             # uint8 (28, 28), white ink on black, centred
    print(terminal_preview(x))                    # the 28x28 the network sees, as text

Readable inputs: PNG, JPEG, BMP, GIF (first frame), PGM/PBM/PPM through Pillow; `.npy` arrays
(never unpickled); IDX image files such as MNIST's `t10k-images-idx3-ubyte` (also gzipped); a
folder, whose image files are read in name order. A declared size is checked before anything
is decoded, so a 100,000 x 100,000 PNG header costs microseconds, not memory.

Pillow is imported inside the functions that need it, never when cnncli is imported.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import Any, NamedTuple

import numpy as np

from cnncli.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from cnncli.errors import DataError

#: the largest image (width x height, as declared in its header) that is decoded at all
MAX_PIXELS = 64_000_000
#: decoded images longer than this on a side are reduced by an integer factor (box average)
MAX_SIDE = 2048
#: .npy and IDX files above this many bytes are refused before they are read
MAX_ARRAY_BYTES = 1 << 30
#: the formats handed to Pillow (its PPM reader also reads PGM and PBM)
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "PPM")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".pbm", ".ppm", ".pnm")
KNOWN = "PNG, JPEG, BMP, GIF, PGM/PPM, .npy or IDX images"

#: MNIST's digits fill 20 of the frame's 28 pixels along their longer side
DIGIT_FRACTION = 20 / 28
#: the ink must be at least this much brighter than the background (0..1 scale) to count
MIN_CONTRAST = 0.2
#: strokes thinner than this in the output (pixels) are thickened to about TARGET_STROKE
MIN_STROKE = 1.8
TARGET_STROKE = 2.5


class ImageInput(NamedTuple):
    """One image read from the user's inputs: `image` or, if it could not be read, `error`.

    label: the path, with `[i]` appended for the i-th image of a .npy or IDX file.
    image: (H, W) greyscale, or (H, W, C) with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA);
           uint8 from image files and IDX, the file's own dtype from .npy.
    error: one line, starting with the label.
    """

    label: str
    image: np.ndarray | None
    error: str | None = None


# -- reading --------------------------------------------------------------------------------


def read_image_inputs(paths: Iterable[str | os.PathLike[str]], *, max_pixels: int = MAX_PIXELS,
                      max_side: int = MAX_SIDE) -> list[ImageInput]:
    """Read every image named by `paths` (files or folders), in order.

    A bad input (missing, unreadable, empty, not an image, a wrong channel count, a declared
    size over `max_pixels`) becomes one ImageInput with an error; the others still load.
    A folder contributes its image, .npy and IDX-images files (by name, hidden files and
    subfolders skipped), sorted by name. Images longer than `max_side` on a side are reduced
    while decoding (by an integer factor; a digit needs far fewer pixels).
    """
    out: list[ImageInput] = []
    for path in paths:
        label = os.fspath(path)
        p = Path(path)
        if not label:  # Path("") is the current folder: never read it by accident
            out.append(ImageInput(label, None, "'': an empty path names no image"))
        elif p.is_dir():
            try:
                files = sorted(f for f in p.iterdir() if f.is_file()
                               and _looks_like_input(f.name))
            except OSError as exc:
                out.append(ImageInput(label, None, f"{label}: folder cannot be read "
                                                   f"({exc.strerror or exc})"))
                continue
            if not files:
                out.append(ImageInput(label, None, f"{label}: folder holds no image files "
                                                   f"({KNOWN})"))
            for f in files:
                out.extend(_read_one(f, os.fspath(f), max_pixels, max_side))
        else:
            out.extend(_read_one(p, label, max_pixels, max_side))
    return out


def _looks_like_input(name: str) -> bool:
    low = name.lower()
    return not low.startswith(".") and (low.endswith(IMAGE_SUFFIXES + (".npy",))
                                        or "idx3" in low)


def _read_one(p: Path, label: str, max_pixels: int, max_side: int) -> list[ImageInput]:
    """One file -> its images, or one ImageInput holding the error."""
    try:
        if not p.exists():
            raise DataError(f"{label}: no such file or folder")
        if not p.is_file():  # a device or a pipe could be read forever
            raise DataError(f"{label}: not a regular file")
        size = p.stat().st_size
        if size == 0:
            raise DataError(f"{label}: the file is empty (0 bytes)")
        with p.open("rb") as fh:
            head = fh.read(16)
        if head.startswith(b"\x93NUMPY"):
            arr, stack = _read_npy(p, label, max_pixels)
            return _split(label, arr) if stack else [ImageInput(label, arr)]
        if head[:2] == b"\x1f\x8b" or int.from_bytes(head[:4], "big") in (IMAGES_MAGIC,
                                                                           LABELS_MAGIC):
            return _split(label, _read_idx(p, label, head, max_pixels))
        return [ImageInput(label, _read_pillow(p, label, max_pixels, max_side))]
    except DataError as exc:
        return [ImageInput(label, None, str(exc))]
    except OSError as exc:
        return [ImageInput(label, None, f"{label}: cannot be read ({exc.strerror or exc})")]
    except MemoryError:
        return [ImageInput(label, None, f"{label}: too large to load into memory")]


def _split(label: str, stack: np.ndarray) -> list[ImageInput]:
    """A stack (N, H, W[, C]) -> N inputs labelled label[i] (views, no copies)."""
    return [ImageInput(f"{label}[{i}]", stack[i]) for i in range(stack.shape[0])]


def _read_npy(p: Path, label: str, max_pixels: int) -> tuple[np.ndarray, bool]:
    """A .npy file -> (array, whether it is a stack of images); its header is checked first.

    One image: (H, W), or (H, W, C) with C <= 7 (channels last). A stack: (N, H, W) with
    W > 7, (N, H, W, C) with C <= 7, or (N, C, H, W) with C <= 7 (moved to the last axis).
    C must be 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    """
    with p.open("rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(fh)
        # numpy re-tokenises a header it cannot parse (Python 2 files), and a damaged one
        # then ends in tokenize.TokenError or SyntaxError rather than its usual ValueError
        except (ValueError, SyntaxError, TokenError, RecursionError) as exc:
            raise DataError(f"{label}: not a readable .npy file ({_first_line(exc)})") from None
        offset = fh.tell()
    shape = tuple(shape)
    if dtype.hasobject:
        raise DataError(f"{label}: holds Python objects; cnncli reads numeric arrays only "
                        "(and never unpickles)")
    if dtype.kind not in "biuf":
        raise DataError(f"{label}: holds {dtype} values; expected integers, floats or booleans")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if count == 0:
        raise DataError(f"{label}: holds an empty array of shape {shape}")
    if count * dtype.itemsize > MAX_ARRAY_BYTES:
        raise DataError(f"{label}: array of shape {shape} ({dtype}) is over "
                        f"{MAX_ARRAY_BYTES >> 20} MB; cnncli reads smaller arrays")
    if p.stat().st_size - offset < count * dtype.itemsize:
        raise DataError(f"{label}: the file is cut short (its header says shape {shape}, "
                        f"{dtype})")
    stack, channels_first, channels = _npy_layout(label, shape)
    hw = shape[1:3] if stack and not channels_first else shape[-2:] if stack else shape[:2]
    _check_pixels(label, hw[1], hw[0], max_pixels)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{label}: not a readable .npy file ({_first_line(exc)})") from None
    if channels_first:
        arr = np.moveaxis(arr, 1, -1)                    # (N, C, H, W) -> (N, H, W, C)
    return arr, stack


def _npy_layout(label: str, shape: tuple[int, ...]) -> tuple[bool, bool, int]:
    """A .npy shape -> (is a stack, channels first, channel count or 0); see _read_npy."""
    if len(shape) == 2:
        return False, False, 0
    if len(shape) == 3:
        stack, first, channels = shape[-1] > 7, False, 0 if shape[-1] > 7 else shape[-1]
    elif len(shape) == 4 and (shape[-1] <= 7 or shape[1] <= 7):
        stack, first = True, shape[-1] > 7
        channels = shape[1] if first else shape[-1]
    else:
        raise DataError(f"{label}: shape {shape} is not images: expected (H, W), (H, W, C), "
                        "(N, H, W), (N, H, W, C) or (N, C, H, W)")
    if channels and not 1 <= channels <= 4:
        raise DataError(f"{label}: {channels} channels in shape {shape}; expected 1 (grey), "
                        "2 (grey + alpha), 3 (RGB) or 4 (RGBA)")
    return stack, first, channels


def _read_idx(p: Path, label: str, head: bytes, max_pixels: int) -> np.ndarray:
    """An IDX images file, plain or gzipped -> (N, H, W) uint8 (see cnncli.data.idx).

    The header is checked before the payload is read (or decompressed), so neither a huge
    declared size nor a gzip bomb costs more than the cap."""
    gz = head[:2] == b"\x1f\x8b"
    try:
        with (gzip.open(p, "rb") if gz else p.open("rb")) as fh:
            head = fh.read(16)
            magic = int.from_bytes(head[:4], "big")
            if magic == LABELS_MAGIC:
                raise DataError(f"{label}: an IDX labels file, not images")
            if gz and magic != IMAGES_MAGIC:
                raise DataError(f"{label}: a gzip file that holds no IDX images ({KNOWN} "
                                "expected)")
            if len(head) == 16 and magic == IMAGES_MAGIC:
                n, h, w = (int.from_bytes(head[i:i + 4], "big") for i in (4, 8, 12))
                _check_pixels(label, w, h, max_pixels)
                if n * h * w > MAX_ARRAY_BYTES:
                    raise DataError(f"{label}: header says {n} images of {h}x{w}, over "
                                    f"{MAX_ARRAY_BYTES >> 20} MB; cnncli reads smaller files")
                data = head + fh.read(n * h * w + 1)  # one byte more shows a longer file
            else:
                data = head  # parse_idx says what is wrong with it
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{label}: damaged gzip file ({_first_line(exc)})") from None
    return parse_idx(data, label, "images")


def _check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DataError(f"{label}: declares {width}x{height} pixels "
                        f"({width * height / 1e6:,.0f} megapixels); cnncli reads images of at "
                        f"most {max_pixels / 1e6:,.0f} megapixels")
    if width == 0 or height == 0:
        raise DataError(f"{label}: declares an empty image ({width}x{height})")


def _read_pillow(p: Path, label: str, max_pixels: int, max_side: int) -> np.ndarray:
    """An image file -> uint8 (H, W), (H, W, 2), (H, W, 3) or (H, W, 4), or float32 (H, W)
    for a floating-point PGM. The header's size is checked before the pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p, formats=PIL_FORMATS)  # reads the header only
    except UnidentifiedImageError:
        kind = _signature(p)
        raise DataError(f"{label}: a damaged {kind} file (its header cannot be read)" if kind
                        else f"{label}: not an image cnncli reads ({KNOWN})") from None
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(pixels.group(1)) / 1e6:,.0f} megapixels" if pixels else "too many"
        raise DataError(f"{label}: declares {declared}; cnncli reads images of at most "
                        f"{max_pixels / 1e6:,.0f} megapixels") from None
    except (SyntaxError, ValueError) as exc:  # Pillow's word for a damaged header
        raise DataError(f"{label}: not a readable image ({_first_line(exc)})") from None
    with im:
        width, height = im.size
        _check_pixels(label, width, height, max_pixels)
        factor = -(-max(width, height) // max_side)  # ceil
        try:
            if factor > 1 and im.format == "JPEG":
                im.draft(im.mode, (width // factor, height // factor))  # decode at 1/2..1/8
            im.load()
            if factor > 1:
                im = _reducible(im).reduce(-(-max(im.size) // max_side))
            return _pil_array(im)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DataError(f"{label}: not a readable image ({_first_line(exc)})") from None


def _reducible(im: Any) -> Any:
    """An image in a mode whose pixels Pillow's reduce() can average: a bilevel scan becomes
    L, 16-bit greyscale I (32-bit), a palette image RGB or RGBA (averaging palette indices
    would mix unrelated colours; reduce() refuses 1, P and I;16 outright)."""
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I;16"):
        return im.convert("I")
    if im.mode in ("P", "PA"):
        alpha = im.mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if alpha else "RGB")
    return im


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
               (b"GIF8", "GIF"), (b"P2", "PGM"), (b"P5", "PGM"), (b"P1", "PBM"), (b"P4", "PBM"),
               (b"P3", "PPM"), (b"P6", "PPM"))


def _signature(p: Path) -> str | None:
    """The format a file's first bytes claim, for saying "a damaged PNG" over "not an image"."""
    with p.open("rb") as fh:
        head = fh.read(8)
    return next((kind for sig, kind in _SIGNATURES if head.startswith(sig)), None)


def _pil_array(im: object) -> np.ndarray:
    """A decoded Pillow image -> a numpy array in one of the shapes ImageInput documents."""
    mode = im.mode  # type: ignore[attr-defined]
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))  # type: ignore[attr-defined]
    if mode.startswith("I"):  # 16- or 32-bit greyscale: 0..65535 -> 0..255
        arr = np.asarray(im).astype(np.float64)
        return np.round(np.clip(arr, 0, 65535) / 257.0).astype(np.uint8)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    alpha = mode in ("PA", "La", "RGBa") or "transparency" in im.info  # type: ignore[attr-defined]
    arr = np.asarray(im.convert("RGBA" if alpha else "RGB"))  # type: ignore[attr-defined]
    if mode in ("P", "PA") and (arr[..., 0] == arr[..., 1]).all() \
            and (arr[..., 1] == arr[..., 2]).all():  # a grey palette (GIF): grey[, alpha]
        return arr[..., 0] if not alpha else arr[..., [0, 3]]
    return arr


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:120] if text else type(exc).__name__)


# -- preparing a digit ----------------------------------------------------------------------


@dataclass
class Prepared:
    """What prepare_digit did to one image (for `predict --show` and for tests).

    image: uint8 (H, W) of the model's input size, white ink on black.
    inverted: the background was light, so the image was inverted.
    background: the border pixels' median on the 0..1 scale, before inversion.
    threshold: Otsu's threshold on the 0..1 ink scale (ink brighter than the background).
    bbox: (top, bottom, left, right) of the ink in the source image, bottom/right exclusive.
    scale: source pixels -> output pixels.
    stroke: the ink's stroke width as found, in output pixels (before any thickening).
    thickened: source pixels added to each side of every stroke (0: none).
    """

    image: np.ndarray
    inverted: bool
    background: float
    threshold: float
    bbox: tuple[int, int, int, int]
    scale: float
    stroke: float = 0.0
    thickened: int = 0


def prepare_digit(image: np.ndarray, out_hw: tuple[int, int] = (28, 28), *,
                  raw: bool = False) -> np.ndarray:
    """A photo or scan of one digit -> uint8 (H, W) = out_hw as MNIST's digits were made.

    image: (H, W) greyscale, or (H, W, C) with C = 1, 2 (grey + alpha), 3 (RGB), 4 (RGBA);
    uint8/uint16/int on their range, bool, or float on 0..1 (or 0..255). raw=True: the image
    already is the model's input; only its size and values are checked (see check_raw).
    DataError (one line) for a wrong shape or channel count, bad values, or no ink.
    See prepare_digit_steps for the steps.
    """
    return check_raw(image, out_hw) if raw else prepare_digit_steps(image, out_hw).image


def prepare_digit_steps(image: np.ndarray, out_hw: tuple[int, int] = (28, 28)) -> Prepared:
    """The steps of prepare_digit, with what each decided:

    1. greyscale: RGB by luma (0.299 R + 0.587 G + 0.114 B); transparent pixels are laid on
       a background contrasting with the opaque ones (white under dark ink, black under light).
    2. invert when the background is light: the background level is the median of a border
       ring (2% of the shorter side, at least 1 pixel); it is light when it lies above the
       midpoint of the image's darkest and lightest values. MNIST is white ink on black.
    3. remove the background: Otsu's threshold splits ink from background, raised when needed
       to the paper's level plus 4 robust standard deviations of the border's noise (Otsu
       alone can split inside the paper's noise when the ink is a few percent of the image);
       everything below it becomes 0 (paper texture, noise), and lone ink pixels with no ink
       neighbour are dropped. The ink is scaled so its 90th percentile is full intensity. No
       ink (the two classes differ by less than MIN_CONTRAST) is a DataError.
    4. crop to the ink's bounding box; scale it (Pillow's Lanczos resize, anti-aliased) so it
       fits DIGIT_FRACTION of the frame (20x20 of 28x28), keeping its aspect ratio. Strokes
       that would end up thinner than MIN_STROKE output pixels (a pen line on a large photo)
       are first thickened (a max filter) to about TARGET_STROKE: MNIST's strokes are 2.1 to
       3.7 pixels wide (10th to 90th percentile over the test set, pixels > 127).
    5. paste it into the frame so the ink's centre of mass is at the frame's centre (rounded
       to whole pixels; ink pushed past the frame's edge is cut, as in MNIST).
    """
    out_h, out_w = _check_out_hw(out_hw)
    grey = _to_grey(image)                                            # (H, W) float32 0..1
    h, w = grey.shape
    ring = max(1, round(0.02 * min(h, w)))
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(),
                             grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    background = float(np.median(border))
    lo, hi = float(grey.min()), float(grey.max())
    inverted = background > (lo + hi) / 2
    ink = 1.0 - grey if inverted else grey                           # ink bright, paper dark

    threshold, dark_mean, ink_mean = _otsu(ink)
    # Otsu splits two well-populated classes; a digit is a few percent of a photo, and then
    # its split can fall inside the paper's noise. The threshold is therefore at least the
    # paper's level plus 4 robust standard deviations of the border (median absolute
    # deviation x 1.4826), which no paper pixel of Gaussian-like noise reaches.
    paper = 1.0 - border if inverted else border
    level = float(np.median(paper))
    noise = 1.4826 * float(np.median(np.abs(paper - level)))
    threshold = max(threshold, level + 4.0 * noise)
    if ink_mean - dark_mean < MIN_CONTRAST:
        raise DataError(f"no ink found: the image is nearly uniform (its two brightness "
                        f"levels differ by {100 * (ink_mean - dark_mean):.0f}% of full scale, "
                        f"need {100 * MIN_CONTRAST:.0f}%)")
    mask = _drop_lone_pixels(ink > threshold)
    if not mask.any():
        raise DataError("no ink found: only isolated specks are darker than the background")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

    crop_mask = mask[top:bottom, left:right]
    crop = ink[top:bottom, left:right]
    full = float(np.percentile(crop[crop_mask], 90))
    strength = np.where(crop_mask, np.clip((crop - dark_mean) / max(full - dark_mean, 1e-6),
                                           0.0, 1.0), 0.0).astype(np.float32)

    scale = _fit_scale(strength.shape, out_h, out_w)
    width = _stroke_width(crop_mask)                                  # source pixels
    grow = 0
    if width * scale < MIN_STROKE:  # a pen line on a big photo would shrink to a faint hair
        grow = int(np.ceil((TARGET_STROKE / scale - width) / 2))
        strength = _dilate(np.pad(strength, grow), grow)
        scale = _fit_scale(strength.shape, out_h, out_w)
    size_hw = (max(1, round(strength.shape[0] * scale)), max(1, round(strength.shape[1] * scale)))
    patch = _resize(strength, size_hw)
    frame = _paste_centred(patch, out_h, out_w)
    return Prepared(image=np.round(frame * 255.0).astype(np.uint8), inverted=bool(inverted),
                    background=background, threshold=threshold,
                    bbox=(top, bottom, left, right), scale=float(scale),
                    stroke=float(width * scale), thickened=grow)


def check_raw(image: np.ndarray, out_hw: tuple[int, int] = (28, 28)) -> np.ndarray:
    """An image already in the model's format -> uint8 (H, W), unchanged but for the dtype.

    Accepted: (H, W) or (H, W, 1) equal to out_hw; uint8; other integers on 0..255; floats on
    0..1 (scaled by 255) or whole numbers on 0..255. Anything else is a DataError.
    """
    out_h, out_w = _check_out_hw(out_hw)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"raw image: expected greyscale (H, W) = {out_h}x{out_w}, received "
                        f"shape {arr.shape}")
    if arr.shape != (out_h, out_w):
        raise DataError(f"raw image: is {arr.shape[0]}x{arr.shape[1]}, the model takes "
                        f"{out_h}x{out_w}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and arr.min() >= 0:
        if arr.max() <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
        if arr.max() <= 255.0 and np.array_equal(arr, np.round(arr)):
            return arr.astype(np.uint8)
    raise DataError(f"raw image: {arr.dtype} values from {_num(arr.min())} to "
                    f"{_num(arr.max())}; expected uint8, or floats on 0..1")


def _check_out_hw(out_hw: tuple[int, int]) -> tuple[int, int]:
    if len(out_hw) != 2 or min(out_hw) < 1:
        raise DataError(f"output size must be (height, width) >= 1, received {tuple(out_hw)}")
    return int(out_hw[0]), int(out_hw[1])


def _num(v: object) -> str:
    return f"{float(v):g}"


def _to_grey(image: np.ndarray) -> np.ndarray:
    """Any accepted image -> float32 (H, W) on 0..1 (step 1 of prepare_digit_steps)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and not 1 <= arr.shape[-1] <= 4:
        raise DataError(f"image has {arr.shape[-1]} channels (shape {arr.shape}); expected 1 "
                        "(grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)")
    if arr.ndim not in (2, 3):
        raise DataError(f"expected an image (H, W) or (H, W, C), received shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"the image is empty (shape {arr.shape})")
    values = _unit_scale(arr)                                          # (H, W[, C]) 0..1
    if values.ndim == 2:
        return values
    colour = values[..., : 3 if values.shape[-1] >= 3 else 1]
    grey = colour @ np.array([0.299, 0.587, 0.114], np.float32) if colour.shape[-1] == 3 \
        else colour[..., 0]
    if values.shape[-1] in (2, 4):  # alpha: lay transparent pixels on a contrasting ground
        alpha = values[..., -1]
        if alpha.min() < 1.0:
            weight = float(alpha.sum())
            opaque_mean = float((grey * alpha).sum() / weight) if weight > 0 else 0.0
            ground = 1.0 if opaque_mean < 0.5 else 0.0
            grey = grey * alpha + ground * (1.0 - alpha)
    return grey.astype(np.float32, copy=False)


def _unit_scale(arr: np.ndarray) -> np.ndarray:
    """Values -> float32 on 0..1 by their dtype's range (floats: 0..1 or 0..255)."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        top = 255 if arr.dtype.itemsize == 1 or hi <= 255 else 65535
        if lo < 0 or hi > top:
            raise DataError(f"image values from {lo} to {hi} are outside 0..{top}")
        return arr.astype(np.float32) / np.float32(top)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError("the image holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(f"image values from {lo:g} to {hi:g}: floats must lie on 0..1 "
                            "(or 0..255)")
        return arr.astype(np.float32) / np.float32(1.0 if hi <= 1.0 else 255.0)
    raise DataError(f"image values of type {arr.dtype} are not supported")


def _otsu(x: np.ndarray) -> tuple[float, float, float]:
    """Otsu's threshold of values on 0..1 (256 bins) -> (threshold, mean below, mean above).

    The threshold maximises the between-class variance w0 w1 (m0 - m1)^2 of the histogram.
    A constant image has no split: threshold at its value and both means equal.
    """
    hist = np.bincount(np.clip((x * 255.0).astype(np.int64), 0, 255).ravel(), minlength=256)
    p = hist / hist.sum()
    levels = (np.arange(256) + 0.5) / 256.0
    w0 = np.cumsum(p)                                    # weight of bins 0..k
    m0_sum = np.cumsum(p * levels)
    total = m0_sum[-1]
    w1 = 1.0 - w0
    valid = (w0 > 0) & (w1 > 1e-12)
    if not valid.any():
        v = float(x.mean())
        return v, v, v
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = m0_sum / w0
        m1 = (total - m0_sum) / w1
        between = np.where(valid, w0 * w1 * (m0 - m1) ** 2, -1.0)
    k = int(np.argmax(between))
    return float((k + 1) / 256.0), float(m0[k]), float(m1[k])


def _fit_scale(hw: tuple[int, ...], out_h: int, out_w: int) -> float:
    """The scale that fits an (h, w) crop into DIGIT_FRACTION of the frame, aspect kept."""
    return min(DIGIT_FRACTION * out_h / hw[0], DIGIT_FRACTION * out_w / hw[1])


def _stroke_width(mask: np.ndarray) -> float:
    """A stroke's width in pixels, estimated as area / (boundary / 2): a stroke of length L
    and width w has area L w and about 2 L boundary pixels (ink with a non-ink 4-neighbour)."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    boundary = int((mask & ~inner).sum())
    return float(mask.sum()) / max(boundary / 2.0, 1.0)


def _dilate(values: np.ndarray, radius: int) -> np.ndarray:
    """Max filter over a (2 radius + 1) square, separably: rows then columns. (h, w) -> (h, w).
    The input must already be padded by `radius` where the strokes may grow."""
    k = 2 * radius + 1
    padded = np.pad(values, radius)
    rows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0).max(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1).max(axis=-1)


def _drop_lone_pixels(mask: np.ndarray) -> np.ndarray:
    """Keep ink pixels with at least one ink neighbour among their 8 (dust, sensor noise)."""
    padded = np.pad(mask, 1).astype(np.uint8)
    h, w = mask.shape
    neighbours = sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)
                     if (dy, dx) != (1, 1))
    return mask & (neighbours > 0)


def _resize(values: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) -> (H, W) with Pillow's Lanczos filter (anti-aliased), clipped to 0..1."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    out = np.asarray(im.resize((size_hw[1], size_hw[0]), Image.Resampling.LANCZOS))
    out = np.clip(out, 0.0, 1.0)
    top = float(out.max())
    return out / top if top > 0 else out


def _paste_centred(patch: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Place patch (h, w) in a zero (out_h, out_w) frame with its centre of mass at the
    frame's centre ((out_h - 1)/2, (out_w - 1)/2), shifted by whole pixels; cut at the edges."""
    mass = float(patch.sum())
    ys, xs = np.arange(patch.shape[0]), np.arange(patch.shape[1])
    cy = float(patch.sum(axis=1) @ ys) / mass
    cx = float(patch.sum(axis=0) @ xs) / mass
    top = int(np.floor((out_h - 1) / 2 - cy + 0.5))
    left = int(np.floor((out_w - 1) / 2 - cx + 0.5))
    frame = np.zeros((out_h, out_w), np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], out_h), min(left + patch.shape[1], out_w)
    if y1 > y0 and x1 > x0:
        frame[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]
    return frame


# -- showing it -----------------------------------------------------------------------------

_SHADES = {"blocks": " ░▒▓█", "ascii": " .:-=+*#%@"}


def terminal_preview(image: np.ndarray, style: str = "blocks") -> str:
    """uint8 (H, W) -> text lines showing it, framed, at most 80 columns wide.

    Each pixel is a shade character ('blocks': ' ░▒▓█', 'ascii': ' .:-=+*#%@'), doubled
    horizontally when that still fits (so the digit keeps its proportions). Bright = ink.
    An image wider than 78 pixels (a model's input may be) is shown reduced by the smallest
    integer factor that fits, each character the mean of a factor x factor block.
    """
    if style not in _SHADES:
        raise DataError(f"preview style must be one of {', '.join(_SHADES)}, received "
                        f"{style!r}")
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"terminal_preview: expected an image (H, W), received shape "
                        f"{arr.shape}")
    factor = -(-arr.shape[1] // 78)  # ceil: the reduced width fits 78 columns
    if factor > 1:
        h, w = arr.shape
        pad = ((0, -h % factor), (0, -w % factor))
        blocks = np.pad(arr.astype(np.float64), pad).reshape(
            (h + pad[0][1]) // factor, factor, (w + pad[1][1]) // factor, factor)
        arr = blocks.mean(axis=(1, 3))                                # (H/f, W/f)
    shades = np.array(list(_SHADES[style]))
    levels = np.clip(np.round(arr.astype(np.float64) / 255.0 * (len(shades) - 1)), 0,
                     len(shades) - 1).astype(np.int64)
    width = 2 if 2 * arr.shape[1] + 2 <= 80 else 1
    cells = np.repeat(shades[levels], width, axis=1)                  # (H, W * width)
    edge = ("┌", "─", "┐", "│", "└", "┘") if style == "blocks" else ("+", "-", "+", "|", "+", "+")
    rule = edge[1] * cells.shape[1]
    lines = [edge[0] + rule + edge[2]]
    lines += [edge[3] + "".join(row) + edge[3] for row in cells]
    lines.append(edge[4] + rule + edge[5])
    return "\n".join(lines)
