"""Finite-difference gradient checks, per layer and for whole networks, in float64.

Every analytic gradient (from the backward functions) is compared with central differences
of a scalar objective (a fixed random projection sum(out * R) for a single layer, the loss
for losses and networks), using the fourth-order stencil

    df/dx_i ~ (8 (f(x + h e_i) - f(x - h e_i)) - (f(x + 2h e_i) - f(x - 2h e_i))) / 12h

whose O(h^4) truncation error lets h be large enough for round-off to stay near 1e-10.
The error of one tensor is

    max_i |a_i - n_i| / max(|a_i| + |n_i|, FLOOR * max_j(|a_j| + |n_j|))

the usual relative error, except that entries far below the tensor's own scale are measured
against that scale (a gradient of exactly 0 next to one of 1e-12 from round-off is not a
relative error of 1).

Kinks (ReLU at 0, max-pool ties) are neither tolerated nor allowed to hide a bug: single-layer
checks draw inputs away from them (values at least 0.1 from 0; pooled values all distinct),
and network checks fingerprint every ReLU mask and max-pool argmax: an entry whose
finite-difference steps change that fingerprint is estimated again with smaller steps, and
left out only if even those cross the kink (a check where more than a tenth would be left
out fails). Every other entry must match to the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.layers import LAYERS, CheckCase, Layer, layer_for, parse_layer_spec
from cnncli.layers.losses import LOSSES, build_loss
from cnncli.network import Network, build_model

H = 2e-3  # finite-difference step (float64, fourth-order stencil)
STEPS = (H, H / 30, H / 900)  # smaller steps for an entry whose steps crossed a kink
FLOOR = 1e-3  # entries below this fraction of the tensor's scale are measured against the scale
DEFAULT_TOL = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """One row of a gradcheck report."""

    name: str
    max_rel_error: float
    passed: bool
    worst: str  # the tensor with the largest error, e.g. "dx" or "layers.0.weight"
    skipped: int = 0  # entries left out because a finite-difference step crossed a kink


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Max relative error of two gradients of the same shape (see the module docstring)."""
    total = np.abs(analytic) + np.abs(numeric)
    if total.size == 0 or total.max() == 0.0:
        return 0.0
    denom = np.maximum(total, FLOOR * total.max())
    return float((np.abs(analytic - numeric) / denom).max())


def numerical_gradient(
    f: Callable[[], float],
    x: np.ndarray,
    coords: Sequence[tuple[int, ...]] | None = None,
    state: Callable[[], bytes] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fourth-order central differences of f() with respect to x, perturbing x in place.

        df/dx_i ~ (8 (f(x + h) - f(x - h)) - (f(x + 2h) - f(x - 2h))) / 12h

    Its truncation error is O(h^4), so h can be large enough that round-off stays tiny.
    Returns (gradient, valid): with `coords`, only those entries are estimated. With `state`
    (a fingerprint of every ReLU mask and max-pool argmax), an entry whose steps cross a kink
    is estimated again with smaller steps, and marked invalid if even the smallest crosses.
    """
    grad = np.zeros_like(x)
    valid = np.zeros(x.shape, dtype=bool)
    it = coords if coords is not None else list(np.ndindex(*x.shape))
    base = None
    if state is not None:
        f()
        base = state()
    for idx in it:
        old = x[idx]
        for h in STEPS if state is not None else STEPS[:1]:
            values = []
            crossed = False
            for step in (h, -h, 2 * h, -2 * h):
                x[idx] = old + step
                values.append(f())
                crossed = crossed or (state is not None and state() != base)
            x[idx] = old
            if not crossed:
                fp, fm, fp2, fm2 = values
                grad[idx] = (8.0 * (fp - fm) - (fp2 - fm2)) / (12.0 * h)
                valid[idx] = True
                break
    return grad, valid


def kink_state(net: Network) -> bytes:
    """A fingerprint of the network's discrete choices in its last forward pass (ReLU masks,
    max-pool argmaxes: every layer that says it is `kinked`)."""
    return b"".join(layer.kink_state() for layer in net.layers if layer.kinked)


def _sample_coords(
    shape: tuple[int, ...], limit: int | None, rng: np.random.Generator
) -> list[tuple[int, ...]] | None:
    size = int(np.prod(shape))
    if limit is None or size <= limit:
        return None
    flat = rng.choice(size, size=limit, replace=False)
    return [tuple(int(v) for v in np.unravel_index(i, shape)) for i in flat]


def _compare(
    name: str,
    f: Callable[[], float],
    tensors: dict[str, tuple[np.ndarray, np.ndarray]],
    tol: float,
    rng: np.random.Generator,
    limit: int | None = None,
    state: Callable[[], bytes] | None = None,
) -> CheckResult:
    """tensors: label -> (the live array f reads, its analytic gradient)."""
    worst, worst_err, skipped, checked = "", -1.0, 0, 0
    for label, (x, analytic) in tensors.items():
        coords = _sample_coords(x.shape, limit, rng)
        numeric, valid = numerical_gradient(f, x, coords, state)
        if coords is not None:
            index = tuple(np.array(coords).T)
            analytic, numeric, valid = analytic[index], numeric[index], valid[index]
        skipped += int((~valid).sum())
        checked += int(valid.sum())
        err = rel_error(analytic[valid], numeric[valid])
        if err > worst_err:
            worst, worst_err = label, err
    if checked == 0 or skipped > checked // 10:
        return CheckResult(name, float("nan"), False,
                           f"{skipped} of {skipped + checked} entries sit on a kink")
    return CheckResult(name, worst_err, bool(worst_err <= tol), worst, skipped)


# -- inputs away from kinks -----------------------------------------------------------------

def away_from_zero(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Uniform in +-[0.1, 1]: no ReLU kink within reach of the finite-difference steps."""
    return rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct_values(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A permutation of evenly spaced values in [-1, 1]: no two entries closer than 2/size,
    so no max-pool window has a runner-up within reach of the finite-difference steps."""
    n = int(np.prod(shape))
    return (rng.permutation(n) / max(n - 1, 1) * 2.0 - 1.0).reshape(shape)


# -- checks ---------------------------------------------------------------------------------

def check_layer(
    name: str,
    spec: dict[str, Any],
    input_shape: tuple[int, ...],
    *,
    batch: int = 2,
    tol: float = DEFAULT_TOL,
    rng: np.random.Generator,
    make_input: Callable[[tuple[int, ...], np.random.Generator], np.ndarray] | None = None,
    layer_type: type[Layer] | None = None,
    training: bool = True,
) -> CheckResult:
    """Check dx and every parameter gradient of one layer built from `spec` in float64.

    `layer_type` checks another class than the registered one (e.g. a deliberately broken
    subclass, to show that the check fails)."""
    parsed = parse_layer_spec(spec)
    layer: Layer = layer_type(parsed) if layer_type is not None else layer_for(parsed)
    out_shape = layer.build(tuple(input_shape), rng, np.dtype(np.float64))
    for p in layer.params.values():  # non-zero biases so their gradients are exercised too
        p += rng.uniform(-0.5, 0.5, p.shape)
    make = make_input or (lambda s, r: r.standard_normal(s))
    x = make((*input_shape, batch), rng)
    proj = rng.standard_normal((*out_shape, batch))
    drop_seed = int(rng.integers(2**31))

    def f() -> float:  # the same random draws (dropout masks) on every call
        out = layer.forward(x, training=training, rng=np.random.default_rng(drop_seed))
        return float((out * proj).sum())

    f()
    dx = layer.backward(proj.copy())
    assert dx is not None
    tensors = {"dx": (x, dx)}
    tensors.update({name_: (p, layer.grads[name_].copy()) for name_, p in layer.params.items()})
    return _compare(name, f, tensors, tol, rng)


def check_loss(
    name: str, loss_name: str, k: int = 5, *, batch: int = 4, tol: float = DEFAULT_TOL,
    rng: np.random.Generator, scale: float = 2.0,
) -> CheckResult:
    """Check d loss / d out for one loss on random outputs and labels."""
    loss = build_loss(loss_name)
    z = rng.standard_normal((k, batch)) * scale
    y = rng.integers(0, k, batch)
    loss.forward(z, y)
    dz = loss.backward()
    return _compare(name, lambda: loss.forward(z, y), {"dz": (z, dz)}, tol, rng)


def check_network(
    name: str,
    net: Network,
    loss_name: str,
    *,
    batch: int = 2,
    tol: float = DEFAULT_TOL,
    rng: np.random.Generator,
    limit: int | None = None,
) -> CheckResult:
    """Check the input gradient and every parameter gradient of a float64 network + loss.

    `limit` estimates at most that many randomly chosen entries per tensor (large nets).
    """
    loss = build_loss(loss_name)
    k = int(np.prod(net.output_shape))
    x = rng.standard_normal((*net.input_shape, batch))
    y = rng.integers(0, k, batch)

    def f() -> float:
        return loss.forward(net.forward(x), y)

    f()
    dx = net.backward(loss.backward())
    assert dx is not None
    grads = net.named_gradients()
    tensors = {"dx": (x, dx)}
    tensors.update({n: (p, grads[n].copy()) for n, p in net.named_parameters().items()})
    return _compare(name, f, tensors, tol, rng, limit, state=lambda: kink_state(net))


def small_networks() -> list[tuple[str, tuple[int, int, int], list[dict[str, Any]], str]]:
    """Whole small networks covering every layer type and both losses."""
    return [
        ("net conv/relu/maxpool/dense + softmax_ce", (2, 9, 9), [
            {"type": "conv", "filters": 3, "kernel": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "conv", "filters": 4, "kernel": 3, "stride": 2, "padding": 1},
            {"type": "leaky_relu", "alpha": 0.1},
            {"type": "flatten"},
            {"type": "dense", "units": 6},
            {"type": "dropout", "rate": 0.5},
            {"type": "relu"},
            {"type": "dense", "units": 4},
        ], "softmax_cross_entropy"),
        ("net conv/sigmoid/avgpool/tanh + mse", (1, 8, 8), [
            {"type": "conv", "filters": 3, "kernel": 3},
            {"type": "sigmoid"},
            {"type": "avgpool", "size": 3, "stride": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 5},
            {"type": "tanh"},
            {"type": "dense", "units": 3},
            {"type": "sigmoid"},
        ], "mse"),
        # sigmoid before stochpool: its weighted average sum(a^2)/sum(a) curves sharply where a
        # window's sum is tiny (after a relu, often), beyond what finite differences resolve
        ("net conv/batchnorm/sigmoid/stochpool/dense (evaluation)", (1, 8, 8), [
            {"type": "conv", "filters": 3, "kernel": 3},
            {"type": "batchnorm"},
            {"type": "sigmoid"},
            {"type": "stochpool", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 6},
            {"type": "batchnorm"},
            {"type": "tanh"},
            {"type": "dense", "units": 4},
        ], "softmax_cross_entropy"),
    ]


def layer_cases() -> list[CheckCase]:
    """Every registered layer type's own check cases, in type-name order."""
    return [CheckCase(c.name, {"type": name, **c.spec}, c.input_shape, c.input, c.training,
                      c.batch) for name, cls in LAYERS.items() for c in cls.check_cases]


_INPUTS: dict[str, Callable[[tuple[int, ...], np.random.Generator], np.ndarray]] = {
    "normal": lambda s, r: r.standard_normal(s),
    "away": away_from_zero,
    "distinct": distinct_values,
    "positive": lambda s, r: r.uniform(0.1, 1.0, s),
}


def run_default_checks(seed: int = 0, tol: float = DEFAULT_TOL,
                       layer_types: dict[str, type[Layer]] | None = None) -> list[CheckResult]:
    """Every layer type in several configurations, every loss and two whole small networks.

    `layer_types` maps type names to classes to check instead of the registered ones."""
    rng = np.random.default_rng(seed)
    swap = layer_types or {}
    results = [
        check_layer(c.name, c.spec, c.input_shape, tol=tol, rng=rng, make_input=_INPUTS[c.input],
                    layer_type=swap.get(c.spec["type"]), training=c.training, batch=c.batch)
        for c in layer_cases()
    ]
    results += [check_loss(name, name, tol=tol, rng=rng) for name in LOSSES.names()]
    for name, shape, specs, loss_name in small_networks():
        net = build_model(shape, specs, rng=rng, dtype=np.float64)
        for layer in net.layers:
            if layer.type_name in swap:
                layer.__class__ = swap[layer.type_name]
        # one training-mode pass, so that buffers (batchnorm's running statistics) hold values
        # of their own rather than their initial zeros and ones
        net.forward(rng.standard_normal((*shape, 8)), training=True, rng=rng)
        results.append(check_network(name, net, loss_name, batch=3, tol=tol, rng=rng))
    return results


def check_model(
    input_shape: Sequence[int],
    layer_specs: Sequence[Any],
    loss_name: str,
    *,
    seed: int = 0,
    tol: float = DEFAULT_TOL,
    batch: int = 2,
    limit: int = 64,
    name: str = "network",
) -> list[CheckResult]:
    """Check a configured network at its input shape on a small random batch (float64).

    Dropout is checked with a fixed mask only in the per-layer checks; here the network runs
    in evaluation mode (dropout is the identity), which is what a trained model computes.
    """
    rng = np.random.default_rng(seed)
    net = build_model(input_shape, layer_specs, rng=rng, dtype=np.float64)
    return [check_network(name, net, loss_name, batch=batch, tol=tol, rng=rng, limit=limit)]
