"""plots.py and probe.py: each picture is a real, non-blank PNG with the expected panels, and
the arrays behind it are exactly the inputs (the feature maps are the network's activations)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncli.data.batches import to_batch
from cnncli.errors import DataError
from cnncli.network import build_model
from cnncli.probe import layer_outputs

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402  (Pillow comes with matplotlib)

from cnncli import plots  # noqa: E402

NAMES = [str(i) for i in range(10)]


def check_png(drawn: plots.Drawn, path: Path, min_px: int = 300) -> np.ndarray:
    """The file exists, holds drawn.png, decodes, has a sensible size and is not blank."""
    assert drawn.path == path and path.read_bytes() == drawn.png
    with Image.open(io.BytesIO(drawn.png)) as im:
        assert im.format == "PNG"
        im.load()
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    height, width = pixels.shape
    assert drawn.size_px == (width, height)
    assert min_px <= width <= 4000 and min_px <= height <= 4000, (width, height)
    assert pixels.std() > 10, "the picture is (nearly) blank"
    return pixels


def history(n: int = 6, val: bool = True) -> list[dict]:
    return [{"epoch": e, "lr": 0.1 / e, "train_loss": 1.0 / e, "train_acc": 1 - 0.5 / e,
             "val_loss": 1.2 / e if val else None, "val_acc": (1 - 0.6 / e) if val else None,
             "seconds": 2.0, "images_per_s": 1000.0} for e in range(1, n + 1)]


def test_curves_three_panels_and_the_arrays_are_the_history(tmp_path: Path) -> None:
    rows = history()
    rows[2]["val_acc"] = 0.999  # the best epoch is 3, not the last
    drawn = plots.plot_curves(rows, tmp_path / "curves.png")
    check_png(drawn, tmp_path / "curves.png")
    assert drawn.panels == 3
    for key in plots.CURVE_FIELDS:
        np.testing.assert_array_equal(drawn.arrays[key], [r[key] for r in rows])


def test_curves_without_validation_draw_gaps_not_errors(tmp_path: Path) -> None:
    drawn = plots.plot_curves(history(4, val=False), tmp_path / "c.png")
    check_png(drawn, tmp_path / "c.png")
    assert np.isnan(drawn.arrays["val_acc"]).all() and drawn.panels == 3


def test_curves_refuse_an_empty_or_incomplete_history() -> None:
    with pytest.raises(DataError, match="no epochs to plot"):
        plots.plot_curves([], None)
    row = history(1)[0]
    del row["lr"]
    with pytest.raises(DataError, match="every row needs a number for 'lr'"):
        plots.plot_curves([row], None)


def test_confusion_heat_map_two_panels_and_its_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cm = np.diag(rng.integers(80, 120, 10)) + rng.integers(0, 3, (10, 10)) * (1 - np.eye(10,
                                                                                     dtype=int))
    drawn = plots.plot_confusion(cm, NAMES, tmp_path / "cm.png")
    check_png(drawn, tmp_path / "cm.png")
    assert drawn.panels == 2 and drawn.arrays["cm"] is cm
    with pytest.raises(DataError, match="square"):
        plots.plot_confusion(np.zeros((3, 4)), NAMES, None)
    with pytest.raises(DataError, match="10 classes need 10 class names, received 3"):
        plots.plot_confusion(cm, ["a", "b", "c"], None)


def test_mistakes_are_the_most_confident_wrong_ones_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 28, 28)).astype(np.uint8)
    true = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    pred = np.array([0, 7, 2, 5, 4, 9, 6, 1, 8, 9, 6, 1])     # wrong at 1, 3, 5, 7, 10
    prob = np.array([.9, .6, .8, .99, .7, .95, .5, .6, .9, .8, .4, .9])
    drawn = plots.plot_mistakes(images, true, pred, prob, NAMES, tmp_path / "m.png", n=4)
    check_png(drawn, tmp_path / "m.png", min_px=200)  # one row of four
    np.testing.assert_array_equal(drawn.arrays["index"], [3, 5, 1, 7])  # .99 .95 .6 .6 (stable)
    np.testing.assert_array_equal(drawn.arrays["images"], images[[3, 5, 1, 7]])
    np.testing.assert_array_equal(drawn.arrays["prob"], [.99, .95, .6, .6])
    assert drawn.panels == 4
    # (N, K) probabilities give the same choice
    full = np.full((12, 10), 0.0)
    full[np.arange(12), pred] = prob
    again = plots.plot_mistakes(images, true, pred, full, NAMES, None, n=25)
    np.testing.assert_array_equal(again.arrays["index"], [3, 5, 1, 7, 10])
    assert again.panels == 5


def test_mistakes_when_there_are_none_is_one_panel_saying_so(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    labels = np.array([1, 2, 3])
    drawn = plots.plot_mistakes(images, labels, labels, np.ones(3), NAMES, tmp_path / "m.png")
    check_png(drawn, tmp_path / "m.png", min_px=100)
    assert drawn.panels == 1 and drawn.arrays["index"].size == 0


def test_filters_one_mosaic_and_colour_bar_per_layer_with_shared_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    conv1 = rng.normal(0, 0.3, (6, 1, 5, 5)).astype(np.float32)
    conv2 = rng.normal(0, 0.1, (16, 6, 5, 5)).astype(np.float32)
    drawn = plots.plot_filters([("conv1", conv1), ("conv2", conv2)], tmp_path / "f.png")
    check_png(drawn, tmp_path / "f.png")
    assert drawn.panels == 4
    assert drawn.arrays["conv1"] is conv1 and drawn.arrays["conv2"] is conv2
    assert float(drawn.arrays["conv1 scale"]) == float(np.abs(conv1).max())
    with pytest.raises(DataError, match=r"expected \(F, C, KH, KW\)"):
        plots.plot_filters([("dense", np.zeros((10, 84)))], None)


def test_mosaic_lays_tiles_out_with_one_pixel_gaps() -> None:
    tiles = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    m = plots._mosaic(tiles)
    assert m.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_array_equal(m[0:2, 3:5], tiles[0, 1])
    np.testing.assert_array_equal(m[3:5, 6:8], tiles[1, 2])
    assert np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()


SMALL = [{"type": "conv", "filters": 3, "kernel": 3}, {"type": "relu"},
         {"type": "maxpool", "size": 2}, {"type": "flatten"}, {"type": "dense", "units": 40},
         {"type": "relu"}, {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 10}]


def test_feature_maps_are_the_networks_activations(tmp_path: Path) -> None:
    net = build_model((1, 12, 12), SMALL, rng=np.random.default_rng(3))
    image = np.random.default_rng(4).integers(0, 256, (12, 12)).astype(np.uint8)
    maps = layer_outputs(net, image)
    assert [name for name, _ in maps] == [
        "layers.0 conv", "layers.1 relu", "layers.2 maxpool", "layers.3 flatten",
        "layers.4 dense", "layers.5 relu", "layers.6 dropout", "layers.7 dense"]
    # conv1 by hand: a 3x3 correlation of the normalised image, plus the bias
    x = to_batch(image[None])[0, :, :, 0]                               # (12, 12)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3))       # (10, 10, 3, 3)
    w, b = net.layers[0].params["weight"], net.layers[0].params["bias"]
    by_hand = np.einsum("ijkl,fkl->fij", windows, w[:, 0]) + b[:, None, None]
    np.testing.assert_allclose(maps[0][1], by_hand, rtol=1e-5, atol=1e-5)
    # the last map is the network's output for this image
    np.testing.assert_allclose(maps[-1][1], net.forward(to_batch(image[None]))[:, 0], rtol=1e-6)

    drawn = plots.plot_feature_maps(image, maps, tmp_path / "fm.png")
    check_png(drawn, tmp_path / "fm.png")
    assert drawn.arrays["input"] is image
    for name, act in maps:
        assert drawn.arrays[name] is act
    # input 1; conv, relu, maxpool (= flatten), dense 40, relu (= dropout) 2 each; dense 10 bars
    assert drawn.panels == 1 + 2 * 5 + 1


def test_feature_maps_refuse_odd_shapes() -> None:
    with pytest.raises(DataError, match=r"expected \(C, H, W\) or \(D,\)"):
        plots.plot_feature_maps(np.zeros((4, 4), np.uint8), [("x", np.zeros((2, 2)))], None)
    with pytest.raises(DataError, match="the image is"):
        layer_outputs(build_model((1, 12, 12), SMALL), np.zeros((10, 10), np.uint8))


def test_importing_the_new_modules_loads_neither_matplotlib_nor_pillow() -> None:
    code = ("import sys, cnncli.images, cnncli.plots, cnncli.probe, cnncli.report, "
            "cnncli.runs_table; print(sorted(m for m in ('matplotlib', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
