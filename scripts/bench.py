"""Benchmark presets against PyTorch, interleaved pair by pair, and write a markdown report.

    python scripts/bench.py                                   # lenet, batch 64, 2 threads
    python scripts/bench.py --threads 1,2 --pairs 9 --out bench.md --json bench.json
    python scripts/bench.py --configs lenet,mlp --batch-sizes 32,64,128 --layers

cnncli runs through cnncli.parallel.DataParallel: each batch cut into --shards shards (default:
the largest --threads value, so 1 and 2 threads compute the same bits), run on T threads with
BLAS at one thread per worker. If PyTorch is installed, the same network (same layers, loss
and optimizer; weights not copied) runs beside it with torch.set_num_threads(T). PyTorch is
never a dependency of cnncli: without it, only our columns appear.

A pair is one cnncli measurement and one PyTorch measurement right after each other (their
order alternates from pair to pair); each measurement is the median step time over --steps
steps after 5 warm-up steps. The report gives, per thread count, the median of each side over
the pairs, the median of the per-pair ratios and their spread (lowest-highest), and every
pair's ratio: other people's processes on the machine slow both sides of a pair alike, so the
per-pair ratio is the figure to quote. With --threads 1,2 it also gives cnncli's own
2-thread / 1-thread ratio, pair by pair. The heading names the CPU, the BLAS library with its
version, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnncli.network import Network

#: seconds to wait before timing one library after the other: OpenBLAS's and OpenMP's worker
#: threads keep spinning for a while after their last job and would slow the other down
PAUSE = 0.3


# -- PyTorch, optional ----------------------------------------------------------------------

def import_torch() -> Any:
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_model(torch: Any, net: Network) -> Any:
    """An nn.Sequential with the same layers as our network (weights not copied)."""
    nn = torch.nn
    mods: list[Any] = []
    for layer in net.layers:
        cfg = layer.get_config()
        t = cfg["type"]
        if t == "conv":
            top, bottom, left, right = layer.pad
            padding: Any = (top, left)
            if (top, left) != (bottom, right):
                mods.append(nn.ZeroPad2d((left, right, top, bottom)))
                padding = 0
            mods.append(nn.Conv2d(layer.input_shape[0], cfg["filters"], tuple(cfg["kernel"]),
                                  tuple(cfg["stride"]), padding))
        elif t in ("maxpool", "avgpool"):
            cls = nn.MaxPool2d if t == "maxpool" else nn.AvgPool2d
            mods.append(cls(tuple(cfg["size"]), tuple(cfg["stride"])))
        elif t == "dense":
            mods.append(nn.Linear(layer.input_shape[0], cfg["units"]))
        elif t == "leaky_relu":
            mods.append(nn.LeakyReLU(cfg["alpha"]))
        elif t == "dropout":
            mods.append(nn.Dropout(cfg["rate"]))
        else:
            mods.append({"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                         "flatten": nn.Flatten}[t]())
    return nn.Sequential(*mods)


def torch_loss(torch: Any, name: str) -> Callable[[Any, Any], Any]:
    if name == "softmax_cross_entropy":
        return torch.nn.CrossEntropyLoss()

    def mse(out: Any, y: Any) -> Any:  # 1/2 ||out - onehot||^2, mean over the batch
        target = torch.nn.functional.one_hot(y, out.shape[1]).to(out.dtype)
        return 0.5 * ((out - target) ** 2).sum(dim=1).mean()

    return mse


def torch_optimizer(torch: Any, spec: dict[str, Any], params: Any) -> Any:
    if spec["type"] == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec.get("momentum", 0.0),
                               nesterov=spec.get("nesterov", False),
                               weight_decay=spec.get("weight_decay", 0.0))
    cls = torch.optim.AdamW if spec.get("weight_decay", 0.0) else torch.optim.Adam
    return cls(params, lr=spec["lr"], betas=tuple(spec.get("betas", (0.9, 0.999))),
               eps=spec.get("eps", 1e-8), weight_decay=spec.get("weight_decay", 0.0))


class TorchRunner:
    """Times one configured network in PyTorch: a training step and an inference pass."""

    def __init__(self, torch: Any, net: Network, loss: str, optimizer: dict[str, Any]) -> None:
        import numpy as np

        self.torch = torch
        self.model = torch_model(torch, net)
        self.loss = torch_loss(torch, loss)
        self.opt = torch_optimizer(torch, optimizer, self.model.parameters())
        self.input_shape = net.input_shape
        self.classes = int(np.prod(net.output_shape))

    def _data(self, batch: int) -> tuple[Any, Any]:
        g = self.torch.Generator().manual_seed(0)
        x = self.torch.randn((batch, *self.input_shape), generator=g)
        return x, self.torch.randint(0, self.classes, (batch,), generator=g)

    def train_step_ms(self, batch: int, steps: int, threads: int, warmup: int = 5) -> float:
        self.torch.set_num_threads(threads)
        x, y = self._data(batch)
        self.model.train()
        samples = []
        for s in range(warmup + steps):
            t0 = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(x), y).backward()
            self.opt.step()
            if s >= warmup:
                samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e3

    def inference_ms(self, batch: int, repeats: int, threads: int) -> float:
        self.torch.set_num_threads(threads)
        x, _ = self._data(batch)
        self.model.eval()
        samples = []
        with self.torch.inference_mode():
            for r in range(repeats + 1):
                t0 = time.perf_counter()
                self.model(x)
                if r:
                    samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e3


# -- the run ----------------------------------------------------------------------------------

def fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def ratio_cells(ratios: list[float]) -> tuple[str, str, str]:
    """(median, 'lowest-highest', every ratio) as markdown cells; dashes when empty."""
    if not ratios:
        return "-", "-", "-"
    return (f"{statistics.median(ratios):.2f}x", f"{min(ratios):.2f}-{max(ratios):.2f}",
            " ".join(f"{r:.2f}" for r in ratios))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="lenet", help="Comma-separated presets or YAML files.")
    ap.add_argument("--batch-sizes", default="64", help="Comma-separated training batch sizes.")
    ap.add_argument("--threads", default="2",
                    help="Comma-separated thread counts, e.g. 1,2 (cnncli and PyTorch alike).")
    ap.add_argument("--shards", type=int, default=None,
                    help="Shards per training batch for cnncli [default: the most threads].")
    ap.add_argument("--backend", default=None, choices=("threads", "processes"),
                    help="cnncli's DataParallel backend for more than one thread "
                         "[default: processes where the system can fork].")
    ap.add_argument("--pairs", type=int, default=7, help="Interleaved pairs (at least 7).")
    ap.add_argument("--steps", type=int, default=30, help="Timed steps per measurement.")
    ap.add_argument("--eval-batch-size", type=int, default=1000, help="Inference batch size.")
    ap.add_argument("--layers", action="store_true",
                    help="Also show cnncli's per-layer table for each config and batch size.")
    ap.add_argument("--no-torch", action="store_true", help="Do not time PyTorch even if present.")
    ap.add_argument("--out", type=Path, default=None, help="Also write the markdown here.")
    ap.add_argument("--json", type=Path, default=None, help="Also write every figure as JSON.")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.steps < 1:
        ap.error("--pairs and --steps must be at least 1")
    return run(args)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cnncli.bench import (
        format_machine,
        format_result,
        machine_info,
        run_benchmark,
        synthetic_batch,
        time_inference,
        time_train_step,
    )
    from cnncli.config import load_config
    from cnncli.layers.losses import build_loss
    from cnncli.network import build_model
    from cnncli.optim import build_optimizer
    from cnncli.parallel import DEFAULT_BACKEND, DataParallel

    args.backend = args.backend or DEFAULT_BACKEND

    torch = None if args.no_torch else import_torch()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    shards = args.shards or max(thread_counts)
    configs = [c for c in args.configs.split(",") if c]
    machine = machine_info()
    env = f"{format_machine(machine)}; python {platform.python_version()}"
    if torch is not None:
        env += f"; torch {torch.__version__}"
    load_before = os.getloadavg()

    record: dict[str, Any] = {"machine": machine, "torch": torch.__version__ if torch else None,
                              "shards": shards, "backend": args.backend, "pairs": args.pairs,
                              "steps": args.steps,
                              "load_before": load_before, "rows": []}
    train_rows, eval_rows, core_rows, layer_tables = [], [], [], []
    for spec in configs:
        cfg = load_config(spec)
        model, loss, opt = cfg.run.model, cfg.run.loss, cfg.run.optimizer.model_dump()
        net = build_model(model.input_shape, model.layers, rng=np.random.default_rng(0))
        runner = TorchRunner(torch, net, loss, opt) if torch is not None else None
        classes = int(np.prod(net.output_shape))
        rng = np.random.default_rng(1)
        xe, _ = synthetic_batch(net.input_shape, classes, args.eval_batch_size, rng)
        eval_repeats = max(3, args.steps // 5)
        ne = args.eval_batch_size
        # (kind, batch, threads) -> [(ours, theirs or None) per pair], images/s
        pairs: dict[tuple[str, int, int], list[tuple[float, float | None]]] = {}
        for p in range(args.pairs):
            for t in thread_counts:
                for b in [*batches, 0]:  # 0: inference at the eval batch size
                    order = ("ours", "torch") if p % 2 == 0 else ("torch", "ours")
                    got: dict[str, float] = {}
                    for who in order:
                        time.sleep(PAUSE)  # let the other library's idle threads stop spinning
                        if who == "ours":
                            with DataParallel(net, build_loss(loss), shards, t,
                                              backend=args.backend,
                                              optimizer=build_optimizer(
                                                  opt, net.named_parameters())) as par:
                                if b:
                                    x, y = synthetic_batch(net.input_shape, classes, b, rng)
                                    ms = time_train_step(net, loss, opt, x, y, args.steps, 5,
                                                         rng, par)
                                    got["ours"] = b / ms * 1e3
                                else:
                                    got["ours"] = ne / time_inference(net, xe, eval_repeats,
                                                                      par=par) * 1e3
                        elif runner is not None:
                            ms = (runner.train_step_ms(b, args.steps, t) if b
                                  else runner.inference_ms(ne, eval_repeats, t))
                            got["torch"] = (b or ne) / ms * 1e3
                    key = ("eval" if b == 0 else "train", b or ne, t)
                    pairs.setdefault(key, []).append((got["ours"], got.get("torch")))
            print(f"{spec}: pair {p + 1}/{args.pairs} done", file=sys.stderr)
        for (kind, b, t), values in pairs.items():
            ours = [o for o, _ in values]
            theirs = [th for _, th in values if th is not None]
            ratios = [o / th for o, th in values if th is not None]
            med_t = statistics.median(theirs) if theirs else None
            cells = ratio_cells(ratios)
            row = (f"| {spec} | {b} | {t} | {fmt_rate(statistics.median(ours))} | "
                   f"{fmt_rate(med_t)} | {cells[0]} | {cells[1]} | {cells[2]} |")
            (train_rows if kind == "train" else eval_rows).append(row)
            record["rows"].append({"config": spec, "kind": kind, "batch": b, "threads": t,
                                   "cnncli": ours, "torch": theirs, "ratios": ratios})
        if len(thread_counts) > 1:
            lo, hi = min(thread_counts), max(thread_counts)
            for kind, b in [("train", b) for b in batches] + [("eval", ne)]:
                ratios = [h[0] / low[0] for low, h in
                          zip(pairs[(kind, b, lo)], pairs[(kind, b, hi)], strict=True)]
                cells = ratio_cells(ratios)
                core_rows.append(
                    f"| {spec} | {kind} | {b} | "
                    f"{fmt_rate(statistics.median(o for o, _ in pairs[(kind, b, lo)]))} | "
                    f"{fmt_rate(statistics.median(o for o, _ in pairs[(kind, b, hi)]))} | "
                    f"{cells[0]} | {cells[1]} |")
        if args.layers:
            for b in batches:
                res = run_benchmark(model.input_shape, model.layers, loss, opt, batch_size=b,
                                    steps=args.steps, eval_batch_size=ne,
                                    threads=max(thread_counts), shards=shards,
                                    backend=args.backend)
                layer_tables.append("```\n" + format_result(res, spec) + "\n```")

    load_after = os.getloadavg()
    record["load_after"] = load_after
    load = ("load average (1/5/15 min) " + "/".join(f"{v:.2f}" for v in load_before)
            + " before, " + "/".join(f"{v:.2f}" for v in load_after) + " after")
    head = ("| config | batch | threads | cnncli | PyTorch | cnncli / PyTorch | spread | "
            "per pair |")
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    lines = [
        f"{env}.",
        f"cnncli: {shards} shard{'s' if shards != 1 else ''} per batch, backend "
        f"{args.backend}, BLAS 1 thread per worker; PyTorch: torch.set_num_threads(threads). "
        f"{args.pairs} interleaved pairs, each "
        f"side the median of {args.steps} steps; medians over the pairs; {load}.",
        "",
        "Training (forward, loss, backward, optimizer step), images/s:",
        "",
        head, rule, *train_rows,
        "",
        f"Inference (evaluation-mode forward pass, batch {ne}), images/s:",
        "",
        head, rule, *eval_rows,
    ]
    if core_rows:
        lo, hi = min(thread_counts), max(thread_counts)
        lines += ["", f"cnncli on {hi} threads against {lo} (same shards, same bits), "
                      "per-pair ratio:", "",
                  f"| config | kind | batch | {lo} thread(s) | {hi} threads | ratio | spread |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |", *core_rows]
    if layer_tables:
        lines += ["", "Per-layer times of cnncli (ms per batch):", "", *layer_tables]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
