"""data/mnist.py: mirrors over a real local HTTP server, verification, cache, real MNIST."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_MNIST

import cnncli.data.mnist as mnist_module
from cnncli.cli import cli
from cnncli.data.idx import encode_idx
from cnncli.data.mnist import (
    MNIST,
    DataFile,
    DatasetDefinition,
    FetchOptions,
    ensure_files,
    load_idx_folder,
    load_mnist,
)
from cnncli.errors import DataError

FAST = FetchOptions(connect_timeout=2, read_timeout=2, retries=1, backoff=0)


def small_dataset() -> tuple[DatasetDefinition, dict[str, bytes]]:
    """Generated IDX files (uncompressed bytes by name) and a definition pinning their hashes."""
    rng = np.random.default_rng(0)
    raw = {
        "train-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (20, 6, 5), dtype=np.uint8)),
        "train-labels-idx1-ubyte": encode_idx(rng.integers(0, 10, 20).astype(np.uint8)),
        "t10k-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (8, 6, 5), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx(rng.integers(0, 10, 8).astype(np.uint8)),
    }
    files = [DataFile(n, hashlib.sha256(b).hexdigest()) for n, b in raw.items()]
    return DatasetDefinition("tiny", *files, mirrors=()), raw


class Server:
    """http.server in a thread on 127.0.0.1; routes map a path to (status, body, mode)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, str]] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                status, body, mode = routes.get(self.path, (404, b"not found", "ok"))
                self.send_response(status)
                claimed = len(body) * 2 if mode == "truncate" else len(body)
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, prefix: str, raw: dict[str, bytes], mode: str = "ok") -> str:
        for name, body in raw.items():
            self.routes[f"{prefix}/{name}.gz"] = (200, gzip.compress(body), mode)
        return f"{self.url}{prefix}/"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_happy_path_over_http(server: Server, tmp_path: Path) -> None:
    ds, raw = small_dataset()
    url = server.serve("/m", raw)
    arrays = load_mnist(tmp_path, mirrors=[url], dataset=ds, opts=FAST)
    assert arrays.train_images.shape == (20, 6, 5) and arrays.train_images.dtype == np.uint8
    assert arrays.test_labels.shape == (8,)
    for name, body in raw.items():
        assert (tmp_path / name).read_bytes() == body  # cached decompressed
    assert leftovers(tmp_path) == sorted([*raw, "verified.json"])


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
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["truncate", "drop"])
def test_truncated_or_dropped_transfer_is_not_cached(
    server: Server, tmp_path: Path, mode: str
) -> None:
    ds, raw = small_dataset()
    url = server.serve("/cut", raw, mode=mode)
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
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, body in raw.items():
        (mirror / f"{name}.gz").write_bytes(gzip.compress(body))
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
    target.write_bytes(target.read_bytes()[:-1] + b"\x09")
    with pytest.raises(DataError, match="cnncli data download --force"):
        load_mnist(tmp_path, dataset=ds, opts=FAST)
    # --force fetches again and repairs it
    ensure_files(tmp_path, mirrors=[server.serve("/m", raw)], dataset=ds, force=True, opts=FAST)
    assert target.read_bytes() == raw["t10k-labels-idx1-ubyte"]


def test_uncompressed_custom_idx_folder_of_any_image_size(tmp_path: Path) -> None:
    _, raw = small_dataset()
    for name, body in raw.items():
        (tmp_path / name).write_bytes(body)
    arrays = load_idx_folder(tmp_path)
    assert arrays.train_images.shape == (20, 6, 5)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.full(8, 11, np.uint8)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: label 11 at index 0 is outside"):
        load_idx_folder(tmp_path)


def test_cli_download_tampered_http_copy_exits_1_with_one_line(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only our mirror: the public ones are unreachable here and would only add time-outs
    monkeypatch.setattr(mnist_module, "mirror_list", lambda user, dataset: list(user))
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
    assert leftovers(tmp_path / "d") == []


needs_mnist = pytest.mark.skipif(
    not SHARED_MNIST.is_dir(),
    reason=f"real MNIST mirror not found at {SHARED_MNIST} (only this workplace has it)",
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


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
    assert "train: 60000 images, test: 10000 images" in info.output


def test_data_folder_that_cannot_be_created_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["data", "download", "--data-dir", str(blocker / "m"),
                                      "--mirror", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: data folder {blocker / 'm'}: cannot be created "
                                     "(Not a directory)")
