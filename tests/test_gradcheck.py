"""gradcheck.py: the suite passes on the real code and fails on a broken backward."""

from __future__ import annotations

import numpy as np

from cnncli import gradcheck as gc
from cnncli.functional.conv import conv2d_backward
from cnncli.functional.pool import maxpool2d_backward
from cnncli.layers.conv import Conv
from cnncli.layers.pool import MaxPool
from cnncli.network import build_model


def _wrong_dw(dout, cache, input_grad=True):  # noqa: ANN001
    dx, dw, db = conv2d_backward(dout, cache, input_grad)
    return dx, dw[:, :, ::-1, ::-1], db  # forgot that dW is a correlation, not rot180


class ConvWithWrongDW(Conv):
    _backward = staticmethod(_wrong_dw)


def _spread(dout, cache):  # noqa: ANN001
    return maxpool2d_backward(dout, cache._replace(argmax=np.zeros_like(cache.argmax)))


class MaxPoolSpreadingOverTheWindow(MaxPool):
    _backward = staticmethod(_spread)


def test_default_suite_passes_under_1e_7_in_float64() -> None:
    results = gc.run_default_checks(seed=3)
    assert len(results) >= 20
    bad = [(r.name, r.max_rel_error) for r in results if not r.max_rel_error < 1e-7]
    assert not bad
    names = " ".join(r.name for r in results)
    for t in ("conv", "maxpool", "avgpool", "dense", "flatten", "relu", "leaky_relu", "sigmoid",
              "tanh", "dropout", "softmax_cross_entropy", "mse", "net "):
        assert t in names


def test_gradcheck_fails_when_conv_weight_gradient_is_wrong() -> None:
    results = gc.run_default_checks(seed=0, layer_types={"conv": ConvWithWrongDW})
    conv_rows = [r for r in results if r.name.startswith("conv")]
    assert all(not r.passed and r.worst == "weight" for r in conv_rows)
    assert not all(r.passed for r in results if r.name.startswith("net"))


def test_gradcheck_fails_when_maxpool_spreads_gradient_over_window() -> None:
    checks = gc.run_default_checks(seed=0, layer_types={"maxpool": MaxPoolSpreadingOverTheWindow})
    rows = [r for r in checks if r.name.startswith("maxpool")]
    assert rows and all(not r.passed and r.max_rel_error > 0.1 for r in rows)


def test_network_check_handles_relu_kinks_without_failing_right_code() -> None:
    # With several ReLUs and a max-pool, some finite-difference steps cross a kink (a ReLU input
    # changes sign, a max-pool argmax moves); the network check must tell those entries from a
    # wrong gradient and still pass right code, on every seed.
    specs = gc.small_networks()[0][2]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        net = build_model((2, 9, 9), specs, rng=rng, dtype=np.float64)
        result = gc.check_network("relu net", net, "softmax_cross_entropy", batch=3, rng=rng)
        assert result.passed, result


def test_rel_error_is_scale_aware() -> None:
    a = np.array([1.0, 0.0, 0.5])
    assert gc.rel_error(a, a + np.array([0, 1e-13, 0])) < 1e-9
    assert gc.rel_error(a, a * 1.01) > 4e-3
