"""What a newcomer's first hour trips on: positional configs, switching a section's type with
--set, the preset list, eval of a run folder or of a config by mistake, --json everywhere,
and output that fits 80 columns."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from synthetic_mnist import write_idx_folder

import cnncli
from cnncli.cli import cli
from cnncli.cli.output import epoch_header, epoch_line
from cnncli.config import load_config


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_a_preset_may_be_the_first_argument():
    code, out, _ = run("summary", "lenet")
    assert code == 0 and "total parameters: 61,706" in out
    assert run("config", "show", "mlp")[1] == run("config", "show", "--config", "mlp")[1]
    code, _, err = run("summary", "lenet", "--config", "mlp")
    assert code == 2 and "two configs given" in err


def test_train_without_a_config_names_both_ways_to_give_one():
    code, _, err = run("train")
    assert code == 2 and "cnncli train lenet" in err and "--config" in err


def test_setting_a_sections_type_drops_the_old_types_keys_and_says_so():
    cfg = load_config("lenet", ["optimizer.type=sgd"])
    assert cfg.run.optimizer.model_dump() == {"type": "sgd", "lr": 0.01, "momentum": 0.0,
                                              "nesterov": False, "weight_decay": 0.0}
    (note,) = cfg.notes
    assert note.startswith("--set optimizer.type=sgd: optimizer switched from adam to sgd, "
                           "dropping adam's lr=0.001, weight_decay=0.05")
    # a key set by an earlier override survives the switch
    cfg = load_config("lenet", ["optimizer.momentum=0.9", "optimizer.type=sgd"])
    assert cfg.run.optimizer.momentum == 0.9
    cfg = load_config("lenet", ["schedule.type=constant"])
    assert cfg.run.schedule.type == "constant" and "dropping cosine's min_lr=0.0" in cfg.notes[0]
    # the same type again changes nothing and says nothing
    assert load_config("lenet", ["optimizer.type=adam"]).notes == ()


def test_the_note_is_printed_by_train_and_config_show():
    code, out, err = run("config", "show", "lenet", "--set", "optimizer.type=sgd")
    assert code == 0 and "switched from adam to sgd" in err and "type: sgd" in out


def test_a_key_of_another_type_shows_the_one_line_fix():
    code, _, err = run("config", "show", "lenet", "--set", "optimizer.momentum=0.9")
    assert code == 2
    assert ("momentum is a setting of sgd, not adam: switch with --set "
            "'optimizer={type: sgd, momentum: 0.9}'") in err
    # and the fix it shows works
    assert run("config", "show", "lenet", "--set", "optimizer={type: sgd, momentum: 0.9}")[0] == 0


def _comment(preset: str, key: str) -> str:
    """A preset file's own `# key: ...` line, read here independently of cnncli."""
    text = (Path(cnncli.__file__).parent / "configs" / f"{preset}.yaml").read_text()
    return re.search(rf"^# {key}: (.+)$", text, re.M).group(1)


def test_config_list_shows_every_preset_with_its_figures():
    result = CliRunner().invoke(cli, ["config", "list"], env={"COLUMNS": "80"})
    code, out = result.exit_code, result.stdout
    assert code == 0
    presets = sorted(p.stem for p in (Path(cnncli.__file__).parent / "configs").glob("*.yaml"))
    assert {"lenet", "lenet5-classic", "lenet-mse", "mlp", "mnist-best", "fashion"} <= set(presets)
    flat = " ".join(out.split())  # the figures may wrap
    for name in presets:
        assert re.search(rf"^{re.escape(name)}$", out, re.M)
        assert f"accuracy {_comment(name, 'accuracy')}; time {_comment(name, 'time')}" in flat
    assert all(len(line) <= 80 for line in out.splitlines()), out
    code, out, _ = run("config", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(presets)
    assert rows["mlp"]["accuracy"] == _comment("mlp", "accuracy")
    assert rows["lenet"]["description"].startswith("LeNet-5 sizes with modern parts")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of one short epoch on generated digits."""
    tmp = tmp_path_factory.mktemp("run")
    data = write_idx_folder(tmp / "digits")
    code, _, err = run("train", "lenet", "--set", "data.dataset=idx", "--data-dir", data,
                       "--limit", "64", "--epochs", "1", "--out", tmp / "run", "-q")
    assert code == 0, err
    return tmp


def test_eval_of_a_run_folder_uses_its_best_checkpoint_and_says_so(trained):
    data = trained / "digits"
    code, out, err = run("eval", trained / "run", "--data-dir", data)
    assert code == 0, err
    assert f"evaluating {trained / 'run' / 'best.safetensors'}" in err
    code, out, _ = run("eval", trained / "run", "--data-dir", data, "--json")
    assert json.loads(out)["checkpoint"] == str(trained / "run" / "best.safetensors")


def test_eval_of_a_config_file_says_it_is_a_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  layers: [{type: flatten}, {type: dense, units: 10}]\n")
    code, _, err = run("eval", path)
    assert code == 1 and "this is a config, not a checkpoint" in err
    assert f"cnncli train --config {path}" in err


def test_eval_of_an_empty_folder_says_what_it_looked_for(tmp_path):
    code, _, err = run("eval", tmp_path)
    assert code == 1 and "a folder without best.safetensors or last.safetensors" in err


def test_summary_and_gradcheck_speak_json():
    code, out, _ = run("summary", "lenet", "--json")
    data = json.loads(out)
    assert data["total_params"] == 61706 and data["layers"][0]["output_shape"] == [6, 28, 28]
    code, out, _ = run("gradcheck", "--config", "mlp", "--samples", "3", "--json")
    data = json.loads(out)
    assert code == 0 and data["failed"] == 0 and data["checks"][0]["passed"] is True


def test_epoch_lines_are_a_table_of_80_columns():
    row = {"epoch": 12, "lr": 1e-3, "train_loss": 0.0234, "train_acc": 0.9912,
           "val_loss": 0.0345, "val_acc": 0.9901, "seconds": 1234.5, "images_per_s": 123456.7}
    assert len(epoch_header()) <= 80 and len(epoch_line(row, 150)) <= 80
    # every value sits under its heading (right-aligned columns)
    header, line = epoch_header(), epoch_line(row, 150)
    for heading, value in (("val acc", "99.01%"), ("img/s", "123,457"), ("lr", "1.00e-03")):
        assert header.index(heading) + len(heading) == line.index(value) + len(value)


def _screen(columns: int, args: list[str], cwd: Path) -> list[str]:
    """Run `cnncli` on a pseudo-terminal of this width; -> every line it drew (with bar
    redraws split at carriage returns)."""
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.Popen([sys.executable, "-m", "cnncli.cli", *args], stdin=follower,
                            stdout=follower, stderr=follower, cwd=cwd, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # cursor movement
    return [part for line in text.split("\n") for part in line.split("\r") if part.strip()]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("columns", [80, 120])
def test_progress_bar_and_epoch_lines_fit_the_terminal_and_use_its_width(tmp_path, columns):
    data = write_idx_folder(tmp_path / "digits", train=2000)
    lines = _screen(columns, ["train", "lenet", "--set", "data.dataset=idx", "--data-dir",
                              str(data), "--epochs", "2", "--batch-size", "8", "--out",
                              str(tmp_path / "run")], tmp_path)
    # a user's own path is as long as it is: measure the lines with it as one character
    lines = [ln.replace(str(tmp_path), "T") for ln in lines]
    assert lines and all(len(line) <= columns for line in lines), max(lines, key=len)
    bars = [ln for ln in lines if ln.startswith("epoch ") and "%|" in ln and "img/s" in ln]
    assert bars, lines
    for bar in bars:  # loss, accuracy and speed always shown; the bar takes the rest
        assert "loss " in bar and "acc " in bar and len(bar) >= columns - 2, bar
        assert len(bar.split("|")[1]) >= columns - 75, bar
