"""Draw every picture of a finished run and write its report.html, timing each step.

    python scripts/make_report.py runs/lenet-20261128-101500 [--data-dir DIR] [--out DIR]

A reference for wiring `cnncli report RUN` (and the end of `cnncli train`) with the library:
it loads best.safetensors, runs the test set once, then draws with cnncli.plots and lays the
page out with cnncli.report. Pictures and report.html go to --out (default: the run
folder). Prints one line per step with its wall time, and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cnncli import plots
from cnncli.checkpoint import read_checkpoint
from cnncli.config import dump_yaml
from cnncli.data.batches import to_batch
from cnncli.data.source import FetchingSource
from cnncli.layers.losses import build_loss
from cnncli.metrics import confusion_matrix, per_class
from cnncli.network import format_summary
from cnncli.probe import layer_outputs
from cnncli.report import ReportData, environment_info, render_report
from cnncli.runs_table import read_run
from cnncli.training.evaluate import config_of, model_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data-dir", default=None, help="MNIST cache (default: cnncli's)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sample", type=int, default=0, help="test image for the feature maps")
    ap.add_argument("--repeat", type=int, default=1,
                    help="draw each picture this many times and report the median")
    args = ap.parse_args()
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    def step(name: str, t0: float) -> None:
        times[name] = time.perf_counter() - t0
        print(f"{name:<28} {times[name]:7.3f} s")

    t0 = time.perf_counter()
    ckpt = read_checkpoint(args.run / "best.safetensors")
    cfg = config_of(ckpt)
    net = model_of(ckpt, cfg)
    arrays = FetchingSource(data_dir=args.data_dir).load(cfg.run.data)
    images, labels = arrays.test_images, arrays.test_labels.astype(np.int64)
    step("load checkpoint + test set", t0)

    t0 = time.perf_counter()
    loss = build_loss(cfg.run.loss)
    outputs = np.concatenate([net.forward(to_batch(images[i:i + 1000], mean=arrays.mean,
                                                   std=arrays.std))
                              for i in range(0, len(images), 1000)], axis=1)   # (K, N)
    probs = loss.probabilities(outputs).T                                      # (N, K)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, probs.shape[1])
    step("test set forward", t0)

    names = list(arrays.classes)
    history = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    convs = [(f"layers.{i} {layer.type_name}", layer.params["weight"])
             for i, layer in enumerate(net.layers) if layer.type_name == "conv"]
    i = args.sample
    drawn = {}
    for key, draw in (
        ("curves", lambda p: plots.plot_curves(history, p)),
        ("confusion", lambda p: plots.plot_confusion(cm, names, p)),
        ("mistakes", lambda p: plots.plot_mistakes(images, labels, pred, probs, names, p)),
        ("filters", lambda p: plots.plot_filters(convs, p)),
        ("feature_maps", lambda p: plots.plot_feature_maps(
            images[i], layer_outputs(net, images[i], arrays.mean, arrays.std), p)),
    ):
        spent, cpu = [], []
        for _ in range(max(args.repeat, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            drawn[key] = draw(out / f"{key}.png")
            spent.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        times[f"draw {key}"] = float(np.median(spent))
        print(f"{'draw ' + key:<28} {times['draw ' + key]:7.3f} s  (CPU {np.median(cpu):.3f} s"
              + (f"; medians of {len(spent)})" if len(spent) > 1 else ")"))
    times_pictures = sum(v for k, v in times.items() if k.startswith("draw "))
    print(f"{'all pictures':<28} {times_pictures:7.3f} s")

    t0 = time.perf_counter()
    row = read_run(args.run)
    summary = json.loads((args.run / "summary.json").read_text())
    test = summary.get("test") or {}
    report = ReportData(
        name=args.run.name,
        created=row["date"] or "",
        run_dir=str(args.run),
        summary={k: v for k, v in summary.items() if k != "test"},
        provenance={"checkpoint": f"{args.run / 'best.safetensors'} (epoch {ckpt.epoch})",
                    "data": arrays.identity.get("dataset", "?"),
                    **arrays.identity.get("files", {})},
        config_yaml=dump_yaml(cfg.resolved()),
        model_table=format_summary(cfg.run.model.input_shape, cfg.run.model.layers),
        history=history,
        test_metrics={"accuracy": float((pred == labels).mean()), "loss": test.get("loss"),
                      "images": len(images), "weights": test.get("checkpoint")},
        per_class=per_class(cm),
        class_names=names,
        timings={"training (summed over epochs)": summary.get("train_seconds", 0.0),
                 "test set forward": times["test set forward"],
                 "drawing the pictures": times_pictures},
        environment=environment_info(),
        curves_png=drawn["curves"].png, confusion_png=drawn["confusion"].png,
        mistakes_png=drawn["mistakes"].png, filters_png=drawn["filters"].png,
        feature_maps_png=drawn["feature_maps"].png,
        feature_maps_caption=f"test image #{i}: a {labels[i]}, predicted {pred[i]} "
                             f"({probs[i, pred[i]] * 100:.1f}%)",
    )
    page = render_report(report)
    (out / "report.html").write_text(page, encoding="utf-8")
    step("render report.html", t0)
    print(f"{out / 'report.html'}: {len(page.encode()) / 1e6:.2f} MB; "
          f"CPU {report.environment['cpu']}")


if __name__ == "__main__":
    main()
