"""parallel.py: sharded steps give the full-batch gradient, and the same bits on 1 or 2 threads."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest

from cnncli.errors import ConfigError
from cnncli.layers.base import Layer, LayerSpec
from cnncli.layers.losses import build_loss
from cnncli.network import Network, build_model
from cnncli.optim import build_optimizer
from cnncli.parallel import DataParallel, blas_info, shard_bounds, shard_generators

SPECS: list[dict[str, Any]] = [
    {"type": "conv", "filters": 3, "kernel": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv", "filters": 4, "kernel": 3},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 7},
    {"type": "relu"},
    {"type": "dense", "units": 5},
]
WITH_DROPOUT = [*SPECS[:6], {"type": "dropout", "rate": 0.3}, *SPECS[6:8],
                {"type": "dropout", "rate": 0.3}, SPECS[8]]
SHAPE = (1, 10, 10)


def _data(n: int, dtype: Any, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((*SHAPE, n)).astype(dtype), rng.integers(0, 5, n)


def test_shard_bounds_split_evenly_with_the_first_shards_one_longer() -> None:
    assert shard_bounds(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert shard_bounds(64, 2) == [(0, 32), (32, 64)]
    assert shard_bounds(3, 5) == [(0, 1), (1, 2), (2, 3)]  # never an empty shard
    assert shard_bounds(7, 1) == [(0, 7)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("loss_name", ["softmax_cross_entropy", "mse"])
def test_sharded_gradient_equals_the_full_batch_gradient_in_float64(
        threads: int, loss_name: str) -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0), dtype=np.float64)
    x, y = _data(11, np.float64)  # 11 = 4 + 4 + 3: unequal shards weigh 4/11, 4/11, 3/11
    loss = build_loss(loss_name)
    full_loss = loss.forward(net.forward(x, training=True), y)
    net.backward(loss.backward(), input_grad=False)
    full = {k: v.copy() for k, v in net.named_gradients().items()}
    with DataParallel(net, build_loss(loss_name), shards=3, threads=threads) as par:
        out = par.train_step(x, y)
    sharded = net.named_gradients()
    assert out.loss == pytest.approx(full_loss, rel=1e-13)
    assert out.logits.shape == (5, 11)
    for name, g in full.items():
        np.testing.assert_allclose(sharded[name], g, rtol=1e-11, atol=1e-14, err_msg=name)
        assert sharded[name] is not g


def _train(shards: int, threads: int, steps: int = 4, backend: str = "threads",
           opt_spec: dict[str, Any] | None = None, split: bool = False
           ) -> tuple[dict[str, np.ndarray], Any]:
    """Train `steps` steps; with split, the optimizer goes to the DataParallel and its steps
    through optimizer_step (on the worker processes too, when there are some)."""
    rng = np.random.default_rng(3)
    net = build_model(SHAPE, WITH_DROPOUT, rng=rng)  # float32, as training runs
    opt = build_optimizer(opt_spec or {"type": "adam", "lr": 1e-2, "weight_decay": 0.01},
                          net.named_parameters())
    x, y = _data(13, np.float32)
    split_steps = 0
    with DataParallel(net, build_loss("softmax_cross_entropy"), shards, threads,
                      backend=backend, optimizer=opt if split else None) as par:
        for _ in range(steps):
            par.train_step(x, y, rng)
            if split:
                split_steps += par._procs is not None and par._procs.can_update(opt)
                par.optimizer_step(opt)
            else:
                opt.step(net.named_gradients())
    assert split_steps == (steps if split and threads > 1 and backend == "processes" else 0)
    return {k: v.copy() for k, v in net.named_parameters().items()}, rng.bit_generator.state


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("shards", [2, 3])
def test_one_and_two_threads_give_bit_identical_parameters_after_several_steps(
        shards: int, backend: str, split: bool) -> None:
    one, state_one = _train(shards, threads=1)
    two, state_two = _train(shards, threads=2, backend=backend, split=split)
    for name in one:
        assert np.array_equal(one[name], two[name]), name
    assert state_one == state_two
    # and the steps did train: the weights moved from their initial values
    start = build_model(SHAPE, WITH_DROPOUT, rng=np.random.default_rng(3)).named_parameters()
    assert not np.array_equal(one["layers.0.weight"], start["layers.0.weight"])


def test_the_shard_count_is_what_changes_the_result_not_the_thread_count() -> None:
    two, _ = _train(2, threads=2)
    three, _ = _train(3, threads=2)
    assert not np.array_equal(two["layers.0.weight"], three["layers.0.weight"])


def test_a_step_advances_the_run_generator_by_one_draw_of_shard_seeds() -> None:
    rng = np.random.default_rng(9)
    expected = np.random.default_rng(9)
    expected.integers(0, 2**63, size=3, dtype=np.int64)
    net = build_model(SHAPE, WITH_DROPOUT, rng=np.random.default_rng(0))
    x, y = _data(12, np.float32)
    with DataParallel(net, build_loss("softmax_cross_entropy"), shards=3, threads=2) as par:
        par.train_step(x, y, rng)
    assert rng.bit_generator.state == expected.bit_generator.state


def test_shard_generators_are_pcg64_seeded_by_one_draw_from_the_run_generator() -> None:
    seeds = np.random.default_rng(4).integers(0, 2**63, size=2, dtype=np.int64)
    gens = shard_generators(np.random.default_rng(4), 2)
    for g, seed in zip(gens, seeds, strict=True):
        assert g.random() == np.random.Generator(np.random.PCG64(int(seed))).random()
    assert gens[0].random() != gens[1].random()


def test_dropout_masks_of_a_shard_do_not_depend_on_the_thread_count() -> None:
    masks = {}
    for threads in (1, 2):
        net = build_model(SHAPE, WITH_DROPOUT, rng=np.random.default_rng(0))
        x, y = _data(12, np.float32)
        with DataParallel(net, build_loss("softmax_cross_entropy"), 2, threads,
                          backend="threads") as par:  # the replicas' masks in this process
            par.train_step(x, y, np.random.default_rng(1))
            masks[threads] = [r.layers[6]._cache.copy() for r in par.replicas]
    for a, b in zip(masks[1], masks[2], strict=True):
        assert np.array_equal(a, b)
    assert masks[1][0].shape == (36, 6) and not np.array_equal(masks[1][0], masks[1][1])


def test_evaluation_in_pieces_equals_the_whole_forward_pass_on_any_thread_count() -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0), dtype=np.float64)
    x, _ = _data(11, np.float64)
    whole = net.forward(x, training=False)
    got = {}
    for threads in (1, 2):
        with DataParallel(net, build_loss("mse"), shards=1, threads=threads,
                          eval_piece=4) as par:  # pieces of 4, 4, 3 columns
            got[threads] = par.forward(x)
    np.testing.assert_allclose(got[1], whole, rtol=1e-12, atol=1e-14)
    assert np.array_equal(got[1], got[2])


class RunningMeanSpec(LayerSpec):
    type: Literal["running_mean_for_tests"] = "running_mean_for_tests"


class RunningMean(Layer):
    """Identity whose buffer tracks a running mean of its input, like batch norm's (a test
    layer, not registered)."""

    Spec = RunningMeanSpec

    def __init__(self) -> None:
        super().__init__(RunningMeanSpec())
        self.buffers = {"mean": np.zeros(2), "count": np.zeros((), dtype=np.int64)}
        self.input_shape = self.output_shape = (2,)

    def forward(self, x: np.ndarray, training: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        if training:
            self.buffers["mean"] *= 0.9
            self.buffers["mean"] += 0.1 * x.mean(axis=-1)
            self.buffers["count"] += 1
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dout


def test_buffers_merge_as_the_shard_size_weighted_mean_in_shard_order() -> None:
    layer = RunningMean()
    layer.buffers["mean"][...] = [1.0, -2.0]
    net = Network((2,), [layer])
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 10.0]])  # (2, 5)
    with DataParallel(net, build_loss("mse"), shards=2, threads=2) as par:
        par.train_step(x, np.array([0, 1, 0, 1, 0]))
    # shards of 3 and 2 columns: 0.9 r + 0.1 (3/5 mean_0 + 2/5 mean_1) = 0.9 r + 0.1 mean
    np.testing.assert_allclose(layer.buffers["mean"], [0.9 + 0.3, -1.8 + 0.2], rtol=1e-15)
    assert int(layer.buffers["count"]) == 1


def test_blas_runs_one_thread_while_open_and_is_restored_after() -> None:
    before = [i["num_threads"] for i in blas_info()]
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    with DataParallel(net, build_loss("mse"), shards=2, threads=2):
        assert all(i["num_threads"] == 1 for i in blas_info())
    assert [i["num_threads"] for i in blas_info()] == before


@pytest.mark.parametrize(("shards", "threads", "bad"), [(0, 1, "shards"), (2, 0, "threads"),
                                                       (True, 1, "shards"), (1, 65, "threads")])
def test_bad_shard_or_thread_counts_are_config_errors_quoting_them(
        shards: Any, threads: Any, bad: str) -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=f"{bad} must be a positive integer.*received"):
        DataParallel(net, build_loss("mse"), shards=shards, threads=threads)


def test_a_closed_data_parallel_refuses_to_run_and_can_be_opened_again() -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    x, y = _data(4, np.float32)
    par = DataParallel(net, build_loss("mse"), shards=2, threads=2)
    par.close()
    with pytest.raises(RuntimeError, match="closed"):
        par.train_step(x, y)
    with par:
        assert np.isfinite(par.train_step(x, y).loss)


def _train_backend(shards: int, threads: int, backend: str) -> tuple[Any, ...]:
    rng = np.random.default_rng(3)
    net = build_model(SHAPE, WITH_DROPOUT, rng=rng)
    opt = build_optimizer({"type": "adam", "lr": 1e-2}, net.named_parameters())
    x, y = _data(13, np.float32)
    with DataParallel(net, build_loss("softmax_cross_entropy"), shards, threads,
                      eval_piece=5, backend=backend) as par:
        for _ in range(3):
            out = par.train_step(x, y, rng)
            opt.step(net.named_gradients())
        logits = par.forward(np.concatenate([x, x], axis=-1))  # 26 columns: pieces of 5
    params = {k: v.copy() for k, v in net.named_parameters().items()}
    return params, rng.bit_generator.state, out.loss, out.logits, logits


@pytest.mark.parametrize("shards", [2, 3])
def test_worker_processes_give_the_same_bits_as_one_thread(shards: int) -> None:
    one = _train_backend(shards, 1, "threads")
    procs = _train_backend(shards, 2, "processes")
    for name in one[0]:
        assert np.array_equal(one[0][name], procs[0][name]), name
    assert one[1] == procs[1] and one[2] == procs[2]
    assert np.array_equal(one[3], procs[3]) and np.array_equal(one[4], procs[4])


def test_processes_backend_merges_buffers_like_threads_and_refuses_unknown_backends() -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 10.0]])  # (2, 5)
    y = np.array([0, 1, 0, 1, 0])
    got = {}
    for threads, backend in ((1, "threads"), (2, "processes")):
        layer = RunningMean()
        layer.buffers["mean"][...] = [1.0, -2.0]
        with DataParallel(Network((2,), [layer]), build_loss("mse"), shards=2,
                          threads=threads, backend=backend) as par:
            par.train_step(x, y)
            par.train_step(x, y)
        got[backend] = {k: v.copy() for k, v in layer.buffers.items()}
    assert np.array_equal(got["threads"]["mean"], got["processes"]["mean"])
    assert int(got["processes"]["count"]) == 2
    np.testing.assert_allclose(got["processes"]["mean"], [0.81 + 0.57, -1.62 + 0.38])
    with pytest.raises(ConfigError, match="received 'fibers'"):
        DataParallel(Network((2,), [RunningMean()]), build_loss("mse"), shards=2, threads=2,
                     backend="fibers")


@pytest.mark.parametrize("opt_spec", [
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "sgd", "lr": 0.05},
    {"type": "adam", "lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-6},
])
def test_an_optimizer_step_split_over_the_worker_processes_gives_the_same_bits(
        opt_spec: dict[str, Any]) -> None:
    one, _ = _train(2, threads=1, opt_spec=opt_spec)
    split, _ = _train(2, threads=2, backend="processes", opt_spec=opt_spec, split=True)
    for name in one:
        assert np.array_equal(one[name], split[name]), name


def test_only_the_constructors_optimizer_over_this_steps_sum_is_split() -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    opt = build_optimizer({"type": "adam"}, net.named_parameters())
    other = build_optimizer({"type": "adam"}, net.named_parameters())
    x, y = _data(8, np.float32)
    with DataParallel(net, build_loss("mse"), 2, 2, backend="processes", optimizer=opt) as par:
        procs = par._procs
        assert not procs.can_update(opt)  # no step yet
        par.train_step(x, y)
        assert procs.can_update(opt) and not procs.can_update(other)
        before = {k: v.copy() for k, v in net.named_parameters().items()}
        par.optimizer_step(other)  # not the constructor's: an ordinary step, in the parent
        assert not np.array_equal(before["layers.0.weight"], net.named_parameters()[
            "layers.0.weight"])
        loss = build_loss("mse")
        loss.forward(net.forward(x, training=True), y)
        net.backward(loss.backward())  # the grads are no longer the step's sum
        assert not procs.can_update(opt)


def test_replacing_a_parameter_array_while_workers_run_is_an_error_not_a_stale_read() -> None:
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    x, y = _data(8, np.float32)
    with DataParallel(net, build_loss("mse"), 2, 2, backend="processes") as par:
        par.train_step(x, y)
        layer = net.layers[0]
        layer.params["weight"] = layer.params["weight"].copy()  # a new array, not in place
        with pytest.raises(RuntimeError, match="replaced while DataParallel worker"):
            par.train_step(x, y)


def test_shared_memory_is_seen_by_a_forked_child_and_ordinary_memory_is_not() -> None:
    import os

    from cnncli.sharedmem import is_shared, shared_zeros

    shared, private = shared_zeros(4, np.float32), np.zeros(4, np.float32)
    assert is_shared(shared[1:3].reshape(2, 1)) and not is_shared(private)
    pid = os.fork()
    if pid == 0:  # the child writes both and leaves
        shared[2], private[2] = 7.0, 7.0
        os._exit(0)
    os.waitpid(pid, 0)
    assert shared[2] == 7.0 and private[2] == 0.0


def test_a_worker_that_starts_late_still_serves_every_command_without_polling_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker that began after the parent had sent its first command once counted that
    # command as served, then polled the block for SPIN seconds before each later one: with
    # SPIN at 20 s and a child that starts 0.3 s late, these two commands took a minute.
    import time

    import cnncli.parallel_procs as pp

    monkeypatch.setattr(pp, "SPIN", 20.0)
    serve = pp.ForkedWorkers._serve

    def late(self: Any, *args: Any) -> None:
        time.sleep(0.3)
        serve(self, *args)

    monkeypatch.setattr(pp.ForkedWorkers, "_serve", late)
    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    opt = build_optimizer({"type": "adam"}, net.named_parameters())
    x, y = _data(8, np.float32)
    start = time.perf_counter()
    with DataParallel(net, build_loss("mse"), 2, 2, backend="processes", optimizer=opt) as par:
        par.train_step(x, y)
        assert par._procs.can_update(opt)
        par.optimizer_step(opt)  # a second command
    assert time.perf_counter() - start < 10.0  # a hang guard, not a speed figure


BATCHNORM = [SPECS[0], {"type": "batchnorm"}, *SPECS[1:]]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_evaluation_after_training_uses_the_networks_batchnorm_statistics_on_every_worker(
        backend: str) -> None:
    # A worker's replica keeps its own shard's statistics from the last step; evaluation
    # must use the network's merged ones (it once did not, for every other piece).
    got = {}
    for threads in (1, 2):
        rng = np.random.default_rng(4)
        net = build_model(SHAPE, BATCHNORM, rng=rng)
        opt = build_optimizer({"type": "adam", "lr": 1e-2}, net.named_parameters())
        x, y = _data(16, np.float32)
        with DataParallel(net, build_loss("softmax_cross_entropy"), 2, threads, eval_piece=5,
                          backend=backend, optimizer=opt) as par:
            for _ in range(3):
                par.train_step(x, y, rng)
                par.optimizer_step(opt)
            xx = np.concatenate([x, x], axis=-1)
            got[threads] = par.forward(xx)  # 7 pieces
            # the network's own statistics, the same pieces, all in the parent
            whole = np.concatenate([net.forward(np.ascontiguousarray(xx[..., a:a + 5]))
                                    for a in range(0, 32, 5)], axis=-1)
    assert np.array_equal(got[1], got[2])
    assert np.array_equal(got[2], whole)
    running = net.named_buffers()["layers.1.running_mean"]
    assert np.any(running != 0)  # the statistics did move


def test_an_optimizer_with_only_a_step_method_still_trains_on_worker_processes() -> None:
    from cnncli.optim import Optimizer

    class PlainSGD(Optimizer):
        def step(self, grads: dict[str, np.ndarray]) -> None:
            for name, p in self.params.items():
                p -= self.lr * grads[name]

    results = []
    for threads in (1, 2):
        net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
        opt = PlainSGD(net.named_parameters(), lr=0.1)
        x, y = _data(8, np.float32)
        with DataParallel(net, build_loss("mse"), 2, threads, backend="processes",
                          optimizer=opt) as par:
            par.train_step(x, y)
            assert par._procs is None or not par._procs.can_update(opt)
            par.optimizer_step(opt)
        results.append(net.named_parameters()["layers.0.weight"].copy())
    assert np.array_equal(results[0], results[1])


def test_a_failure_in_the_parents_shard_leaves_no_reply_unread() -> None:
    import select

    import cnncli.parallel as pl

    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    x, y = _data(8, np.float32)
    with DataParallel(net, build_loss("mse"), 2, 2, backend="processes") as par:
        original = pl.run_shard  # the workers are forked: they keep the original
        try:
            def broken(*args: Any, **kwargs: Any) -> Any:
                raise ValueError("injected")

            pl.run_shard = broken
            with pytest.raises(ValueError, match="injected"):
                par.train_step(x, y)
        finally:
            pl.run_shard = original
        _, _, rep_r = par._procs.workers[0]
        readable, _, _ = select.select([rep_r], [], [], 0.5)
        assert readable == []  # the worker's reply to the failed step was read
        one = par.train_step(x, y)  # and the next step pairs with its own reply
    with DataParallel(net, build_loss("mse"), 2, 1) as ref:
        assert ref.train_step(x, y).loss == one.loss


def test_a_worker_that_died_is_a_clear_error_on_the_next_step() -> None:
    import os
    import signal

    net = build_model(SHAPE, SPECS, rng=np.random.default_rng(0))
    x, y = _data(8, np.float32)
    with DataParallel(net, build_loss("mse"), 2, 2, backend="processes") as par:
        par.train_step(x, y)
        pid = par._procs.workers[0][0]
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with pytest.raises(RuntimeError, match=f"worker process.*{pid}"):
            par.train_step(x, y)
        par._procs.workers = []  # nothing left to close
