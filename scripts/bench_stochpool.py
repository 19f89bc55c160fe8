"""Time stochastic pooling against max pooling on LeNet's first pooling shape.

    flock /tmp/cnncli-heavy.lock python scripts/bench_stochpool.py            # 2x2 / 2
    flock /tmp/cnncli-heavy.lock python scripts/bench_stochpool.py --size 3 --stride 2

The input is relu(standard normal) of shape (C, H, W, N) = (6, 28, 28, 64) in float32, as
after LeNet's first conv + relu (about 1/16 of its 2x2 windows are all zero).
Each repeat times every variant once, in a shuffled order, so all share the machine's noise;
the table shows the median over the repeats and the ratio to max pooling of the same median.
Times are the CPU time of this thread (time.thread_time): on a machine shared by more
runnable processes than cores, wall time also counts the slices spent waiting, and a pass
longer than a scheduler slice waits more often than a short one, which skews the ratios.
The median wall time is shown beside it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import numpy as np

from cnncli.functional.pool import maxpool2d_backward, maxpool2d_forward
from cnncli.functional.stochpool import (
    stochpool2d_backward_eval,
    stochpool2d_backward_train,
    stochpool2d_forward_eval,
    stochpool2d_forward_train,
)


def cpu_name() -> str:
    """The CPU model as lscpu names it, or the platform's guess."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--size", type=int, default=2)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=4, default=[6, 28, 28, 64],
                        metavar=("C", "H", "W", "N"))
    args = parser.parse_args()

    size, stride = (args.size, args.size), (args.stride, args.stride)
    data = np.random.default_rng(0)
    x = np.maximum(data.standard_normal(args.shape, dtype=np.float32), np.float32(0))
    out, _ = maxpool2d_forward(x, size, stride)
    dout = data.standard_normal(out.shape, dtype=np.float32)
    rng = np.random.default_rng(1)

    def maxpool() -> None:
        _, cache = maxpool2d_forward(x, size, stride)
        maxpool2d_backward(dout, cache)

    def stoch_train() -> None:
        _, cache = stochpool2d_forward_train(x, size, stride, rng)
        stochpool2d_backward_train(dout, cache)

    def stoch_eval() -> None:
        _, cache = stochpool2d_forward_eval(x, size, stride)
        stochpool2d_backward_eval(dout, cache)

    max_cache = maxpool2d_forward(x, size, stride)[1]
    train_cache = stochpool2d_forward_train(x, size, stride, np.random.default_rng(2))[1]
    eval_cache = stochpool2d_forward_eval(x, size, stride)[1]
    variants: dict[str, Callable[[], object]] = {
        "maxpool forward": lambda: maxpool2d_forward(x, size, stride),
        "maxpool backward": lambda: maxpool2d_backward(dout, max_cache),
        "maxpool forward+backward": maxpool,
        "stochpool train forward": lambda: stochpool2d_forward_train(x, size, stride, rng),
        "stochpool train backward": lambda: stochpool2d_backward_train(dout, train_cache),
        "stochpool train forward+backward": stoch_train,
        "stochpool eval forward": lambda: stochpool2d_forward_eval(x, size, stride),
        "stochpool eval backward": lambda: stochpool2d_backward_eval(dout, eval_cache),
        "stochpool eval forward+backward": stoch_eval,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        fn()
    names = list(variants)
    order = np.random.default_rng(3)
    for _ in range(args.repeats):
        for i in order.permutation(len(names)):  # a fresh order each repeat: no fixed neighbour
            name, fn = names[i], variants[names[i]]
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)

    med = {name: statistics.median(t) for name, t in cpu.items()}
    print(f"CPU: {cpu_name()}; NumPy {np.__version__}; Python {platform.python_version()}")
    print(f"x {tuple(args.shape)} float32, window {size}, stride {stride}, "
          f"median of {args.repeats} repeats")
    print()
    print("| variant | CPU ms | vs maxpool (same pass) | wall ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, m in med.items():
        ref = med["maxpool " + name.split()[-1]]
        print(f"| {name} | {m * 1e3:.3f} | {m / ref:.2f}x | "
              f"{statistics.median(wall[name]) * 1e3:.3f} |")


if __name__ == "__main__":
    main()
