"""A sweep on Ray against the same trainings one after another, on real MNIST.

    python scripts/bench_sweep.py --mirror ../shared/data/mnist --data-dir /tmp/mnist-cache
    python scripts/bench_sweep.py ... --epochs 3          # a shorter version of both sides

Both sides train `--config` (default lenet) once per learning rate and seed (default
3e-4, 1e-3, 3e-3 x seeds 0, 1 = 6 trainings):

- one after another: `cnncli train` per training with its default threads (the config's
  train.shards on one worker per CPU, one BLAS thread each), as a user would run a shell loop;
- as a sweep: cnncli.sweep.run_sweep with Ray started embedded, one CPU (one worker, one BLAS
  thread) per trial, so two trials run at once on 2 cores. Its time includes Ray's start and
  stop. Both sides compute the same bits (train.shards fixes the arithmetic, not the threads).

MNIST is fetched and verified before either clock starts. Prints a markdown table with the
CPU, both wall times and their ratio, and each training's test accuracy on both sides.
Runs for a long time: on a shared machine, run it under `flock /tmp/cnncli-heavy.lock`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def median_speed(folder: Path) -> float:
    """The median images_per_s over every epoch of every run folder under `folder`."""
    rates = sorted(json.loads(line)["images_per_s"] for path in folder.rglob("metrics.jsonl")
                   for line in path.read_text().splitlines())
    return rates[len(rates) // 2] if rates else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="lenet")
    p.add_argument("--lrs", default="3e-4,1e-3,3e-3")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs for both sides")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--mirror", action="append", default=[])
    p.add_argument("--out", default=None, help="folder for both sides' run folders")
    args = p.parse_args()

    from cnncli.sweep import CnncliTrial, format_table, run_sweep, spec_from_options

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-sweep-"))
    out.mkdir(parents=True, exist_ok=True)
    epochs = [] if args.epochs is None else ["--set", f"train.epochs={args.epochs}"]
    spec = spec_from_options(args.config, grid=[f"optimizer.lr={args.lrs}"], seeds=args.seeds,
                             overrides=[f"train.epochs={args.epochs}"] if args.epochs else [],
                             name="bench")
    trial = CnncliTrial(data_dir=args.data_dir, mirrors=tuple(args.mirror), report=False)
    trial.prepare(spec.base, [])  # fetch and verify MNIST before any clock starts

    # one after another, default threads
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    data = (["--data-dir", args.data_dir] if args.data_dir else []) + [
        a for m in args.mirror for a in ("--mirror", m)]
    sequential: dict[tuple[str, int], float] = {}
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    for seed in spec.seeds or [0]:
        for lr in spec.grid["optimizer.lr"]:
            run_dir = out / "sequential" / f"lr{lr}-s{seed}"
            subprocess.run([sys.executable, "-m", "cnncli", "train", "--config", args.config,
                            "--set", f"optimizer.lr={lr}", "--seed", str(seed), *epochs, *data,
                            "--out", str(run_dir), "--no-report", "--quiet"], env=env, check=True)
            summary = json.loads((run_dir / "summary.json").read_text())
            sequential[(str(lr), seed)] = summary["test"]["accuracy"]
    t_sequential = time.perf_counter() - t0
    load.append(os.getloadavg()[0])

    t0 = time.perf_counter()
    result = run_sweep(spec, out / "sweep", train_trial=trial)
    t_sweep = time.perf_counter() - t0
    load.append(os.getloadavg()[0])
    speed = {side: median_speed(out / side) for side in ("sequential", "sweep")}

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; {args.config}, "
          f"{args.epochs or 'preset'} epochs, {len(result.trials)} trainings\n")
    print("| | wall time | ratio | training images/s per run (median epoch) | load before, "
          "after |\n| --- | ---: | ---: | ---: | --- |")
    print(f"| one after another (`cnncli train`, default threads) | {t_sequential:.0f} s "
          f"| 1.00 | {speed['sequential']:,.0f} | {load[0]:.1f}, {load[1]:.1f} |")
    print(f"| sweep on embedded Ray (1 CPU, 1 worker per trial) | {t_sweep:.0f} s "
          f"| {t_sequential / t_sweep:.2f}x faster | {speed['sweep']:,.0f} | {load[1]:.1f}, "
          f"{load[2]:.1f} |\n")
    print("(load: the 1-minute load average of the machine, other users' processes included)\n")
    print("| lr | seed | test acc, one after another | test acc, sweep | sweep trial seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in result.trials:
        lr = str(r.overrides["optimizer.lr"])
        print(f"| {lr} | {r.seed} | {100 * sequential[(lr, r.seed)]:.2f}% | "
              f"{100 * (r.test_acc or 0):.2f}% | {r.seconds:.0f} |")
    print()
    print(format_table(result.table))
    print(f"\nrun folders: {out}")


if __name__ == "__main__":
    main()
