"""What augmentation costs next to a training step: augment_batch vs `cnncli bench`'s LeNet step.

    python scripts/bench_augment.py                       # batch 64 of 28x28, 3 rounds
    python scripts/bench_augment.py --rounds 5 --runs 400 --blas-threads 1

Each round times augment_batch on a uint8 batch (the median of --runs calls per spec), then
runs `cnncli bench --config CONFIG --batch-size B --json` in a subprocess for the median
training step (forward, loss, backward, optimizer update). Rounds alternate the two so that
both see the same machine load; the table shows the median over rounds and the ratio
augmentation / training step. The images are random uint8: the cost does not depend on what
they show. Run it under `flock /tmp/cnncli-heavy.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SPECS = {  # name: AugmentSpec fields
    "affine (translate 2, rotate 15, scale 0.9-1.1)":
        {"translate": 2.0, "rotate": 15.0, "scale": (0.9, 1.1)},
    "affine + elastic (alpha 34, sigma 4)":
        {"translate": 2.0, "rotate": 15.0, "scale": (0.9, 1.1), "elastic_alpha": 34.0,
         "elastic_sigma": 4.0},
}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (as `lscpu | grep 'Model name'` shows it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_augment(images, spec, rng, runs: int) -> float:  # noqa: ANN001  (numpy imported late)
    """Median milliseconds of one augment_batch call (after 5 warm-up calls)."""
    from cnncli.data.augment import augment_batch

    samples = []
    for i in range(5 + runs):
        t0 = time.perf_counter()
        augment_batch(images, spec, rng)
        t1 = time.perf_counter()
        if i >= 5:
            samples.append(t1 - t0)
    return statistics.median(samples) * 1e3


def time_train_step(config: str, batch_size: int, steps: int) -> float:
    """`cnncli bench`'s median training-step milliseconds, from a subprocess."""
    cmd = [sys.executable, "-m", "cnncli", "bench", "--config", config, "--batch-size",
           str(batch_size), "--steps", str(steps), "--eval-batch-size", "1", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["train_step_ms"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64, help="Images per batch.")
    ap.add_argument("--size", type=int, default=28, help="Image height and width.")
    ap.add_argument("--runs", type=int, default=200, help="augment_batch calls per round.")
    ap.add_argument("--rounds", type=int, default=3, help="Alternating rounds; medians shown.")
    ap.add_argument("--config", default="lenet", help="Preset or YAML timed by cnncli bench.")
    ap.add_argument("--steps", type=int, default=50, help="cnncli bench --steps.")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="Set OPENBLAS_NUM_THREADS here and for cnncli bench.")
    args = ap.parse_args(argv)
    if args.blas_threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

    import numpy as np

    from cnncli.data.augment import AugmentSpec

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, args.size, args.size), dtype=np.uint8)
    specs = {name: AugmentSpec(**fields) for name, fields in SPECS.items()}
    aug: dict[str, list[float]] = {name: [] for name in specs}
    step: list[float] = []
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, spec in specs.items():
            aug[name].append(time_augment(images, spec, rng, args.runs))
        step.append(time_train_step(args.config, args.batch_size, args.steps))
    load_after = os.getloadavg()[0]

    step_ms = statistics.median(step)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cpus; numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"batch {args.batch_size} of {args.size}x{args.size} uint8; medians over "
          f"{args.rounds} rounds ({args.runs} augment calls, {args.steps} training steps each)")
    print()
    print("| what | ms per batch | / training step |")
    print("| --- | ---: | ---: |")
    print(f"| {args.config} training step (cnncli bench) | {step_ms:.2f} | 1 |")
    for name, samples in aug.items():
        ms = statistics.median(samples)
        print(f"| augment_batch: {name} | {ms:.2f} | {ms / step_ms:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
