"""What an adversarial test of processes, signals and the file system broke (issue 10), each
proved with real processes, real signals and real file systems where it is about them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO
from fetch_helpers import in_mount_namespace
from synthetic_mnist import write_idx_folder

from cnncli.cli import CnnGroup, cli
from cnncli.files import HOST

TINY = """\
model:
  layers:
    - {type: conv, filters: 4, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 4}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.01}
train: {epochs: 1, batch_size: 32, val_split: 0.2}
"""


def cnncli(*args: object, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cnncli.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = write_idx_folder(tmp_path / "digits", train=2000)
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + f"data: {{dataset: idx, data_dir: {data}}}\n")
    return path


def test_two_trainings_with_the_same_out_one_wins_the_other_fails_at_once(tmp_path, config):
    out = tmp_path / "run"
    procs = [cnncli("train", config, "--out", out, "--epochs", "3", "--no-report", "-q")
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for code, _, err in results if code != 0)
    assert loser.count("\n") == 1 and loser.startswith("Error: ") and "Traceback" not in loser
    assert "another cnncli process is training in it" in loser or "not empty" in loser
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3  # the winner's files, whole and not interleaved
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_resume_in_a_folder_another_process_trains_in_is_refused(tmp_path, config):
    out = tmp_path / "run"
    code, _, err = (lambda r: (r.exit_code, r.stdout, r.stderr))(CliRunner().invoke(
        cli, ["train", str(config), "--out", str(out), "--epochs", "1", "-q", "--no-report"]))
    assert code == 0, err
    proc = cnncli("train", "--resume", out / "last.safetensors", "--epochs", "200", "-q",
                  "--no-report")
    try:
        deadline = time.monotonic() + 60
        while len((out / "metrics.jsonl").read_text().splitlines()) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        result = CliRunner().invoke(cli, ["train", "--resume", str(out / "last.safetensors"),
                                          "--epochs", "300", "-q"])
        assert result.exit_code == 1
        assert "another cnncli process is training in it" in result.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_a_run_killed_before_its_summary_gets_it_from_resume(tmp_path, config):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(config), "--out", str(out), "-q",
                                      "--no-report"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").unlink()  # as a SIGKILL between the last checkpoint and it
    result = CliRunner().invoke(cli, ["train", "--resume", str(out / "last.safetensors"), "-q",
                                      "--no-report"])
    assert result.exit_code == 0, result.stderr
    again = json.loads((out / "summary.json").read_text())
    assert again["test"] == summary["test"] and again["epochs"] == summary["epochs"]
    # with its summary there, the run is finished
    result = CliRunner().invoke(cli, ["train", "--resume", str(out / "last.safetensors")])
    assert result.exit_code == 2 and "already finished its 1 epochs" in result.stderr


def test_temporary_files_a_killed_run_left_are_cleaned_by_the_next_session(tmp_path, config):
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["train", str(config), "--out", str(out), "-q",
                                    "--no-report"]).exit_code == 0
    dead = 999_999  # a pid that is not running
    left = [out / f".last.safetensors.{HOST}-{dead}.0123abcd.tmp",
            out / f".metrics.csv.{HOST}-{dead}.4567cdef.tmp"]
    mine = out / ".my-notes.tmp"  # not cnncli's name: never touched
    for p in (*left, mine):
        p.write_bytes(b"x" * 1000)
        os.utime(p, (time.time() - 600, time.time() - 600))
    result = CliRunner().invoke(cli, ["train", "--resume", str(out / "last.safetensors"),
                                      "--epochs", "2", "-q", "--no-report"])
    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in left) and mine.exists()


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, config):
    script = (f"mount -t tmpfs -o size=48k none {tmp_path / 'small'} && "
              f"{sys.executable} -m cnncli.cli train {config} --out {tmp_path / 'small' / 'run'}"
              " -q --no-report")
    (tmp_path / "small").mkdir()
    done = in_mount_namespace(script)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip()
    assert line.count("\n") == 0 and "No space left on device" in line
    assert "/run/" in line and ("safetensors" in line or "config.yaml" in line or
                                "metrics" in line), line


def test_out_of_memory_always_says_what_ran_out():
    group = CnnGroup()

    @group.command()
    def grow() -> None:
        raise MemoryError()

    result = CliRunner().invoke(group, ["grow"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: out of memory: an allocation failed"


def test_a_closed_pipe_ends_quietly(tmp_path, config):
    """`cnncli predict ... | head -2` on thousands of images: no 'Broken pipe', exit 141."""
    from synthetic_mnist import make_digits

    from cnncli.data.idx import encode_idx

    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["train", str(config), "--out", str(out), "-q",
                                    "--no-report"]).exit_code == 0
    images, _ = make_digits(5000, seed=3)
    (tmp_path / "many-idx3-ubyte").write_bytes(encode_idx(images))  # ~200 KB of output
    shell = (f"{sys.executable} -m cnncli.cli predict {out} {tmp_path / 'many-idx3-ubyte'} "
             "--raw | head -2; echo \"${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr.strip() == "141", done.stderr


def test_ctrl_c_while_the_command_line_is_still_starting_is_not_a_traceback():
    """SIGINT while `cnncli` imports its own modules: 'Interrupted.', exit 130."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-c",
                             "from cnncli.entry import main; main()", "summary", "lenet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while "click.core" not in seen:  # click has loaded: cnncli.cli's imports are under way
        line = proc.stderr.readline()
        assert line and time.monotonic() < deadline, seen[-500:]
        seen += line
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    code = proc.wait(timeout=60)
    assert "Traceback" not in rest, rest[-1000:]
    if code != 0:  # the signal came while cnncli was still starting (else it had finished)
        assert code == 130 and rest.rstrip().endswith("Interrupted.")
