"""Looking inside a trained run: its pictures and its report page, from the run's own files.

    view = open_run("runs/lenet-20261128-101500")      # best weights, config, history
    test = test_results(view, source)                  # the test set, scored once
    draw_curves(view, out)                             # curves.png
    write_report(view, source)                         # report.html (every picture embedded)

A view holds the network built once with the best epoch's weights (the last epoch's when
there is no best), and the checkpoint's normalisation, classes and data identity; the test
set is loaded by that identity (cnncli.data.source). Nothing here prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.checkpoint import Checkpoint, read_checkpoint
from cnncli.config import LoadedConfig, dump_yaml
from cnncli.data.datasets import DataIdentity
from cnncli.data.source import DataSource
from cnncli.errors import CheckpointError, DataError
from cnncli.layers.losses import build_loss
from cnncli.metrics import confusion_matrix, per_class
from cnncli.network import Network, format_summary
from cnncli.training.evaluate import Evaluation, config_of, evaluate, find_checkpoint, model_of
from cnncli.training.folder import BEST, SUMMARY

PICTURES = ("curves", "confusion", "mistakes", "filters", "activations")
REPORT = "report.html"


@dataclass
class RunView:
    """A run (or a lone checkpoint) opened for looking: its model with the chosen weights."""

    checkpoint_path: Path
    ckpt: Checkpoint
    cfg: LoadedConfig
    net: Network
    #: the run folder; None for a checkpoint outside one
    run_dir: Path | None
    history: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.ckpt.classes)

    def out_dir(self, out: str | Path | None) -> Path:
        """Where pictures go: `out`, else the run folder, else the checkpoint's folder."""
        if out is not None:
            return Path(out)
        return self.run_dir if self.run_dir is not None else self.checkpoint_path.parent


def open_run(path: str | Path) -> RunView:
    """A run folder (its best.safetensors, else last.safetensors) or a checkpoint file."""
    ckpt_path = find_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    cfg = config_of(ckpt)
    net = model_of(ckpt, cfg)
    folder = ckpt_path.parent
    is_run = (folder / "config.yaml").is_file() and (folder / "metrics.jsonl").is_file()
    summary: dict[str, Any] = {}
    if is_run and (folder / SUMMARY).is_file():
        try:
            loaded = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
            summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            summary = {}
    # the history the checkpoint carries is the run's up to its epoch; the last checkpoint's
    # is the whole run's, and the curves show the whole run
    history = list(ckpt.history)
    if is_run and (folder / "last.safetensors").is_file() and ckpt_path.name == BEST:
        try:
            history = list(read_checkpoint(folder / "last.safetensors").history)
        except CheckpointError:
            pass
    return RunView(ckpt_path, ckpt, cfg, net, folder if is_run else None, history, summary)


@dataclass
class TestResults:
    """The test set scored once by the view's network."""

    images: np.ndarray  # uint8 (N, H, W)
    evaluation: Evaluation
    seconds: float
    #: the data scored, when not the run's own (`--data-dir OTHER`); None: the run's own
    other_data: DataIdentity | None = None

    @property
    def labels(self) -> np.ndarray:
        return self.evaluation.labels


def test_images(view: RunView, source: DataSource) -> np.ndarray:
    """The run's test images (uint8 (N, H, W)), loaded by the checkpoint's data identity."""
    return source.load(view.cfg.run.data, DataIdentity.from_dict(view.ckpt.data)).test_images


def test_results(view: RunView, source: DataSource, batch_size: int = 1000) -> TestResults:
    """Load the run's test images by the checkpoint's data identity and score them."""
    t0 = time.perf_counter()
    own = DataIdentity.from_dict(view.ckpt.data)
    arrays = source.load(view.cfg.run.data, own)
    from cnncli.data.split import Split

    split = Split(arrays.test_images, arrays.test_labels.astype(np.int64))
    ev = evaluate(view.net, build_loss(view.cfg.run.loss), split, batch_size, view.ckpt.mean,
                  view.ckpt.std)
    other = None if arrays.identity.same_data(own) else arrays.identity
    return TestResults(arrays.test_images, ev, time.perf_counter() - t0, other)


# -- the pictures ------------------------------------------------------------------------------


def draw_curves(view: RunView, out: str | Path | None = None) -> Any:
    """curves.png: loss, accuracy and learning rate per epoch."""
    from cnncli import plots

    return plots.plot_curves(view.history, _target(view, out, "curves"))


def draw_confusion(view: RunView, test: TestResults, out: str | Path | None = None) -> Any:
    """confusion.png: the test set's confusion matrix as a heat map."""
    from cnncli import plots

    cm = confusion_matrix(test.labels, test.evaluation.predictions, len(view.classes))
    return plots.plot_confusion(cm, view.classes, _target(view, out, "confusion"))


def draw_mistakes(view: RunView, test: TestResults, out: str | Path | None = None,
                  n: int = 25) -> Any:
    """mistakes.png: the test images the model got most confidently wrong."""
    from cnncli import plots

    ev = test.evaluation
    return plots.plot_mistakes(test.images, ev.labels, ev.predictions, ev.confidence,
                               view.classes, _target(view, out, "mistakes"), n=n)


def draw_filters(view: RunView, out: str | Path | None = None) -> Any:
    """filters.png: every conv layer's learned kernels."""
    from cnncli import plots

    convs = conv_weights(view.net)
    if not convs:
        raise DataError(f"{view.checkpoint_path}: the model has no conv layer to show")
    return plots.plot_filters(convs, _target(view, out, "filters"))


def conv_weights(net: Network) -> list[tuple[str, np.ndarray]]:
    """(name, weight (F, C, KH, KW)) of every layer whose weight is a bank of 2-D kernels."""
    return [(f"layers.{i} {layer.type_name}", layer.params["weight"])
            for i, layer in enumerate(net.layers)
            if layer.params.get("weight") is not None and layer.params["weight"].ndim == 4]


def draw_activations(view: RunView, image: np.ndarray, out: str | Path | None = None,
                     name: str = "activations") -> Any:
    """activations.png: one image (uint8 (H, W), as the network sees it) carried through every
    layer; the arrays drawn are the network's own layer outputs (Network.activations)."""
    from cnncli import plots
    from cnncli.probe import layer_outputs

    outputs = layer_outputs(view.net, image, view.ckpt.mean, view.ckpt.std)
    return plots.plot_feature_maps(image, outputs, _target(view, out, name))


def _target(view: RunView, out: str | Path | None, name: str) -> Path:
    folder = view.out_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


# -- the report ---------------------------------------------------------------------------------


def write_report(view: RunView, source: DataSource | None, *, test: TestResults | None = None,
                 sample: int = 0, out: str | Path | None = None) -> Path:
    """report.html: one self-contained page with the run's config, model, curves, test
    metrics, confusion matrix, mistakes, filters, feature maps of test image `sample`,
    timings and environment. Written atomically; returns its path."""
    from cnncli.files import write_atomic
    from cnncli.report import ReportData, environment_info, render_report

    if test is None:
        if source is None:
            raise ValueError("write_report needs a data source or the test results")
        test = test_results(view, source)
    if not 0 <= sample < len(test.images):
        raise DataError(f"--sample {sample}: the test set has {len(test.images):,} images "
                        f"(0..{len(test.images) - 1})")
    t0 = time.perf_counter()
    pictures = {
        "curves": draw_curves(view, out) if view.history else None,
        "confusion": draw_confusion(view, test, out),
        "mistakes": draw_mistakes(view, test, out),
        "filters": draw_filters(view, out) if conv_weights(view.net) else None,
        "activations": draw_activations(view, test.images[sample], out),
    }
    drawing = time.perf_counter() - t0
    ev = test.evaluation
    cm = confusion_matrix(ev.labels, ev.predictions, len(view.classes))
    pred = int(ev.predictions[sample])
    notes = []
    if view.run_dir is None:
        notes.append("a checkpoint outside a run folder: no summary or metrics files")
    elif not view.summary:
        notes.append("the run has no summary.json: it is unfinished or was interrupted")
    identity = DataIdentity.from_dict(view.ckpt.data)
    other = test.other_data
    if other is not None:  # --data-dir OTHER: the page must not credit the run's own data
        notes.append(f"the test metrics, confusion matrix, mistakes and feature maps are of "
                     f"other data than the run's own: {other.describe()}, not "
                     f"{identity.describe()}")
    run_name = (view.run_dir or view.checkpoint_path.parent).name
    data = ReportData(
        name=run_name,
        created=datetime.fromtimestamp(view.checkpoint_path.stat().st_mtime).strftime(
            "%Y-%m-%d %H:%M"),
        run_dir=str(view.run_dir or view.checkpoint_path.parent),
        notes=notes,
        summary={k: v for k, v in view.summary.items() if k != "test"},
        provenance={"checkpoint": f"{view.checkpoint_path} (epoch {view.ckpt.epoch})",
                    "data": identity.describe(),
                    **({"folder": identity.folder} if identity.folder else {}),
                    **identity.files,
                    **({"test data (not the run's own)": other.describe(),
                        **{f"test data {k}": v for k, v in other.files.items()}}
                       if other is not None else {}),
                    "normalisation (mean, std)":
                    f"{view.ckpt.mean:.4f}, {view.ckpt.std:.4f}",
                    "cnncli": view.ckpt.version},
        config_yaml=dump_yaml(view.cfg.resolved()),
        model_table=format_summary(view.cfg.run.model.input_shape, view.cfg.run.model.layers),
        history=view.history,
        test_metrics={"accuracy": ev.accuracy, "loss": ev.loss, "images": len(ev.labels),
                      "weights": view.checkpoint_path.name},
        per_class=per_class(cm),
        class_names=view.classes,
        timings={"training (summed over epochs)": float(view.summary.get("train_seconds") or
                                                        sum(r["seconds"] for r in view.history)),
                 "scoring the test set": test.seconds, "drawing the pictures": drawing},
        environment=environment_info(),
        curves_png=_png(pictures["curves"]), confusion_png=_png(pictures["confusion"]),
        mistakes_png=_png(pictures["mistakes"]), filters_png=_png(pictures["filters"]),
        feature_maps_png=_png(pictures["activations"]),
        feature_maps_caption=f"test image #{sample}: a {view.classes[int(ev.labels[sample])]}, "
                             f"predicted {view.classes[pred]} "
                             f"({ev.confidence[sample] * 100:.1f}%)",
    )
    path = view.out_dir(out) / REPORT
    write_atomic(path, render_report(data).encode("utf-8"))
    return path


def report_after_training(trainer: Any, test_images: np.ndarray) -> Path:
    """The report of a run that just finished, from the trainer's network (holding the best
    weights after its test) and its test evaluation: nothing rebuilt, nothing scored twice."""
    folder = Path(trainer.run_dir)
    weights = folder / (BEST if (folder / BEST).exists() else "last.safetensors")
    summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    view = RunView(weights, read_checkpoint(weights), trainer.cfg, trainer.net, folder,
                   list(trainer.history), summary)
    ev = trainer.test_evaluation
    seconds = float(summary.get("wall_seconds", 0.0)) - float(summary.get("train_seconds", 0.0))
    test = TestResults(test_images, ev, seconds)
    return write_report(view, None, test=test)  # type: ignore[arg-type]


def _png(drawn: Any) -> bytes | None:
    return None if drawn is None else drawn.png
