"""Pictures of a run, one PNG each, drawn with matplotlib's Agg renderer (no display needed).

    drawn = plot_curves(history, "runs/x/curves.png")
    drawn.png            # the PNG's bytes (the report embeds them)
    drawn.panels         # axes on the figure, colour bars included
    drawn.arrays         # the arrays behind the picture, by name: exactly what was drawn

Every function takes plain arrays (no network, no files) and returns a Drawn, so a test can
check that what is drawn is what was given (the feature maps are the network's activations).
`path=None` draws without writing a file. matplotlib is imported inside the functions and
pyplot is never used: no global figure state, no backend switching, nothing at import time.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import DataError

DPI = 100
#: colours: train and validation curves, and the marker of the best epoch
TRAIN, VAL, BEST = "#1f77b4", "#d62728", "#2ca02c"
DIGITS = "gray_r"        # digit images: dark ink on white, as on paper
DIVERGING = "RdBu_r"     # weights and signed activations: red > 0, blue < 0, white at 0
SEQUENTIAL = "magma"     # activations >= 0 (after ReLU or pooling)
GAP = "#c8c8c8"          # the lines between tiles of a mosaic


@dataclass
class Drawn:
    """One picture: where it was written, its PNG bytes, its axes count and its data."""

    path: Path | None
    png: bytes
    panels: int
    size_px: tuple[int, int]                      # (width, height) of the PNG
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# -- learning curves -------------------------------------------------------------------------

CURVE_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None
                ) -> Drawn:
    """Metrics rows (one per epoch; see checkpoint.METRIC_FIELDS) -> three panels: loss,
    accuracy (%), learning rate. Validation values may be None (drawn as gaps); the epoch
    with the best validation accuracy is marked. arrays: each of CURVE_FIELDS as float64
    (N,), None as NaN, in the rows' order."""
    if not history:
        raise DataError("no epochs to plot: the history is empty")
    arrays = {}
    for key in CURVE_FIELDS:
        try:
            arrays[key] = np.array([np.nan if row[key] is None else row[key] for row in history],
                                   dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"history: every row needs a number for {key!r}") from None
    fig = _figure(12.0, 3.6)
    epoch = arrays["epoch"]
    has_val = bool(np.isfinite(arrays["val_acc"]).any())
    best = int(np.nanargmax(arrays["val_acc"])) if has_val else None
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for ax, what, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
        ax.plot(epoch, arrays[f"train_{what}"] * scale, "o-", color=TRAIN, ms=3, label="train")
        if has_val:
            ax.plot(epoch, arrays[f"val_{what}"] * scale, "s-", color=VAL, ms=3,
                    label="validation")
        if best is not None:
            ax.axvline(epoch[best], color=BEST, ls=":", lw=1.2, label=f"best (epoch "
                                                                     f"{int(epoch[best])})")
        ax.legend(fontsize=8)
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="mean loss")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    if best is not None:
        ax_acc.annotate(f"{arrays['val_acc'][best] * 100:.2f}%", (epoch[best],
                        arrays["val_acc"][best] * 100), textcoords="offset points",
                        xytext=(4, -12), fontsize=8, color=BEST)
    ax_lr.plot(epoch, arrays["lr"], "o-", color="#555555", ms=3)
    ax_lr.set(title="Learning rate", xlabel="epoch", ylabel="lr at the epoch's end")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        _integer_ticks(ax)
    return _finish(fig, path, arrays)


# -- confusion matrix ------------------------------------------------------------------------


def plot_confusion(cm: np.ndarray, class_names: Sequence[str],
                   path: str | os.PathLike[str] | None) -> Drawn:
    """cm: (K, K) counts, rows true, columns predicted -> a heat map: the diagonal in blue by
    its share of the row (recall), the mistakes in orange by count (scaled to the largest
    mistake, so a single confusion shows), every non-zero count written in its cell (K <= 30).
    Two panels: the matrix and the mistakes' colour bar. arrays: 'cm' (as given)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise DataError(f"confusion matrix: expected a square (K, K) array, received shape "
                        f"{cm.shape}")
    k = cm.shape[0]
    names = _names(class_names, k)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros(cm.shape, np.float64), where=totals > 0)
    diagonal = np.eye(k, dtype=bool)
    off = np.where(diagonal | (cm == 0), np.nan, cm.astype(np.float64))   # mistakes only
    side = min(12.0, 2.5 + 0.55 * k)
    fig = _figure(side + 1.2, side)
    ax = fig.subplots()
    ax.imshow(np.where(diagonal, share, np.nan), cmap="Blues", vmin=0.0, vmax=1.0)
    worst = float(np.nanmax(off)) if np.isfinite(off).any() else 1.0
    mistakes = ax.imshow(off, cmap="Oranges", vmin=0.0, vmax=worst)
    if k <= 30:
        rows, cols = np.nonzero(cm)
        for r, c in zip(rows, cols, strict=True):
            dark = share[r, c] > 0.5 if r == c else cm[r, c] > 0.6 * worst
            ax.text(c, r, str(int(cm[r, c])), ha="center", va="center",
                    fontsize=8 if k <= 12 else 6, color="white" if dark else "black")
    ax.set_xticks(range(k), names, rotation=0 if k <= 12 else 90)
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    total = int(cm.sum())
    accuracy = np.trace(cm) / total * 100 if total else 0.0
    ax.set_title(f"Confusion matrix: {total:,} images, {accuracy:.2f}% correct")
    fig.colorbar(mistakes, ax=ax, fraction=0.046, pad=0.04, label="mistakes (images)")
    return _finish(fig, path, {"cm": cm})


# -- most confident mistakes -----------------------------------------------------------------


def plot_mistakes(images: np.ndarray, true: np.ndarray, pred: np.ndarray, prob: np.ndarray,
                  class_names: Sequence[str], path: str | os.PathLike[str] | None,
                  n: int = 25) -> Drawn:
    """The n images the model got wrong with the highest confidence, most confident first.

    images: uint8 (N, H, W); true, pred: (N,) class indices; prob: (N,) the probability
    given to the predicted class, or (N, K) all class probabilities. One panel per mistake
    shown (one panel saying so when there is none). arrays: 'index' (M,) into the inputs,
    'images' (M, H, W), 'true', 'pred', 'prob' (M,): the inputs at those indices."""
    images, true, pred = np.asarray(images), np.asarray(true), np.asarray(pred)
    prob = np.asarray(prob, dtype=np.float64)
    if images.ndim != 3:
        raise DataError(f"mistakes: expected images (N, H, W), received shape {images.shape}")
    count = images.shape[0]
    if true.shape != (count,) or pred.shape != (count,) or prob.shape[:1] != (count,):
        raise DataError(f"mistakes: {count} images need (N,) true and pred and (N,) or (N, K) "
                        f"prob, received {true.shape}, {pred.shape}, {prob.shape}")
    if prob.ndim == 2:
        prob = prob[np.arange(count), pred]                 # (N, K) -> (N,) of the prediction
    k = max(int(true.max(initial=0)), int(pred.max(initial=0))) + 1
    names = _names(class_names, max(k, len(class_names)))
    wrong = np.flatnonzero(true != pred)
    order = wrong[np.argsort(-prob[wrong], kind="stable")][: max(n, 0)]
    arrays = {"index": order, "images": images[order], "true": true[order],
              "pred": pred[order], "prob": prob[order]}
    cols = min(len(order), 5) or 1
    rows = max(1, math.ceil(len(order) / cols))
    width, height = 1.9 * cols + 0.4, 2.15 * rows + 0.5
    fig = _figure(width, height, layout=None)  # fixed margins: a layout engine doubled the time
    fig.subplots_adjust(left=0.2 / width, right=1 - 0.2 / width, bottom=0.1 / height,
                        top=1 - 0.85 / height, wspace=0.12, hspace=0.55 / 1.6)
    if len(order) == 0:
        ax = fig.subplots()
        ax.text(0.5, 0.5, f"no mistakes among {count:,} images", ha="center", va="center")
        ax.set_axis_off()
        return _finish(fig, path, arrays)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, i in zip(axes, order, strict=False):
        ax.imshow(images[i], cmap=DIGITS, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"true {names[int(true[i])]}, said {names[int(pred[i])]}\n"
                     f"{prob[i] * 100:.1f}% sure  (#{int(i)})", fontsize=8, color="#8b0000")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(order):]:
        fig.delaxes(ax)
    fig.suptitle(f"The {len(order)} most confident mistakes ({len(wrong):,} of {count:,} "
                 "images wrong)", fontsize=11)
    return _finish(fig, path, arrays)


# -- filters and feature maps ----------------------------------------------------------------


def plot_filters(layers: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike[str] | None
                 ) -> Drawn:
    """Learned conv kernels, one mosaic per layer with a colour bar: weight (F, C, KH, KW).

    A single-channel layer (conv1) shows its F kernels as small images side by side (8 to a
    row); a deeper one a grid of filters x input channels (the longer side across).
    Colours: a diverging map with one symmetric scale per layer (-m..m, m = max |w|), so
    kernels of one layer compare directly and white means 0. Two panels per layer.
    arrays: each layer's weight under its name (as given), and '<name> scale' (m)."""
    if not layers:
        raise DataError("no conv layers to draw")
    mosaics, titles, arrays = [], [], {}
    for name, weight in layers:
        w = np.asarray(weight)
        if w.ndim != 4:
            raise DataError(f"filters {name!r}: expected (F, C, KH, KW), received shape "
                            f"{w.shape}")
        f, c, kh, kw = w.shape
        # (rows, cols, KH, KW), laid out wide: the longer of filters / channels runs across
        tiles = _grid(w[:, 0], 8) if c == 1 else w.transpose(1, 0, 2, 3) if c <= f else w
        scale = float(np.abs(w).max()) or 1.0
        mosaics.append((name, _mosaic(tiles), scale, "map"))
        titles.append(f"{name}: {f} filters {kh}x{kw}"
                      + (f" x {c} input channels" if c > 1 else ""))
        arrays[name] = weight
        arrays[f"{name} scale"] = np.array(scale)
    fig, grid = _stacked(mosaics, left=0.75, bottom=0.6)  # room for the tick labels
    for (name, mosaic, scale, _), title, spec in zip(mosaics, titles, grid, strict=True):
        ax = fig.add_subplot(spec[0])
        image = ax.imshow(mosaic, cmap=_cmap(DIVERGING), vmin=-scale, vmax=scale,
                          interpolation="nearest")
        ax.set_title(title, fontsize=10, loc="left")
        f, c = np.shape(arrays[name])[:2]
        axes_names = None if c == 1 else ("filter", "input channel") if c <= f else \
            ("input channel", "filter")
        _tile_ticks(ax, mosaic, np.shape(arrays[name])[2:], axes_names)
        fig.colorbar(image, cax=fig.add_subplot(spec[1]), label="weight")
    return _finish(fig, path, arrays)


def plot_feature_maps(input_image: np.ndarray,
                      activations: Sequence[tuple[str, np.ndarray]],
                      path: str | os.PathLike[str] | None) -> Drawn:
    """One input and what every layer made of it, top to bottom.

    input_image: (H, W) as the network saw it (uint8 0..255). activations: (name, array)
    per layer, in order: (C, H, W) is drawn as one tile per channel (8 to a row), (D,) as
    bars when D <= 32, else as a block of cells 40 to a row. One colour scale per layer:
    diverging and symmetric when it has negative values, else 0..max. Titles give the name,
    the shape and the range. A layer whose output holds the same values as the previous
    one's (flatten; dropout at inference) is named in that panel's title instead of getting
    its own. Panels: one for the input, then per drawn layer one, plus a colour bar unless
    it is drawn as bars. arrays: 'input' and every activation under its name, as given."""
    img = np.asarray(input_image)
    if img.ndim != 2:
        raise DataError(f"feature maps: expected the input as (H, W), received shape "
                        f"{img.shape}")
    arrays: dict[str, np.ndarray] = {"input": input_image}
    rows: list[list[Any]] = [["input", img, 255.0, "image", []]]  # name, shown, scale, kind, same
    previous = None
    for name, act in activations:
        a = np.asarray(act)
        if a.ndim not in (1, 3) or a.size == 0:
            raise DataError(f"feature maps {name!r}: expected (C, H, W) or (D,), received "
                            f"shape {a.shape}")
        if name in arrays:
            raise DataError(f"feature maps: two layers are named {name!r}")
        arrays[name] = act
        if previous is not None and previous.size == a.size and \
                np.array_equal(previous.ravel(), a.ravel()):
            rows[-1][4].append(name)
            continue
        previous = a
        if a.ndim == 3:
            rows.append([name, _mosaic(_grid(a, 8)), 0.0, "map", []])
        elif a.size <= 32:
            rows.append([name, a, 0.0, "bars", []])
        else:
            cols = 40
            cells = np.full(-(-a.size // cols) * cols, np.nan)
            cells[: a.size] = a
            rows.append([name, cells.reshape(-1, cols), 0.0, "map", []])  # (D,) -> (D/40, 40)
    fig, grid = _stacked([(n, m, sc, k) for n, m, sc, k, _ in rows])
    for (name, shown, _, kind, same), spec in zip(rows, grid, strict=True):
        a = np.asarray(arrays[name])
        shape = " x ".join(str(d) for d in a.shape)
        ax = fig.add_subplot(spec[0])
        if kind != "bars":
            ax.set_xticks([])
            ax.set_yticks([])
        if kind == "image":
            ax.imshow(shown, cmap=DIGITS, vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"input  {shape}", fontsize=10, loc="left")
            continue
        also = "".join(f"  = {n} ({' x '.join(map(str, np.shape(arrays[n])))})" for n in same)
        ax.set_title(f"{name}  {shape}   [min {a.min():.3g}, max {a.max():.3g}]{also}",
                     fontsize=10, loc="left")
        signed = bool((a < 0).any())
        if kind == "bars":
            ax.bar(np.arange(a.size), a, color=np.where(a >= 0, VAL, TRAIN))
            ax.set_xticks(range(a.size))
            ax.axhline(0, color="black", lw=0.6)
            ax.tick_params(labelsize=8)
            continue
        scale = float(np.abs(a).max()) or 1.0
        image = ax.imshow(shown, cmap=_cmap(DIVERGING if signed else SEQUENTIAL),
                          vmin=-scale if signed else 0.0, vmax=scale, interpolation="nearest")
        fig.colorbar(image, cax=fig.add_subplot(spec[1]))
    return _finish(fig, path, arrays)


# -- helpers ---------------------------------------------------------------------------------


def _figure(width_in: float, height_in: float, layout: str | None = "constrained") -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout=layout)


def _finish(fig: Any, path: str | os.PathLike[str] | None, arrays: dict[str, np.ndarray]
            ) -> Drawn:
    """Count the axes, render the PNG, write it (atomically) when a path is given."""
    panels = len(fig.axes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    png = buf.getvalue()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    out = None
    if path is not None:
        from cnncli.checkpoint import write_atomic

        out = Path(path)
        write_atomic(out, png)
    return Drawn(path=out, png=png, panels=panels, size_px=(width, height), arrays=arrays)


def _names(class_names: Sequence[str], k: int) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) < k:
        raise DataError(f"{k} classes need {k} class names, received {len(names)}")
    return names


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=GAP)


def _grid(maps: np.ndarray, per_row: int) -> np.ndarray:
    """(T, h, w) tiles -> (rows, cols, h, w) with cols = min(T, per_row), padded with NaN."""
    t = maps.shape[0]
    cols = min(t, per_row)
    rows = math.ceil(t / cols)
    out = np.full((rows * cols,) + maps.shape[1:], np.nan)
    out[:t] = maps
    return out.reshape((rows, cols) + maps.shape[1:])


def _mosaic(tiles: np.ndarray) -> np.ndarray:
    """(rows, cols, h, w) -> (rows*(h+1)-1, cols*(w+1)-1): tiles with one-pixel NaN gaps."""
    r, c, h, w = tiles.shape
    padded = np.full((r, c, h + 1, w + 1), np.nan)
    padded[:, :, :h, :w] = tiles
    return padded.transpose(0, 2, 1, 3).reshape(r * (h + 1), c * (w + 1))[:-1, :-1]


def _tile_ticks(ax: Any, mosaic: np.ndarray, hw: tuple[int, ...],
                axes_names: tuple[str, str] | None) -> None:
    """Number the tiles along x, and along y for a grid (axes_names: (x label, y label));
    a single row of single-channel kernels (axes_names None) is numbered along x only."""
    grid = axes_names is not None
    h, w = int(hw[0]), int(hw[1])
    cols = (mosaic.shape[1] + 1) // (w + 1)
    rows = (mosaic.shape[0] + 1) // (h + 1)
    ax.tick_params(length=0)
    if not grid and rows > 1:  # single-channel kernels wrapped over rows: no column numbers
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.set_xticks([(w + 1) * i + (w - 1) / 2 for i in range(cols)], range(cols), fontsize=7)
    if grid:
        ax.set_yticks([(h + 1) * i + (h - 1) / 2 for i in range(rows)], range(rows),
                      fontsize=7)
        ax.set(xlabel=axes_names[0], ylabel=axes_names[1])
    else:
        ax.set_yticks([])


def _stacked(rows: Sequence[tuple[str, np.ndarray, float, str]], left: float = 0.6,
             bottom: float = 0.25) -> tuple[Any, list[Any]]:
    """A figure with one row per mosaic (height by its aspect) and a thin colour-bar column.

    Rows of kind 'image' (a single picture) are at most 1.8 in high, bar charts 1.6 in; each
    row has 0.45 in above it for its title. Margins are fixed in inches (left, bottom)
    rather than computed by a layout engine, which took 40% of the drawing time."""
    width = 10.0
    plot = [1.6 if kind == "bars" else
            min(1.8 if kind == "image" else 4.0, max(0.9, 8.4 * m.shape[0] / m.shape[1]))
            for _, m, _, kind in rows]
    gap = 0.45                                                        # inches, for titles
    height = sum(plot) + gap * len(rows) + bottom
    fig = _figure(width, height, layout=None)
    gs = fig.add_gridspec(len(rows), 2, width_ratios=[40, 1], height_ratios=plot,
                          left=left / width, right=1 - 0.75 / width, bottom=bottom / height,
                          top=1 - gap / height, hspace=gap / (sum(plot) / len(rows)),
                          wspace=0.03)
    return fig, [(gs[i, 0], gs[i, 1]) for i in range(len(rows))]


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
