"""Test helpers for data fetching: tiny datasets, a real HTTP server on 127.0.0.1 serving
crafted responses, the shared real datasets, and a private mount namespace (tmpfs, read-only
binds) for file-system faults."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_data  # noqa: F401  (re-exported for the fetch tests)

from cnncli.data.datasets import DataFile, DatasetDefinition
from cnncli.data.idx import encode_idx

TESTS = REPO / "tests"


def tiny_raw(seed: int = 0, images: tuple[int, int, int] = (20, 6, 5)) -> dict[str, bytes]:
    """Generated IDX files (uncompressed bytes by name), MNIST's file names."""
    rng = np.random.default_rng(seed)
    n, h, w = images
    return {
        "train-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (n, h, w), dtype=np.uint8)),
        "train-labels-idx1-ubyte": encode_idx(rng.integers(0, 10, n).astype(np.uint8)),
        "t10k-images-idx3-ubyte": encode_idx(rng.integers(0, 256, (8, h, w), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx(rng.integers(0, 10, 8).astype(np.uint8)),
    }


def definition_for(raw: dict[str, bytes], name: str = "tiny") -> DatasetDefinition:
    """A dataset definition pinning these files' hashes and sizes, with no default mirrors."""
    files = [DataFile(n, hashlib.sha256(b).hexdigest(), len(b), n.split("-")[1])
             for n, b in raw.items()]
    return DatasetDefinition(name, name.title(), *files, mirrors=(),
                             class_names=tuple("0123456789"), mean=0.5, std=0.25)


def small_dataset(seed: int = 0) -> tuple[DatasetDefinition, dict[str, bytes]]:
    raw = tiny_raw(seed)
    return definition_for(raw), raw


def write_files(folder: Path, raw: dict[str, bytes], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in raw.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(body))
        else:
            (folder / name).write_bytes(body)
    return folder


Reply = Callable[[http.server.BaseHTTPRequestHandler], None]


def ok(body: bytes) -> Reply:
    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return reply


def truncated(body: bytes) -> Reply:
    """Claims twice the length, sends the body, closes."""
    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body) * 2))
        h.end_headers()
        h.wfile.write(body)
    return reply


def dropped(body: bytes) -> Reply:
    """Sends a third of the body, then shuts the connection down."""
    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 3])
        h.wfile.flush()
        h.connection.shutdown(2)
    return reply


class Server:
    """http.server in a thread on 127.0.0.1; routes map a path to a reply function.

    `hits` lists every request path; `sent` counts bytes written by the endless replies;
    `stop` ends dripping and hanging replies (set at teardown).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.hits: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                reply = routes.get(self.path)
                if reply is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                try:
                    reply(self)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, prefix: str, raw: dict[str, bytes], make: Callable[[bytes], Reply] = ok
              ) -> str:
        """Serve each file gzip-compressed at <prefix>/<name>.gz; returns the mirror URL."""
        for name, body in raw.items():
            self.routes[f"{prefix}/{name}.gz"] = make(gzip.compress(body))
        return f"{self.url}{prefix}/"

    def serve_folder(self, prefix: str, folder: Path) -> str:
        """Serve every file of a folder as it is (e.g. the shared .gz files)."""
        for p in folder.iterdir():
            if p.is_file():
                self.routes[f"{prefix}/{p.name}"] = ok(p.read_bytes())
        return f"{self.url}{prefix}/"

    def drip(self, body: bytes, interval: float) -> Reply:
        """One byte every `interval` seconds, with an honest Content-Length."""
        def reply(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for i in range(len(body)):
                if self.stop.wait(interval):
                    return
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
        return reply

    def endless(self, prefix: bytes, limit: int, chunked: bool) -> Reply:
        """`prefix`, then zero bytes until `limit` (chunked, or until the connection closes).

        gzip skips zero padding after a member, so a valid .gz followed by this never ends
        as far as the decompressor can tell: only a bound on the bytes received stops it.
        """
        block = bytes(1 << 16)

        def reply(h: http.server.BaseHTTPRequestHandler) -> None:
            if chunked:
                h.protocol_version = "HTTP/1.1"
            h.send_response(200)
            h.send_header("Transfer-Encoding" if chunked else "Connection",
                          "chunked" if chunked else "close")
            h.end_headers()
            for data in itertools.chain([prefix], itertools.repeat(block)):
                if self.sent >= limit or self.stop.is_set():
                    break
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.sent += len(data)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
            h.close_connection = True
        return reply

    def hang(self) -> Reply:
        """Read the request, never answer."""
        def reply(h: http.server.BaseHTTPRequestHandler) -> None:
            self.stop.wait(60)
        return reply

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connecting to it is refused)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- processes ----------------------------------------------------------------------------------

def python_script(tmp: Path, body: str) -> list[str]:
    """A command running `body` with the repository and tests importable."""
    script = tmp / f"script-{time.monotonic_ns()}.py"
    script.write_text(f"import sys\nsys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}]\n{body}")
    return [sys.executable, str(script)]


def in_mount_namespace(shell: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a shell command as root of a private user+mount namespace (`unshare -rm`), where
    it may mount a tmpfs or bind a folder read-only; skips the test where that is refused."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not found: cannot mount a tmpfs or a read-only folder here")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here (unshare -rm: {probe.stderr.strip()})")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True,
                          text=True, timeout=timeout, env=env)


def finishes(call: Callable[[], object], fifos: list[Path], timeout: float = 10) -> object:
    """call() in a thread; fails the test if it blocks (e.g. opening a FIFO for reading),
    after unblocking it by opening the FIFOs for writing."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except Exception as exc:  # handed back to the test
            out["value"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for p in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail(f"blocked for {timeout} s: something opened a FIFO for reading")
    return out["value"]
