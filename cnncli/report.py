"""One self-contained HTML page per run: config, model, curves, metrics, pictures, timings,
environment. Every picture is embedded as a base64 PNG, the style sheet is inline, and the
page's Content-Security-Policy forbids scripts and every network fetch, so it opens the same
offline, from an e-mail attachment or years later.

    data = ReportData(name="lenet-20261128-101500", config_yaml=..., curves_png=drawn.png, ...)
    Path("report.html").write_text(render_report(data), encoding="utf-8")

ReportData holds plain values (text, numbers, lists, dicts, PNG bytes): whoever fills it
(`cnncli report RUN`, the end of `cnncli train`) reads the run folder; this module only lays
the page out. All text is escaped. `environment_info()` describes the machine (also used by
the benchmarks).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

import cnncli

#: the pictures of a report, in page order: (field, section id, heading)
PICTURES = (
    ("curves_png", "curves", "Learning curves"),
    ("confusion_png", "confusion", "Confusion matrix"),
    ("mistakes_png", "mistakes", "Most confident mistakes"),
    ("filters_png", "filters", "Learned filters"),
    ("feature_maps_png", "feature-maps", "Feature maps of a sample digit"),
)


@dataclass
class ReportData:
    """Everything a report shows. Empty or None fields are shown as "not available".

    name            the run's name (its folder name)
    created         when the run started or ended, as text (e.g. "2026-11-28 10:15")
    run_dir         the run folder, as text
    notes           warnings shown at the top (e.g. "the run is unfinished")
    summary         summary.json's entries (epochs, best_epoch, stopped, ...), shown as a table
    provenance      what produced the run: data files and their hashes, checkpoint, code version
    config_yaml     the resolved config.yaml text
    model_table     the model's layer table (cnncli summary's text)
    history         the metrics rows (checkpoint.METRIC_FIELDS), shown per epoch
    test_metrics    e.g. {"accuracy": 0.9918, "loss": 0.027, "images": 10000, ...}
    per_class       metrics.per_class rows: class, precision, recall, f1, support
    class_names     display names of the classes (default: the class numbers)
    timings         seconds per phase, e.g. {"training": 612.3, "test": 1.2, "pictures": 4.1}
    environment     environment_info() of the machine that trained (or reported)
    *_png           the pictures' PNG bytes (plots.Drawn.png)
    feature_maps_caption  which input the feature maps show
    """

    name: str
    created: str = ""
    run_dir: str = ""
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    config_yaml: str = ""
    model_table: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    curves_png: bytes | None = None
    confusion_png: bytes | None = None
    mistakes_png: bytes | None = None
    filters_png: bytes | None = None
    feature_maps_png: bytes | None = None
    feature_maps_caption: str = ""


# -- the environment -------------------------------------------------------------------------

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def environment_info() -> dict[str, str]:
    """The machine and libraries, as text: cpu, cpus, threads, numpy, blas, lapack, python,
    platform, cnncli. BLAS and LAPACK come from numpy's build configuration
    (numpy.show_config(mode='dicts'), numpy >= 1.26); the thread settings from the
    environment variables that OpenBLAS, OpenMP and MKL read."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpus = f"{os.cpu_count()}" + (f" ({usable} usable by this process)"
                                  if usable is not None and usable != os.cpu_count() else "")
    threads = ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARIABLES)
    blas, lapack = _blas_info()
    return {
        "cpu": _cpu_model(),
        "cpus": cpus,
        "threads": threads,
        "numpy": np.__version__,
        "blas": blas,
        "lapack": lapack,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cnncli": cnncli.__version__,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _blas_info() -> tuple[str, str]:
    """(BLAS, LAPACK) as 'name version (configuration)' from numpy's build information."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            config = np.show_config(mode="dicts")
        deps = (config or {}).get("Build Dependencies", {})
    except (TypeError, ValueError, AttributeError):  # numpy < 1.26 has no mode='dicts'
        return "unknown (numpy < 1.26 does not report it)", "unknown"
    out = []
    for key in ("blas", "lapack"):
        dep = deps.get(key) or {}
        text = " ".join(str(dep[k]) for k in ("name", "version") if dep.get(k)) or "unknown"
        detail = dep.get("openblas configuration")
        out.append(f"{text} ({detail})" if detail and key == "blas" else text)
    return out[0], out[1]


# -- the page --------------------------------------------------------------------------------


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string (UTF-8 text; see the module docstring)."""
    sections: list[tuple[str, str, str] | list[tuple[str, str, str]]] = [
        [("overview", "Overview", _overview(data)),
         ("model", "Model", _pre(data.model_table, "no model table recorded"))],
        ("config", "Config", _pre(data.config_yaml, "no config recorded")),
        ("curves", "Learning curves", _picture(data.curves_png, "learning curves: loss, "
                                               "accuracy and learning rate per epoch")
         + _epoch_table(data.history)),
        ("test", "Test metrics", _test_metrics(data)),
    ]
    for attr, anchor, heading in PICTURES[1:]:
        caption = data.feature_maps_caption if attr == "feature_maps_png" else ""
        sections.append((anchor, heading, _picture(getattr(data, attr), heading, caption)))
    sections.append([("timings", "Timings", _timings(data)),
                     ("environment", "Environment", _table(list(data.environment.items()),
                                                           "no environment recorded"))])
    flat = [s for item in sections for s in (item if isinstance(item, list) else [item])]
    nav = " ".join(f'<a href="#{a}">{_e(h)}</a>' for a, h, _ in flat)
    body = "\n".join(
        '<div class="pair">' + "".join(_section(*s) for s in item) + "</div>"
        if isinstance(item, list) else _section(*item) for item in sections)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    subtitle = " · ".join(_e(s) for s in (data.created, data.run_dir) if s)
    made = datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{_e(data.name)} · cnncli report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(data.name)}</h1>
<p class="sub">{subtitle}</p>
{_headline(data)}
{notes}
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
<footer>Made by cnncli {_e(cnncli.__version__)} on {_e(made)}. This page is self-contained:
its pictures are embedded and it loads nothing from the network.</footer>
</body>
</html>
"""


def _section(anchor: str, heading: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n{content}</section>\n'


CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #1d2430; --muted: #5b6472; --line: #dde1e7; --card: #ffffff;
        --ground: #f4f6f8; --accent: #1f5fa8; --warn: #8a4b00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--ground); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, main, footer { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { margin: 0; font-size: 26px; word-break: break-all; }
h2 { margin: 0 0 12px; font-size: 19px; border-bottom: 1px solid var(--line);
     padding-bottom: 6px; }
.sub { margin: 2px 0 14px; color: var(--muted); font-size: 13px; word-break: break-all; }
.headline { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 14px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 16px; min-width: 150px; }
.stat b { display: block; font-size: 22px; color: var(--accent); }
.stat span { color: var(--muted); font-size: 12px; text-transform: uppercase;
             letter-spacing: .04em; }
.note { background: #fff4e0; border-left: 4px solid var(--warn); color: var(--warn);
        padding: 8px 12px; margin: 6px 0; border-radius: 4px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; padding: 10px 0 16px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
          padding: 18px 22px; margin: 0 0 18px; overflow-x: auto; min-width: 0; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(400px, 1fr));
        gap: 0 18px; align-items: start; }
h3 { font-size: 16px; margin: 14px 0 6px; }
.cols h3 { margin-top: 4px; }
.cols { display: flex; flex-wrap: wrap; gap: 8px 48px; align-items: flex-start; }
pre { background: #f7f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 12px;
      margin: 0; font: 12.5px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas,
      monospace; overflow-x: auto; white-space: pre; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; text-align: center; }
table { border-collapse: collapse; font-size: 14px; margin: 4px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left;
         overflow-wrap: anywhere;
         vertical-align: top; }
th { background: #f7f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
td.key { color: var(--muted); white-space: nowrap; }
code.hash { font: 11.5px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
            color: var(--muted); }
details { margin-top: 14px; }
summary { cursor: pointer; color: var(--accent); }
.missing { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; padding-bottom: 30px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(key: str, value: object) -> str:
    """A value as the page shows it: accuracies as percentages, floats to 4 digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if "acc" in key and 0.0 <= value <= 1.0:
            return f"{value * 100:.2f}%"
        if "second" in key:
            return _duration(value)
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt(str(k), v)}" for k, v in value.items())
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)} min {secs:.0f} s" if minutes < 60 else \
        f"{int(minutes // 60)} h {int(minutes % 60)} min"


def _headline(data: ReportData) -> str:
    stats = []
    acc = data.test_metrics.get("accuracy")
    if isinstance(acc, float):
        stats.append((f"{acc * 100:.2f}%", "test accuracy"))
    best = data.summary.get("best_val_acc")
    if isinstance(best, float):
        stats.append((f"{best * 100:.2f}%", "best validation accuracy"))
    epochs = data.summary.get("epochs", len(data.history) or None)
    if epochs:
        stats.append((str(epochs), "epochs"))
    seconds = data.summary.get("wall_seconds", data.timings.get("training"))
    if isinstance(seconds, (int, float)):
        stats.append((_duration(float(seconds)), "time"))
    cells = "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                    for v, k in stats)
    return f'<div class="headline">{cells}</div>' if cells else ""


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _pre(text: str, missing: str) -> str:
    return f"<pre>{_e(text.rstrip())}</pre>" if text.strip() else _missing(missing)


def _picture(png: bytes | None, alt: str, caption: str = "") -> str:
    if not png:
        return _missing("not available for this run")
    b64 = base64.b64encode(png).decode("ascii")
    width = int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" else 0
    size = f' width="{width}"' if width else ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{_e(alt)}"{size}>'
            f"{cap}</figure>")


def _table(rows: Sequence[tuple[str, object]], missing: str) -> str:
    """(key, value) rows as a two-column table; known keys get readable labels."""
    if not rows:
        return _missing(missing)
    body = "".join(f'<tr><td class="key">{_e(LABELS.get(k, k))}</td><td>{_value(k, v)}</td>'
                   "</tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _value(key: str, value: object) -> str:
    """A table cell's HTML: the formatted value, escaped; hashes in a small monospace font."""
    text = _fmt(key, value)
    if re.fullmatch(r"[0-9a-f]{32,}", text):
        return f'<code class="hash">{_e(text)}</code>'
    return _e(text)


#: readable labels for summary.json's keys
LABELS = {"epochs": "epochs run", "stopped": "stopped because", "steps": "optimizer steps",
          "best_epoch": "best epoch (validation)", "best_val_acc": "best validation accuracy",
          "train_images": "training images", "val_images": "validation images",
          "train_seconds": "training time", "wall_seconds": "wall time"}


def _overview(data: ReportData) -> str:
    out = _table([(k, v) for k, v in data.summary.items() if k != "test"],
                 "no summary: the run did not finish")
    if data.provenance:
        out += "<h3>Inputs</h3>" + _table(list(data.provenance.items()), "")
    return out


def _epoch_table(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return ""
    keys = [k for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                        "seconds", "images_per_s") if any(k in r for r in history)]
    head = "".join(f'<th class="num">{_e(k)}</th>' for k in keys)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(_cell(k, r.get(k)))}</td>'
                                    for k in keys) + "</tr>" for r in history)
    return (f"<details><summary>Every epoch ({len(history)} rows)</summary>"
            f"<table><tr>{head}</tr>{body}</table></details>")


def _cell(key: str, value: object) -> str:
    if key == "seconds" and isinstance(value, (int, float)):
        return f"{value:.1f}"
    if key == "images_per_s" and isinstance(value, (int, float)):
        return f"{value:,.0f}"
    if key == "lr" and isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, float) and "loss" in key:
        return f"{value:.4f}"
    return _fmt(key, value)


def _test_metrics(data: ReportData) -> str:
    out = _table(list(data.test_metrics.items()),
                 "no test metrics: the run has no test set, or did not finish")
    if not data.per_class:
        return out
    names = data.class_names
    head = ("<tr><th>class</th><th class=num>precision</th><th class=num>recall</th>"
            "<th class=num>F1</th><th class=num>support</th></tr>")
    rows = []
    for r in data.per_class:
        k = r.get("class")
        label = names[k] if names and isinstance(k, int) and 0 <= k < len(names) else k
        rows.append(f"<tr><td>{_e(label)}</td>" + "".join(
            f'<td class="num">{_e(_pct(r.get(m)))}</td>' for m in ("precision", "recall", "f1"))
            + f'<td class="num">{_e(_fmt("support", r.get("support")))}</td></tr>')
    support = [r.get("support") or 0 for r in data.per_class]
    macro = [float(np.mean([r.get(m) or 0.0 for r in data.per_class]))
             for m in ("precision", "recall", "f1")]
    rows.append('<tr class="total"><td>mean over classes</td>' + "".join(
        f'<td class="num">{_e(_pct(v))}</td>' for v in macro)
        + f'<td class="num">{_e(_fmt("support", int(sum(support))))}</td></tr>')
    return (f'<div class="cols"><div><h3>All classes</h3>{out}</div>'
            f"<div><h3>Per class</h3><table>{head}{''.join(rows)}</table></div></div>")


def _pct(value: object) -> str:
    return f"{float(value) * 100:.2f}%" if isinstance(value, (int, float)) else "–"


def _timings(data: ReportData) -> str:
    rows: list[tuple[str, object]] = [(k, _duration(float(v))) for k, v in data.timings.items()]
    speeds = [r["images_per_s"] for r in data.history
              if isinstance(r.get("images_per_s"), (int, float))]
    secs = [r["seconds"] for r in data.history if isinstance(r.get("seconds"), (int, float))]
    if secs:
        rows.append(("one epoch (median)", _duration(float(np.median(secs)))))
    if speeds:
        rows.append(("training speed (median)", f"{float(np.median(speeds)):,.0f} images/s"))
    return _table(rows, "no timings recorded")
