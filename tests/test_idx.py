"""data/idx.py and data/batches.py: every malformed-IDX case names the file and the fault;
headers and sizes come before payloads; custom IDX folders."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fetch_helpers import finishes, python_script, tiny_raw, write_files

from cnncli.data.batches import MEAN, STD, iterate_batches, to_batch
from cnncli.data.datasets import FILE_NAMES
from cnncli.data.idx import (
    check_pair,
    encode_idx,
    idx_folder_info,
    inspect_idx,
    load_idx_folder,
    parse_idx,
    read_idx,
)
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


# -- wider labels ------------------------------------------------------------------------------

def test_int16_and_int32_labels_read_as_uint16_class_numbers() -> None:
    for dtype in (np.int16, np.int32):
        labels = np.array([0, 999, 300], dtype=dtype)
        data = encode_idx(labels)
        assert data[2] == (0x0B if dtype == np.int16 else 0x0C)
        out = parse_idx(data, "y", "labels")
        assert out.dtype == np.uint16 and out.tolist() == [0, 999, 300]


def test_negative_wide_label_is_refused() -> None:
    with pytest.raises(DataError, match="y: label -3 at index 1 is not a class number"):
        parse_idx(encode_idx(np.array([1, -3], np.int16)), "y", "labels")


def test_wide_element_types_are_for_labels_only() -> None:
    head = bytes([0, 0, 0x0B, 3]) + b"".join(d.to_bytes(4, "big") for d in (1, 2, 2))
    with pytest.raises(DataError, match="element type 0x0B \\(int16\\) is not supported, only "
                       "unsigned bytes"):
        parse_idx(head + bytes(8), "x", "images")


# -- issue 10 item 15: headers and sizes before any payload is read ----------------------------

def test_a_huge_idx_file_is_refused_from_its_header_without_being_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge-labels"
    with huge.open("wb") as fh:  # 1 GiB, sparse: a header declaring 10 labels, then zeros
        fh.write(encode_idx(np.zeros(10, np.uint8))[:8])
        fh.truncate(1 << 30)
    folder = write_files(tmp_path / "digits", tiny_raw())
    labels = folder / "train-labels-idx1-ubyte"
    with labels.open("wb") as fh:  # 1 GiB, consistent with its header: 2**30 - 8 labels
        fh.write((2049).to_bytes(4, "big") + ((1 << 30) - 8).to_bytes(4, "big"))
        fh.truncate(1 << 30)
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc/self/status (Linux) to read a process's peak memory")
    # VmHWM: the peak of this process image only (ru_maxrss would include the parent's
    # peak, which Linux carries across fork and exec)
    cmd = python_script(tmp_path, f"""
import re
from cnncli.data.idx import load_idx_folder, read_idx
from cnncli.errors import DataError
for call in (lambda: read_idx({str(huge)!r}, "labels"), lambda: load_idx_folder({str(folder)!r})):
    try:
        call()
        print("read it")
    except DataError as exc:
        print(exc)
print(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read())[1])
""")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert lines[:2] == [
        "huge-labels: header says 10 labels (10 bytes), file holds 1073741816 bytes of payload",
        "train-images-idx3-ubyte holds 20 images but train-labels-idx1-ubyte holds 1073741816 "
        "labels; the counts must match",
    ], res.stderr
    assert int(lines[2]) < 256 * 1024  # peak memory in KiB: nowhere near the 1 GiB


def test_a_header_declaring_more_than_the_machines_memory_is_refused_before_allocating(
    tmp_path: Path
) -> None:
    p = tmp_path / "x-images.gz"  # a .gz cannot be sized from outside: the header decides
    dims = (0xFFFFFFFF, 0xFFFF, 0xFFFF)
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big")
                                                                 for d in dims)))
    with pytest.raises(DataError, match=r"x-images.gz: declares [0-9,]+ bytes of data, more "
                       r"than this machine's [0-9,]+ bytes of memory"):
        read_idx(p, "images")


def test_gz_idx_file_is_inflated_no_further_than_its_header_declares(tmp_path: Path) -> None:
    p = tmp_path / "y.gz"
    body = encode_idx(np.arange(5, dtype=np.uint8))
    p.write_bytes(gzip.compress(body + bytes(10 << 20)))  # 10 MB more than declared
    with pytest.raises(DataError, match="y.gz: decompresses to more than the 13 bytes its "
                       "header declares"):
        read_idx(p, "labels")
    p.write_bytes(gzip.compress(body[:-2]))
    with pytest.raises(DataError, match=r"y.gz: decompresses to 3 bytes of payload, its header "
                       r"says 5 labels \(5 bytes\)"):
        read_idx(p, "labels")
    p.write_bytes(gzip.compress(body)[:-5])  # the gzip stream itself cut short
    with pytest.raises(DataError, match="y.gz: not a valid gzip file"):
        read_idx(p, "labels")


# -- issue 10 item 16: FIFOs and devices are refused by type, never opened ----------------------

def test_fifo_and_device_in_an_idx_folder_are_not_regular_files_and_not_opened(
    tmp_path: Path
) -> None:
    folder = write_files(tmp_path / "d", tiny_raw())
    fifo = folder / "train-labels-idx1-ubyte"
    fifo.unlink()
    os.mkfifo(fifo)
    err = finishes(lambda: load_idx_folder(folder), [fifo])
    assert isinstance(err, DataError)
    assert str(err) == (f"{fifo} is not a regular file (a FIFO); cnncli reads only regular "
                        "files")
    info = finishes(lambda: idx_folder_info(folder), [fifo])
    assert [r.status for r in info.files] == ["ok", "not-a-file", "ok", "ok"]  # type: ignore
    fifo.unlink()
    fifo.write_bytes(tiny_raw()["train-labels-idx1-ubyte"])
    dev = folder / "t10k-images-idx3-ubyte"
    dev.unlink()
    dev.symlink_to("/dev/null")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is not a regular file \(a "
                       r"character device\)"):
        load_idx_folder(folder)


# -- a folder of your own IDX files ------------------------------------------------------------

def custom_folder(root: Path, train_labels: np.ndarray, test_labels: np.ndarray,
                  gz: tuple[str, ...] = ()) -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    raw = {
        "train-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (len(train_labels), 4, 3),
                                                           dtype=np.uint8)),
        "train-labels-idx1-ubyte": encode_idx(train_labels),
        "t10k-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (len(test_labels), 4, 3),
                                                          dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx(test_labels),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, body in raw.items():
        if name in gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(body))
        else:
            (root / name).write_bytes(body)
    return raw


def test_idx_folder_of_gz_and_raw_files_records_each_files_sha256(tmp_path: Path) -> None:
    raw = custom_folder(tmp_path, np.array([0, 1, 2, 1], np.uint8), np.array([2, 0], np.uint8),
                        gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    before = sorted(p.name for p in tmp_path.iterdir())
    data = load_idx_folder(tmp_path)
    assert data.train_images.shape == (4, 4, 3) and data.test_labels.tolist() == [2, 0]
    assert data.identity.dataset == "idx" and data.identity.folder == str(tmp_path.resolve())
    assert dict(data.identity.files) == {n: hashlib.sha256(b).hexdigest() for n, b in raw.items()}
    assert data.class_names == ("0", "1", "2") and data.mean is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written there


def test_idx_identity_is_the_same_for_gz_and_raw_copies_of_the_same_files(tmp_path: Path
                                                                          ) -> None:
    labels = np.array([0, 1, 1], np.uint8), np.array([1, 0], np.uint8)
    custom_folder(tmp_path / "a", *labels)
    custom_folder(tmp_path / "b", *labels, gz=tuple(FILE_NAMES))
    a, b = load_idx_folder(tmp_path / "a").identity, load_idx_folder(tmp_path / "b").identity
    assert a.same_data(b) and a.folder != b.folder


def test_idx_class_count_is_the_largest_label_plus_one_and_gaps_are_reported(
    tmp_path: Path
) -> None:
    custom_folder(tmp_path, np.array([0, 2, 5, 2], np.uint8), np.array([1, 5], np.uint8))
    data = load_idx_folder(tmp_path)
    assert data.num_classes == 6 and data.class_names == ("0", "1", "2", "3", "4", "5")
    assert data.absent_classes == (1, 3, 4)  # 1 is only in the test split


def test_idx_class_names_set_the_class_count(tmp_path: Path) -> None:
    custom_folder(tmp_path, np.array([0, 2, 1], np.uint8), np.array([1, 2], np.uint8))
    names = ("cat", "dog", "emu")
    assert load_idx_folder(tmp_path, names).class_names == names
    with pytest.raises(DataError, match=r"the labels go up to 2, but 2 class names are given "
                       r"\(labels must be 0\.\.1\)"):
        load_idx_folder(tmp_path, ["cat", "dog"])


@pytest.mark.parametrize(("train", "message"), [
    (np.zeros(3, np.uint8), "every label is 0; a classifier needs at least 2 classes"),
    (np.array([0, 1000, 3], np.int16), "label 1000 means 1,001 classes, more than the 1,000"),
])
def test_idx_class_count_must_be_2_to_1000(tmp_path: Path, train: np.ndarray, message: str
                                           ) -> None:
    custom_folder(tmp_path, train, np.zeros(2, train.dtype))
    with pytest.raises(DataError, match=message):
        load_idx_folder(tmp_path)


def test_idx_folder_of_1000_classes_in_int16_labels(tmp_path: Path) -> None:
    custom_folder(tmp_path, np.arange(1000, dtype=np.int16), np.array([999, 0], np.int16))
    data = load_idx_folder(tmp_path)
    assert data.num_classes == 1000 and data.train_labels.dtype == np.uint16
    assert data.absent_classes == ()


def test_idx_train_and_test_images_must_be_the_same_size(tmp_path: Path) -> None:
    custom_folder(tmp_path, np.array([0, 1], np.uint8), np.array([1, 0], np.uint8))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((2, 5, 5), np.uint8)))
    with pytest.raises(DataError, match="train-images-idx3-ubyte holds 4x3 images but "
                       "t10k-images-idx3-ubyte holds 5x5"):
        load_idx_folder(tmp_path)


def test_idx_folder_info_reads_headers_and_says_what_is_missing(tmp_path: Path) -> None:
    custom_folder(tmp_path, np.array([0, 1], np.uint8), np.array([1, 0], np.uint8),
                  gz=("t10k-images-idx3-ubyte",))
    info = idx_folder_info(tmp_path)
    assert info.ok and [r.name for r in info.files][2] == "t10k-images-idx3-ubyte.gz"
    assert [r.shape for r in info.files] == [[2, 4, 3], [2], [2, 4, 3], [2]]
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    info = idx_folder_info(tmp_path)
    assert not info.ok and info.files[3].status == "missing"
    assert "needs all four files, each raw or .gz" in (info.advice or "")
