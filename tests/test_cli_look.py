"""The look commands through the real CLI on a trained run: `plot ...`, `report`, `runs`.

Each picture command writes a real PNG of a plausible size where --out says and prints its
path; bad requests are one-line errors with exit 2; `runs` lists the run with its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from synthetic_mnist import write_idx_folder

from cnncli.cli import cli

CONFIG = """\
model:
  layers:
    - {type: conv, filters: 4, kernel: 5, padding: same}
    - {type: relu}
    - {type: maxpool, size: 2}
    - {type: flatten}
    - {type: dense, units: 10}
train: {epochs: 2, batch_size: 32, val_split: 0.1}
data: {dataset: idx}
"""


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, data folder) of a 2-epoch run on generated digits, without a report."""
    tmp = tmp_path_factory.mktemp("look")
    data = write_idx_folder(tmp / "digits", train=600)
    (tmp / "c.yaml").write_text(CONFIG)
    code, _, err = invoke("train", tmp / "c.yaml", "--data-dir", data, "--out", tmp / "runs" /
                          "r1", "-q", "--no-report")
    assert code == 0, err
    return tmp / "runs" / "r1", data


@pytest.mark.parametrize("picture,extra,min_size", [
    ("curves", [], (400, 200)),
    ("confusion", [], (300, 300)),
    ("mistakes", [], (300, 300)),
    ("filters", [], (100, 100)),
    ("activations", ["--index", "3"], (200, 200)),
])
def test_each_picture_is_a_png_where_out_says(run, tmp_path, picture, extra, min_size):
    folder, _ = run
    code, out, err = invoke("plot", picture, folder, "--out", tmp_path / "pics", *extra)
    assert code == 0, err
    path = Path(out.strip())
    assert path == tmp_path / "pics" / f"{picture}.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 5  # something was drawn, not a blank page
    assert not (folder / f"{picture}.png").exists()  # --out, not the run folder


def test_activations_of_the_users_own_image(run, tmp_path):
    folder, _ = run
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a '1'
    Image.fromarray(digit).save(tmp_path / "one.png")
    code, out, err = invoke("plot", "activations", folder, "--image", tmp_path / "one.png",
                            "--out", tmp_path)
    assert code == 0, err
    assert Path(out.strip()) == tmp_path / "activations.png" and Path(out.strip()).is_file()


@pytest.mark.parametrize("args,message", [
    (["--index", "100000"], "--index 100000: the test set has"),
    (["--index", "1", "--image", "x.png"], "give --image or --index, not both"),
])
def test_bad_activation_requests_are_one_line_usage_errors(run, tmp_path, args, message):
    folder, _ = run
    code, out, err = invoke("plot", "activations", folder, "--out", tmp_path, *args)
    assert code == 2 and message in err and "Traceback" not in err + out
    assert not (tmp_path / "activations.png").exists()


def test_report_command_writes_one_self_contained_page(run, tmp_path):
    folder, data = run
    code, out, err = invoke("report", folder, "--out", tmp_path / "rep", "--sample", "2")
    assert code == 0, err
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 5
    assert str(data) in page  # the report names its data: the idx folder it was trained on


def test_runs_lists_the_run_with_its_test_accuracy(run):
    folder, _ = run
    code, out, err = invoke("runs", folder.parent, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["r1"]
    summary = json.loads((folder / "summary.json").read_text())
    assert rows[0]["test_acc"] == pytest.approx(summary["test"]["accuracy"])
