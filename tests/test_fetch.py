"""data/fetch.py: mirrors over a real local HTTP server, verification, bounds, deadlines,
offline errors, the cache, and the real MNIST and Fashion-MNIST files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fetch_helpers import (
    Server,
    dropped,
    free_port,
    leftovers,
    ok,
    shared_data,
    small_dataset,
    truncated,
    write_files,
)

import cnncli.data.fetch as fetch_module
from cnncli.cli import cli
from cnncli.data import (
    FASHION_MNIST,
    MNIST,
    FetchOptions,
    dataset_info,
    ensure_files,
    load_dataset_files,
    load_mnist,
)
from cnncli.data.fetch import compressed_bound, fetch_file, file_deadline
from cnncli.errors import DataError

FAST = FetchOptions(connect_timeout=2, read_timeout=2, retries=1, backoff=0)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_happy_path_over_http(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    url = server.serve("/m", raw)
    arrays = load_mnist(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    assert arrays.train_images.shape == (20, 6, 5) and arrays.train_images.dtype == np.uint8
    assert arrays.test_labels.shape == (8,)
    for name, body in raw.items():
        assert (tmp_path / name).read_bytes() == body  # cached decompressed
    assert leftovers(tmp_path) == sorted([*raw, "verified.json"])


def test_loaded_arrays_carry_the_pinned_identity_classes_and_normalisation(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    arrays = load_dataset_files(ds, tmp_path, mirrors=[server.serve("/m", raw)], opts=FAST)
    assert arrays.identity.dataset == "tiny" and arrays.identity.folder is None
    assert dict(arrays.identity.files) == {n: hashlib.sha256(b).hexdigest()
                                           for n, b in raw.items()}
    assert arrays.class_names == tuple("0123456789") and arrays.num_classes == 10
    assert (arrays.mean, arrays.std) == (0.5, 0.25)


def test_first_mirror_404_then_second_succeeds(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    good = server.serve("/good", raw)
    lines: list[str] = []
    ensure_files(tmp_path, mirrors=[f"{server.url}/missing/", good], dataset=ds, opts=FAST,
                 report=lines.append)
    assert "/missing/train-images-idx3-ubyte.gz" in server.hits
    assert (tmp_path / "train-images-idx3-ubyte").is_file()
    # one line per failed mirror and one per verified file, in the order they happened
    assert lines[0].startswith(f"train-images-idx3-ubyte: mirror {server.url}/missing/ failed "
                               "(HTTP 404")
    served = len(gzip.compress(raw["train-images-idx3-ubyte"]))
    assert lines[1].startswith(f"fetched train-images-idx3-ubyte.gz ({served:,} bytes) ")
    assert f"from {good}; sha256 verified: {ds.train_images.sha256[:12]}" in lines[1]
    assert len(lines) == 8


def test_wrong_checksum_is_rejected_and_nothing_left(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    tampered = dict(raw)
    body = bytearray(raw["train-images-idx3-ubyte"])
    body[-1] ^= 0xFF
    tampered["train-images-idx3-ubyte"] = bytes(body)
    url = server.serve("/bad", tampered)
    with pytest.raises(DataError) as err:
        ensure_files(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    msg = str(err.value)
    assert "could not fetch train-images-idx3-ubyte from any mirror" in msg
    assert "sha256 mismatch for train-images-idx3-ubyte" in msg and "\n" not in msg
    assert not tmp_path.exists() or leftovers(tmp_path) == []


@pytest.mark.parametrize("make", [truncated, dropped], ids=["truncate", "drop"])
def test_truncated_or_dropped_transfer_is_not_cached(
    server: Server, tmp_path: Path, make: object
) -> None:
    ds, raw = small_dataset()
    url = server.serve("/cut", raw, make)  # type: ignore[arg-type]
    with pytest.raises(DataError) as err:
        ensure_files(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    assert url in str(err.value)
    assert leftovers(tmp_path) == []


def test_every_mirror_failing_lists_each_with_its_reason(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    with pytest.raises(DataError) as err:
        ensure_files(tmp_path, mirrors=[f"{server.url}/a/", str(tmp_path / "nowhere")],
                     dataset=ds, opts=FAST)
    msg = str(err.value)
    assert f"{server.url}/a/: HTTP 404" in msg
    assert f"{tmp_path / 'nowhere'}: no train-images-idx3-ubyte.gz" in msg


@pytest.mark.parametrize("style", ["file-url", "folder"])
def test_file_url_and_folder_mirrors(tmp_path: Path, style: str) -> None:
    ds, raw = small_dataset()
    mirror = write_files(tmp_path / "mirror", raw, gz=True)
    spec = mirror.as_uri() if style == "file-url" else str(mirror)
    arrays = load_mnist(tmp_path / "cache", mirrors=[spec], dataset=ds)
    assert arrays.train_labels.shape == (20,)


def test_cached_verified_file_means_no_network_access(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    url = server.serve("/m", raw)
    ensure_files(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    server.hits.clear()
    load_mnist(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    assert server.hits == []


def test_corrupted_cache_says_how_to_redownload(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    ensure_files(tmp_path, mirrors=[server.serve("/m", raw)], dataset=ds, opts=FAST)
    target = tmp_path / "t10k-labels-idx1-ubyte"
    with target.open("r+b") as fh:  # changed in place: the very file cnncli wrote
        fh.seek(-1, 2)
        fh.write(b"\x09")
    with pytest.raises(DataError, match="cnncli data download --dataset tiny --force"):
        load_mnist(tmp_path, dataset=ds, opts=FAST)
    # --force fetches again and repairs it
    ensure_files(tmp_path, mirrors=[server.serve("/m", raw)], dataset=ds, force=True, opts=FAST)
    assert target.read_bytes() == raw["t10k-labels-idx1-ubyte"]


def test_cli_download_tampered_http_copy_exits_1_with_one_line(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only our mirror: the public ones would download the real MNIST where there is network
    monkeypatch.setattr(fetch_module, "mirror_list",
                        lambda user, dataset: [fetch_module.parse_mirror(m) for m in user])
    _, raw = small_dataset()  # content that is not MNIST: every pinned hash mismatches
    url = server.serve("/evil", raw)
    res = CliRunner().invoke(cli, ["data", "download", "--mirror", url, "--data-dir",
                                   str(tmp_path / "d")],
                             env={"CNNCLI_MIRROR": ""})
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: could not fetch train-images")
    assert f"{url}: sha256 mismatch for train-images-idx3-ubyte" in lines[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "d").exists()  # created for the download, removed when it failed


def test_data_folder_that_cannot_be_created_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["data", "download", "--data-dir", str(blocker / "m"),
                                      "--mirror", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: data folder {blocker / 'm'}: cannot be created "
                                     "(Not a directory)")


# -- issue 10 item 9: sizes are bounded, compressed and decompressed ---------------------------

def test_compressed_bound_admits_any_gzip_of_the_file_even_stored(tmp_path: Path) -> None:
    ds, raw = small_dataset()
    body = raw["train-images-idx3-ubyte"]  # random bytes: gzip cannot shrink them
    for level in (0, 1, 9):
        assert len(gzip.compress(body, compresslevel=level)) <= compressed_bound(ds.train_images)
    # MNIST's training images: at most 47.1 MB for 47,040,016 bytes decompressed
    assert compressed_bound(MNIST.train_images) == 47040016 + 47040 + 65536


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
def test_endless_body_is_cut_off_at_the_files_bound(
    server: Server, tmp_path: Path, chunked: bool
) -> None:
    ds, raw = small_dataset()
    limit = 64 << 20
    gz = gzip.compress(raw["train-images-idx3-ubyte"])  # the real file, then endless padding
    server.routes["/x/train-images-idx3-ubyte.gz"] = server.endless(gz, limit, chunked)
    with pytest.raises(DataError) as err:
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/x/"], opts=FAST)
    bound = compressed_bound(ds.train_images)
    assert f"sent more than {bound:,} bytes for train-images-idx3-ubyte.gz" in str(err.value)
    assert server.sent < limit  # the client hung up long before the server was done
    assert leftovers(tmp_path) == []


def test_announced_size_past_the_bound_is_refused_before_reading(
    server: Server, tmp_path: Path
) -> None:
    ds, _ = small_dataset()

    def huge(h: object) -> None:
        h.send_response(200)  # type: ignore[attr-defined]
        h.send_header("Content-Length", str(10**12))  # type: ignore[attr-defined]
        h.end_headers()  # type: ignore[attr-defined]
        h.wfile.write(b"\x1f\x8b" * 1000)  # type: ignore[attr-defined]

    server.routes["/h/train-images-idx3-ubyte.gz"] = huge
    with pytest.raises(DataError, match=r"announces 1,000,000,000,000 bytes for "
                       r"train-images-idx3-ubyte\.gz, more than the"):
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/h/"], opts=FAST)


def test_gzip_bomb_stops_inflating_at_the_files_exact_size(server: Server, tmp_path: Path
                                                           ) -> None:
    ds, _ = small_dataset()
    bomb = gzip.compress(bytes(50 << 20))  # 50 MB of zeros in about 50 KB
    assert len(bomb) < compressed_bound(ds.train_images)  # within the download bound
    server.routes["/b/train-images-idx3-ubyte.gz"] = ok(bomb)
    with pytest.raises(DataError) as err:
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/b/"], opts=FAST)
    assert (f"train-images-idx3-ubyte decompresses past its {ds.train_images.size:,} bytes"
            in str(err.value))
    assert "stopped before the hash check" in str(err.value)
    assert leftovers(tmp_path) == []


def test_folder_mirror_files_of_the_wrong_size_are_refused_unread(tmp_path: Path) -> None:
    ds, raw = small_dataset()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "train-images-idx3-ubyte").write_bytes(raw["train-images-idx3-ubyte"] + b"x")
    with pytest.raises(DataError, match=f"train-images-idx3-ubyte is {ds.train_images.size + 1:,}"
                       f" bytes; train-images-idx3-ubyte is {ds.train_images.size:,}"):
        fetch_file(tmp_path / "c", ds.train_images, [str(mirror)])


@pytest.mark.parametrize(("make", "error"), [
    (lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:]), None),  # two members
    (lambda b: gzip.compress(b) + bytes(5000), None),  # zero padding after the member
    (lambda b: gzip.compress(b[:100]) + bytes(3) + gzip.compress(b[100:]), None),
    (lambda b: gzip.compress(b) + b"junk", "not a valid gzip file"),
    (lambda b: gzip.compress(b)[:-6], "not a valid gzip file"),  # CRC/length trailer cut
    (lambda b: gzip.compress(b)[:40], "not a valid gzip file"),  # inside the deflate data
    (lambda b: b, "not a valid gzip file"),  # served uncompressed under the .gz name
], ids=["members", "padding", "padded-members", "junk", "no-trailer", "cut", "raw"])
def test_served_gzip_is_read_as_gzip_reads_it(server: Server, tmp_path: Path, make: object,
                                              error: str | None) -> None:
    ds, raw = small_dataset()
    body = raw["train-images-idx3-ubyte"]
    server.routes["/g/train-images-idx3-ubyte.gz"] = ok(make(body))  # type: ignore[operator]
    if error is None:
        assert gzip.decompress(make(body)) == body  # type: ignore[operator]
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/g/"], opts=FAST)
        assert (tmp_path / "train-images-idx3-ubyte").read_bytes() == body
    else:
        with pytest.raises(DataError, match=error):
            fetch_file(tmp_path, ds.train_images, [f"{server.url}/g/"], opts=FAST)
        assert leftovers(tmp_path) == []


# -- issue 10 item 10: a deadline per file, unreachable mirrors asked once ----------------------

def test_file_deadline_scales_with_size_and_has_a_floor() -> None:
    opts = FetchOptions()
    assert file_deadline(MNIST.train_images, None, opts) == pytest.approx(9912422 / 65536)
    assert file_deadline(FASHION_MNIST.train_images, None, opts) == pytest.approx(
        26421880 / 65536)
    assert file_deadline(MNIST.test_labels, None, opts) == 60.0
    # a mirror announcing a bigger (e.g. uncompressed-in-gzip) body gets time for it
    assert file_deadline(MNIST.train_images, 47 << 20, opts) == pytest.approx(
        (47 << 20) / 65536)


def test_dripping_mirror_trips_the_deadline_and_the_error_suggests_mirror(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    body = gzip.compress(raw["train-images-idx3-ubyte"])
    # a byte every 0.2 s never trips the 2 s read timeout; the whole file would take minutes
    server.routes["/slow/train-images-idx3-ubyte.gz"] = server.drip(body, 0.2)
    opts = dataclasses.replace(FAST, min_deadline=1.5)
    with pytest.raises(DataError) as err:
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/slow/"], opts=opts)
    msg = str(err.value)
    assert f"{server.url}/slow/: stalled: " in msg
    assert "past this file's 2 s deadline" in msg
    assert msg.endswith("try another mirror with --mirror URL (or a folder holding the files)")
    assert leftovers(tmp_path) == []


def test_a_mirror_that_drops_connections_is_asked_once_for_all_four_files(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset()

    def hang_up(h: object) -> None:
        h.close_connection = True  # type: ignore[attr-defined]
        h.connection.shutdown(2)  # type: ignore[attr-defined]

    for name in raw:
        server.routes[f"/dead/{name}.gz"] = hang_up
    good = server.serve("/good", raw)
    lines: list[str] = []
    ensure_files(tmp_path, mirrors=[f"{server.url}/dead/", good], dataset=ds, opts=FAST,
                 report=lines.append)
    assert [h for h in server.hits if h.startswith("/dead/")] == [
        "/dead/train-images-idx3-ubyte.gz"]  # no retry, and skipped for the other files
    assert re.search(r"failed \((the server closed the connection without answering|"
                     r"connection reset by the server)\)", lines[0])


def test_a_mirror_that_never_answers_fails_on_the_read_timeout(
    server: Server, tmp_path: Path
) -> None:
    ds, _ = small_dataset()
    server.routes["/mute/train-images-idx3-ubyte.gz"] = server.hang()
    opts = dataclasses.replace(FAST, read_timeout=0.5)
    with pytest.raises(DataError, match=r"/mute/: no data within the read timeout; try another "
                       r"mirror with --mirror"):
        fetch_file(tmp_path, ds.train_images, [f"{server.url}/mute/"], opts=opts)


# -- issue 10 item 12: offline errors keep their reason, leave no empty folder ------------------

@pytest.mark.parametrize(("mirror", "reason"), [
    (f"http://127.0.0.1:{free_port()}/", "connection refused"),
    ("http://cnncli-test.invalid/", "name resolution failed"),
])
def test_offline_error_keeps_the_reason_and_leaves_no_empty_folder(
    tmp_path: Path, mirror: str, reason: str
) -> None:
    ds, _ = small_dataset()
    folder = tmp_path / "new" / "cache"
    with pytest.raises(DataError) as err:
        ensure_files(folder, mirrors=[mirror], dataset=ds, opts=FAST)
    assert f"{mirror}: {reason}" in str(err.value)
    assert "ConnectionError" not in str(err.value)
    assert not (tmp_path / "new").exists()


def test_a_failure_keeps_a_folder_that_already_existed(tmp_path: Path) -> None:
    ds, _ = small_dataset()
    with pytest.raises(DataError):
        ensure_files(tmp_path, mirrors=[f"http://127.0.0.1:{free_port()}/"], dataset=ds,
                     opts=FAST)
    assert tmp_path.is_dir()


# -- issue 10 item 3: a folder of the user's own files is never overwritten ---------------------

def test_own_idx_files_are_not_called_corrupt_nor_overwritten(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset(seed=0)
    _, mine = small_dataset(seed=1)
    write_files(tmp_path, mine)
    url = server.serve("/m", raw)
    for force in (False, True):
        with pytest.raises(DataError) as err:
            ensure_files(tmp_path, mirrors=[url], dataset=ds, force=force, opts=FAST)
        msg = str(err.value)
        assert msg.startswith(f"{tmp_path} does not hold Tiny: train-images-idx3-ubyte is not "
                              "Tiny's (sha256 ")
        assert "cnncli did not write it, so it will not replace it" in msg
        assert "use data: {dataset: idx} with this folder" in msg and "--force" not in msg
    assert server.hits == []
    assert {n: (tmp_path / n).read_bytes() for n in mine} == mine
    assert leftovers(tmp_path) == sorted(mine)


def test_own_gz_files_are_not_taken_for_the_dataset_nor_downloaded_beside(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset(seed=0)
    _, mine = small_dataset(seed=1)
    write_files(tmp_path, mine, gz=True)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not Tiny's"):
        ensure_files(tmp_path, mirrors=[server.serve("/m", raw)], dataset=ds, opts=FAST)
    assert server.hits == [] and leftovers(tmp_path) == sorted(f"{n}.gz" for n in mine)


def test_the_datasets_own_gz_files_in_the_folder_are_used_without_a_mirror(
    tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    write_files(tmp_path, raw, gz=True)
    info = dataset_info(tmp_path, ds)
    assert info.ok and [f.status for f in info.files] == ["compressed"] * 4
    arrays = load_dataset_files(ds, tmp_path, download=False)
    assert arrays.train_images.shape == (20, 6, 5)
    assert {n: (tmp_path / n).read_bytes() for n in raw} == raw


def test_a_file_replaced_by_the_user_is_not_corrupt_but_foreign(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    ensure_files(tmp_path, mirrors=[server.serve("/m", raw)], dataset=ds, opts=FAST)
    _, mine = small_dataset(seed=1)
    write_files(tmp_path / "mine", mine)
    target = tmp_path / "t10k-labels-idx1-ubyte"
    (tmp_path / "mine" / target.name).replace(target)  # a new file (inode) under that name
    with pytest.raises(DataError, match="cnncli did not write it") as err:
        ensure_files(tmp_path, dataset=ds, force=True, opts=FAST)
    assert "--force" not in str(err.value)
    assert target.read_bytes() == mine[target.name]


def test_data_info_rows_and_advice_for_a_folder_of_own_files(tmp_path: Path) -> None:
    ds, _ = small_dataset(seed=0)
    _, mine = small_dataset(seed=1)
    write_files(tmp_path, mine)
    info = dataset_info(tmp_path, ds)
    assert [f.status for f in info.files] == ["foreign"] * 4
    assert not info.ok and "use data: {dataset: idx}" in (info.advice or "")
    assert "--force" not in (info.advice or "")
    assert info.to_dict()["files"][0]["status"] == "foreign"
    assert leftovers(tmp_path) == sorted(mine)  # info writes nothing, not even a marker


# -- Fashion-MNIST and MNIST from the shared real files -----------------------------------------

SHARED_MNIST = shared_data("mnist")
SHARED_FASHION = shared_data("fashion-mnist")
needs_mnist = pytest.mark.skipif(
    not SHARED_MNIST.is_dir(),
    reason=f"real MNIST mirror not found at {SHARED_MNIST} (only this workplace has it)")
needs_fashion = pytest.mark.skipif(
    not SHARED_FASHION.is_dir(),
    reason=f"real Fashion-MNIST mirror not found at {SHARED_FASHION} (only this workplace "
           "has it)")

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NO_DEFAULTS = dataclasses.replace(FASHION_MNIST, mirrors=())  # never the public mirrors


@needs_mnist
def test_real_mnist_from_the_shared_mirror(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["data", "download", "--mirror", str(SHARED_MNIST),
                                   "--data-dir", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    for f in MNIST.files:
        assert hashlib.sha256((tmp_path / f.name).read_bytes()).hexdigest() == f.sha256
    m = load_mnist(tmp_path)
    assert m.train_images.shape == (60000, 28, 28) and m.test_images.shape == (10000, 28, 28)
    assert np.bincount(m.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(m.test_labels).tolist() == TEST_COUNTS
    info = CliRunner().invoke(cli, ["data", "info", "--data-dir", str(tmp_path)])
    assert "train: 60,000 images, test: 10,000 images" in info.output


@needs_fashion
@pytest.mark.parametrize("style", ["folder", "file-url", "http"])
def test_real_fashion_mnist_downloads_and_verifies_like_mnist(
    server: Server, tmp_path: Path, style: str
) -> None:
    spec = {"folder": str(SHARED_FASHION), "file-url": SHARED_FASHION.as_uri(),
            "http": server.serve_folder("/fashion", SHARED_FASHION)}[style]
    data = load_dataset_files(NO_DEFAULTS, tmp_path / "cache", mirrors=[spec], opts=FAST)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000,
                                                                                   28, 28)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert (data.mean, data.std) == (0.2860, 0.3530)
    assert data.identity.dataset == "fashion-mnist"
    for f in FASHION_MNIST.files:  # the cache holds exactly the pinned bytes
        assert hashlib.sha256((tmp_path / "cache" / f.name).read_bytes()).hexdigest() == \
            f.sha256


@needs_fashion
@pytest.mark.parametrize("where", ["payload", "gzip stream"])
def test_tampered_fashion_mnist_file_is_never_cached(
    server: Server, tmp_path: Path, where: str
) -> None:
    f = FASHION_MNIST.test_labels
    served = (SHARED_FASHION / f"{f.name}.gz").read_bytes()
    if where == "payload":  # a faithful gzip of altered labels
        body = bytearray(gzip.decompress(served))
        body[100] = (body[100] + 1) % 10
        served = gzip.compress(bytes(body))
    else:  # a flipped byte inside the compressed data
        served = served[:2000] + bytes([served[2000] ^ 0x55]) + served[2001:]
    server.routes[f"/evil/{f.name}.gz"] = ok(served)
    with pytest.raises(DataError, match="sha256 mismatch|not a valid gzip file"):
        fetch_file(tmp_path, f, [f"{server.url}/evil/"], opts=FAST)
    assert leftovers(tmp_path) == []
    good = server.serve_folder("/good", SHARED_FASHION)
    fetch_file(tmp_path, f, [f"{server.url}/evil/", good], opts=FAST)
    assert hashlib.sha256((tmp_path / f.name).read_bytes()).hexdigest() == f.sha256


@needs_mnist
def test_mnist_files_in_a_fashion_folder_are_named_as_mnist(tmp_path: Path) -> None:
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / name).write_bytes(gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes()))
    row = dataset_info(tmp_path, FASHION_MNIST).files[3]
    assert row.status == "other-dataset"
    assert row.detail.startswith(f"{tmp_path} holds MNIST's {name}, not Fashion-MNIST's: give "
                                 "Fashion-MNIST a folder of its own")
    with pytest.raises(DataError, match="holds MNIST's t10k-labels-idx1-ubyte"):
        ensure_files(tmp_path, dataset=NO_DEFAULTS, download=False)
