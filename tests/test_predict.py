"""`cnncli predict` end to end: a photo-like picture of a digit (dark ink on light, noisy
paper, large and off-centre) is prepared the way MNIST was made and predicted right by a
network trained on digit-like images; bad inputs get one line each and the rest still run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic_mnist import _BOXES, _SEGMENTS, write_idx_folder

from cnncli.cli import cli

CONFIG = """\
model:
  layers:
    - {type: conv, filters: 8, kernel: 5, padding: same}
    - {type: relu}
    - {type: maxpool, size: 2}
    - {type: conv, filters: 16, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 2}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: adam, lr: 0.003}
train: {epochs: 6, batch_size: 32, val_split: 0.1}
data: {dataset: idx, augment: {translate: 2, scale: [0.9, 1.3]}}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on seven-segment digits (tests/synthetic_mnist.py)."""
    tmp = tmp_path_factory.mktemp("predict")
    data = write_idx_folder(tmp / "digits", train=3000)
    (tmp / "c.yaml").write_text(CONFIG)
    result = CliRunner().invoke(cli, ["train", str(tmp / "c.yaml"), "--data-dir", str(data),
                                      "--out", str(tmp / "run"), "-q", "--no-report"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.9
    return tmp / "run"


def photo_of(digit: int, path: Path, seed: int) -> Path:
    """A 400x300 'photo': light paper with noise, the digit's segments drawn in dark ink,
    about 200 pixels tall and away from the centre."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    paper = rng.normal(225, 8, (300, 400)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(paper)
    draw = ImageDraw.Draw(img)
    k, top, left = 12, 40 + 10 * seed, 60 + 20 * seed  # 16x10 glyph cells of 12x12 pixels
    for seg in _SEGMENTS[digit]:
        r0, r1, c0, c1 = _BOXES[seg]
        draw.rectangle([left + c0 * k, top + r0 * k, left + c1 * k - 1, top + r1 * k - 1],
                       fill=int(rng.integers(20, 60)))
    img.save(path)
    return path


@pytest.mark.parametrize("digit", [7, 4, 2])
def test_a_photo_of_a_digit_is_predicted_right(model, tmp_path, digit):
    photo = photo_of(digit, tmp_path / f"{digit}.png", seed=digit % 3)
    result = CliRunner().invoke(cli, ["predict", str(model), str(photo), "--json"])
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["top"][0]["class"] == digit, row
    assert len(row["top"]) == 3 and row["top"][0]["probability"] >= row["top"][1]["probability"]


def test_bad_inputs_get_one_line_each_and_the_others_still_run(model, tmp_path):
    good = photo_of(7, tmp_path / "seven.png", seed=1)
    empty = tmp_path / "empty.png"
    from PIL import Image

    Image.fromarray(np.full((50, 50), 200, np.uint8)).save(empty)  # no ink at all
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    result = CliRunner().invoke(cli, ["predict", str(model), str(good), str(empty), str(text),
                                      str(tmp_path / "missing.png")])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{good}: 7 ")
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("Error: ") for e in errors)
    assert "no ink found" in errors[0] and str(text) in errors[1]
    assert "missing.png" in errors[2]


def test_show_draws_the_28x28_the_network_saw(model, tmp_path):
    photo = photo_of(7, tmp_path / "seven.png", seed=2)
    result = CliRunner().invoke(cli, ["predict", str(model), str(photo), "--show"])
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and len(lines) == 1 + 30  # the result, then a framed 28x28
    assert all(len(line) <= 80 for line in lines[1:])  # the preview (the path is yours)
