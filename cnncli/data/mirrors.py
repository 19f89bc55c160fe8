"""Mirrors: what the user may name as a source of dataset files, and why fetching failed.

A mirror is an http(s):// URL (the files are fetched as <url><name>.gz), a file:// URL or a
plain folder path (holding <name>.gz or <name>). Mirrors are parsed once, up front, from
wherever they came from (--mirror, data.mirrors, $CNNCLI_MIRROR, the dataset's defaults):
a malformed one is a ConfigError naming its source, before anything is fetched.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from cnncli.data.datasets import MNIST, DatasetDefinition
from cnncli.errors import ConfigError, quote


@dataclass(frozen=True)
class Mirror:
    """A parsed mirror: spec as the user wrote it; url (http/https, ending in '/') or folder."""

    spec: str
    url: str | None = None
    folder: Path | None = None


def parse_mirror(spec: object, source: str = "mirror") -> Mirror:
    """Parse one mirror; `source` says where it came from (e.g. '--mirror', 'data.mirrors[0]',
    '$CNNCLI_MIRROR') for the ConfigError that a malformed one raises."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{source}: a mirror is an http(s):// or file:// URL or a folder, "
                          f"received {quote(spec)}")
    if any(ord(c) < 32 or c == "\x7f" for c in spec):
        raise ConfigError(f"{source}: malformed mirror {quote(spec, 100)} (control characters)")
    try:
        parsed = urlparse(spec)
        scheme = parsed.scheme.lower()
        if scheme in ("http", "https"):
            parsed.port  # noqa: B018 -- raises ValueError for a port that is not 0..65535
            if not parsed.hostname:
                raise ValueError("no host name")
            if parsed.query or parsed.fragment:
                raise ValueError("a query or fragment cannot be followed by a file name")
            from urllib3.util import parse_url

            parse_url(spec)  # the parser that will fetch it (LocationParseError is a ValueError)
            return Mirror(spec, url=spec if spec.endswith("/") else spec + "/")
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ValueError("a file:// URL names a local path, as in file:///data/mnist")
            return Mirror(spec, folder=Path(unquote(parsed.path)))
    except ValueError as exc:
        raise ConfigError(f"{source}: malformed mirror URL {quote(spec, 100)} ({exc})") from None
    if scheme and len(scheme) > 1:  # one letter is a Windows drive (C:\data)
        raise ConfigError(f"{source}: mirror {quote(spec, 100)} has unsupported scheme "
                          f"{quote(scheme)} (use http://, https://, file:// or a folder path)")
    return Mirror(spec, folder=Path(spec).expanduser())


def mirror_list(user: Iterable[str | Mirror] = (),
                dataset: DatasetDefinition = MNIST) -> list[Mirror]:
    """The user's mirrors, then $CNNCLI_MIRROR, then the dataset's own, parsed, no repeats.

    Empty strings are skipped. A malformed one is a ConfigError before anything is fetched.
    """
    env = os.environ.get("CNNCLI_MIRROR")
    sources = [*((m, "mirror") for m in user),
               *([(env, "$CNNCLI_MIRROR")] if env else []),
               *((m, f"{dataset.name}'s mirror") for m in dataset.mirrors)]
    out: list[Mirror] = []
    for spec, source in sources:
        if not spec:
            continue
        m = spec if isinstance(spec, Mirror) else parse_mirror(spec, source)
        if all(m.spec != o.spec for o in out):
            out.append(m)
    return out


# -- why a fetch failed --------------------------------------------------------------------------

def _chain(exc: BaseException) -> list[BaseException]:
    """exc and every exception it wraps (cause, context, .reason, exception args), once each."""
    out: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(out) < 32:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is o for o in out):
            continue
        out.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
    return out


def describe_network_error(exc: BaseException) -> str:
    """A short reason for a failed request: 'connection refused', 'name resolution failed',
    'connection timed out', ... instead of the outermost wrapper's class name."""
    import http.client
    import ssl

    import urllib3.exceptions as ue

    chain = _chain(exc)

    def has(*types: type) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    def has_errno(*codes: int) -> bool:
        return any(isinstance(e, OSError) and e.errno in codes for e in chain)

    if has(ue.NameResolutionError, socket.gaierror):
        return "name resolution failed (offline, or no such host)"
    if has(ConnectionRefusedError) or has_errno(errno.ECONNREFUSED):
        return "connection refused"
    if has_errno(errno.ENETUNREACH):
        return "network unreachable"
    if has_errno(errno.EHOSTUNREACH):
        return "host unreachable"
    # NewConnectionError subclasses ConnectTimeoutError: only the real time-outs from here
    if any(isinstance(e, ue.ConnectTimeoutError) and not isinstance(e, ue.NewConnectionError)
           for e in chain):
        return "connection timed out"
    if (e := has(ue.SSLError, ssl.SSLError)) is not None:
        return f"TLS error ({_first_line(e)})"
    if (e := has(ue.ProxyError)) is not None:
        return f"proxy error ({_first_line(e)})"
    if (e := has(ue.ReadTimeoutError, socket.timeout, TimeoutError)) is not None:
        return "no data within the read timeout"
    if has(ConnectionResetError) or has_errno(errno.ECONNRESET):
        return "connection reset by the server"
    if has(http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if (e := has(ue.IncompleteRead, http.client.IncompleteRead)) is not None:
        return f"transfer cut short ({_first_line(e)})"
    if (e := has(ue.ProtocolError, http.client.HTTPException)) is not None:
        return f"connection broken ({_first_line(e)})"
    return f"{type(exc).__name__} ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 120 else line[:117] + "..."
