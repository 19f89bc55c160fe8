"""data/idx.py and data/batches.py: every malformed-IDX case names the file and the fault."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.data.batches import MEAN, STD, iterate_batches, to_batch
from cnncli.data.idx import check_pair, encode_idx, inspect_idx, parse_idx
from cnncli.errors import DataError


def test_round_trip_images_and_labels() -> None:
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(encode_idx(imgs), "x", "images"), imgs)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(encode_idx(labels), "y", "labels"), labels)


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (encode_idx(np.zeros(3, np.uint8)), "images",
         "imgs: bad magic number 2049 (expected 2051 for IDX images)"),
        (encode_idx(np.zeros((2, 2, 2), np.uint8)), "labels",
         "imgs: bad magic number 2051 (expected 2049 for IDX labels)"),
        (b"\x00\x00", "images", "imgs: 2 bytes is too short for an IDX header"),
        (encode_idx(np.zeros((2, 2, 2), np.uint8))[:10], "images", "imgs: header is cut short"),
        (encode_idx(np.zeros((60000, 28, 28), np.uint8))[: 16 + 12345], "images",
         "imgs: header says 60000 images of 28x28 (47040000 bytes), file holds 12345 bytes "
         "of payload"),
        (encode_idx(np.zeros(5, np.uint8)) + b"\x00", "labels",
         "imgs: header says 5 labels (5 bytes), file holds 6 bytes of payload"),
        ((2051).to_bytes(4, "big") + (1).to_bytes(4, "big") + (0).to_bytes(4, "big")
         + (28).to_bytes(4, "big"), "images", "imgs: header says images of 0x28, which is empty"),
    ],
)
def test_malformed_idx_is_rejected_with_file_name_and_fault(
    data: bytes, kind: str, message: str
) -> None:
    with pytest.raises(DataError) as err:
        parse_idx(data, "imgs", kind)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("head", "hint"),
    [
        (b"\x1f\x8b\x08\x00", "looks gzip-compressed"),
        (b"PK\x03\x04", "not an IDX file"),
        (b"\x00\x00\x0d\x03", "element type 0x0D (float32) is not supported"),
        (b"\x00\x00\x08\x02", "it has 2 dimension(s), IDX images have 3"),
    ],
)
def test_bad_magic_says_what_the_file_looks_like(head: bytes, hint: str) -> None:
    with pytest.raises(DataError) as err:
        parse_idx(head + bytes(12), "imgs", "images")
    assert hint in str(err.value)


def test_zero_items_is_rejected() -> None:
    with pytest.raises(DataError, match="imgs: header says 0 labels"):
        parse_idx(encode_idx(np.zeros(0, np.uint8)), "imgs", "labels")


def test_inspect_idx_reads_the_header_and_checks_the_size(tmp_path) -> None:
    p = tmp_path / "x-images"
    p.write_bytes(encode_idx(np.zeros((7, 5, 3), np.uint8)))
    assert inspect_idx(p, "images") == [7, 5, 3]
    p.write_bytes(encode_idx(np.zeros((7, 5, 3), np.uint8))[:-1])
    with pytest.raises(DataError, match="x-images: header says 7 images of 5x3 \\(105 bytes\\), "
                       "file holds 104 bytes"):
        inspect_idx(p, "images")


def test_image_and_label_counts_must_match() -> None:
    with pytest.raises(DataError, match="tr-img holds 3 images but tr-lab holds 2 labels"):
        check_pair(np.zeros((3, 2, 2), np.uint8), np.zeros(2, np.uint8),
                   images_name="tr-img", labels_name="tr-lab")


def test_labels_must_be_within_0_to_9() -> None:
    with pytest.raises(DataError, match=r"tr-lab: label 12 at index 1 is outside 0\.\.9 "
                       r"\(2 such labels\)"):
        check_pair(np.zeros((4, 2, 2), np.uint8), np.array([1, 12, 3, 10], np.uint8),
                   images_name="tr-img", labels_name="tr-lab")


def test_to_batch_normalises_into_batch_last_float32() -> None:
    imgs = np.array([[[0, 255]], [[51, 102]]], dtype=np.uint8)  # (B=2, H=1, W=2)
    b = to_batch(imgs)
    assert b.shape == (1, 1, 2, 2) and b.dtype == np.float32
    expected = (np.array([[0, 51], [255, 102]]) / 255 - MEAN) / STD  # (W, B) of channel 0
    np.testing.assert_allclose(b[0, 0], expected, rtol=1e-6)


def test_iterate_batches_covers_everything_once() -> None:
    rng = np.random.default_rng(0)
    batches = list(iterate_batches(10, 4, rng))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches)) == list(range(10))
    assert [list(b) for b in iterate_batches(5, 2)] == [[0, 1], [2, 3], [4]]


def test_to_batch_and_iterate_batches_reject_bad_input() -> None:
    with pytest.raises(DataError, match="expected uint8 images .* received float32 \\(2, 3\\)"):
        to_batch(np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="batch_size=0"):
        iterate_batches(5, 0)
