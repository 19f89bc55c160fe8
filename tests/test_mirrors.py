"""data/mirrors.py: a malformed mirror is one ConfigError naming where it came from, before
anything is fetched (issue 10 item 11); network errors keep their reason (item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fetch_helpers import small_dataset

from cnncli.cli import cli
from cnncli.data import ensure_files, mirror_list, parse_mirror
from cnncli.errors import ConfigError


def test_http_file_and_folder_mirrors_parse(tmp_path: Path) -> None:
    assert parse_mirror("https://h.example/mnist").url == "https://h.example/mnist/"
    assert parse_mirror("http://[::1]:8000/m/").url == "http://[::1]:8000/m/"
    assert parse_mirror("file:///data/m%20x").folder == Path("/data/m x")
    assert parse_mirror(str(tmp_path)).folder == tmp_path
    assert parse_mirror("C:\\data").folder == Path("C:\\data")


@pytest.mark.parametrize(("spec", "message"), [
    ("http://[::1", "data.mirrors[0]: malformed mirror URL 'http://[::1' (Invalid IPv6 URL)"),
    ("http://h:99999/", "data.mirrors[0]: malformed mirror URL 'http://h:99999/' (Port out of "
                        "range 0-65535)"),
    ("https:///path", "data.mirrors[0]: malformed mirror URL 'https:///path' (no host name)"),
    ("http://h/?a=1", "(a query or fragment cannot be followed by a file name)"),
    ("file://server/share", "(a file:// URL names a local path, as in file:///data/mnist)"),
    ("ftp://h/m/", "data.mirrors[0]: mirror 'ftp://h/m/' has unsupported scheme 'ftp' (use "
                   "http://, https://, file:// or a folder path)"),
    ("http://h/\nx", "data.mirrors[0]: malformed mirror 'http://h/\\nx' (control characters)"),
    (3, "data.mirrors[0]: a mirror is an http(s):// or file:// URL or a folder, received 3"),
])
def test_malformed_mirror_is_one_config_error_naming_its_source(spec: object, message: str
                                                                ) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mirror(spec, "data.mirrors[0]")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_malformed_mirror_fails_before_any_fetch_or_folder(tmp_path: Path) -> None:
    ds, _ = small_dataset()
    with pytest.raises(ConfigError, match=r"^mirror: malformed mirror URL 'http://\[::1'"):
        ensure_files(tmp_path / "d", mirrors=["http://[::1"], dataset=ds)
    assert not (tmp_path / "d").exists()


def test_malformed_cnncli_mirror_variable_is_named(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ds, _ = small_dataset()
    monkeypatch.setenv("CNNCLI_MIRROR", "http://[::1")
    with pytest.raises(ConfigError, match=r"^\$CNNCLI_MIRROR: malformed mirror URL"):
        ensure_files(tmp_path, dataset=ds)


def test_mirror_list_orders_user_env_defaults_without_repeats(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    ds, _ = small_dataset()
    ds = ds.__class__(**{**ds.__dict__, "mirrors": ("http://d/", "http://u/")})
    monkeypatch.setenv("CNNCLI_MIRROR", "http://e/")
    specs = [m.spec for m in mirror_list(["http://u/", "", "http://u/"], ds)]
    assert specs == ["http://u/", "http://e/", "http://d/"]


@pytest.mark.parametrize("how", ["option", "variable"])
def test_cli_malformed_mirror_is_one_line_exit_2(tmp_path: Path, how: str) -> None:
    args = ["data", "download", "--data-dir", str(tmp_path / "d")]
    env = {"CNNCLI_MIRROR": "http://[::1" if how == "variable" else ""}
    if how == "option":
        args += ["--mirror", "http://[::1"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert "malformed mirror URL 'http://[::1' (Invalid IPv6 URL)" in res.output
