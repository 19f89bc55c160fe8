"""Data-parallel training steps: a batch split into shards, the shards run on threads.

    with DataParallel(net, loss, shards=2, threads=2, optimizer=optimizer) as par:
        out = par.train_step(x, y, rng)        # forward + loss + backward of every shard
        par.optimizer_step(optimizer)          # = optimizer.step(net.named_gradients())
        logits = par.forward(x_eval)           # evaluation mode, sharded the same way

Why: NumPy releases the GIL inside its large ufuncs, copies and matmuls, so two Python threads
each running the whole network on part of the batch keep both cores busy, while a single
thread with a 2-thread BLAS leaves every elementwise op, pool and im2col on one core.

The rules that make the result independent of the number of threads:

- Shards. A batch of N columns is cut into `shards` contiguous pieces, the first N % shards
  one column longer (`shard_bounds`). The cut depends on N and `shards` only. `shards` is a
  config value (it changes the arithmetic, so it is part of what a run is); `threads` is not:
  shard s always runs on its own replica s, whichever thread executes it.
- Replicas. Replica 0 is the network itself; replica s > 0 is a shallow copy of every layer
  (`replicate`) that SHARES the parameter arrays (the same `params` dict) but has its own
  `grads` dict, its own caches (attributes a layer rebinds in forward) and copies of its
  `buffers`, if it has any. Parameters are only read during a step.
- Loss scaling. Shard s's loss is a mean over its n_s columns, so its gradient is scaled by
  n_s / N before backward: the summed gradient is then the gradient of the full-batch mean,
  sum_s (n_s / N) mean_s = mean, up to float rounding. The reported loss is the same
  weighted sum, in float64, in shard order.
- Summation. Each parameter's gradient is g_0 + g_1 + ... + g_{S-1}, added in shard order
  after every shard is done, into a new array stored as replica 0's (the network's) grads
  (with worker processes: into one flat array in the shared block, of which the network's
  grads are views until the next step).
- Backends. `processes` (cnncli.parallel_procs; the default where os.fork exists) runs the
  other threads' shards on forked worker processes sharing a memory block, each with its own
  GIL; `threads` on threads of this process, which share one GIL: a LeNet shard step of 32
  images took about 6 ms, and the same step on 1 image 2 ms, nearly all of it Python and
  per-call overhead that holds the GIL, so threads reached 1.3x one core's speed on 2 cores
  and processes 1.7x. Same bits either way.
- BLAS. While a DataParallel is open, BLAS runs one thread per worker (threadpoolctl), for
  every `threads` value: a BLAS call then computes the same bits whichever thread makes it,
  and two workers do not fight over BLAS's own thread pool.
- Randomness. With shards == 1 the step passes the run's generator straight to the network
  (exactly what an unsharded step does). With shards > 1 the step draws `shards` integers
  from the run's generator, one draw per step, and seeds one PCG64 generator per shard from
  them (`shard_generators`); shard s's dropout masks come from generator s. So the run's
  generator state after a step depends on the step only (not on the thread count nor on how
  many numbers dropout used), and a checkpoint of it resumes bit-identically.
- Buffers (e.g. batch-norm running statistics, for layers that have a `buffers` dict): before
  a step every replica's buffers are set to the network's; afterwards each floating buffer of
  the network becomes sum_s (n_s / N) buffer_s, in shard order (for a running mean updated
  as (1 - m) r + m mean_s, that is (1 - m) r + m sum_s (n_s / N) mean_s); integer buffers
  (counters) keep replica 0's value, every replica having counted the same steps.
  Normalisation itself uses each shard's own batch statistics (as unsynchronised data-parallel
  batch norm does everywhere), which is deterministic because the shards are.

A layer type that keeps other per-call state in a mutable object it does not rebind can
define `replicate(self) -> Layer` to make its own replica; `replicate` below uses it if present.
A layer's backward must store new arrays in `grads` (or create them when the dict is empty):
a replica starts with an empty `grads` dict.

In a training loop (the trainer builds one DataParallel per run, `shards` from the config,
`threads` from the command line or the machine, and closes it at the end):

    step = par.train_step(to_batch(images[idx]), labels[idx], rng)   # instead of forward,
    optimizer.lr = lr_at(t)                                           # loss and backward
    par.optimizer_step(optimizer)             # optimizer.step(net.named_gradients()), split
    loss_value, logits = step.loss, step.logits                       # for the metrics
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cnncli.errors import ConfigError, quote

#: the most threads a DataParallel accepts; beyond the cores there is nothing to gain
MAX_THREADS = 64
#: evaluation runs in pieces of at most this many columns (see DataParallel.forward)
EVAL_PIECE = 128
#: worker processes where the system can fork them (no GIL shared: 1.7x one core's training
#: speed on 2 cores, against 1.3x for threads), else threads
DEFAULT_BACKEND = "processes" if hasattr(os, "fork") else "threads"


class _Loss(Protocol):
    def forward(self, out: np.ndarray, y: np.ndarray) -> float: ...
    def backward(self) -> np.ndarray: ...


class _Net(Protocol):
    layers: list[Any]

    def forward(self, x: np.ndarray, *, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray: ...
    def backward(self, dout: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None: ...


@dataclass(frozen=True)
class StepOutput:
    """One training step's mean loss over the whole batch and its logits (K, N)."""

    loss: float
    logits: np.ndarray


def check_shards_threads(shards: Any, threads: Any) -> tuple[int, int]:
    """Both positive integers (threads at most MAX_THREADS); ConfigError quoting the value."""
    for name, value, top in (("shards", shards, None), ("threads", threads, MAX_THREADS)):
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
                or (top is not None and value > top)):
            limit = f" at most {top}" if top is not None else ""
            raise ConfigError(f"{name} must be a positive integer{limit}, received "
                              f"{quote(value)}")
    return int(shards), int(threads)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Column ranges [start, stop) of the shards of a batch of n: min(n, shards) pieces.

    The first n % shards pieces are one column longer, e.g. n=10, shards=4 -> 3, 3, 2, 2.
    """
    count = max(1, min(n, shards))
    base, extra = divmod(n, count)
    bounds, start = [], 0
    for s in range(count):
        stop = start + base + (1 if s < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard_seeds(rng: np.random.Generator, shards: int) -> list[int]:
    """ONE draw of `shards` integers in [0, 2**63) from rng: the seeds of a step's shards."""
    return rng.integers(0, 2**63, size=shards, dtype=np.int64).tolist()


def shard_generators(rng: np.random.Generator, shards: int) -> list[np.random.Generator]:
    """One generator per shard, seeded from ONE draw of `shards` integers from rng.

    Generator s is PCG64 seeded (through SeedSequence) with the s-th integer; rng advances by
    that one draw whatever the shards then use.
    """
    return [np.random.Generator(np.random.PCG64(s)) for s in shard_seeds(rng, shards)]


def replicate(layer: Any) -> Any:
    """A replica of a layer for another shard: shared params, own grads, caches and buffers.

    Uses `layer.replicate()` when the layer defines it; else a shallow copy (attributes that
    forward rebinds, such as caches, then belong to the copy alone) with a new `grads` dict
    and copies of the `buffers` arrays.
    """
    own = getattr(layer, "replicate", None)
    if callable(own):
        return own()
    r = copy.copy(layer)
    r.grads = {}
    buffers = getattr(layer, "buffers", None)
    if isinstance(buffers, dict):
        r.buffers = {k: v.copy() for k, v in buffers.items()}
    return r


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's description of every BLAS loaded (library, version, threads, arch)."""
    from threadpoolctl import threadpool_info

    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


class DataParallel:
    """Runs a network's training steps and evaluation passes shard by shard on threads.

    `net` is a Network (layers with params/grads dicts, forward(x, training, rng),
    backward(dout, input_grad=...)); `loss` a loss object (forward(out, y) -> float,
    backward() -> dout). Both are replicated `shards - 1` times at construction (see the
    module docstring). Use it as a context manager, or call close(): it owns a thread pool
    and holds BLAS at one thread while open.
    """

    def __init__(self, net: Any, loss: Any, shards: int = 1, threads: int = 1,
                 eval_piece: int = EVAL_PIECE,
                 make_net: Callable[[list[Any]], Any] | None = None,
                 backend: str = DEFAULT_BACKEND, optimizer: Any = None) -> None:
        self.shards, self.threads = check_shards_threads(shards, threads)
        #: the optimizer whose steps `optimizer_step` may split over the worker processes
        self.optimizer = optimizer
        if backend not in ("threads", "processes"):
            raise ConfigError(f"backend must be threads or processes, received {quote(backend)}")
        self.backend = backend
        self.eval_piece = max(1, int(eval_piece))
        self.net = net
        rebuild = make_net or (lambda layers: _copy_net(net, layers))
        count = max(self.shards, self.threads)  # shards train on them, threads evaluate on them
        self.replicas: list[Any] = [net] + [
            rebuild([replicate(layer) for layer in net.layers]) for _ in range(count - 1)
        ]
        self.losses: list[Any] = [loss] + [copy.copy(loss) for _ in range(self.shards - 1)]
        self._pool: ThreadPoolExecutor | None = None
        self._procs: Any = None
        self._limit: Any = None
        self._open = False
        self.open()

    # -- life cycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Start the worker threads and limit BLAS to one thread (done by __init__; call it
        again after close() to reuse the object)."""
        if self._open:
            return
        from threadpoolctl import threadpool_limits

        self._limit = threadpool_limits(limits=1, user_api="blas")
        if self.threads > 1 and self.backend == "processes":
            from cnncli.parallel_procs import ForkedWorkers

            try:
                self._procs = ForkedWorkers(self)
            except BaseException:
                self._limit.restore_original_limits()
                self._limit = None
                raise
        elif self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="cnncli-shard")
        self._open = True

    def close(self) -> None:
        """Restore BLAS's thread count and stop the worker threads."""
        if self._limit is not None:
            self._limit.restore_original_limits()
            self._limit = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._procs is not None:
            self._procs.close()
            self._procs = None
        self._open = False

    def __enter__(self) -> DataParallel:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running shards ---------------------------------------------------------------------
    def _run(self, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run job s (shard s) on thread s % threads (0 is the caller); results in order."""
        if not self._open:
            raise RuntimeError("DataParallel is closed; call open() first")
        if self._pool is None or len(jobs) == 1:
            return [job() for job in jobs]
        t = self.threads
        futures: dict[int, Future[Any]] = {
            s: self._pool.submit(_run_all, jobs[s::t][:]) for s in range(1, min(t, len(jobs)))
        }
        results: list[Any] = [None] * len(jobs)
        mine = _run_all(jobs[0::t])
        for k, s in enumerate(range(0, len(jobs), t)):
            results[s] = mine[k]
        for first, fut in futures.items():
            for k, value in enumerate(fut.result()):
                results[first + k * t] = value
        return results

    def train_step(self, x: np.ndarray, y: np.ndarray,
                   rng: np.random.Generator | None = None) -> StepOutput:
        """x: (..., N), y: (N,) -> StepOutput; the network's grads hold the batch gradient.

        Every shard runs forward (training mode), its loss, and backward without the input
        gradient; then the shard gradients are summed in shard order into the network's grads.
        """
        n = x.shape[-1]
        bounds = shard_bounds(n, self.shards)
        seeds = None
        if self.shards > 1 and rng is not None:
            seeds = shard_seeds(rng, self.shards)
        self._sync_buffers(len(bounds))

        def job(s: int) -> tuple[float, np.ndarray]:
            a, b = bounds[s]
            xs = x[..., a:b] if len(bounds) == 1 else np.ascontiguousarray(x[..., a:b])
            # shard s's generator, made where the shard runs (seeding a PCG64: ~30 us)
            gen = rng if self.shards == 1 else (
                np.random.Generator(np.random.PCG64(seeds[s])) if seeds is not None else None)
            return run_shard(self.replicas[s], self.losses[s], xs, y[a:b], gen,
                             (b - a) / n if len(bounds) > 1 else None)

        summed = False
        if self._procs is not None and len(bounds) > 1:
            results, summed = self._procs.train(x, y, bounds, seeds, n, job)
        else:
            results = self._run([lambda s=s: job(s) for s in range(len(bounds))])
        if not summed:
            self._sum_grads(len(bounds))
        self._merge_buffers(bounds, n)
        total = 0.0
        for (a, b), (value, _) in zip(bounds, results, strict=True):
            total += float(value) * ((b - a) / n)
        logits = results[0][1] if len(results) == 1 else np.concatenate(
            [out for _, out in results], axis=-1)
        return StepOutput(total if len(results) > 1 else float(results[0][0]), logits)

    def optimizer_step(self, optimizer: Any) -> None:
        """optimizer.step(net.named_gradients()), the same bits, but split over the worker
        processes when possible: `optimizer` is the one given to the constructor, keeping
        flat state (Adam, SGD over build_model's packed parameters) and the last train_step
        ran on the workers. Each process then updates its own range of the parameters
        (lenet, Xeon: the step went from 0.55 ms in the parent to 0.35-0.4 ms, the
        handshake included)."""
        if self._procs is not None and self._procs.can_update(optimizer):
            self._procs.update(optimizer)
        else:
            optimizer.step(self.net.named_gradients())

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluation-mode forward pass of x: (..., N) -> (K, N), on all the threads.

        The batch is cut into pieces of at most `eval_piece` columns (128 by default: a
        LeNet forward pass ran 1.2-1.3x faster per image in pieces of 64-128 than of 500 or
        1000, its im2col bands staying in the cache); thread t runs pieces t, t + threads, ...
        on replica t, whose buffers (batch-norm statistics) are first set to the network's.
        A piece's output does not depend on the other pieces, so the result does not depend
        on the number of threads (nor on `shards`).
        """
        n = x.shape[-1]
        pieces = [(a, min(a + self.eval_piece, n)) for a in range(0, n, self.eval_piece)]
        if len(pieces) <= 1:
            return self.net.forward(x, training=False)
        if self._procs is not None:
            def piece(p: int) -> np.ndarray:
                a, b = pieces[p]
                return self.net.forward(np.ascontiguousarray(x[..., a:b]), training=False)

            return np.concatenate(self._procs.forward(x, pieces, piece), axis=-1)
        out: list[np.ndarray | None] = [None] * len(pieces)
        t = min(self.threads, len(pieces))
        self._sync_buffers(t)  # the replicas evaluate with the network's statistics

        def job(first: int) -> None:
            net = self.replicas[first]
            for p in range(first, len(pieces), t):
                a, b = pieces[p]
                out[p] = net.forward(np.ascontiguousarray(x[..., a:b]), training=False)

        self._run([lambda f=f: job(f) for f in range(t)])
        return np.concatenate(out, axis=-1)  # type: ignore[arg-type]

    # -- combining shards ---------------------------------------------------------------------
    def _sum_grads(self, used: int) -> None:
        if used == 1:
            return
        for i, layer in enumerate(self.net.layers):
            for name in list(layer.grads):
                total = layer.grads[name] + self.replicas[1].layers[i].grads[name]
                for s in range(2, used):
                    total += self.replicas[s].layers[i].grads[name]
                layer.grads[name] = total

    def _sync_buffers(self, used: int) -> None:
        for i, layer in enumerate(self.net.layers):
            buffers = getattr(layer, "buffers", None)
            if not buffers:
                continue
            for s in range(1, used):
                theirs = self.replicas[s].layers[i].buffers
                for k, v in buffers.items():
                    theirs[k][...] = v

    def _merge_buffers(self, bounds: list[tuple[int, int]], n: int) -> None:
        if len(bounds) == 1:
            return
        for i, layer in enumerate(self.net.layers):
            buffers = getattr(layer, "buffers", None)
            if not buffers:
                continue
            for k, v in buffers.items():
                if not np.issubdtype(v.dtype, np.floating):
                    continue
                parts = [self.replicas[s].layers[i].buffers[k] for s in range(len(bounds))]
                weights = [(b - a) / n for a, b in bounds]
                merged = parts[0] * v.dtype.type(weights[0])
                for p, w in zip(parts[1:], weights[1:], strict=True):
                    merged += p * v.dtype.type(w)
                v[...] = merged


def run_shard(net: Any, loss: Any, x: np.ndarray, y: np.ndarray,
              rng: np.random.Generator | None, weight: float | None) -> tuple[float, np.ndarray]:
    """Forward (training mode), loss and backward of one shard on one replica.

    `weight` = n_s / N scales the loss gradient (None: 1, the unsharded step). Returns the
    shard's mean loss and its logits; the replica's grads hold the shard's weighted gradient.
    """
    out = net.forward(x, training=True, rng=rng)
    value = loss.forward(out, y)
    dout = loss.backward()
    if weight is not None:  # a new array: the loss may keep what it returned
        dout = dout * dout.dtype.type(weight)
    net.backward(dout, input_grad=False)
    return value, out


def _run_all(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    return [job() for job in jobs]


def _copy_net(net: Any, layers: list[Any]) -> Any:
    """A shallow copy of the network object holding the replica layers."""
    r = copy.copy(net)
    r.layers = layers
    return r
