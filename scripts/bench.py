"""Benchmark the bundled presets at several batch sizes and write a markdown table.

    python scripts/bench.py                                  # every preset, batch 32/64/128
    python scripts/bench.py --configs lenet --repeats 5 --out bench.md --layers

If PyTorch happens to be installed, the same network (same layers, loss and optimizer, 2
threads) is timed beside ours in the same run, alternating, and the table shows the ratio
cnncli / PyTorch. PyTorch is never a dependency of cnncli: without it, only our columns appear.

Figures are medians: each repeat takes the median step time over --steps steps, and the table
shows the median over --repeats repeats. Machines are noisy; compare ratios from one run.

Threads: NumPy's OpenBLAS uses every core by default. On a machine busy with other work a
multithreaded BLAS (ours or PyTorch's) can slow down many times over, because each call waits
for a worker thread that is not running; `--blas-threads 1` shows cnncli's single-threaded
figures (PyTorch keeps 2 threads either way).
"""

from __future__ import annotations

import argparse
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
    torch.set_num_threads(2)
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

    def train_step_ms(self, batch: int, steps: int, warmup: int = 5) -> float:
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

    def inference_ms(self, batch: int, repeats: int) -> float:
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


def fmt_ratio(a: float, b: float | None) -> str:
    return "-" if b is None else f"{a / b:.2f}x"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=None,
                    help="Comma-separated presets or YAML files (default: every preset).")
    ap.add_argument("--batch-sizes", default="32,64,128", help="Comma-separated batch sizes.")
    ap.add_argument("--steps", type=int, default=30, help="Timed steps per repeat.")
    ap.add_argument("--repeats", type=int, default=3, help="Repeats; the table shows medians.")
    ap.add_argument("--eval-batch-size", type=int, default=1000, help="Inference batch size.")
    ap.add_argument("--layers", action="store_true",
                    help="Also show cnncli's per-layer table for each config at each batch size.")
    ap.add_argument("--no-torch", action="store_true", help="Do not time PyTorch even if present.")
    ap.add_argument("--out", type=Path, default=None, help="Also write the markdown here.")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="Set OPENBLAS_NUM_THREADS for cnncli's NumPy (PyTorch keeps 2 threads); "
                         "it must be set before NumPy is imported.")
    args = ap.parse_args(argv)
    if args.blas_threads is not None:
        if "numpy" in sys.modules:
            ap.error("--blas-threads: NumPy is already imported in this process")
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    return run(args)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cnncli.bench import (
        format_result,
        run_benchmark,
        synthetic_batch,
        time_inference,
        time_train_step,
    )
    from cnncli.config import load_config, preset_names
    from cnncli.network import build_network


    torch = None if args.no_torch else import_torch()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    configs = [c for c in (args.configs or ",".join(preset_names())).split(",") if c]
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    env = (f"numpy {np.__version__} (OPENBLAS_NUM_THREADS={blas}), python "
           f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus")
    if torch is not None:
        env += f"; torch {torch.__version__} with {torch.get_num_threads()} threads"
    load_before = os.getloadavg()[0]

    train_rows, eval_rows, layer_tables = [], [], []
    for spec in configs:
        cfg = load_config(spec)
        model, loss, opt = cfg.model, cfg.loss, cfg.optimizer.model_dump()
        net = build_network(model.input_shape, model.layers, rng=np.random.default_rng(0))
        runner = TorchRunner(torch, net, loss, opt) if torch is not None else None
        classes = int(np.prod(net.output_shape))
        rng = np.random.default_rng(1)
        ours: dict[int, list[float]] = {b: [] for b in batches}
        theirs: dict[int, list[float]] = {b: [] for b in batches}
        ours_eval: list[float] = []
        theirs_eval: list[float] = []
        xe, _ = synthetic_batch(net.input_shape, classes, args.eval_batch_size, rng)
        eval_repeats = max(3, args.steps // 5)
        for r in range(args.repeats):
            for b in batches:
                x, y = synthetic_batch(net.input_shape, classes, b, rng)
                order = ("ours", "torch") if r % 2 == 0 else ("torch", "ours")
                for who in order:
                    time.sleep(PAUSE)  # let the other library's idle threads stop spinning
                    if who == "ours":
                        ms = time_train_step(net, loss, opt, x, y, args.steps, 5, rng)
                        ours[b].append(b / ms * 1e3)
                    elif runner is not None:
                        theirs[b].append(b / runner.train_step_ms(b, args.steps) * 1e3)
            n = args.eval_batch_size
            time.sleep(PAUSE)
            ours_eval.append(n / time_inference(net, xe, eval_repeats) * 1e3)
            if runner is not None:
                time.sleep(PAUSE)
                theirs_eval.append(n / runner.inference_ms(n, eval_repeats) * 1e3)
            print(f"{spec}: repeat {r + 1}/{args.repeats} done", file=sys.stderr)
        for b in batches:
            a = statistics.median(ours[b])
            t = statistics.median(theirs[b]) if theirs[b] else None
            train_rows.append(f"| {spec} | {b} | {fmt_rate(a)} | {fmt_rate(t)} | "
                              f"{fmt_ratio(a, t)} |")
        a = statistics.median(ours_eval)
        t = statistics.median(theirs_eval) if theirs_eval else None
        eval_rows.append(f"| {spec} | {args.eval_batch_size} | {fmt_rate(a)} | {fmt_rate(t)} | "
                         f"{fmt_ratio(a, t)} |")
        if args.layers:
            for b in batches:
                res = run_benchmark(model.input_shape, model.layers, loss, opt, batch_size=b,
                                    steps=args.steps, eval_batch_size=args.eval_batch_size)
                layer_tables.append("```\n" + format_result(res, spec) + "\n```")

    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    lines = [
        f"Medians of {args.repeats} repeats x {args.steps} steps; {env}; {load}.",
        "",
        "Training (forward, loss, backward, optimizer step), images/s:",
        "",
        "| config | batch | cnncli | PyTorch | cnncli / PyTorch |",
        "| --- | ---: | ---: | ---: | ---: |",
        *train_rows,
        "",
        "Inference (evaluation-mode forward pass), images/s:",
        "",
        "| config | batch | cnncli | PyTorch | cnncli / PyTorch |",
        "| --- | ---: | ---: | ---: | ---: |",
        *eval_rows,
    ]
    if layer_tables:
        lines += ["", "Per-layer times of cnncli (ms per batch):", "", *layer_tables]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
