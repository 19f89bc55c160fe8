"""YAML run configs -> validated objects, with command-line overrides and a resolved dump.

    cfg = load_config("configs/lenet.yaml", overrides=[Override.parse("optimizer.lr=0.01")])
    cfg.run.optimizer.lr            # 0.01
    cfg.resolved()                  # plain dict, every default filled in, ready for YAML

A file has six sections, `model` (required), `loss`, `optimizer`, `schedule`, `train` and
`data`. Unknown keys are errors, so a typo never passes silently. Every error is one line
naming the file (or the override), the location and the value received:

    configs/x.yaml: optimizer.lr: must be > 0, received -0.1
    --set train.epohcs=3: train.epohcs: unknown key (known: epochs, batch_size, ...)

The model section is checked by building the network it describes, so impossible shapes
are config errors too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from cnncli.errors import ConfigError, quote

#: the classes of MNIST; a model must end with this many outputs
NUM_CLASSES = 10
#: the shape of one MNIST image, (C, H, W)
MNIST_SHAPE = (1, 28, 28)


def _numeric_text(v: Any) -> Any:
    """Accept '1e-3' as a number: YAML 1.1 (PyYAML) reads a float without a dot as text."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


Real = Annotated[float, BeforeValidator(_numeric_text), Field(strict=True, allow_inf_nan=False)]
Int = StrictInt
Bool = StrictBool


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# -- model and loss ------------------------------------------------------------------------


class ModelConfig(_Section):
    """The network: input shape (C, H, W) and the layer list of the core engine."""

    input_shape: list[Int] = Field(
        default_factory=lambda: list(MNIST_SHAPE),
        description="[channels, height, width] of one input image; [1, 28, 28] for MNIST",
    )
    layers: list[dict[str, Any]] = Field(
        min_length=1,
        description="layer specs in order, e.g. {type: conv, filters: 6, kernel: 5}",
    )


LossName = Literal["softmax_cross_entropy", "mse"]


# -- optimizers ----------------------------------------------------------------------------


class SGDConfig(_Section):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    type: Literal["sgd"]
    lr: Real = Field(0.01, gt=0, description="base learning rate")
    momentum: Real = Field(0.0, ge=0, lt=1, description="momentum factor mu in [0, 1)")
    nesterov: Bool = Field(False, description="Nesterov momentum (needs momentum > 0)")
    weight_decay: Real = Field(
        0.0, ge=0, description="L2 penalty: weight_decay * p is added to every gradient"
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDConfig:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0, received momentum 0")
        return self


class AdamConfig(_Section):
    """Adam (Kingma & Ba) with bias correction and decoupled weight decay (AdamW)."""

    type: Literal["adam"]
    lr: Real = Field(1e-3, gt=0, description="base learning rate")
    betas: Annotated[list[Annotated[Real, Field(ge=0, lt=1)]], Field(
        min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.9, 0.999],
        description="[beta1, beta2]: decay rates of the first and second moment estimates",
    )
    eps: Real = Field(1e-8, gt=0, description="added to the root of the second moment")
    weight_decay: Real = Field(
        0.0,
        ge=0,
        description="decoupled weight decay (AdamW, Loshchilov & Hutter): each step also does "
        "p -= lr * weight_decay * p, apart from the adaptive update; 0 disables it",
    )


OptimizerConfig = Annotated[SGDConfig | AdamConfig, Field(discriminator="type")]


# -- learning-rate schedules ---------------------------------------------------------------


def _warmup() -> Any:
    return Field(
        0.0, ge=0,
        description="linear warm-up over this many epochs (fractions allowed): the "
        "learning rate of step s is scaled by (s + 1) / warmup_steps until then",
    )


class ConstantSchedule(_Section):
    """The base learning rate throughout."""

    type: Literal["constant"]
    warmup_epochs: Real = _warmup()


class StepSchedule(_Section):
    """Multiply the learning rate by gamma every `every_epochs` epochs."""

    type: Literal["step"]
    warmup_epochs: Real = _warmup()
    every_epochs: Int = Field(1, gt=0, description="epochs between decays")
    gamma: Real = Field(0.1, gt=0, le=1, description="decay factor")


class CosineSchedule(_Section):
    """Cosine decay from the base learning rate to min_lr over the run (per step)."""

    type: Literal["cosine"]
    warmup_epochs: Real = _warmup()
    min_lr: Real = Field(0.0, ge=0, description="learning rate at the last step")


ScheduleConfig = Annotated[
    ConstantSchedule | StepSchedule | CosineSchedule, Field(discriminator="type")
]


# -- training and data ---------------------------------------------------------------------


class TrainConfig(_Section):
    """The training loop."""

    epochs: Int = Field(10, gt=0, description="passes over the training images")
    batch_size: Int = Field(64, gt=0, description="images per step")
    eval_batch_size: Int = Field(500, gt=0, description="images per forward pass when evaluating")
    seed: Int = Field(0, ge=0, description="seeds weights, shuffling and dropout")
    val_split: Real = Field(
        0.1, ge=0, lt=1,
        description="fraction of the training file held out for validation: a fixed "
        "selection (the same for every seed, see cnncli.train.split_indices); 0 = none",
    )
    limit: Int | None = Field(
        None, gt=0, description="train on only the first N training images (quick runs)"
    )
    target_accuracy: Real | None = Field(
        None, gt=0, le=1, description="stop once validation accuracy reaches this fraction"
    )
    patience: Int | None = Field(
        None, gt=0,
        description="stop after this many epochs without a better validation accuracy",
    )

    @model_validator(mode="after")
    def _stopping_needs_validation(self) -> TrainConfig:
        for name in ("target_accuracy", "patience"):
            if getattr(self, name) is not None and self.val_split == 0:
                raise ValueError(f"{name}: needs a validation split, received val_split 0")
        return self


class DataConfig(_Section):
    """Where the images come from."""

    dataset: Literal["mnist", "idx"] = Field(
        "mnist",
        description="mnist: MNIST, fetched from the mirrors and verified against pinned "
        "SHA-256 sums; idx: your own folder (data_dir or --data-dir) holding the four "
        "MNIST-named IDX files uncompressed, greyscale images of any size, labels 0..9, "
        "checked structurally (there are no published hashes to verify)",
    )
    data_dir: str | None = Field(
        None, description="folder holding the dataset files (default for mnist: cnncli's data "
        "folder; required for idx unless --data-dir is given)"
    )
    mirrors: list[str] = Field(
        default_factory=list,
        description="URLs or local folders to fetch the files from, tried before the defaults",
    )


class RunConfig(_Section):
    """A whole run: model, loss, optimizer, schedule, training loop and data."""

    model: ModelConfig
    loss: LossName = Field("softmax_cross_entropy", description="softmax_cross_entropy or mse")
    optimizer: OptimizerConfig = Field(default_factory=lambda: AdamConfig(type="adam"))
    schedule: ScheduleConfig = Field(default_factory=lambda: ConstantSchedule(type="constant"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)


#: the sections whose class is chosen by their `type` key
_TAGGED: dict[str, dict[str, type[BaseModel]]] = {
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig},
    "schedule": {"constant": ConstantSchedule, "step": StepSchedule, "cosine": CosineSchedule},
}


# -- overrides -----------------------------------------------------------------------------

PathPart = str | int
_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_key_path(text: str) -> tuple[PathPart, ...]:
    """'model.layers[3].filters' -> ('model', 'layers', 3, 'filters'); ConfigError if malformed."""
    parts: list[PathPart] = []
    for piece in text.split("."):
        m = _PART.fullmatch(piece)
        if m is None:
            raise ConfigError(
                f"bad key path {text!r}: expected names joined by dots, e.g. optimizer.lr "
                "or model.layers[0].filters"
            )
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def format_path(path: tuple[PathPart, ...]) -> str:
    """('model', 'layers', 3, 'filters') -> 'model.layers[3].filters'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


@dataclass(frozen=True)
class Override:
    """One `key.path=value` change, and where it came from (for error messages)."""

    path: tuple[PathPart, ...]
    value: Any
    source: str

    @classmethod
    def parse(cls, text: str) -> Override:
        """'optimizer.lr=0.01' -> Override; the value is parsed as YAML (so 8 is an int)."""
        source = f"--set {text if len(text) <= 80 else text[:77] + '...'}"
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. optimizer.lr=0.01")
        value = safe_load(raw, f"{source}: the value") if raw.strip() else None
        try:
            path = parse_key_path(key.strip())
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls(path, value, source)

    @classmethod
    def of(cls, option: str, key: str, value: Any) -> Override:
        """An override from a dedicated option, e.g. Override.of('--lr', 'optimizer.lr', 0.1)."""
        return cls(parse_key_path(key), value, option)


def apply_override(data: dict[str, Any], ov: Override) -> None:
    """Set ov.value at ov.path inside `data` (in place), creating missing mappings."""
    node: Any = data
    for depth, part in enumerate(ov.path[:-1]):
        node = _step_into(node, part, ov, depth, create=True)
    last = ov.path[-1]
    here = format_path(ov.path[:-1]) or "the top level"
    if isinstance(last, int):
        if not isinstance(node, list):
            raise ConfigError(f"{ov.source}: {here} is not a list, received {quote(node)}")
        if last >= len(node):
            raise ConfigError(f"{ov.source}: {here} has {len(node)} items, no index {last}")
        node[last] = ov.value
    else:
        if not isinstance(node, dict):
            raise ConfigError(f"{ov.source}: {here} is not a mapping, received {quote(node)}")
        node[last] = ov.value


def _step_into(node: Any, part: PathPart, ov: Override, depth: int, create: bool) -> Any:
    here = format_path(ov.path[:depth]) or "the top level"
    if isinstance(part, int):
        if not isinstance(node, list):
            raise ConfigError(f"{ov.source}: {here} is not a list, received {quote(node)}")
        if part >= len(node):
            raise ConfigError(f"{ov.source}: {here} has {len(node)} items, no index {part}")
        return node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"{ov.source}: {here} is not a mapping, received {quote(node)}")
    if part not in node or node[part] is None:
        if not create:
            raise ConfigError(f"{ov.source}: no key {quote(part)} in {here}")
        node[part] = {}
    return node[part]


# -- loading -------------------------------------------------------------------------------


@dataclass
class LoadedConfig:
    """A validated config plus where it came from.

    `name` is a short label for run folders (the file stem or preset name); `source` is
    how errors refer to the file.
    """

    run: RunConfig
    name: str
    source: str

    # the sections, so that callers can write cfg.model, cfg.train, ...
    @property
    def model(self) -> ModelConfig:
        return self.run.model

    @property
    def loss(self) -> str:
        return self.run.loss

    @property
    def optimizer(self) -> SGDConfig | AdamConfig:
        return self.run.optimizer

    @property
    def schedule(self) -> ConstantSchedule | StepSchedule | CosineSchedule:
        return self.run.schedule

    @property
    def train(self) -> TrainConfig:
        return self.run.train

    @property
    def data(self) -> DataConfig:
        return self.run.data

    def resolved(self) -> dict[str, Any]:
        """Every section with every default filled in; layer specs as the engine resolves them.

        Loading this dict again (e.g. from a run's config.yaml) gives the same config.
        """
        return resolve(self.run)


def preset_names() -> list[str]:
    """The bundled presets, e.g. ['lenet', 'lenet5-classic', ...]."""
    folder = resources.files("cnncli") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def find_config(name_or_path: str) -> tuple[str, str, str]:
    """A path or preset name -> (text, short name, source label). ConfigError if neither."""
    path = Path(name_or_path)
    if path.is_file():
        return _read_text(path, name_or_path), path.stem, name_or_path
    if "/" not in name_or_path and "\\" not in name_or_path:
        stem = re.sub(r"\.ya?ml$", "", name_or_path)
        res = resources.files("cnncli") / "configs" / f"{stem}.yaml"
        if res.is_file():  # a preset, even where a folder of that name exists here
            return res.read_text(encoding="utf-8"), stem, f"configs/{stem}.yaml"
    if path.is_dir():
        raise ConfigError(f"{name_or_path}: is a folder, expected a YAML config file")
    raise ConfigError(
        f"config {name_or_path!r} not found: no such file and no such preset "
        f"(presets: {', '.join(preset_names())})"
    )


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: is not UTF-8 text, expected a YAML config file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.strerror})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


def safe_load(text: str, source: str) -> Any:
    """yaml.safe_load, with every way it can fail as one ConfigError line naming the source."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        reason = str(exc).split(";")[0]
        raise ConfigError(f"{source}: invalid YAML: {reason}") from None


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """YAML text -> the top-level mapping (yaml.safe_load); ConfigError naming the source."""
    data = safe_load(text, source)
    if data is None:
        raise ConfigError(f"{source}: the file is empty; a config needs at least a model section")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (model, loss, optimizer, "
            f"schedule, train, data), received a {type(data).__name__}: {quote(data)}"
        )
    return data


def load_config(
    name_or_path: str, overrides: Sequence[Override | str] = ()
) -> LoadedConfig:
    """Read a config file or preset, apply overrides, validate everything (model included).

    Overrides apply in order; a plain string is parsed like `--set key.path=value`.
    """
    text, name, source = find_config(name_or_path)
    data = parse_yaml(text, source)
    parsed = [ov if isinstance(ov, Override) else Override.parse(ov) for ov in overrides]
    return validate_config(data, source=source, name=name, overrides=parsed)


def validate_config(
    data: dict[str, Any],
    *,
    source: str,
    name: str = "run",
    overrides: list[Override] | tuple[Override, ...] = (),
) -> LoadedConfig:
    """A parsed config mapping (+ overrides) -> LoadedConfig, or one-line ConfigError."""
    data = copy.deepcopy(data)
    for ov in overrides:
        apply_override(data, ov)
    try:
        run = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation(exc, data, source, overrides)) from None
    check_model(run, source, overrides)
    return LoadedConfig(run=run, name=name, source=source)


def check_model(
    run: RunConfig, source: str = "config", overrides: list[Override] | tuple[Override, ...] = ()
) -> None:
    """Build the model once (shapes, layer fields) and check it fits the dataset."""
    from cnncli.network import build_network

    model = run.model
    try:
        net = build_network(model.input_shape, model.layers)
    except ConfigError as exc:
        msg = re.sub(r"^input_shape ", "input_shape: ", str(exc))
        m = re.match(r"layers\[(\d+)\]", msg)
        loc: tuple[PathPart, ...] = (
            ("model", "layers", int(m.group(1))) if m
            else ("model", "input_shape") if msg.startswith("input_shape") else ("model",))
        raise type(exc)(f"{_origin(loc, source, overrides)}: model.{msg}") from None
    except MemoryError as exc:
        raise ConfigError(f"{_origin(('model', 'layers'), source, overrides)}: model.layers: "
                          f"the network's weights do not fit in memory ({exc})") from None
    if run.data.dataset == "idx" and model.input_shape[0] != 1:
        loc = ("model", "input_shape")
        raise ConfigError(
            f"{_origin(loc, source, overrides)}: model.input_shape: IDX images have one "
            f"channel, so it must be [1, height, width], received {model.input_shape}"
        )
    if run.data.dataset == "mnist" and tuple(model.input_shape) != MNIST_SHAPE:
        loc = ("model", "input_shape")
        raise ConfigError(
            f"{_origin(loc, source, overrides)}: model.input_shape: must be "
            f"{list(MNIST_SHAPE)} for {run.data.dataset}, received {model.input_shape}"
        )
    if tuple(net.output_shape) != (NUM_CLASSES,):
        raise ConfigError(
            f"{_origin(('model', 'layers'), source, overrides)}: model.layers: the network "
            f"outputs shape {tuple(net.output_shape)} but {run.data.dataset} has {NUM_CLASSES} "
            f"classes; end with {{type: dense, units: {NUM_CLASSES}}}"
        )


def resolve(run: RunConfig) -> dict[str, Any]:
    """RunConfig -> a plain dict with every default filled in and layer specs normalised."""
    from cnncli.network import build_network

    out = run.model_dump(mode="json")
    net = build_network(run.model.input_shape, run.model.layers)
    out["model"] = net.get_config()
    return out


class _Flow(dict):
    """A mapping dumped on one line: {type: conv, filters: 6, ...}."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def dump_yaml(data: dict[str, Any]) -> str:
    """A resolved config -> YAML text in section order, one line per layer spec."""
    data = copy.deepcopy(data)
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("layers"), list):
        model["layers"] = [_Flow(s) if isinstance(s, dict) else s for s in model["layers"]]
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


# -- error messages ------------------------------------------------------------------------


def _origin(loc: tuple[PathPart, ...], source: str, overrides: Any) -> str:
    """Who set the value at loc: the last override on or above that path, else the file."""
    for ov in reversed(list(overrides)):
        n = min(len(ov.path), len(loc))
        if ov.path[:n] == loc[:n]:
            return ov.source
    return source


def _strip_tags(loc: tuple[PathPart, ...]) -> tuple[PathPart, ...]:
    """Drop the union tag pydantic puts in locations: ('optimizer', 'adam', 'lr') -> lr path."""
    if len(loc) >= 2 and loc[0] in _TAGGED and loc[1] in _TAGGED[loc[0]]:
        return (loc[0], *loc[2:])
    return loc


def _known_keys(loc: tuple[PathPart, ...], data: dict[str, Any]) -> list[str] | None:
    """The keys allowed in the mapping at loc, for 'unknown key' messages."""
    if loc == ():
        return list(RunConfig.model_fields)
    section = loc[0]
    if len(loc) != 1:
        return None
    if section in _TAGGED:
        node = data.get(section)
        tag = node.get("type") if isinstance(node, dict) else None
        cls = _TAGGED[section].get(tag) if isinstance(tag, str) else None
        return list(cls.model_fields) if cls else None
    field = RunConfig.model_fields.get(str(section))
    ann = field.annotation if field else None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return list(ann.model_fields)
    return None


def _explain(err: dict[str, Any], loc: tuple[PathPart, ...], data: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    bounds = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {ctx[key]:g}, received {quote(value)}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1], data)
        listing = f" (known: {', '.join(known)})" if known else ""
        return f"unknown key{listing}"
    if kind == "union_tag_invalid":
        tags = ", ".join(sorted(_TAGGED.get(str(loc[0]), {}))) if loc else ctx["expected_tags"]
        return f"type: must be one of {tags}, received {quote(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        tags = ", ".join(sorted(_TAGGED.get(str(loc[0]), {}))) if loc else ""
        return f"type: is required (one of {tags})"
    if kind == "finite_number":
        return f"must be a finite number, received {quote(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "float_type":
        return f"must be a number, received {quote(value)}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        return (f"must have {'at least' if kind == 'too_short' else 'at most'} {n} "
                f"item{'s' if n != 1 else ''}, received {quote(value)}")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, received {quote(value)}"
    msg = str(err["msg"])
    msg = re.sub(r"^Input should be ", "must be ", msg)
    msg = msg.replace("a valid integer", "an integer").replace("a valid boolean",
                                                               "true or false")
    msg = msg.replace("a valid string", "text").replace("a valid list", "a list")
    return f"{msg}, received {quote(value)}"


def _describe_validation(
    exc: ValidationError, data: dict[str, Any], source: str, overrides: Any
) -> str:
    errors = exc.errors()
    err = errors[0]
    loc = _strip_tags(tuple(err["loc"]))
    text = _explain(err, loc, data)
    if text.startswith("type: ") or err["type"] == "value_error":
        # the message names its own key: 'type: ...' or 'nesterov: ...'
        key, _, rest = text.partition(": ")
        where = format_path((*loc, key))
        loc, text = (*loc, key), rest
    else:
        where = format_path(loc) or "the top level"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_origin(loc, source, overrides)}: {where}: {text}{more}"


def config_schema() -> dict[str, Any]:
    """The JSON schema of a config file, with one entry per layer type for editors."""
    from cnncli.layers import known_types, layer_class

    schema = RunConfig.model_json_schema()
    variants = []
    for name in known_types():
        props: dict[str, Any] = {"type": {"const": name}}
        props.update({f: {} for f in layer_class(name).fields()})
        variants.append({"type": "object", "properties": props, "required": ["type"],
                         "additionalProperties": False})
    model = schema["$defs"]["ModelConfig"]["properties"]["layers"]
    model["items"] = {"anyOf": variants}
    return schema
