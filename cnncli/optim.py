"""Optimizers that update a network's parameters in place, and learning-rate schedules, each
registered by the `type` a config gives, with its Spec (the config section's fields) beside it.

    opt = build_optimizer(AdamSpec(type="adam", lr=1e-3), net.named_parameters())
    net.backward(loss.backward())
    opt.lr = lr_at(step)              # a schedule is a pure function of the step
    opt.step(net.named_gradients())   # every parameter array is updated in place

Order, simple to complex: SGD (with momentum, Nesterov and L2 weight decay), then Adam.
`state_dict()` returns named arrays (e.g. `layers.0.weight.m`) that a checkpoint stores;
`load_state_dict()` checks every name and shape before it copies anything in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from cnncli.errors import CheckpointError
from cnncli.registry import Registry
from cnncli.sharedmem import shared_views
from cnncli.spec import PositiveInt, Real, Spec, check

OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")
SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


def flat_span(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """One 1-D view covering `arrays` when they lie back to back in one flat array, else None.

    True when every array is a C-contiguous view of the same 1-D C-contiguous owner (its
    `.base`), all of one dtype, each starting where the one before ends: the parameters of a
    model from `build_model` (see `network.pack_parameters`). An update written as whole-array
    operations on the view is then the same arithmetic, element by element, as on each array,
    in a dozen NumPy calls instead of a dozen per array.
    """
    if not arrays:
        return None
    root = arrays[0].base
    if not isinstance(root, np.ndarray) or root.ndim != 1 or not root.flags.c_contiguous:
        return None
    dtype, size = root.dtype, root.dtype.itemsize
    start = arrays[0].__array_interface__["data"][0]
    origin = root.__array_interface__["data"][0]
    end = start
    for a in arrays:
        if (a.base is not root or a.dtype != dtype or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != end):
            return None
        end += a.size * size
    first = (start - origin) // size
    return root[first : first + (end - start) // size]


class OptimizerSpec(Spec):
    """The fields every optimizer takes."""

    tag_kind: ClassVar[str] = "optimizer"
    type: str
    lr: Real = Field(gt=0, description="base learning rate")


class Optimizer:
    """Holds the live parameter arrays and the per-parameter state."""

    Spec: ClassVar[type[OptimizerSpec]] = OptimizerSpec

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        self.params = dict(params)
        self.lr = float(lr)
        self.state: dict[str, np.ndarray] = {}
        #: all parameters as one 1-D view when they lie back to back (flat_span), else None
        self.flat = flat_span(list(self.params.values()))
        self._flat_grad: np.ndarray | None = None
        self._scratch: dict[str, np.ndarray] = {}  # made at first use, in each process

    def _state_like_params(self, *suffixes: str) -> list[np.ndarray | None]:
        """Zeroed state `<name><suffix>` for every parameter, for each suffix, in the order
        name by name (`layers.0.weight.m`, `layers.0.weight.v`, ...). With flat parameters
        the arrays of one suffix are views into one flat array in shared memory (worker
        processes update their part of it, cnncli.parallel_procs); those are returned (else
        None per suffix)."""
        shapes = [p.shape for p in self.params.values()]
        packed = [shared_views(shapes, self.flat.dtype) if self.flat is not None else None
                  for _ in suffixes]
        for i, (k, p) in enumerate(self.params.items()):
            for suffix, pair in zip(suffixes, packed, strict=True):
                self.state[f"{k}{suffix}"] = np.zeros_like(p) if pair is None else pair[1][i]
        return [pair[0] if pair is not None else None for pair in packed]

    def _flat_grads(self, grads: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The gradients gathered into one 1-D array in parameter order (exact copies, one
        call) when the parameters are flat; None when they are not or a dtype differs."""
        if self.flat is None:
            return None
        gs = [grads[name] for name in self.params]
        if any(g.dtype != self.flat.dtype for g in gs):
            return None
        if self._flat_grad is None:
            self._flat_grad = np.empty_like(self.flat)
        return np.concatenate([g.reshape(-1) for g in gs], out=self._flat_grad)

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update with `self.lr`; grads has the same names and shapes as params.

        With flat parameters, one update over all of them (`step_range` over 0..size);
        otherwise parameter by parameter. Either way the same operations on every element.
        """
        scalars = self.begin_step()
        flat_g = self._flat_grads(grads)
        if flat_g is not None and self.flat is not None and self.flat_state() is not None:
            self.step_range(flat_g, 0, self.flat.size, scalars)
            return
        for name, p in self.params.items():
            self._update_one(name, p, grads[name], scalars)

    def begin_step(self) -> tuple[float, ...]:
        """Advance the step counters; return every number this step's update reads (the
        learning rate, the hyperparameters, bias corrections) for step_range."""
        raise NotImplementedError

    def flat_state(self) -> list[np.ndarray] | None:
        """The flat 1-D state arrays parallel to `flat` (may be empty), or None when the
        parameters are not flat or the optimizer has no flat update (the default: an
        optimizer that only defines `step` is never split over worker processes)."""
        return None

    def step_range(self, flat_g: np.ndarray, a: int, b: int, scalars: tuple[float, ...]
                   ) -> None:
        """Update elements a:b of the flat parameters (and state) from flat_g[a:b] with the
        numbers `begin_step` returned: any split of 0..size into ranges, done in any order
        or in different processes, gives the bits of one whole update."""
        raise NotImplementedError

    def _update_one(self, name: str, p: np.ndarray, g: np.ndarray,
                    scalars: tuple[float, ...]) -> None:
        """Update one parameter array (the path for parameters that are not flat)."""
        raise NotImplementedError

    def _scratch_for(self, key: str, like: np.ndarray) -> np.ndarray:
        """A reusable scratch array shaped like `like` (one per key)."""
        tmp = self._scratch.get(key)
        if tmp is None or tmp.shape != like.shape or tmp.dtype != like.dtype:
            tmp = self._scratch[key] = np.empty_like(like)
        return tmp

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


class SGDSpec(OptimizerSpec):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    type: Literal["sgd"]
    lr: Real = Field(0.01, gt=0, description="base learning rate")
    momentum: Real = Field(0.0, ge=0, lt=1, description="momentum factor mu in [0, 1)")
    nesterov: bool = Field(False, strict=True, description="Nesterov momentum (needs momentum > 0)")
    weight_decay: Real = Field(
        0.0, ge=0, description="L2 penalty: weight_decay * p is added to every gradient")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDSpec:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0, received momentum 0")
        return self


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's formulation), all optional parts off by default.

        g = grad + weight_decay * p                  (L2 penalty in the gradient)
        v = momentum * v + g                         (velocity; skipped when momentum == 0)
        p -= lr * (g + momentum * v)  if nesterov    else   p -= lr * v
    """

    Spec = SGDSpec

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
        self._flat_velocity = self._state_like_params(".velocity")[0] if self.momentum else None

    def begin_step(self) -> tuple[float, ...]:
        return (self.lr, self.momentum, float(self.nesterov), self.weight_decay)

    def flat_state(self) -> list[np.ndarray] | None:
        if self.flat is None:
            return None
        return [self._flat_velocity] if self._flat_velocity is not None else []

    def step_range(self, flat_g: np.ndarray, a: int, b: int, scalars: tuple[float, ...]
                   ) -> None:
        assert self.flat is not None
        v = self._flat_velocity[a:b] if self._flat_velocity is not None else None
        sgd_update(self.flat[a:b], flat_g[a:b], v, *scalars)

    def _update_one(self, name: str, p: np.ndarray, g: np.ndarray,
                    scalars: tuple[float, ...]) -> None:
        v = self.state[f"{name}.velocity"] if self.momentum else None
        sgd_update(p, g, v, *scalars)


def sgd_update(p: np.ndarray, g: np.ndarray, v: np.ndarray | None, lr: float,
               momentum: float, nesterov: float, weight_decay: float) -> None:
    """One SGD step on p in place (see SGD); v, the velocity, is updated in place when given.

    p, g, v: arrays of one shape; g is left untouched.
    """
    if weight_decay:
        g = g + weight_decay * p  # a new array: the layer's grad stays untouched
    if v is not None:
        v *= momentum
        v += g
        g = g + momentum * v if nesterov else v
    p -= lr * g


class AdamSpec(OptimizerSpec):
    """Adam (Kingma & Ba) with bias correction and decoupled weight decay (AdamW)."""

    type: Literal["adam"]
    lr: Real = Field(1e-3, gt=0, description="base learning rate")
    betas: Annotated[list[Annotated[Real, Field(ge=0, lt=1)]],
                     Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.9, 0.999],
        description="[beta1, beta2]: decay rates of the first and second moment estimates")
    eps: Real = Field(1e-8, gt=0, description="added to the root of the second moment")
    weight_decay: Real = Field(
        0.0, ge=0,
        description="decoupled weight decay (AdamW, Loshchilov & Hutter): each step also does "
        "p -= lr * weight_decay * p, apart from the adaptive update; 0 disables it")


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter 2019).

        p -= lr * weight_decay * p                   (decoupled decay; before the update)
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   t += 1
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    State per parameter: `<name>.m`, `<name>.v`; plus `step` (t, int64 scalar).
    """

    Spec = AdamSpec

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
        self._flat_m, self._flat_v = self._state_like_params(".m", ".v")

    def begin_step(self) -> tuple[float, ...]:
        self.state["step"] += 1
        t = int(self.state["step"])
        step_size = self.lr / (1.0 - self.beta1**t)
        root_bc2 = math.sqrt(1.0 - self.beta2**t)
        return (self.lr, self.weight_decay, self.beta1, self.beta2, self.eps, step_size,
                root_bc2)

    def flat_state(self) -> list[np.ndarray] | None:
        if self.flat is None or self._flat_m is None or self._flat_v is None:
            return None
        return [self._flat_m, self._flat_v]

    def step_range(self, flat_g: np.ndarray, a: int, b: int, scalars: tuple[float, ...]
                   ) -> None:
        # one update over all parameters (or a range of them): lenet's Adam step took
        # 0.26 ms this way (Xeon, in cache) against 0.63 ms parameter by parameter
        assert self.flat is not None and self._flat_m is not None and self._flat_v is not None
        tmp = self._scratch_for("", self.flat)
        adam_update(self.flat[a:b], flat_g[a:b], self._flat_m[a:b], self._flat_v[a:b],
                    tmp[a:b], *scalars)

    def _update_one(self, name: str, p: np.ndarray, g: np.ndarray,
                    scalars: tuple[float, ...]) -> None:
        adam_update(p, g, self.state[f"{name}.m"], self.state[f"{name}.v"],
                    self._scratch_for(name, p), *scalars)


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, tmp: np.ndarray,
                lr: float, weight_decay: float, beta1: float, beta2: float, eps: float,
                step_size: float, root_bc2: float) -> None:
    """One Adam step on p, m and v in place (see Adam); tmp is scratch of p's shape.

    step_size = lr / (1 - beta1^t), root_bc2 = sqrt(1 - beta2^t). The operations of the
    formula, each written into tmp instead of a new temporary: the same bits when gradient
    and parameter share a dtype, as in training (with mixed dtypes tmp rounds to the
    parameter's earlier).
    """
    if weight_decay:
        p *= 1.0 - lr * weight_decay
    m *= beta1
    np.multiply(g, 1.0 - beta1, out=tmp)  # (1 - b1) g
    m += tmp
    v *= beta2
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - beta2  # (1 - b2) g^2
    v += tmp
    np.sqrt(v, out=tmp)  # the denominator; the state stays intact
    tmp /= root_bc2
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp


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


def _warmup() -> Any:
    return Field(0.0, ge=0, description="linear warm-up over this many epochs (fractions "
                 "allowed): the learning rate of step s is scaled by (s + 1) / warmup_steps "
                 "until then")


class ScheduleSpec(Spec):
    """The fields every schedule takes."""

    tag_kind: ClassVar[str] = "schedule"
    type: str
    warmup_epochs: Real = _warmup()


class Schedule:
    """A learning-rate schedule: `lr_at(step)`, a pure function of the optimizer step."""

    Spec: ClassVar[type[ScheduleSpec]] = ScheduleSpec

    def __init__(self, spec: ScheduleSpec, base_lr: float, steps_per_epoch: int,
                 epochs: int) -> None:
        self.spec, self.base_lr = spec, base_lr
        self.steps_per_epoch, self.total_steps = steps_per_epoch, epochs * steps_per_epoch
        self.warmup_steps = int(round(spec.warmup_epochs * steps_per_epoch))

    def main(self, step: int) -> float:
        """The schedule's own rate at `step`, before the warm-up factor."""
        return constant_lr(step, self.base_lr)

    def lr_at(self, step: int) -> float:
        return self.main(step) * warmup_factor(step, self.warmup_steps)


class ConstantSpec(ScheduleSpec):
    """The base learning rate throughout."""

    type: Literal["constant"]


@SCHEDULES.register("constant")
class Constant(Schedule):
    """The base learning rate throughout."""

    Spec = ConstantSpec


class StepSpec(ScheduleSpec):
    """Multiply the learning rate by gamma every `every_epochs` epochs."""

    type: Literal["step"]
    every_epochs: PositiveInt = Field(1, description="epochs between decays")
    gamma: Real = Field(0.1, gt=0, le=1, description="decay factor")


@SCHEDULES.register("step")
class Step(Schedule):
    """base_lr * gamma ** (step // (every_epochs * steps_per_epoch))."""

    Spec = StepSpec
    spec: StepSpec

    def main(self, step: int) -> float:
        return step_lr(step, self.base_lr, self.spec.every_epochs * self.steps_per_epoch,
                       self.spec.gamma)


class CosineSpec(ScheduleSpec):
    """Cosine decay from the base learning rate to min_lr over the run (per step)."""

    type: Literal["cosine"]
    min_lr: Real = Field(0.0, ge=0, description="learning rate at the last step")


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Cosine decay from the base rate to min_lr over all the run's steps."""

    Spec = CosineSpec
    spec: CosineSpec

    def main(self, step: int) -> float:
        return cosine_lr(step, self.base_lr, max(1, self.total_steps), self.spec.min_lr)


def optimizer_spec(spec: OptimizerSpec | Mapping[str, Any]) -> OptimizerSpec:
    """A validated optimizer spec from a spec or a plain mapping {'type': ..., ...}."""
    if isinstance(spec, OptimizerSpec):
        return spec
    return check(OPTIMIZERS.get(spec.get("type")).Spec, dict(spec))


def build_optimizer(spec: OptimizerSpec | Mapping[str, Any],
                    params: Mapping[str, np.ndarray]) -> Optimizer:
    """An optimizer for a config section: a validated spec such as AdamSpec(type='adam'), or a
    plain mapping such as {'type': 'adam', 'lr': 1e-3}, validated here."""
    spec = optimizer_spec(spec)
    kwargs = spec.model_dump(exclude={"type"})
    return OPTIMIZERS.get(spec.type)(params, **kwargs)


def build_schedule(spec: ScheduleSpec, base_lr: float, steps_per_epoch: int, epochs: int
                   ) -> Callable[[int], float]:
    """step -> learning rate for a validated schedule section."""
    return SCHEDULES.get(spec.type)(spec, base_lr, steps_per_epoch, epochs).lr_at
