"""images.py: reading users' images (every bad kind is one line, the rest still load) and
turning a photo of a digit into an MNIST-like 28x28 (centred by mass, 20 px, clean ground)."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnncli.data.idx import encode_idx
from cnncli.errors import DataError
from cnncli.images import (
    check_raw,
    prepare_digit,
    prepare_digit_steps,
    read_image_inputs,
    terminal_preview,
)

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402


def draw_digit(text: str = "7", canvas: tuple[int, int] = (320, 240),
               at: tuple[int, int] = (40, 20), height: int = 150, paper: int = 225,
               ink: int = 35, noise: float = 8.0, seed: int = 0) -> np.ndarray:
    """A photo-like digit: dark ink on light, slightly noisy paper -> uint8 (H, W).

    Drawn with Pillow's built-in FreeType font when Pillow has FreeType, else with strokes
    (a '7' or a '1' only)."""
    im = Image.new("L", canvas, paper)
    d = ImageDraw.Draw(im)
    try:
        d.text(at, text, fill=ink, font=ImageFont.load_default(size=height))
    except (ImportError, TypeError, OSError):  # Pillow without FreeType: strokes
        x, y, s = at[0], at[1], height / 150
        if text == "7":
            d.line([(x, y + 20 * s), (x + 80 * s, y + 20 * s), (x + 35 * s, y + 150 * s)],
                   fill=ink, width=max(1, round(14 * s)))
        else:
            d.line([(x + 40 * s, y + 10 * s), (x + 40 * s, y + 150 * s)], fill=ink,
                   width=max(1, round(14 * s)))
    rng = np.random.default_rng(seed)
    noisy = np.asarray(im, np.float64) + rng.normal(0.0, noise, (canvas[1], canvas[0]))
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    w = x.astype(np.float64)
    return (float(w.sum(1) @ np.arange(w.shape[0]) / w.sum()),
            float(w.sum(0) @ np.arange(w.shape[1]) / w.sum()))


def ink_box(x: np.ndarray) -> tuple[int, int]:
    """(height, width) of the box around the pixels that are not background (> 0)."""
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# -- prepare_digit ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["7", "1", "4"])
def test_photo_of_a_digit_becomes_20px_centred_by_mass_on_a_clean_black_ground(text: str
                                                                               ) -> None:
    photo = draw_digit(text, at=(30, 60))  # off-centre: left and low in a 320x240 photo
    out = prepare_digit(photo)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0, (cy, cx)
    assert max(ink_box(out)) in (19, 20, 21), ink_box(out)
    # the paper and its noise became exact zeros: most of the frame, and every corner
    assert (out == 0).mean() > 0.6
    assert not out[:3, :3].any() and not out[:3, -3:].any()
    assert not out[-3:, :3].any() and not out[-3:, -3:].any()
    assert out.max() == 255  # the ink's core is full intensity, as in MNIST


def test_same_digit_elsewhere_and_at_another_size_gives_nearly_the_same_28x28() -> None:
    a = prepare_digit(draw_digit("7", canvas=(320, 240), at=(30, 60), height=150, seed=1))
    b = prepare_digit(draw_digit("7", canvas=(500, 420), at=(260, 10), height=260, seed=2))
    fa, fb = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    assert np.corrcoef(fa, fb)[0, 1] > 0.9
    assert np.abs(fa - fb).mean() < 20  # of 255
    # and a different digit is clearly different (the comparison can fail)
    c = prepare_digit(draw_digit("1", canvas=(320, 240), at=(30, 60), height=150))
    assert np.corrcoef(fa, c.astype(np.float64).ravel())[0, 1] < 0.6


def test_inversion_is_decided_by_the_border_dark_on_light_and_light_on_dark() -> None:
    dark_on_light = draw_digit("7", paper=220, ink=40)
    light_on_dark = draw_digit("7", paper=30, ink=210)
    a, b = prepare_digit_steps(dark_on_light), prepare_digit_steps(light_on_dark)
    assert a.inverted and not b.inverted
    assert a.background > 0.8 and b.background < 0.2
    # either way the result is white ink on black, and nearly the same picture
    assert np.corrcoef(a.image.ravel().astype(float), b.image.ravel().astype(float))[0, 1] > 0.95
    assert a.image[0].max() == 0 and b.image[0].max() == 0


def test_grey_paper_and_grey_ink_are_still_told_apart() -> None:
    # a dim photo: paper at 140, ink at 60; the border is above the midpoint, so it is paper
    steps = prepare_digit_steps(draw_digit("7", paper=140, ink=60, noise=5))
    assert steps.inverted
    assert max(ink_box(steps.image)) in (19, 20, 21)


def test_colour_photo_and_transparent_png_are_made_grey_and_found() -> None:
    grey = draw_digit("7")
    rgb = np.stack([grey, grey, np.full_like(grey, 120)], axis=-1)  # blue-ish ink, yellow paper
    ref = prepare_digit(grey).astype(float).ravel()
    assert np.corrcoef(prepare_digit(rgb).astype(float).ravel(), ref)[0, 1] > 0.95
    # black ink on a fully transparent ground whose hidden colour is also black
    alpha = (grey < 128).astype(np.uint8) * 255
    rgba = np.stack([np.zeros_like(grey)] * 3 + [alpha], axis=-1)
    out = prepare_digit(rgba)
    assert np.corrcoef(out.astype(float).ravel(), ref)[0, 1] > 0.9


def stroke_width(x: np.ndarray) -> float:
    """Mean stroke width of the pixels > 127: area over half the boundary (see images.py)."""
    m = x > 127
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m.sum() / ((m & ~inner).sum() / 2)


def seven(width: int) -> np.ndarray:
    """A '7' drawn with a pen `width` pixels wide on a 600x600 noisy photo."""
    im = Image.new("L", (600, 600), 220)
    ImageDraw.Draw(im).line([(150, 150), (450, 150), (250, 500)], fill=40, width=width,
                            joint="curve")
    noise = np.random.default_rng(width).normal(0, 6, (600, 600))
    return np.clip(np.asarray(im, np.float64) + noise, 0, 255).astype(np.uint8)


def test_thin_pen_strokes_are_thickened_to_mnist_width_and_bold_ones_are_not() -> None:
    thin, bold = prepare_digit_steps(seven(2)), prepare_digit_steps(seven(60))
    assert thin.stroke < 0.2 and thin.thickened > 0       # a 2 px line would be 0.1 px wide
    assert bold.stroke > 2.0 and bold.thickened == 0
    # MNIST's digits have 56 to 139 pixels > 127 (10th to 90th percentile of the test set),
    # in strokes 2.1 to 3.7 px wide; unthickened, this '7' has 12 such pixels
    assert 50 <= (thin.image > 127).sum() <= 140, (thin.image > 127).sum()
    assert stroke_width(thin.image) <= 4.0
    assert max(ink_box(thin.image)) in (19, 20, 21)
    cy, cx = centre_of_mass(thin.image)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
    a, b = thin.image.astype(float).ravel(), bold.image.astype(float).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_non_square_model_input_scales_by_its_frame() -> None:
    out = prepare_digit(draw_digit("7"), out_hw=(56, 56))
    assert out.shape == (56, 56) and max(ink_box(out)) in (39, 40, 41)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 27.5) <= 1.0 and abs(cx - 27.5) <= 1.0


def test_float_and_16_bit_images_are_read_on_their_own_scale() -> None:
    grey = draw_digit("7")
    ref = prepare_digit(grey)
    np.testing.assert_allclose(prepare_digit(grey / 255.0), ref, atol=2)
    np.testing.assert_allclose(prepare_digit(grey.astype(np.uint16) * 257), ref, atol=2)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((50, 40), 200, np.uint8), "no ink found"),
        (np.clip(np.random.default_rng(0).normal(200, 6, (60, 60)), 0, 255).astype(np.uint8),
         "no ink found"),
        (np.zeros((0, 10), np.uint8), "the image is empty"),
        (np.zeros((10, 10, 5), np.uint8), "image has 5 channels"),
        (np.zeros((2, 10, 10, 1), np.uint8), "expected an image (H, W) or (H, W, C)"),
        (np.full((10, 10), np.nan), "NaN or infinite"),
        (np.full((10, 10), -1.0), "floats must lie on 0..1"),
        (np.full((10, 10), 70000, np.int32), "outside 0..65535"),
    ],
)
def test_images_that_cannot_be_prepared_are_one_line_errors(image: np.ndarray,
                                                            message: str) -> None:
    with pytest.raises(DataError) as err:
        prepare_digit(image)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_raw_mode_checks_size_and_values_and_changes_nothing() -> None:
    x = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    assert prepare_digit(x, raw=True) is x
    np.testing.assert_array_equal(check_raw(x / 255.0), x)
    np.testing.assert_array_equal(check_raw(x.astype(np.float32)), x)  # whole 0..255 floats
    np.testing.assert_array_equal(check_raw(x[..., None]), x)
    with pytest.raises(DataError, match="raw image: is 28x30, the model takes 28x28"):
        check_raw(np.zeros((28, 30), np.uint8))
    with pytest.raises(DataError, match="raw image: expected greyscale"):
        check_raw(np.zeros((28, 28, 3), np.uint8))
    with pytest.raises(DataError, match=r"raw image: float64 values from -0\.4"):
        check_raw(np.full((28, 28), -0.42))


# -- terminal_preview ------------------------------------------------------------------------


def test_terminal_preview_shows_every_pixel_in_80_columns() -> None:
    x = np.zeros((28, 28), np.uint8)
    x[5, 7] = 255
    x[20, 3] = 128
    text = terminal_preview(x)
    lines = text.split("\n")
    assert len(lines) == 30 and all(len(line) <= 80 for line in lines)
    assert lines[1 + 5][1 + 2 * 7 : 1 + 2 * 7 + 2] == "██"
    assert lines[1 + 20][1 + 2 * 3 : 1 + 2 * 3 + 2] == "▒▒"
    assert set(lines[1 + 10][1:-1]) == {" "}
    ascii_lines = terminal_preview(x, style="ascii").split("\n")
    assert ascii_lines[1 + 5][1 + 2 * 7] == "@" and ascii_lines[0].startswith("+--")
    wide = terminal_preview(np.zeros((10, 60), np.uint8)).split("\n")
    assert max(len(line) for line in wide) == 62  # one column a pixel when two do not fit
    # a model's input wider than the terminal (predict --show of an 8x100 idx model):
    # reduced by 2 to 4x50 (one column a pixel), not an error after the prediction
    band = np.zeros((8, 100), np.uint8)
    band[:, 40:60] = 255
    lines = terminal_preview(band).split("\n")
    assert len(lines) == 4 + 2 and max(len(line) for line in lines) == 50 + 2
    assert lines[1][1:-1] == " " * 20 + "█" * 10 + " " * 20
    assert max(len(x) for x in terminal_preview(np.ones((5, 1000), np.uint8)).split("\n")) <= 80


# -- read_image_inputs -----------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, rows: int) -> bytes:
    """A greyscale PNG whose header says width x height but whose data holds only `rows`
    zero rows (a few hundred KB of zlib that would expand to rows * width bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(rows)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def test_each_format_is_read_with_its_pixels(tmp_path: Path) -> None:
    grey = draw_digit("7", canvas=(64, 48), at=(5, 2), height=40)
    for suffix in ("png", "bmp", "gif", "pgm"):
        Image.fromarray(grey).save(tmp_path / f"d.{suffix}")
    Image.fromarray(grey).save(tmp_path / "d.jpg", quality=95)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], -1)).save(tmp_path / "a.png")
    stack = np.stack([grey[:28, :28], 255 - grey[:28, :28], grey[10:38, 20:48]])
    np.save(tmp_path / "one.npy", grey.astype(np.float32) / 255)
    np.save(tmp_path / "stack.npy", stack)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(encode_idx(stack))
    (tmp_path / "more-idx3-ubyte.gz").write_bytes(gzip.compress(encode_idx(stack[:2])))
    (tmp_path / "notes.txt").write_text("not an image")  # ignored in a folder

    names = ["d.png", "d.bmp", "d.gif", "d.pgm", "d.jpg", "rgb.png", "a.png", "one.npy",
             "stack.npy", "t10k-images-idx3-ubyte", "more-idx3-ubyte.gz"]
    got = read_image_inputs([tmp_path / n for n in names])
    assert [g.error for g in got] == [None] * len(got)
    labels = [Path(g.label).name for g in got]
    assert labels == ["d.png", "d.bmp", "d.gif", "d.pgm", "d.jpg", "rgb.png", "a.png", "one.npy",
                      "stack.npy[0]", "stack.npy[1]", "stack.npy[2]",
                      "t10k-images-idx3-ubyte[0]", "t10k-images-idx3-ubyte[1]",
                      "t10k-images-idx3-ubyte[2]", "more-idx3-ubyte.gz[0]",
                      "more-idx3-ubyte.gz[1]"]
    for g in got[:4]:  # lossless greyscale formats give the pixels back
        np.testing.assert_array_equal(g.image, grey)
    assert np.abs(got[4].image.astype(int) - grey).mean() < 3  # JPEG: nearly
    assert got[5].image.shape == (48, 64, 3) and got[6].image.shape == (48, 64, 4)
    np.testing.assert_array_equal(got[7].image, grey.astype(np.float32) / 255)
    for i in range(3):
        np.testing.assert_array_equal(got[8 + i].image, stack[i])
        np.testing.assert_array_equal(got[11 + i].image, stack[i])
    # a folder gives its image files in name order, the text file skipped
    in_folder = read_image_inputs([tmp_path])
    assert [Path(g.label).name for g in in_folder][:3] == ["a.png", "d.bmp", "d.gif"]
    assert len(in_folder) == len(got) and all(g.error is None for g in in_folder)


def test_npy_layouts_channels_first_and_last(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "nchw.npy", x)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    np.save(tmp_path / "hwc.npy", x[0].transpose(1, 2, 0))
    first, last, single = (read_image_inputs([tmp_path / n]) for n in
                           ("nchw.npy", "nhwc.npy", "hwc.npy"))
    assert len(first) == 2 and len(last) == 2 and len(single) == 1
    np.testing.assert_array_equal(first[1].image, x[1].transpose(1, 2, 0))
    np.testing.assert_array_equal(last[1].image, x[1].transpose(1, 2, 0))
    np.testing.assert_array_equal(single[0].image, x[0].transpose(1, 2, 0))


def test_every_bad_input_is_one_line_and_the_good_ones_still_load(tmp_path: Path) -> None:
    good = draw_digit("7", canvas=(64, 48), at=(5, 2), height=40)
    Image.fromarray(good).save(tmp_path / "good.png")
    png = (tmp_path / "good.png").read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "text.png").write_text("hello, not a picture\n")
    (tmp_path / "tiff.tif").write_bytes(b"II*\x00" + b"\x00" * 100)
    (tmp_path / "zero.png").write_bytes(png_declaring(0, 10, 0))
    np.save(tmp_path / "five.npy", np.zeros((28, 28, 5), np.uint8))
    np.save(tmp_path / "flat.npy", np.zeros(784, np.uint8))
    np.save(tmp_path / "none.npy", np.zeros((0, 28, 28), np.uint8))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    np.save(tmp_path / "short.npy", np.zeros((4, 28, 28), np.uint8))
    short = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(short[:-100])
    # a damaged header ('{' become a NUL byte): numpy re-tokenises it and stops at the lone '}'
    (tmp_path / "header.npy").write_bytes(short[:10] + b"\x00" + short[11:])
    (tmp_path / "labels-idx1-ubyte").write_bytes(encode_idx(np.zeros(3, np.uint8)))
    (tmp_path / "bad-idx3-ubyte").write_bytes(encode_idx(np.zeros((3, 4, 4), np.uint8))[:-1])
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes(gzip.compress(b"hello" * 100)[:-12])
    (tmp_path / "text-idx3-ubyte.gz").write_bytes(gzip.compress(b"hello, a text file" * 10))
    (tmp_path / "nothing").mkdir()

    cases = {
        "missing.png": "no such file or folder",
        "empty.png": "the file is empty (0 bytes)",
        "cut.png": "not a readable image",
        "text.png": "not an image cnncli reads (PNG, JPEG, BMP, GIF, PGM/PPM, .npy or IDX",
        "tiff.tif": "not an image cnncli reads",
        "zero.png": "a damaged PNG file (its header cannot be read)",
        "five.npy": "5 channels in shape (28, 28, 5)",
        "flat.npy": "shape (784,) is not images",
        "none.npy": "holds an empty array of shape (0, 28, 28)",
        "obj.npy": "holds Python objects",
        "str.npy": "holds <U1 values",
        "short.npy": "the file is cut short",
        "header.npy": "not a readable .npy file",
        "labels-idx1-ubyte": "an IDX labels file, not images",
        "bad-idx3-ubyte": "header says 3 images of 4x4 (48 bytes), file holds 47 bytes",
        "cut-idx3-ubyte.gz": "damaged gzip file (Compressed file ended before",
        "text-idx3-ubyte.gz": "a gzip file that holds no IDX images",
        "nothing": "folder holds no image files",
    }
    names = ["good.png", *cases, "good.png"]
    got = read_image_inputs([tmp_path / n for n in names])
    assert len(got) == len(names)
    assert read_image_inputs([""]) == [("", None, "'': an empty path names no image")]
    for name, item in zip(names, got, strict=True):
        if name == "good.png":
            assert item.error is None
            np.testing.assert_array_equal(item.image, good)
            continue
        assert item.image is None, name
        assert item.error.startswith(str(tmp_path / name) + ": "), item.error
        assert cases[name] in item.error, (name, item.error)
        assert "\n" not in item.error and len(item.error) < 250 + len(str(tmp_path))


_MEASURE = textwrap.dedent("""
    import resource, sys, time
    from cnncli.images import read_image_inputs
    import PIL.Image, PIL.PngImagePlugin  # imported before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    got = read_image_inputs(sys.argv[1:])
    seconds = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    for g in got:
        print(g.error)
    print(grown, seconds)
""")


def test_huge_declared_png_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    # 100,000 x 100,000: Pillow itself calls this a bomb. 9,000 x 9,000 (81 megapixels) is
    # below Pillow's own limit (89 MP): only cnncli's check stops it. Its 6,000 rows of real
    # data (a 53 KB file) grow the peak memory by about 47 MB when decoded (measured with
    # the check lifted), far over the 10 MB allowed here.
    huge, big = tmp_path / "huge.png", tmp_path / "big.png"
    huge.write_bytes(png_declaring(100_000, 100_000, 200))
    big.write_bytes(png_declaring(9_000, 9_000, 6_000))
    assert big.stat().st_size < 200_000
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(huge), str(big)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(f"{huge}: declares 10,000 megapixels; cnncli reads images of at "
                             "most 64 megapixels"), out[0]
    assert out[1] == (f"{big}: declares 9000x9000 pixels (81 megapixels); cnncli reads images "
                      "of at most 64 megapixels")
    grown_kb, seconds = out[2].split()
    assert int(grown_kb) < 10_000, f"peak memory grew by {grown_kb} KB"  # decoding: > 27 MB


def test_large_photo_is_reduced_while_decoding(tmp_path: Path) -> None:
    Image.fromarray(draw_digit("7", canvas=(3000, 1000), at=(1200, 300), height=500)).save(
        tmp_path / "wide.png")
    (item,) = read_image_inputs([tmp_path / "wide.png"], max_side=1000)
    assert item.error is None and item.image.shape == (334, 1000)
    assert max(ink_box(prepare_digit(item.image))) in (19, 20, 21)


@pytest.mark.parametrize("mode", ["1", "P", "I;16", "L"])
def test_large_bilevel_palette_and_16_bit_images_are_reduced_too(tmp_path: Path, mode: str
                                                                 ) -> None:
    # a 300 dpi bilevel scan, a palette GIF or a 16-bit PNG over max_side: reduce() refuses
    # the modes 1, P and I;16 ("image has wrong mode"), so they are converted first
    digit = draw_digit("7", canvas=(3000, 1000), at=(1200, 300), height=500)
    im = Image.fromarray(digit)
    if mode == "I;16":
        im = Image.fromarray(digit.astype(np.uint16) * 257)
    elif mode == "1":
        im = im.point(lambda v: 255 if v > 127 else 0).convert("1")
    elif mode == "P":  # blue ink on yellowish paper, in a 16-colour palette
        rgb = np.where((digit < 128)[..., None], np.uint8([0, 0, 200]), np.uint8([255, 255, 200]))
        im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / ("big.gif" if mode == "P" else "big.png")
    im.save(path)
    assert Image.open(path).mode == mode
    (item,) = read_image_inputs([path], max_side=1000)
    assert item.error is None, item.error
    assert item.image.shape[:2] == (334, 1000)
    assert max(ink_box(prepare_digit(item.image))) in (19, 20, 21)
