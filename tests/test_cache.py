"""data/cache.py: a data folder's state. Stale temporary files after a SIGKILL (issue 10
item 8), a read-only folder of verified data (item 5), a full disk (item 6), and files that
are not regular files (item 16), on real processes, mounts and files."""

from __future__ import annotations

import gzip
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fetch_helpers import (
    Server,
    definition_for,
    finishes,
    in_mount_namespace,
    leftovers,
    python_script,
    small_dataset,
    tiny_raw,
    write_files,
)

from cnncli.data import FetchOptions, dataset_info, ensure_files
from cnncli.errors import DataError
from cnncli.files import HOST, is_stale

FAST = FetchOptions(connect_timeout=2, read_timeout=2, retries=1, backoff=0)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def aged(path: Path, seconds: float) -> Path:
    """Create `path` (if needed) last modified `seconds` ago."""
    if not path.exists():
        path.write_bytes(b"partial")
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


# -- issue 10 item 8: stale temporary files --------------------------------------------------

def test_only_cnncli_temp_names_for_known_files_can_be_stale() -> None:
    stems = {"train-images-idx3-ubyte", "verified.json"}
    mine = f".train-images-idx3-ubyte.{HOST}-{os.getpid()}.0123abcd.idx"
    assert not is_stale(mine, stems, 23 * 3600)  # its owner (this process) is alive
    assert is_stale(mine, stems, 25 * 3600)  # a day on: the pid was surely reused
    assert not is_stale(mine.replace("train-images", "t10k-images"), stems, 10**9)
    other_host = ".verified.json.ffffffff-1.0123abcd.tmp"
    assert HOST != "ffffffff"
    assert not is_stale(other_host, stems, 29 * 60) and is_stale(other_host, stems, 31 * 60)
    assert is_stale(".train-images-idx3-ubyte.ab_3x9zq.part", stems, 31 * 60)  # older cnncli
    assert is_stale(".verified-ab_3x9zq", stems, 31 * 60)
    for name in (".train-images-idx3-ubyte.backup", ".notes.part", "train-images-idx3-ubyte",
                 ".train-images-idx3-ubyte.ABCDEFGH.part"):
        assert not is_stale(name, stems, 10**9), name


def test_temp_files_of_a_killed_download_are_cleaned_by_the_next_run(
    server: Server, tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    slow = gzip.compress(raw["train-images-idx3-ubyte"])
    server.routes["/slow/train-images-idx3-ubyte.gz"] = server.drip(slow, 0.5)
    folder = tmp_path / "cache"
    proc = subprocess.Popen(python_script(tmp_path, f"""
from fetch_helpers import small_dataset
from cnncli.data import FetchOptions, ensure_files
ensure_files({str(folder)!r}, mirrors=[{server.url + "/slow/"!r}], dataset=small_dataset()[0],
             opts=FetchOptions(read_timeout=5))
"""))
    try:
        deadline = time.monotonic() + 60
        while not [n for n in leftovers(folder) if n.endswith(".idx")]:
            assert proc.poll() is None and time.monotonic() < deadline, "no download started"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    (killed,) = [n for n in leftovers(folder) if n.endswith(".idx")]
    assert killed.startswith(f".train-images-idx3-ubyte.{HOST}-{proc.pid}.")
    assert not is_stale(killed, {"train-images-idx3-ubyte"}, 10)  # a grace for the dead

    aged(folder / killed, 180)
    keep = [aged(folder / f".t10k-labels-idx1-ubyte.{HOST}-{os.getpid()}.0123abcd.idx", 3600),
            aged(folder / f".train-labels-idx1-ubyte.{HOST}-{proc.pid}.0123abcd.idx", 10),
            aged(folder / ".train-labels-idx1-ubyte.ffffffff-1.0123abcd.idx", 20 * 60),
            aged(folder / ".t10k-images-idx3-ubyte.abcd_123.part", 60),
            aged(folder / ".notes.part", 2 * 86400),
            aged(folder / ".train-images-idx3-ubyte.backup", 2 * 86400)]
    gone = [folder / killed,
            aged(folder / ".t10k-images-idx3-ubyte.ffffffff-1.0123abcd.idx", 40 * 60),
            aged(folder / ".train-images-idx3-ubyte.abcd_123.part", 31 * 60),
            aged(folder / ".verified-k2j4h5g6", 31 * 60)]
    ensure_files(folder, mirrors=[server.serve("/good", raw)], dataset=ds, opts=FAST)
    assert [p.name for p in gone if p.exists()] == []
    assert [p.name for p in keep if not p.exists()] == []


# -- issue 10 item 5: reading verified data never needs write access --------------------------

def test_read_only_folder_of_verified_data_loads(tmp_path: Path) -> None:
    ds, raw = small_dataset()
    found = write_files(tmp_path / "found", raw)  # the user's copy: hashed, never recorded
    aged(found / f".train-images-idx3-ubyte.{HOST}-{2**22 + 7}.0123abcd.idx", 3600)
    cached = tmp_path / "cached"  # cnncli's cache, with its marker
    ensure_files(cached, mirrors=[str(write_files(tmp_path / "m", raw, gz=True))], dataset=ds)
    before = {p: leftovers(p) for p in (found, cached)}
    script = python_script(tmp_path, f"""
from fetch_helpers import small_dataset
from cnncli.data import load_dataset_files
for folder in ({str(found)!r}, {str(cached)!r}):
    try:
        open(folder + "/probe", "w")
    except OSError as exc:
        print(exc.strerror)
    print(load_dataset_files(small_dataset()[0], folder).train_images.shape)
""")
    mounts = " && ".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))} && "
                         f"mount -o remount,bind,ro {shlex.quote(str(p))}" for p in before)
    res = in_mount_namespace(f"{mounts} && {shlex.join(script)}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["Read-only file system", "(20, 6, 5)"] * 2
    assert {p: leftovers(p) for p in before} == before


# -- issue 10 item 6: a full disk names the file -----------------------------------------------

def test_full_disk_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    raw = tiny_raw(images=(200, 30, 30))  # 180 KB of random pixels: gzip cannot shrink them
    mirror = write_files(tmp_path / "mirror", raw, gz=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    script = python_script(tmp_path, f"""
import os
from fetch_helpers import definition_for, tiny_raw
from cnncli.data import ensure_files
from cnncli.errors import DataError
try:
    ensure_files({str(cache)!r}, mirrors=[{str(mirror)!r}],
                 dataset=definition_for(tiny_raw(images=(200, 30, 30))))
except DataError as exc:
    print(exc)
print(sorted(os.listdir({str(cache)!r})))
""")
    res = in_mount_namespace(f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(cache))} && "
                             f"{shlex.join(script)}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"cannot write {cache / 'train-images-idx3-ubyte'} (No space left on device)", "[]"]
    assert definition_for(raw).train_images.size > 64 << 10


# -- issue 10 item 16: not a regular file ----------------------------------------------------

def test_fifo_in_a_cache_folder_is_not_a_regular_file_and_not_opened(tmp_path: Path) -> None:
    ds, raw = small_dataset()
    write_files(tmp_path, raw)
    fifos = [tmp_path / "t10k-images-idx3-ubyte", tmp_path / "verified.json"]
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    for p in fifos:
        os.mkfifo(p)
    err = finishes(lambda: ensure_files(tmp_path, dataset=ds, download=False), fifos)
    assert str(err).startswith(f"{fifos[0]} is not a regular file (a FIFO)")
    info = finishes(lambda: dataset_info(tmp_path, ds), fifos)
    assert [r.status for r in info.files] == ["ok", "ok", "not-a-file", "ok"]  # type: ignore



def test_a_file_that_cannot_be_read_is_a_row_in_data_info_and_an_error_to_load(
    tmp_path: Path
) -> None:
    ds, raw = small_dataset()
    write_files(tmp_path, raw)
    looped = tmp_path / "train-labels-idx1-ubyte"
    looped.unlink()
    (tmp_path / "loop").symlink_to("loop")
    looped.symlink_to("loop")
    info = dataset_info(tmp_path, ds)
    assert [r.status for r in info.files] == ["ok", "unreadable", "ok", "ok"]
    assert info.advice == f"{looped}: cannot be read (Too many levels of symbolic links)"
    with pytest.raises(DataError, match="cannot be read \\(Too many levels of symbolic links"):
        ensure_files(tmp_path, dataset=ds)
