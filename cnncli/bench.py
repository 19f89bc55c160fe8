"""Where the time of a training step goes: per-layer timings on synthetic data (`caffe time`).

    result = run_benchmark((1, 28, 28), layer_specs, "softmax_cross_entropy",
                           AdamSpec(type="adam"), batch_size=64, steps=50)
    result.train_images_per_s, result.eval_images_per_s, result.layers[0].forward_ms
    result.to_dict()                     # the `cnncli bench --json` object

Three measurements, each the median over its repetitions (machines are noisy; a median
ignores the odd step that lost the CPU):

- per layer: every layer's forward and backward, the loss and the optimizer step, timed one by
  one inside `steps` training steps, on one thread over the whole batch;
- the training step as training runs it (forward, loss, backward, optimizer update), timed
  whole, through cnncli.parallel.DataParallel with `shards` shards on `threads` threads:
  training images/s = batch size / its median;
- inference: a forward pass in evaluation mode over `eval_batch_size` images, on `threads`
  threads (DataParallel.forward).

Every measurement runs with BLAS at one thread per worker thread (DataParallel holds it
there), so `threads` is the number of cores used. `machine_info()` names the CPU, the BLAS
library and its version: a figure is only meaningful with them.

The data is random (normal images, uniform labels) shaped like the network's input, so no
download is needed and the figures do not depend on what the images show. Nothing here prints.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import ConfigError
from cnncli.layers.losses import build_loss
from cnncli.network import Network, build_model, execution_order
from cnncli.optim import OptimizerSpec, SGDSpec, build_optimizer, optimizer_spec
from cnncli.parallel import DataParallel, blas_info, check_shards_threads

#: the optimizer used when none is given (the usual LeNet choice)
DEFAULT_OPTIMIZER = SGDSpec(type="sgd", lr=0.01, momentum=0.9)


@dataclass(frozen=True)
class LayerTime:
    """Median milliseconds per batch of one layer's forward and backward pass."""

    index: int
    layer: str  # e.g. "conv 6@5x5 s1 same"
    forward_ms: float
    backward_ms: float


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """Where a figure was measured: CPU model and count, NumPy, and its BLAS library(ies).

    {"cpu": "Intel(R) Xeon(R) ...", "cpus": 2, "numpy": "2.4.6",
     "blas": "openblas 0.3.31.188.0 (SkylakeX, pthreads)", "blas_threads": 2}
    `blas_threads` is BLAS's thread count at the time of the call (before any limit).
    """
    libs = blas_info()
    blas = "; ".join(
        f"{i.get('internal_api', '?')} {i.get('version') or '?'}"
        f" ({', '.join(str(i[k]) for k in ('architecture', 'threading_layer') if i.get(k))})"
        for i in libs) or "unknown BLAS"
    return {"cpu": cpu_model(), "cpus": os.cpu_count() or 1, "numpy": np.__version__,
            "blas": blas, "blas_threads": max((i.get("num_threads") or 1 for i in libs),
                                              default=1)}


@dataclass(frozen=True)
class BenchResult:
    """All figures of one benchmark run; `to_dict()` is the JSON form."""

    batch_size: int
    steps: int
    optimizer: str  # the optimizer's type, e.g. "adam"
    layers: list[LayerTime]
    loss_ms: float  # loss forward + backward
    optimizer_ms: float  # one optimizer update of every parameter
    train_step_ms: float  # forward + loss + backward + update, timed whole
    train_images_per_s: float
    eval_batch_size: int
    eval_ms: float  # one evaluation-mode forward pass over eval_batch_size images
    eval_images_per_s: float
    threads: int = 1  # threads (= cores) of the training step and of inference
    shards: int = 1  # shards each training batch is cut into (cnncli.parallel)
    machine: dict[str, Any] = field(default_factory=dict)  # machine_info()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: the scalar figures plus `layers`, a list of dicts."""
        return asdict(self)


def synthetic_batch(
    input_shape: Sequence[int], classes: int, batch: int, rng: np.random.Generator,
    dtype: np.dtype | type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Random images (C, H, W, N) ~ N(0, 1), like normalised pixels, and labels (N,)."""
    x = rng.standard_normal((*input_shape, batch), dtype=np.float32).astype(dtype, copy=False)
    return x, rng.integers(0, classes, batch)


def _median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def time_layers(
    net: Network, loss_name: str, optimizer: OptimizerSpec, x: np.ndarray, y: np.ndarray,
    steps: int, warmup: int, rng: np.random.Generator,
) -> tuple[list[LayerTime], float, float]:
    """Run `warmup + steps` training steps timing each piece; medians over the last `steps`.

    The layers run in the network's execution order (a relu before a maxpool after it, so
    its row times the pooled map), and the first layer's backward computes only its parameter
    gradients, as in training; `rng` drives dropout.
    Returns (per-layer times, loss ms, optimizer ms).
    """
    loss = build_loss(loss_name)
    opt = build_optimizer(optimizer, net.named_parameters())
    layers = net.layers
    fwd: list[list[float]] = [[] for _ in layers]
    bwd: list[list[float]] = [[] for _ in layers]
    loss_t: list[float] = []
    opt_t: list[float] = []
    clock = time.perf_counter
    order = execution_order(layers)  # as Network.forward runs them
    for step in range(warmup + steps):
        keep = step >= warmup
        h = x
        for i in order:
            t0 = clock()
            h = layers[i].forward(h, True, rng)
            t1 = clock()
            if keep:
                fwd[i].append(t1 - t0)
        t0 = clock()
        loss.forward(h, y)
        d = loss.backward()
        t1 = clock()
        if keep:
            loss_t.append(t1 - t0)
        for k in range(len(order) - 1, -1, -1):
            i = order[k]
            t0 = clock()
            d = layers[i].backward(d, input_grad=k > 0)
            t1 = clock()
            if keep:
                bwd[i].append(t1 - t0)
        t0 = clock()
        opt.step(net.named_gradients())
        t1 = clock()
        if keep:
            opt_t.append(t1 - t0)
    names = [layer.spec.describe() for layer in layers]  # e.g. "conv 6@5x5 s1 same"
    rows = [
        LayerTime(i, names[i], _median_ms(fwd[i]), _median_ms(bwd[i])) for i in range(len(layers))
    ]
    return rows, _median_ms(loss_t), _median_ms(opt_t)


def time_train_step(
    net: Network, loss_name: str, optimizer: OptimizerSpec, x: np.ndarray, y: np.ndarray,
    steps: int, warmup: int, rng: np.random.Generator, par: DataParallel | None = None,
) -> float:
    """Median milliseconds of one whole training step (forward, loss, backward, update).

    With `par` (a DataParallel over `net`), the step runs its shards on its threads, and the
    optimizer step is par.optimizer_step with the optimizer `par` was given, if any (as in
    training).
    """
    loss = build_loss(loss_name)
    opt = par.optimizer if par is not None and par.optimizer is not None else \
        build_optimizer(optimizer, net.named_parameters())
    samples = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        if par is not None:
            par.train_step(x, y, rng)
            par.optimizer_step(opt)
        else:
            loss.forward(net.forward(x, training=True, rng=rng), y)
            net.backward(loss.backward(), input_grad=False)
            opt.step(net.named_gradients())
        t1 = time.perf_counter()
        if step >= warmup:
            samples.append(t1 - t0)
    return _median_ms(samples)


def time_inference(net: Network, x: np.ndarray, repeats: int, warmup: int = 1,
                   par: DataParallel | None = None) -> float:
    """Median milliseconds of one evaluation-mode forward pass over the batch x.

    With `par`, the pass runs on its threads (DataParallel.forward).
    """
    samples = []
    for r in range(warmup + repeats):
        t0 = time.perf_counter()
        if par is not None:
            par.forward(x)
        else:
            net.forward(x, training=False)
        t1 = time.perf_counter()
        if r >= warmup:
            samples.append(t1 - t0)
    return _median_ms(samples)


def run_benchmark(
    input_shape: Sequence[int],
    layer_specs: Sequence[Mapping[str, Any]],
    loss_name: str = "softmax_cross_entropy",
    optimizer: OptimizerSpec | Mapping[str, Any] | None = None,
    *,
    batch_size: int = 64,
    steps: int = 50,
    warmup: int = 5,
    eval_batch_size: int = 1000,
    eval_repeats: int | None = None,
    seed: int = 0,
    threads: int = 1,
    shards: int | None = None,
    backend: str | None = None,
) -> BenchResult:
    """Build the network in float32 and time it on synthetic data (see the module docstring).

    `optimizer` is a validated config section such as AdamSpec(type="adam") or a mapping;
    `eval_repeats` defaults to max(3, steps // 5); `shards` defaults to `threads`; `backend` is
    DataParallel's ("threads" or "processes"; default: DataParallel's default).
    """
    for name, value, least in (("batch_size", batch_size, 1), ("steps", steps, 1),
                               ("warmup", warmup, 0), ("eval_batch_size", eval_batch_size, 1)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, received {value}")
    shards, threads = check_shards_threads(threads if shards is None else shards, threads)
    machine = machine_info()
    optimizer = optimizer_spec(optimizer if optimizer is not None else DEFAULT_OPTIMIZER)
    rng = np.random.default_rng(seed)
    net = build_model(input_shape, layer_specs, rng=rng)
    classes = int(np.prod(net.output_shape))
    x, y = synthetic_batch(net.input_shape, classes, batch_size, rng)
    with DataParallel(net, build_loss(loss_name), shards=shards, threads=threads,
                      optimizer=build_optimizer(optimizer, net.named_parameters()),
                      **({"backend": backend} if backend else {})) as par:
        layers, loss_ms, opt_ms = time_layers(net, loss_name, optimizer, x, y, steps, warmup,
                                              rng)
        step_ms = time_train_step(net, loss_name, optimizer, x, y, steps, warmup, rng, par)
        del x, y
        xe, _ = synthetic_batch(net.input_shape, classes, eval_batch_size, rng)
        repeats = eval_repeats if eval_repeats is not None else max(3, steps // 5)
        eval_ms = time_inference(net, xe, repeats, par=par)
    return BenchResult(
        batch_size=batch_size,
        steps=steps,
        optimizer=optimizer.type,
        layers=layers,
        loss_ms=loss_ms,
        optimizer_ms=opt_ms,
        train_step_ms=step_ms,
        train_images_per_s=batch_size / (step_ms / 1e3),
        eval_batch_size=eval_batch_size,
        eval_ms=eval_ms,
        eval_images_per_s=eval_batch_size / (eval_ms / 1e3),
        threads=threads,
        shards=shards,
        machine=machine,
    )


def format_machine(machine: Mapping[str, Any], threads: int | None = None) -> str:
    """One line naming the CPU, NumPy and BLAS (and the threads used, when given)."""
    used = f"; {threads} thread{'s' if threads != 1 else ''} (BLAS 1 per thread)" \
        if threads is not None else ""
    return (f"{machine.get('cpu', '?')} ({machine.get('cpus', '?')} cpus); numpy "
            f"{machine.get('numpy', '?')}, {machine.get('blas', '?')}{used}")


def format_result(result: BenchResult, title: str = "") -> str:
    """A `caffe time`-like table: per-layer forward/backward ms, then the throughputs."""
    head = ("#", "layer", "forward ms", "backward ms", "total ms")
    rows = [(str(r.index), r.layer, f"{r.forward_ms:.3f}", f"{r.backward_ms:.3f}",
             f"{r.forward_ms + r.backward_ms:.3f}") for r in result.layers]
    parts = sum(r.forward_ms + r.backward_ms for r in result.layers)
    parts += result.loss_ms + result.optimizer_ms
    rows += [
        ("", "loss (forward + backward)", "", "", f"{result.loss_ms:.3f}"),
        ("", "optimizer step", "", "", f"{result.optimizer_ms:.3f}"),
        ("", "sum of the parts", "", "", f"{parts:.3f}"),
    ]
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(5)]

    def fmt(r: tuple[str, ...]) -> str:
        return (f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  "
                f"{r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}")

    rule = "-" * len(fmt(head))
    names = [r.layer for r in result.layers]
    pairs = zip(names[:-1], names[1:], strict=True)
    swapped = ["(a relu right before a maxpool runs after it, on the pooled map)"] if any(
        a == "relu" and b.startswith("maxpool") for a, b in pairs) else []
    heading = f"{title + ': ' if title else ''}batch {result.batch_size}, " \
              f"medians of {result.steps} steps on synthetic data"
    where = format_machine(result.machine, result.threads) if result.machine else ""
    return "\n".join([
        heading, *([where] if where else []),
        "per layer: one thread, the whole batch", *swapped, fmt(head), rule,
        *(fmt(r) for r in rows), rule,
        f"train step: {result.train_step_ms:.3f} ms = "
        f"{result.train_images_per_s:,.0f} images/s (batch {result.batch_size}, "
        f"{result.shards} shard{'s' if result.shards != 1 else ''} on {result.threads} "
        f"thread{'s' if result.threads != 1 else ''})",
        f"inference:  {result.eval_ms:.3f} ms = "
        f"{result.eval_images_per_s:,.0f} images/s (batch {result.eval_batch_size}, "
        f"{result.threads} thread{'s' if result.threads != 1 else ''})",
    ])
