"""Optimizer steps against values worked out by hand, schedules, and the state round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import CheckpointError
from cnncli.optim import (
    SGD,
    Adam,
    ConstantSpec,
    CosineSpec,
    StepSpec,
    build_optimizer,
    build_schedule,
    cosine_lr,
    flat_span,
    step_lr,
    warmup_factor,
)


def _p(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float64)}


def _g(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float64)}


def test_sgd_plain_step_is_p_minus_lr_g():
    params = _p(1.0, -2.0)
    SGD(params, lr=0.1).step(_g(0.5, 0.25))
    np.testing.assert_allclose(params["w"], [0.95, -2.025])


def test_sgd_updates_the_callers_array_in_place():
    params = _p(1.0)
    live = params["w"]
    SGD(params, lr=1.0).step(_g(1.0))
    assert live[0] == 0.0


def test_sgd_momentum_accumulates_velocity():
    # g = 1 twice, mu = 0.9: v = 1 then 1.9; p = -0.1 then -0.1 - 0.19 = -0.29
    params = _p(0.0)
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.step(_g(1.0))
    np.testing.assert_allclose(params["w"], [-0.1])
    opt.step(_g(1.0))
    np.testing.assert_allclose(params["w"], [-0.29])
    np.testing.assert_allclose(opt.state["w.velocity"], [1.9])


def test_sgd_nesterov_looks_ahead():
    # step 1: v = 1, d = 1 + 0.9 * 1 = 1.9 -> p = -0.19
    # step 2: v = 1.9, d = 1 + 0.9 * 1.9 = 2.71 -> p = -0.19 - 0.271 = -0.461
    params = _p(0.0)
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    opt.step(_g(1.0))
    np.testing.assert_allclose(params["w"], [-0.19])
    opt.step(_g(1.0))
    np.testing.assert_allclose(params["w"], [-0.461])


def test_sgd_weight_decay_adds_l2_gradient_and_leaves_grad_untouched():
    # g' = 0 + 0.1 * 2 = 0.2; p = 2 - 0.5 * 0.2 = 1.9
    params, grads = _p(2.0), _g(0.0)
    SGD(params, lr=0.5, weight_decay=0.1).step(grads)
    np.testing.assert_allclose(params["w"], [1.9])
    assert grads["w"][0] == 0.0


def test_sgd_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError):
        SGD(_p(0.0), lr=0.1, nesterov=True)


def test_adam_first_step_moves_each_weight_by_lr_against_the_gradient_sign():
    # after one step m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps)
    params = _p(0.0, 0.0)
    Adam(params, lr=0.01).step(_g(2.0, -0.5))
    np.testing.assert_allclose(params["w"], [-0.01, 0.01], rtol=1e-6)


def test_adam_second_step_matches_hand_computed_bias_corrected_moments():
    # g1 = 2, g2 = 1, b1 = 0.9, b2 = 0.999, lr = 0.01
    # m = 0.9 * 0.2 + 0.1 * 1 = 0.28;  v = 0.999 * 0.004 + 0.001 * 1 = 0.004996
    # p1 = -0.01 * 2 / (2 + 1e-8) = -0.00999999995
    # p2 = p1 - 0.01 / (1 - 0.81) * 0.28 / (sqrt(0.004996) / sqrt(1 - 0.998001) + 1e-8)
    #    = p1 - 0.009321796329148964
    params = _p(0.0)
    opt = Adam(params, lr=0.01)
    opt.step(_g(2.0))
    opt.step(_g(1.0))
    np.testing.assert_allclose(opt.state["w.m"], [0.28])
    np.testing.assert_allclose(opt.state["w.v"], [0.004996])
    np.testing.assert_allclose(params["w"], [-0.00999999995 - 0.009321796329148964], rtol=1e-12)
    assert int(opt.state["step"]) == 2


def test_adam_weight_decay_is_decoupled_from_the_adaptive_step():
    # zero gradient: the adaptive step is 0, only p *= 1 - lr * wd = 1 - 0.1 * 0.5 remains
    params = _p(1.0, -4.0)
    Adam(params, lr=0.1, weight_decay=0.5).step(_g(0.0, 0.0))
    np.testing.assert_allclose(params["w"], [0.95, -3.8])


def test_adam_keeps_float32_parameters_float32():
    params = {"w": np.ones(3, dtype=np.float32)}
    opt = Adam(params, lr=1e-3, weight_decay=0.01)
    opt.step({"w": np.full(3, 0.5, dtype=np.float32)})
    assert params["w"].dtype == np.float32
    assert all(v.dtype == np.float32 for k, v in opt.state.items() if k != "step")


@pytest.mark.parametrize("spec", [
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "adam", "lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-7, "weight_decay": 1e-2},
])
def test_state_dict_round_trip_continues_identically(spec):
    rng = np.random.default_rng(0)
    grads = [{"w": rng.standard_normal(5).astype(np.float32)} for _ in range(6)]
    a = {"w": rng.standard_normal(5).astype(np.float32)}
    opt_a = build_optimizer(spec, a)
    for g in grads[:3]:
        opt_a.step(g)
    b = {"w": a["w"].copy()}
    opt_b = build_optimizer(spec, b)
    opt_b.load_state_dict(opt_a.state_dict())
    for g in grads[3:]:
        opt_a.step(g)
        opt_b.step(g)
    assert np.array_equal(a["w"], b["w"])


def test_state_dict_returns_copies():
    params = _p(0.0)
    opt = SGD(params, lr=0.1, momentum=0.9)
    state = opt.state_dict()
    opt.step(_g(1.0))
    assert state["w.velocity"][0] == 0.0


def test_load_state_dict_refuses_wrong_names_and_shapes():
    opt = Adam(_p(0.0, 0.0), lr=0.1)
    good = opt.state_dict()
    with pytest.raises(CheckpointError, match="missing"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "w.v"})
    with pytest.raises(CheckpointError, match="shape"):
        opt.load_state_dict({**good, "w.m": np.zeros(3)})


def test_step_lr_decays_every_step_size_steps():
    assert [step_lr(s, 1.0, 3, 0.5) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_cosine_lr_runs_from_base_to_min():
    assert cosine_lr(0, 0.1, 100, 0.01) == pytest.approx(0.1)
    assert cosine_lr(50, 0.1, 100, 0.01) == pytest.approx(0.055)
    assert cosine_lr(100, 0.1, 100, 0.01) == pytest.approx(0.01)
    assert cosine_lr(150, 0.1, 100, 0.01) == pytest.approx(0.01)


def test_warmup_ramps_linearly_then_holds():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_build_schedule_multiplies_warmup_into_the_schedule():
    # 5 steps per epoch, 2 epochs: 10 steps; warm-up 0.4 epochs = 2 steps
    lr = build_schedule(CosineSpec(type="cosine", warmup_epochs=0.4), 0.2, 5, 2)
    assert lr(0) == pytest.approx(0.5 * 0.2)
    assert lr(5) == pytest.approx(0.1)
    step = build_schedule(StepSpec(type="step", every_epochs=2, gamma=0.1), 1.0, 2, 5)
    assert [step(s) for s in (0, 3, 4, 8)] == pytest.approx([1, 1, 0.1, 0.01])
    assert build_schedule(ConstantSpec(type="constant"), 0.3, 5, 2)(9) == 0.3


def test_unknown_optimizer_lists_the_known_ones():
    from cnncli.errors import ConfigError
    from cnncli.optim import OPTIMIZERS

    with pytest.raises(ConfigError, match=r"unknown optimizer 'rmsprop' \(known: adam, sgd\)"):
        OPTIMIZERS.get("rmsprop")


# -- parameters packed into one flat array (build_model's layout): one update for all ------


def _packed(*sizes: int, dtype: type = np.float64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    flat = np.zeros(sum(sizes), dtype=dtype)
    views, a = {}, 0
    for i, n in enumerate(sizes):
        views[f"p{i}"] = flat[a : a + n].reshape(n, 1) if n % 2 else flat[a : a + n]
        a += n
    return flat, views


def test_flat_span_covers_back_to_back_views_and_nothing_else():
    flat, views = _packed(3, 4, 5)
    span = flat_span(list(views.values()))
    assert span is not None and span.size == 12 and np.shares_memory(span, flat)
    assert flat_span([views["p0"], views["p1"]]).size == 7
    assert flat_span([views["p1"], views["p2"]]).size == 9  # need not start at the owner's 0
    assert flat_span([views["p1"], views["p0"]]) is None  # out of order
    assert flat_span([views["p0"], views["p2"]]) is None  # a gap
    assert flat_span([np.zeros(3), np.zeros(4)]) is None  # separate arrays
    assert flat_span([flat[0:4:2]]) is None  # not contiguous
    assert flat_span([flat.view(np.int64)[0:3]]) is None  # not a view of a 1-D float owner
    assert flat_span([]) is None


def test_adam_on_packed_parameters_matches_the_hand_computed_steps():
    # the same hand-worked numbers as above, for two packed parameters updated in one pass
    _, params = _packed(1, 2)
    opt = Adam(params, lr=0.01)
    assert opt.flat is not None
    opt.step({"p0": np.full((1, 1), 2.0), "p1": np.array([2.0, 2.0])})
    opt.step({"p0": np.full((1, 1), 1.0), "p1": np.array([1.0, 1.0])})
    for name in params:
        np.testing.assert_allclose(opt.state[f"{name}.m"], 0.28)
        np.testing.assert_allclose(opt.state[f"{name}.v"], 0.004996)
        np.testing.assert_allclose(params[name], -0.00999999995 - 0.009321796329148964,
                                   rtol=1e-12)
    assert list(opt.state) == ["step", "p0.m", "p0.v", "p1.m", "p1.v"]  # checkpoint order


def test_sgd_on_packed_parameters_matches_the_hand_computed_nesterov_steps():
    _, params = _packed(2, 1)
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    assert opt.flat is not None
    for _ in range(2):
        opt.step({"p0": np.ones(2), "p1": np.ones((1, 1))})
    np.testing.assert_allclose(params["p0"], [-0.461, -0.461])
    np.testing.assert_allclose(params["p1"], [[-0.461]])
    np.testing.assert_allclose(opt.state["p1.velocity"], [[1.9]])


@pytest.mark.parametrize("spec", [
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "sgd", "lr": 0.1},
    {"type": "adam", "lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-7, "weight_decay": 1e-2},
])
def test_packed_and_separate_parameters_get_the_same_bits(spec):
    rng = np.random.default_rng(1)
    flat, packed = _packed(7, 30, 1, dtype=np.float32)
    flat[...] = rng.standard_normal(flat.size)
    separate = {k: v.copy() for k, v in packed.items()}
    opt_p, opt_s = build_optimizer(spec, packed), build_optimizer(spec, separate)
    assert opt_p.flat is not None and opt_s.flat is None
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in packed.items()}
        opt_p.step(grads)
        opt_s.step(grads)
    for k in packed:
        assert np.array_equal(packed[k], separate[k])
    assert opt_p.state_dict().keys() == opt_s.state_dict().keys()
    for k, v in opt_p.state_dict().items():
        assert np.array_equal(v, opt_s.state_dict()[k])


def test_packed_parameters_with_a_float64_gradient_fall_back_to_per_parameter_updates():
    _, packed = _packed(2, 2, dtype=np.float32)
    separate = {k: v.copy() for k, v in packed.items()}
    grads = {"p0": np.array([0.5, -1.0]), "p1": np.array([2.0, 0.25])}  # float64
    for params in (packed, separate):
        Adam(params, lr=0.1, weight_decay=0.1).step(grads)
    for k in packed:
        assert packed[k].dtype == np.float32 and np.array_equal(packed[k], separate[k])
