"""Wall time until a test accuracy, cnncli against PyTorch, same network, same data.

    python scripts/time_to_accuracy.py --mirror /work/shared/data/mnist --data-dir /tmp/mnist
    python scripts/time_to_accuracy.py --config lenet --target 0.99 --threads 2 --no-torch

Both train the config's network (the `lenet` preset by default: AdamW 1e-3 with weight decay
0.05, cosine decay to 0 over 15 epochs, batch 64, dropout 0.2) on the config's training split
of real MNIST, read through cnncli's loader (the same 54,000 images, the same normalisation),
and evaluate the 10,000 test images after every epoch. cnncli runs through
cnncli.parallel.DataParallel (--shards shards on --threads threads); PyTorch is a plain loop
with torch.set_num_threads(--threads), its default weight initialisation and
LambdaLR with cnncli's cosine formula. The two alternate epoch by epoch (cnncli first on odd
epochs, PyTorch first on even ones), so both see the same load from other processes.

Reported per side: each epoch's training seconds and test accuracy, and the time to the
target: training seconds summed up to the first epoch whose test accuracy reaches it, and the
wall time including the per-epoch evaluations. A side stops once it reached the target.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


class CnnSide:
    """cnncli's training loop, one epoch at a time, through DataParallel."""

    name = "cnncli"

    def __init__(self, cfg: Any, data: Any, shards: int, threads: int,
                 backend: str | None = None) -> None:
        from cnncli.layers.losses import build_loss
        from cnncli.network import build_model
        from cnncli.optim import build_optimizer, build_schedule
        from cnncli.parallel import DataParallel

        run = cfg.run
        self.data, self.bs = data, run.train.batch_size
        self.rng = np.random.default_rng(run.train.seed)
        self.net = build_model(run.model.input_shape, run.model.layers, rng=self.rng)
        self.initial = {k: v.copy() for k, v in self.net.named_parameters().items()}
        self.opt = build_optimizer(run.optimizer, self.net.named_parameters())
        spe = math.ceil(len(data.train) / self.bs)
        self.lr_at = build_schedule(run.schedule, run.optimizer.lr, spe, run.train.epochs)
        self.par = DataParallel(self.net, build_loss(run.loss), shards, threads,
                                optimizer=self.opt,
                                **({"backend": backend} if backend else {}))
        self.par.close()  # opened for each epoch and evaluation: BLAS at its own count between
        self.step = 0

    def train_epoch(self) -> float:
        from cnncli.data.batches import to_batch

        train = self.data.train
        t0 = time.perf_counter()
        self.par.open()
        perm = self.rng.permutation(len(train))
        for start in range(0, len(train), self.bs):
            idx = perm[start:start + self.bs]
            self.par.train_step(to_batch(train.images[idx]), train.labels[idx], self.rng)
            self.opt.lr = self.lr_at(self.step)
            self.par.optimizer_step(self.opt)
            self.step += 1
        self.par.close()
        return time.perf_counter() - t0

    def test_accuracy(self) -> float:
        from cnncli.data.batches import to_batch

        test = self.data.test
        correct = 0
        with self.par:
            for start in range(0, len(test), 1000):
                out = self.par.forward(to_batch(test.images[start:start + 1000]))
                labels = test.labels[start:start + 1000]
                correct += int(np.count_nonzero(out.argmax(axis=0) == labels))
        return correct / len(test)

    def close(self) -> None:
        self.par.close()


def _param_order(name: str) -> tuple[int, int]:
    """layers.<i>.weight before layers.<i>.bias, in layer order (PyTorch's parameter order)."""
    _, i, kind = name.split(".")
    return int(i), 0 if kind == "weight" else 1


class TorchSide:
    """The same network in PyTorch, a plain training loop."""

    name = "PyTorch"

    def __init__(self, torch: Any, cfg: Any, data: Any, net: Any, threads: int,
                 initial: dict[str, np.ndarray] | None = None) -> None:
        from bench import torch_loss, torch_model, torch_optimizer

        from cnncli.data.batches import MEAN, STD

        run = cfg.run
        self.torch, self.threads, self.bs = torch, threads, run.train.batch_size
        torch.manual_seed(run.train.seed)
        self.model = torch_model(torch, net)
        if initial is not None:  # the very weights cnncli starts from (same layer order)
            ours = [initial[k] for k in sorted(initial, key=_param_order)]
            theirs = list(self.model.parameters())
            assert [tuple(p.shape) for p in theirs] == [a.shape for a in ours]
            with torch.no_grad():
                for p, a in zip(theirs, ours, strict=True):
                    p.copy_(torch.from_numpy(a.copy()))
        self.loss = torch_loss(torch, run.loss)
        self.opt = torch_optimizer(torch, run.optimizer.model_dump(), self.model.parameters())
        spe = math.ceil(len(data.train) / self.bs)
        total = run.train.epochs * spe
        min_lr, base = getattr(run.schedule, "min_lr", 0.0), run.optimizer.lr

        def factor(s: int) -> float:  # cnncli.optim.cosine_lr / base_lr
            s = min(s, total)
            return (min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * s / total))) / base

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)

        def tensor(images: np.ndarray) -> Any:  # uint8 (N, H, W) -> (N, 1, H, W) normalised
            x = torch.from_numpy(np.array(images)).float().div_(255.0).sub_(MEAN).div_(STD)
            return x.unsqueeze(1)

        self.xtr, self.xte = tensor(data.train.images), tensor(data.test.images)
        self.ytr = torch.from_numpy(np.array(data.train.labels))  # copies: torch wants them
        self.yte = torch.from_numpy(np.array(data.test.labels))  # writable

    def train_epoch(self) -> float:
        torch = self.torch
        torch.set_num_threads(self.threads)
        self.model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(self.ytr))
        for start in range(0, len(perm), self.bs):
            idx = perm[start:start + self.bs]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(self.xtr[idx]), self.ytr[idx]).backward()
            self.opt.step()
            self.sched.step()
        return time.perf_counter() - t0

    def test_accuracy(self) -> float:
        torch = self.torch
        torch.set_num_threads(self.threads)
        self.model.eval()
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(self.yte), 1000):
                out = self.model(self.xte[start:start + 1000])
                correct += int((out.argmax(dim=1) == self.yte[start:start + 1000]).sum())
        return correct / len(self.yte)

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="lenet", help="Preset or YAML file.")
    ap.add_argument("--target", type=float, default=0.99, help="Test accuracy to reach.")
    ap.add_argument("--threads", type=int, default=2, help="Threads for both sides.")
    ap.add_argument("--shards", type=int, default=None,
                    help="cnncli's shards per batch [default: --threads].")
    ap.add_argument("--backend", default=None, choices=("threads", "processes"),
                    help="cnncli's DataParallel backend [default: processes where the "
                         "system can fork].")
    ap.add_argument("--data-dir", default=None, help="MNIST cache folder (cnncli's loader).")
    ap.add_argument("--mirror", action="append", default=[], help="Mirror to fetch MNIST from.")
    ap.add_argument("--no-torch", action="store_true", help="Only cnncli.")
    ap.add_argument("--seed", type=int, default=None, help="Override train.seed.")
    ap.add_argument("--init", choices=("same", "own"), default="same",
                    help="same: PyTorch starts from cnncli's very initial weights (the same "
                         "network, weights included); own: PyTorch's default initialisation.")
    args = ap.parse_args(argv)

    from cnncli.bench import format_machine, machine_info
    from cnncli.config import load_config
    from cnncli.data.source import FetchingSource
    from cnncli.data.split import make_dataset
    from cnncli.parallel import DEFAULT_BACKEND

    args.backend = args.backend or DEFAULT_BACKEND

    cfg = load_config(args.config, [f"train.seed={args.seed}"] if args.seed is not None else [])
    arrays = FetchingSource(data_dir=args.data_dir, mirrors=args.mirror).load(cfg.run.data)
    data = make_dataset(arrays.train_images, arrays.train_labels, arrays.test_images,
                        arrays.test_labels, cfg.run.train.val_split)
    if data.test is None:
        raise SystemExit("no test images")
    shards = args.shards or args.threads
    sides: list[Any] = [CnnSide(cfg, data, shards, args.threads, args.backend)]
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            sides.append(TorchSide(torch, cfg, data, sides[0].net, args.threads,
                                   sides[0].initial if args.init == "same" else None))
    epochs = cfg.run.train.epochs
    load_before = os.getloadavg()
    log: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in sides}
    done: dict[str, bool] = {s.name: False for s in sides}
    for e in range(1, epochs + 1):
        order = sides if e % 2 == 1 else sides[::-1]
        for side in order:
            if done[side.name]:
                continue
            time.sleep(0.3)  # let the other side's idle threads stop spinning
            train_s = side.train_epoch()
            t0 = time.perf_counter()
            acc = side.test_accuracy()
            eval_s = time.perf_counter() - t0
            log[side.name].append((train_s, eval_s, acc))
            print(f"{side.name:8s} epoch {e:2d}: train {train_s:6.1f} s, test {acc:.4f} "
                  f"(eval {eval_s:.2f} s), load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            done[side.name] = acc >= args.target
        if all(done.values()):
            break
    for side in sides:
        side.close()

    load_after = os.getloadavg()
    print(f"{format_machine(machine_info())}; {args.threads} threads each; cnncli {shards} "
          f"shards ({args.backend}); config {args.config}, seed {cfg.run.train.seed}, "
          f"PyTorch init {args.init}; target test accuracy "
          f"{args.target:.4f}; load average "
          f"{'/'.join(f'{v:.2f}' for v in load_before)} before, "
          f"{'/'.join(f'{v:.2f}' for v in load_after)} after.")
    print()
    print("| side | epochs to target | training s to target | wall s to target (with eval) | "
          "best test accuracy | images/s (median epoch) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    n_train = len(data.train)
    for name, rows in log.items():
        hit = next((i for i, r in enumerate(rows) if r[2] >= args.target), None)
        rate = n_train / float(np.median([r[0] for r in rows]))
        best = max(r[2] for r in rows)
        if hit is None:
            print(f"| {name} | not reached in {len(rows)} | - | - | {best:.4f} | {rate:,.0f} |")
        else:
            train_s = sum(r[0] for r in rows[:hit + 1])
            wall_s = train_s + sum(r[1] for r in rows[:hit + 1])
            print(f"| {name} | {hit + 1} | {train_s:.1f} | {wall_s:.1f} | {best:.4f} | "
                  f"{rate:,.0f} |")
    print()
    for name, rows in log.items():
        print(f"{name}: " + ", ".join(f"e{i + 1} {r[0]:.1f}s {r[2]:.4f}"
                                      for i, r in enumerate(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
