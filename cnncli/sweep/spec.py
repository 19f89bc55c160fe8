"""What a sweep runs: the sweep file schema, and the same object from command-line options.

    spec = load_spec("sweep.yaml")
    spec = spec_from_options("lenet", grid=["optimizer.lr=3e-4,1e-3,3e-3"], seeds="0,1",
                             set=["train.epochs=5"])

A sweep file (every key but `base` optional; unknown keys are errors):

    name: lr-sweep                      # label of the sweep (letters, digits, . _ -)
    base: lenet                         # a preset name or a config file (relative to this file)
    set:                                # fixed overrides of every trial (like --set)
      train.epochs: 5
    grid:                               # every combination of these values
      optimizer.lr: [3e-4, 1e-3, 3e-3]
      train.batch_size: [32, 64]
    random:                             # `samples` draws of these, each with every grid point
      optimizer.weight_decay: {loguniform: [1e-5, 1e-2]}
      schedule.warmup_epochs: {uniform: [0, 2]}      # two ints: integers lo..hi
      schedule.type: {choice: [constant, cosine]}
    samples: 4
    random_seed: 0                      # seeds the draws, so a file always means the same trials
    seeds: [0, 1, 2]                    # train.seed of each config's trials
    early_stopping: {asha: {grace_period: 2, reduction_factor: 3, max_t: 15}}
    max_concurrent: 2                   # trials at once (default: as many as the CPUs allow)
    cpus_per_trial: 1                   # CPUs and BLAS threads of each trial

Values are YAML as configs read it (cnncli.config.safe_load: 3e-4 is a number, as in YAML
1.2). Every error is one ConfigError line naming the
file (or option) and the key: `sweep.yaml: grid.optimizer.lr: must be a non-empty list,
received 0.001`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    model_validator,
)

from cnncli.config import parse_key_path, safe_load
from cnncli.errors import ConfigError, quote
from cnncli.spec import explain_common

Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Number = StrictInt | Real  # an int stays an int (integer draws), anything else is a float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_key(key: str) -> str:
    parse_key_path(key)  # ConfigError names the expected form
    if key == "train.seed":
        raise ValueError("train.seed: give the seeds with seeds: [...] (--seeds), not as an "
                         "override")
    return key


class Distribution(_Strict):
    """Exactly one of uniform: [lo, hi], loguniform: [lo, hi] or choice: [values]."""

    uniform: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = None
    loguniform: Annotated[list[Real], Field(min_length=2, max_length=2)] | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in ("uniform", "loguniform", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("needs exactly one of uniform: [lo, hi], loguniform: [lo, hi] or "
                             f"choice: [values], received {quote(given or None)}")
        lo_hi = self.uniform or self.loguniform
        if lo_hi is not None and not lo_hi[0] < lo_hi[1]:
            raise ValueError(f"{given[0]}: needs lo < hi, received {quote(lo_hi)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform: needs lo > 0, received {quote(self.loguniform)}")
        return self


class Asha(_Strict):
    """Asynchronous successive halving on validation accuracy, epoch by epoch."""

    grace_period: StrictInt = Field(ge=1, description="epochs every trial runs before a cut")
    reduction_factor: Real = Field(gt=1, description="keep 1/reduction_factor at each rung")
    max_t: StrictInt | None = Field(
        None, ge=1, description="the last rung is below this epoch (default: the most epochs "
        "of any trial); trials always finish their own train.epochs unless cut at a rung")

    @model_validator(mode="after")
    def _grace_below_max(self) -> Asha:
        if self.max_t is not None and self.max_t < self.grace_period:
            raise ValueError(f"max_t: must be >= grace_period ({self.grace_period}), received "
                             f"{self.max_t}")
        return self


class EarlyStopping(_Strict):
    asha: Asha


class SweepSpec(_Strict):
    """A validated sweep: the base config, what varies, the seeds and how to run it."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "sweep"
    base: Annotated[str, Field(min_length=1)]
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    random: dict[str, Distribution] = Field(default_factory=dict)
    samples: StrictInt | None = Field(None, ge=1)
    random_seed: StrictInt = Field(0, ge=0)
    seeds: Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(min_length=1)] | None = None
    early_stopping: EarlyStopping | None = None
    max_concurrent: StrictInt | None = Field(None, ge=1)
    cpus_per_trial: StrictInt = Field(1, ge=1)

    #: how errors refer to the spec: a file name, or 'the command line'
    _source: str = PrivateAttr("sweep")

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for section in ("set", "grid", "random"):
            for key in getattr(self, section):
                try:
                    _check_key(key)
                except (ConfigError, ValueError) as exc:
                    raise ValueError(f"{section}.{key}: {_after_key(str(exc), key)}") from None
        for key, values in self.grid.items():
            seen = [json.dumps(v, sort_keys=True, default=repr) for v in values]
            dup = next((v for i, v in enumerate(values) if seen[i] in seen[:i]), None)
            if len(set(seen)) != len(seen):
                raise ValueError(f"grid.{key}: lists {quote(dup)} twice")
        both = sorted(set(self.grid) & set(self.random))
        if both:
            raise ValueError(f"random.{both[0]}: is also in grid; a key varies in one of them")
        fixed = sorted((set(self.grid) | set(self.random)) & set(self.set))
        if fixed:
            raise ValueError(f"set.{fixed[0]}: also varies in the sweep; a key is fixed (set) "
                             "or varies (grid, random), not both")
        if self.random and self.samples is None:
            raise ValueError("samples: is required with random (how many draws)")
        if self.samples is not None and not self.random:
            raise ValueError("samples: needs random: {key: distribution, ...}")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: lists a seed twice, received {quote(self.seeds)}")
        return self

    @property
    def source(self) -> str:
        return self._source


def _after_key(message: str, key: str) -> str:
    """'train.seed: sweep it ...' -> 'sweep it ...' (the key is already in front)."""
    return message[len(key) + 2:] if message.startswith(f"{key}: ") else message


# -- loading ----------------------------------------------------------------------------------


def load_spec(path: str | Path) -> SweepSpec:
    """A sweep file -> SweepSpec; a relative `base` file is taken relative to the sweep file."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: is not UTF-8 text, expected a YAML sweep file") from None
    except OSError as exc:
        from cnncli.config import preset_names

        hint = (f"; {label!r} is a preset: sweep it with --config {label} --grid ..."
                if label in preset_names() else "")
        raise ConfigError(f"{label}: cannot be read ({exc.strerror}){hint}") from None
    data = safe_load(text, label)
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping (base, grid, random, "
                          f"seeds, ...), received {quote(data)}")
    if "model" in data and "base" not in data:
        raise ConfigError(f"{label}: is a training config, not a sweep file; sweep it with "
                          f"--config {label} --grid ..., or write a sweep file whose base: "
                          "names it")
    if "name" not in data:
        data["name"] = _name_of(path.name)
    spec = validate_spec(data, source=label)
    return spec.model_copy(update={"base": _locate_base(spec.base, path.parent)})


def _name_of(file_name: str) -> str:
    """A sweep's default name: its file's or config's name without .yaml, made safe."""
    stem = re.sub(r"\.ya?ml$", "", file_name)
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:64] or "sweep"


def _locate_base(base: str, folder: Path) -> str:
    """A preset name stays a name; a file is made absolute, so trials find it from anywhere."""
    from cnncli.config import preset_names

    if "/" not in base and "\\" not in base and re.sub(r"\.ya?ml$", "", base) in preset_names():
        return base
    for candidate in (folder / base, Path(base)):
        if candidate.is_file():
            return str(candidate.resolve())
    return base  # not found: the config loader says so, listing the presets


def spec_from_options(
    config: str,
    grid: Sequence[str] = (),
    seeds: str | None = None,
    *,
    overrides: Sequence[str] = (),
    name: str | None = None,
    max_concurrent: int | None = None,
    cpus_per_trial: int | None = None,
) -> SweepSpec:
    """The command-line form -> the SweepSpec a file would give.

    `grid` items are `key.path=v1,v2,...` (values parsed as one YAML flow list, so
    `optimizer.betas=[0.9,0.99],[0.8,0.9]` gives two lists); `seeds` is `0,1,2`;
    `overrides` are `--set key.path=value` items, the sweep's fixed `set:` (parsed as `cnncli
    train --set` parses them). The name is the config's (file stem or preset) unless given.
    """
    from cnncli.config import Override

    data: dict[str, Any] = {"base": config, "set": {}, "grid": {}}
    labels: dict[str, str] = {"base": "--config", "seeds": "--seeds", "name": "--name",
                              "max_concurrent": "--max-concurrent",
                              "cpus_per_trial": "--cpus-per-trial"}
    for item in overrides:
        key = item.partition("=")[0].strip()
        data["set"][key] = Override.parse(item).value  # ConfigError naming the --set
        labels[f"set.{key}"] = f"--set {key}"
    for item in grid:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {item!r}: expected key.path=value1,value2,..., e.g. "
                              "optimizer.lr=3e-4,1e-3")
        if key in data["grid"]:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        data["grid"][key] = _flow_list(raw, f"--grid {key}")
        labels[f"grid.{key}"] = f"--grid {key}"
    if seeds is not None:
        data["seeds"] = _flow_list(seeds, "--seeds")
    name = name if name is not None else _name_of(Path(config).name) if config else None
    for key, value in (("name", name), ("max_concurrent", max_concurrent),
                       ("cpus_per_trial", cpus_per_trial)):
        if value is not None:
            data[key] = value
    data["base"] = _locate_base(config, Path.cwd()) if config else config
    return validate_spec(data, source="the command line", labels=labels)


def _flow_list(raw: str, label: str) -> list[Any]:
    return safe_load(f"[{raw}]", label)


# -- validation and its one-line errors ------------------------------------------------------


def validate_spec(data: dict[str, Any], *, source: str,
                  labels: dict[str, str] | None = None) -> SweepSpec:
    """A parsed sweep mapping -> SweepSpec, or one ConfigError line naming source and key.

    `labels` maps a location ('seeds', 'grid.optimizer.lr') to the option that set it, for
    the command-line form: `--seeds: must be >= 0, received -1`.
    """
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source, labels or {})) from None
    spec._source = source
    return spec


def _where(loc: tuple[Any, ...]) -> str:
    """('grid', 'optimizer.lr', 2) -> 'grid.optimizer.lr[2]'."""
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at loc, for 'unknown key' messages."""
    model: type[BaseModel] = {(): SweepSpec, ("early_stopping",): EarlyStopping,
                              ("early_stopping", "asha"): Asha}.get(loc, Distribution)
    return list(model.model_fields)


def _explain(err: dict[str, Any]) -> str:
    common = explain_common(err)  # worded as in configs
    if common is not None:
        return common
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return f"unknown key (known: {', '.join(_known_keys(tuple(err['loc'][:-1])))})"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        if kind == "too_short" and n == 1:
            return f"must be a non-empty list, received {quote(value)}"
        return (f"must have {'at least' if kind == 'too_short' else 'at most'} {n} items, "
                f"received {quote(value)}")
    if kind == "list_type":
        return f"must be a non-empty list, received {quote(value)}"
    if kind == "string_pattern_mismatch":
        return f"must be 1 to 64 letters, digits, '.', '_' or '-', received {quote(value)}"
    if kind in ("string_type", "string_too_short"):
        return f"must be non-empty text, received {quote(value)}"
    msg = re.sub(r"^Input should be ", "must be ", str(err["msg"]))
    return f"{msg}, received {quote(value)}"


def _strip_union(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the member names pydantic appends inside a union: (..., 0, 'int') -> (..., 0)."""
    while loc and isinstance(loc[-1], str) and (
            loc[-1] in ("int", "float") or loc[-1].startswith("function-")):
        loc = loc[:-1]
    return loc


def _one_line(exc: ValidationError, source: str, labels: dict[str, str]) -> str:
    errors = exc.errors()
    # a typo explains the 'missing' beside it; of int | float, the float message is the one
    err = min(errors, key=lambda e: (e["type"] != "extra_forbidden", e["type"] == "int_type"))
    loc = _strip_union(tuple(err["loc"]))
    text = _explain(err)
    if err["type"] == "value_error" and not loc and re.match(r"^[\w.\[\]]+: ", text):
        key, _, text = text.partition(": ")  # a whole-spec check names its own key
        loc = (key,)
    where = _where(loc) or "the top level"
    more = len({_strip_union(tuple(e["loc"])) for e in errors} - {_strip_union(tuple(err["loc"]))})
    tail = f" (and {more} more)" if more else ""
    label = next((labels[k] for k in sorted(labels, key=len, reverse=True)
                  if where == k or where.startswith((k + ".", k + "["))), None)
    return f"{label or source + ': ' + where}: {text}{tail}"
