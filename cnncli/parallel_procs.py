"""DataParallel's `processes` backend: forked worker processes over one shared memory block.

Threads share one GIL: every Python line between NumPy calls runs on one core at a time, and
a LeNet shard step of 32 images spends about a third of its time there (2 of 6 ms: the same
step on 1 image takes 2 ms). Worker processes have a GIL each. Worker w (1 .. threads-1) is
forked when the DataParallel opens; it owns a copy of replica w. Its parameters are the
network's own: build_model packs them into one array in shared memory (cnncli.sharedmem),
which both processes see. (A network whose parameters are not packed that way gets a copy in
the block before every step instead.) Per training step the parent copies the batch into the
block (the columns of the workers' shards) and writes one command per worker to a pipe;
worker w runs shards w, w + threads, ... (the same `run_shard` the threads run, one BLAS
thread, the shard generator seeded from the same drawn integer), writes each shard's
gradient, logits and loss into the block and answers one byte. The parent runs its own
shards meanwhile, then adds the gradients in shard order into one flat sum in the block (the
network's grads become views of it, valid until the next step): the bits are the same as
with threads. Nothing is pickled: commands are packed integers, data is the shared block.
Each side polls a counter in the block for up to SPIN seconds before it sleeps on a pipe
(see _spin).

The optimizer step can be split too (`update`): when the DataParallel was given the
optimizer before the workers were forked, and that optimizer keeps its state in flat shared
arrays over the packed parameters (cnncli.optim: Adam, SGD), the parent sends the numbers of
the step (`begin_step`), and each process updates its own range of the parameters with
`step_range`. The update is elementwise, so the bits are those of one whole update.

Buffers (batch-norm statistics) travel through the block as float64 (exact for float32
values and integer counters): each worker shard starts from the network's buffers as they
were before the step and sends its updated copy back; the parent merges them as for threads.
A batch wider than `capacity` columns, or of another dtype than the parameters, runs in the
parent alone (same bits, one core).
"""

from __future__ import annotations

import copy
import mmap
import os
import signal
import struct
import time
from typing import Any

import numpy as np

from cnncli.optim import flat_span
from cnncli.sharedmem import is_shared

#: the widest batch (columns) the shared block holds; wider ones run in the parent alone
CAPACITY = 1024
#: kind (b"T" train, b"E" eval, b"U" update, b"Q" quit), n (columns; for U: numbers), has_rng
_CMD = struct.Struct("<cqq")
#: the most numbers an optimizer's begin_step may return
SCALARS = 16
#: seconds a process polls the block for the other side's signal before sleeping on the pipe
SPIN = 0.005


class ForkedWorkers:
    """threads - 1 forked workers for a DataParallel `par` (see the module docstring)."""

    def __init__(self, par: Any, capacity: int = CAPACITY) -> None:
        net = par.net
        self.par, self.capacity = par, capacity
        # buffers travel as float64 (exact for float32 statistics and integer counters)
        self.bnames = [(i, k) for i, layer in enumerate(net.layers)
                       for k in (getattr(layer, "buffers", None) or {})]
        bsizes = [net.layers[i].buffers[k].size for i, k in self.bnames]
        self.boffsets = np.cumsum([0, *bsizes]).tolist()
        self.names = [(i, name) for i, layer in enumerate(net.layers) for name in layer.params]
        params = [net.layers[i].params[name] for i, name in self.names]
        self.dtype = params[0].dtype if params else np.dtype(np.float64)
        # the parameters as one flat array (build_model packs them), and the arrays it covered
        span = flat_span(params)
        self._packed = (span, params) if span is not None and span.dtype == self.dtype \
            else None
        #: the packed parameters are in shared memory: the workers use them where they are
        self.shared = self._packed is not None and is_shared(self._packed[0])
        #: the optimizer whose steps are split over the processes (see update), or None
        self.optimizer = par.optimizer if self._splittable(par.optimizer) else None
        self._gviews: list[np.ndarray] | None = None  # the net's grads, views of gsum
        self.sizes = [p.size for p in params]
        self.offsets = np.cumsum([0, *self.sizes]).tolist()
        total = self.offsets[-1]
        self.in_shape = tuple(net.input_shape)
        d = int(np.prod(self.in_shape))
        k = int(np.prod(net.output_shape))
        s = par.shards
        layout = [("params", (total,), self.dtype), ("grads", (s, total), self.dtype),
                  ("x", (d * capacity,), self.dtype), ("y", (capacity,), np.int64),
                  ("logits", (k, capacity), self.dtype), ("loss", (s,), np.float64),
                  ("seeds", (s,), np.int64), ("buf_in", (self.boffsets[-1],), np.float64),
                  ("buf_out", (s, self.boffsets[-1]), np.float64),
                  ("seq", (par.threads,), np.int64),  # [0]: commands sent, [w]: w's replies
                  ("gsum", (total,), self.dtype), ("scalars", (SCALARS,), np.float64)]
        sizes = [-(-(int(np.prod(shape)) * np.dtype(dt).itemsize) // 64) * 64
                 for _, shape, dt in layout]  # each region rounded up to 64 bytes
        self._mem = mmap.mmap(-1, sum(sizes))  # anonymous and shared: the children see it
        self.a: dict[str, np.ndarray] = {}
        pos = 0
        for (name, shape, dt), size in zip(layout, sizes, strict=True):
            self.a[name] = np.frombuffer(self._mem, dtype=dt, count=int(np.prod(shape)),
                                         offset=pos).reshape(shape)
            pos += size
        self.workers: list[tuple[int, int, int]] = []  # (pid, command fd, reply fd)
        for w in range(1, par.threads):
            cmd_r, cmd_w = os.pipe()
            rep_r, rep_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: serve commands until told to quit or the parent goes
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
                os.close(cmd_w)
                os.close(rep_r)
                code = 0
                try:
                    self._serve(w, cmd_r, rep_w)
                except BaseException:  # noqa: BLE001 - a child must never return into the caller
                    code = 1
                os._exit(code)
            os.close(cmd_r)
            os.close(rep_w)
            self.workers.append((pid, cmd_w, rep_r))

    # -- the parent -------------------------------------------------------------------------
    def _send(self, kind: bytes, n: int, has_rng: bool) -> None:
        for pid, cmd_w, _ in self.workers:
            try:
                os.write(cmd_w, _CMD.pack(kind, n, int(has_rng)))
            except OSError as e:  # the worker is gone: its end of the pipe closed
                raise RuntimeError(f"DataParallel worker process {pid} is gone ({e})") from e
        self.a["seq"][0] += 1  # after the writes: a worker that sees it finds its command

    def _meanwhile(self, work: Any) -> None:
        """Do the parent's own part of the command just sent, then wait for the workers'.

        If the parent's part fails, the workers' replies are still read (whatever they say)
        before the error goes on: the next command then starts in step. Else a later wait
        would take this command's reply for its own, and read rows not written yet.
        """
        try:
            work()
        except BaseException:
            try:
                self._wait()
            except (RuntimeError, OSError):
                pass
            raise
        self._wait()

    def _wait(self) -> None:
        failed = []
        seq = self.a["seq"]
        for w, (pid, _, rep_r) in enumerate(self.workers, start=1):
            _spin(seq, w, int(seq[0]))
            answer = os.read(rep_r, 1)
            if answer != b"K":
                failed.append(pid)
        if failed:
            raise RuntimeError(f"DataParallel worker process(es) {failed} failed")

    def _x_in(self, x: np.ndarray, ranges: list[tuple[int, int]]) -> None:
        """Write columns a:b of x, for each (a, b) in ranges, into the block's x region as one
        C-contiguous (..., b - a) array starting at element d * a (see _x_of)."""
        flat, x2 = self.a["x"], x.reshape(-1, x.shape[-1])
        d = x2.shape[0]
        for a, b in ranges:
            np.copyto(flat[d * a : d * b].reshape(d, b - a), x2[:, a:b])

    def _x_of(self, a: int, b: int) -> np.ndarray:
        """Columns a:b of the batch as the worker sees them: a C-contiguous view, no copy."""
        d = int(np.prod(self.in_shape))
        return self.a["x"][d * a : d * b].reshape(*self.in_shape, b - a)

    def _splittable(self, opt: Any) -> bool:
        """Whether opt's updates can be split: flat over exactly the packed parameters, in
        shared memory, with flat state in shared memory too."""
        if opt is None or not self.shared or self._packed is None:
            return False
        flat_state = getattr(opt, "flat_state", None)
        flat, state = getattr(opt, "flat", None), flat_state() if callable(flat_state) else None
        span = self._packed[0]
        return (flat is not None and state is not None and flat.dtype == self.dtype
                and flat.size == span.size and np.shares_memory(flat, span)
                and flat.__array_interface__["data"] == span.__array_interface__["data"]
                and all(is_shared(a) for a in state))

    def _params_in(self) -> None:
        flat = self.a["params"]
        net = self.par.net
        packed = self._packed is not None and all(
            net.layers[i].params[name] is p
            for (i, name), p in zip(self.names, self._packed[1], strict=True))
        if self.shared:
            if not packed:  # the workers would go on reading the old arrays
                raise RuntimeError("a layer's parameter array was replaced while DataParallel "
                                   "worker processes were running; assign into it instead "
                                   "(param[...] = value)")
            return
        if packed and self._packed is not None:  # one copy
            flat[...] = self._packed[0]
            return
        for (i, name), a, b in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            flat[a:b] = net.layers[i].params[name].reshape(-1)

    def _buffers_in(self) -> None:
        for buf, a, b in self._buffers(self.par.net):
            self.a["buf_in"][a:b] = buf.reshape(-1)

    def _buffers_out(self, net: Any) -> None:
        """In a worker: set its replica's buffers to those _buffers_in wrote."""
        for buf, a, b in self._buffers(net):
            buf[...] = self.a["buf_in"][a:b].reshape(buf.shape)

    def _buffers(self, net: Any) -> list[tuple[np.ndarray, int, int]]:
        return [(net.layers[i].buffers[k], a, b) for (i, k), a, b in
                zip(self.bnames, self.boffsets[:-1], self.boffsets[1:], strict=True)]

    def train(self, x: np.ndarray, y: np.ndarray, bounds: list[tuple[int, int]],
              seeds: list[int] | None, n: int, job: Any) -> tuple[list[Any], bool]:
        """Run shard s on process s % threads; return ([(loss, logits)] in shard order,
        summed). When summed, the network's grads hold the batch gradient (views of the
        block's flat sum); else every shard ran here and each replica holds its own."""
        par = self.par
        self._gviews = None
        if n > self.capacity or x.dtype != self.dtype:  # then all here: same bits, one core
            return [job(s) for s in range(len(bounds))], False
        t = par.threads
        self._x_in(x, [bounds[s] for s in range(len(bounds)) if s % t])
        self.a["y"][:n] = y
        if seeds is not None:
            self.a["seeds"][: len(seeds)] = seeds
        self._params_in()
        self._buffers_in()  # before shard 0 updates the network's own
        self._send(b"T", n, seeds is not None)
        results: list[Any] = [None] * len(bounds)

        def mine() -> None:
            for s in range(0, len(bounds), t):
                results[s] = job(s)

        self._meanwhile(mine)
        for s in range(len(bounds)):
            if s % t == 0:
                continue
            a, b = bounds[s]
            for (i, k), o0, o1 in zip(self.bnames, self.boffsets[:-1], self.boffsets[1:],
                                      strict=True):
                mine = par.replicas[s].layers[i].buffers
                mine[k] = self.a["buf_out"][s, o0:o1].reshape(mine[k].shape).astype(
                    mine[k].dtype)
            results[s] = (float(self.a["loss"][s]), self.a["logits"][:, a:b].copy())
        self._sum(len(bounds))
        return results, True

    def _grads_out(self, net: Any, s: int) -> None:
        """Copy a replica's gradients into row s of the block, in `names` order."""
        row = self.a["grads"][s]
        for (i, name), o0, o1 in zip(self.names, self.offsets[:-1], self.offsets[1:],
                                     strict=True):
            row[o0:o1] = net.layers[i].grads[name].reshape(-1)

    def _sum(self, used: int) -> None:
        """g_0 + g_1 + ... + g_{used-1} per parameter, added in that order (as
        DataParallel._sum_grads adds them), into the block's flat gsum; a shard that ran here
        contributes its replica's array, a worker's shard its row of the block. The network's
        grads become views of gsum."""
        par, t = self.par, self.par.threads
        rows, gsum = self.a["grads"], self.a["gsum"]
        views = []
        for (i, name), o0, o1 in zip(self.names, self.offsets[:-1], self.offsets[1:],
                                     strict=True):
            layer = par.net.layers[i]
            shape = layer.params[name].shape
            parts = [par.replicas[s].layers[i].grads[name] if s % t == 0
                     else rows[s, o0:o1].reshape(shape) for s in range(used)]
            out = gsum[o0:o1].reshape(shape)
            np.add(parts[0], parts[1], out=out)
            for g in parts[2:]:
                out += g
            layer.grads[name] = out
            views.append(out)
        self._gviews = views

    def can_update(self, opt: Any) -> bool:
        """Whether update(opt) may run: opt is the split optimizer and the network's grads are
        still the last step's sum."""
        if opt is None or opt is not self.optimizer or self._gviews is None:
            return False
        net = self.par.net
        return all(net.layers[i].grads.get(name) is v
                   for (i, name), v in zip(self.names, self._gviews, strict=True))

    def _range(self, w: int) -> tuple[int, int]:
        """The parameter elements process w updates: an even split in process order."""
        total, t = self.offsets[-1], self.par.threads
        return w * total // t, (w + 1) * total // t

    def update(self, opt: Any) -> None:
        """One optimizer step from the summed gradient, each process updating its range."""
        scalars = opt.begin_step()
        if len(scalars) > SCALARS:
            raise RuntimeError(f"{type(opt).__name__}.begin_step returned {len(scalars)} "
                               f"numbers, at most {SCALARS} fit the block")
        self.a["scalars"][: len(scalars)] = scalars
        self._send(b"U", len(scalars), False)
        a, b = self._range(0)
        self._meanwhile(lambda: opt.step_range(self.a["gsum"], a, b, scalars))

    def forward(self, x: np.ndarray, pieces: list[tuple[int, int]], job: Any) -> list[Any]:
        """Evaluation pieces: piece p on process p % threads; outputs in piece order."""
        n = x.shape[-1]
        if n > self.capacity or x.dtype != self.dtype:
            return [job(p) for p in range(len(pieces))]
        t = self.par.threads
        self._x_in(x, [pieces[p] for p in range(len(pieces)) if p % t])
        self._params_in()
        self._buffers_in()  # a worker evaluates with the network's statistics
        self._send(b"E", n, False)
        out: list[Any] = [None] * len(pieces)

        def mine() -> None:
            for p in range(0, len(pieces), t):
                out[p] = job(p)

        self._meanwhile(mine)
        for p in range(len(pieces)):
            if p % t:
                a, b = pieces[p]
                out[p] = self.a["logits"][:, a:b].copy()
        return out

    def close(self) -> None:
        for _, cmd_w, _ in self.workers:
            try:
                os.write(cmd_w, _CMD.pack(b"Q", 0, 0))
            except OSError:
                pass
        self.a["seq"][0] += 1  # a polling worker reads its Q at once
        for pid, cmd_w, rep_r in self.workers:
            os.close(cmd_w)
            os.close(rep_r)
            os.waitpid(pid, 0)
        self.workers = []

    # -- the child --------------------------------------------------------------------------
    def _serve(self, w: int, cmd_r: int, rep_w: int) -> None:
        from cnncli.parallel import run_shard, shard_bounds

        par = self.par
        net = par.replicas[w]
        loss = copy.copy(par.losses[0])
        flat = self.a["params"]
        for (i, name), a, b in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            if self.shared:  # the replica shares the network's arrays, in shared memory
                break
            layer = net.layers[i]
            if layer.params is par.net.layers[i].params:  # shared dict: give this copy its own
                layer.params = dict(layer.params)
            layer.params[name] = flat[a:b].reshape(layer.params[name].shape)
        t = par.threads
        seq = self.a["seq"]
        # Commands sent before this worker existed: none, as it is forked before the block's
        # first use. (Reading seq[0] here instead raced with the parent: when the parent sent
        # its first command before the child ran this line, the child counted it as done and
        # then polled for 5 ms before every later command, doubling a lenet step's time.)
        seen = 0
        while True:
            _spin(seq, 0, seen + 1)  # then the read below returns without sleeping
            seen += 1
            msg = b""
            while len(msg) < _CMD.size:
                part = os.read(cmd_r, _CMD.size - len(msg))
                if not part:
                    return  # the parent is gone
                msg += part
            kind, n, has_rng = _CMD.unpack(msg)
            if kind == b"Q":
                return
            try:
                if kind == b"T":
                    bounds = shard_bounds(n, par.shards)
                    for s in range(w, len(bounds), t):
                        a, b = bounds[s]
                        xs = self._x_of(a, b)
                        rng = np.random.Generator(np.random.PCG64(int(self.a["seeds"][s]))) \
                            if has_rng else None
                        self._buffers_out(net)  # the network's, as shard 0's
                        value, out = run_shard(net, loss, xs, self.a["y"][a:b].copy(), rng,
                                               (b - a) / n if len(bounds) > 1 else None)
                        self._grads_out(net, s)
                        self.a["logits"][:, a:b] = out
                        self.a["loss"][s] = value
                        for buf, o0, o1 in self._buffers(net):
                            self.a["buf_out"][s, o0:o1] = buf.reshape(-1)
                elif kind == b"U":
                    scalars = tuple(float(v) for v in self.a["scalars"][:n])
                    a, b = self._range(w)
                    self.optimizer.step_range(self.a["gsum"], a, b, scalars)
                else:
                    self._buffers_out(net)  # the network's statistics
                    pieces = [(a, min(a + par.eval_piece, n)) for a in range(0, n, par.eval_piece)]
                    for p in range(w, len(pieces), t):
                        a, b = pieces[p]
                        self.a["logits"][:, a:b] = net.forward(self._x_of(a, b),
                                                                training=False)
                os.write(rep_w, b"K")
                seq[w] += 1
            except Exception:  # noqa: BLE001 - reported to the parent as a failed step
                import traceback

                traceback.print_exc()  # on the inherited stderr: the parent raises a summary
                os.write(rep_w, b"X")
                seq[w] += 1


def _spin(seq: np.ndarray, i: int, target: int) -> None:
    """Poll seq[i] until it reaches target, for at most SPIN seconds.

    Each side also writes to its pipe BEFORE raising its counter, and the other then reads
    the pipe as always; the polling only spares it the sleep in that read. Waking a process
    asleep on a pipe took 0.1-0.4 ms on a 2-vCPU virtual machine, once per command and once
    per reply, against a LeNet step of about 10 ms; between steps the gap is shorter than
    SPIN, and after a longer one (an evaluation, a checkpoint) the read sleeps as before.
    """
    clock = time.perf_counter
    end = clock() + SPIN
    while seq[i] < target and clock() < end:
        os.sched_yield()  # anything else runnable on this CPU goes first
