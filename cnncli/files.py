"""Writing files so that a crash never leaves half of one, and cleaning up after a crash.

Every temporary file cnncli writes is named `.<file>.<host>-<pid>.<random>.<tmp|idx>` in the
folder of the file it becomes, so a later run can tell whose it is and whether its writer is
gone (see is_stale); a SIGKILL leaves at most such files behind, never a half-written file
under a real name.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path

#: this machine, as named in temporary files (8 hex digits of its host name's hash)
HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_OURS = re.compile(r"\.(?P<stem>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})\.[0-9a-f]{8}"
                   r"\.(?:idx|tmp)")
# what cnncli before this naming left behind (tempfile.mkstemp names: 8 random characters)
_LEGACY = re.compile(r"\.(?:(?P<stem>.+)\.[a-z0-9_]{8}\.(?:part|idx|tmp)|verified-[a-z0-9_]{8})")

#: a temporary file whose owner (this host, that pid) is gone is stale after this long
DEAD_OWNER_AGE = 120.0
#: one whose owner cannot be checked (another host, older names) after this long unmodified
UNKNOWN_OWNER_AGE = 30 * 60.0
#: and any after this long: the pid has surely been reused
ANY_AGE = 24 * 3600.0


def create_temp(folder: Path, stem: str, suffix: str) -> tuple[int, Path]:
    """A new, exclusively created temporary file in folder: (fd, path), mode 0644 less umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(16):
        path = folder / f".{stem}.{HOST}-{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(path, flags, 0o644), path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free temporary file name for {stem}")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill would terminate it there; rely on age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OverflowError, OSError):
        return False
    return True


def is_stale(name: str, stems: Iterable[str], age: float) -> bool:
    """Whether a file called `name`, unmodified for `age` seconds, is a temporary file that
    a cnncli process left behind and no live one is writing.

    Only cnncli's own names for the given stems count (anything else is never touched).
    Named by this host: stale when its pid is not running and it is DEAD_OWNER_AGE old (the
    grace covers a pid from another pid namespace on the same host name); with the pid
    running, only after ANY_AGE. Another host's, or an older cnncli's: after
    UNKNOWN_OWNER_AGE without a write, far longer than a live download goes without one (its
    read timeout ends it first). Two processes sharing a folder therefore never remove each
    other's files while both are alive; at worst a stalled one finds its temporary gone and
    fails with an error, never with a wrong file.
    """
    stems = set(stems)
    m = _OURS.fullmatch(name)
    if m and m["stem"] in stems:
        if m["host"] != HOST:
            return age >= UNKNOWN_OWNER_AGE
        if _pid_alive(int(m["pid"])):
            return age >= ANY_AGE
        return age >= DEAD_OWNER_AGE
    m = _LEGACY.fullmatch(name)
    if m and (m["stem"] is None or m["stem"] in stems):
        return age >= UNKNOWN_OWNER_AGE
    return False


def clean_stale_temps(folder: Path, stems: Iterable[str]) -> list[str]:
    """Remove cnncli's stale temporary files from folder (see is_stale); returns their names.

    Best-effort: a read-only or vanished folder is left as it is.
    """
    stems = set(stems)
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith("."):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and is_stale(e.name, stems, now - st.st_mtime):
                os.unlink(e.path)
                removed.append(e.name)
        except OSError:
            continue
    return removed




def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes so that `path` holds either its old content or all of `data`, never a part.

    A temporary file in the same folder is written and fsynced, then moved over `path` with
    os.replace (atomic on POSIX and Windows), and the folder is fsynced so the rename lasts.
    """
    path = Path(path)
    fd, tmp = create_temp(path.parent, path.name, ".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # the usual permissions for the file it becomes
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a full disk: say which file could not be written
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
