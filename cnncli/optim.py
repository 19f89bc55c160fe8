"""Optimizers that update a network's parameters in place, and learning-rate schedules.

    opt = Adam(net.named_parameters(), lr=1e-3)
    net.backward(loss.backward())
    opt.lr = lr_at(step)              # a schedule is a pure function of the step
    opt.step(net.named_gradients())   # every parameter array is updated in place

Order, simple to complex: SGD (with momentum, Nesterov and L2 weight decay), then Adam.
`state_dict()` returns named arrays (e.g. `layers.0.weight.m`) that a checkpoint stores;
`load_state_dict()` checks every name and shape before it copies anything in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from cnncli.errors import CheckpointError


class Optimizer:
    """Holds the live parameter arrays and the per-parameter state."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        self.params = dict(params)
        self.lr = float(lr)
        self.state: dict[str, np.ndarray] = {}

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update with `self.lr`; grads has the same names and shapes as params."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the optimizer state as named arrays."""
        return {k: v.copy() for k, v in self.state.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy a saved state in; CheckpointError if names, shapes or dtypes differ."""
        expected, got = set(self.state), set(state)
        if expected != got:
            missing = sorted(expected - got)
            extra = sorted(got - expected)
            detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
            raise CheckpointError(f"optimizer state does not match {type(self).__name__}: {detail}")
        for name, arr in state.items():
            mine = self.state[name]
            if arr.shape != mine.shape or arr.dtype != mine.dtype:
                raise CheckpointError(
                    f"optimizer state {name!r} has shape {arr.shape} {arr.dtype}, "
                    f"expected {mine.shape} {mine.dtype}"
                )
        for name, arr in state.items():
            self.state[name][...] = arr


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's formulation), all optional parts off by default.

        g = grad + weight_decay * p                  (L2 penalty in the gradient)
        v = momentum * v + g                         (velocity; skipped when momentum == 0)
        p -= lr * (g + momentum * v)  if nesterov    else   p -= lr * v
    """

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        if self.momentum:
            self.state = {f"{k}.velocity": np.zeros_like(p) for k, p in self.params.items()}

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p  # a new array: the layer's grad stays untouched
            if self.momentum:
                v = self.state[f"{name}.velocity"]
                v *= self.momentum
                v += g
                g = g + self.momentum * v if self.nesterov else v
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter 2019).

        p -= lr * weight_decay * p                   (decoupled decay; before the update)
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   t += 1
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    State per parameter: `<name>.m`, `<name>.v`; plus `step` (t, int64 scalar).
    """

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] | list[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.state = {"step": np.zeros((), dtype=np.int64)}
        for k, p in self.params.items():
            self.state[f"{k}.m"] = np.zeros_like(p)
            self.state[f"{k}.v"] = np.zeros_like(p)

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        self.state["step"] += 1
        t = int(self.state["step"])
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1**t)
        root_bc2 = math.sqrt(1.0 - b2**t)
        for name, p in self.params.items():
            g = grads[name]
            m, v = self.state[f"{name}.m"], self.state[f"{name}.v"]
            if self.weight_decay:
                p *= 1.0 - self.lr * self.weight_decay
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)  # a new array; the state stays intact
            denom /= root_bc2
            denom += self.eps
            p -= step_size * (m / denom)


# -- learning-rate schedules: pure functions of the step (0-based) ------------------------


def constant_lr(step: int, base_lr: float) -> float:
    """base_lr at every step."""
    return base_lr


def step_lr(step: int, base_lr: float, step_size: int, gamma: float) -> float:
    """base_lr * gamma ** (step // step_size): decays every step_size steps."""
    return base_lr * gamma ** (step // step_size)


def cosine_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """min_lr + (base_lr - min_lr) (1 + cos(pi step / total_steps)) / 2, held at min_lr after."""
    s = min(step, total_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * s / total_steps))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up multiplier: (step + 1) / warmup_steps for the first steps, then 1."""
    if step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def make_schedule(
    kind: str,
    base_lr: float,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    step_size: int = 1,
    gamma: float = 0.1,
    min_lr: float = 0.0,
) -> Callable[[int], float]:
    """A function step -> learning rate: 'constant', 'step' or 'cosine', times the warm-up."""
    if kind == "constant":
        def main(s: int) -> float:
            return constant_lr(s, base_lr)
    elif kind == "step":
        def main(s: int) -> float:
            return step_lr(s, base_lr, step_size, gamma)
    elif kind == "cosine":
        def main(s: int) -> float:
            return cosine_lr(s, base_lr, max(1, total_steps), min_lr)
    else:
        raise ValueError(f"unknown schedule {kind!r} (known: constant, cosine, step)")

    def lr_at(step: int) -> float:
        return main(step) * warmup_factor(step, warmup_steps)

    return lr_at


def build_optimizer(spec: Mapping[str, object], params: Mapping[str, np.ndarray]) -> Optimizer:
    """An optimizer from a validated config section, e.g. {'type': 'adam', 'lr': 1e-3, ...}."""
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    if spec.get("type") == "sgd":
        return SGD(params, **kwargs)  # type: ignore[arg-type]
    if spec.get("type") == "adam":
        return Adam(params, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown optimizer {spec.get('type')!r} (known: adam, sgd)")
