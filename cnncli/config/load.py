"""Finding, reading and validating configs: a file or preset, plus overrides -> LoadedConfig.

    cfg = load_config("configs/lenet.yaml", overrides=["optimizer.lr=0.01"])
    cfg.run.optimizer.lr            # 0.01
    cfg.resolved()                  # plain dict, every default filled in, ready for YAML

Every error is one line naming the file (or the override that set the value), the location
and the value received:

    configs/x.yaml: optimizer.lr: must be > 0, received -0.1
    --set train.epohcs=3: train.epohcs: unknown key (known: epochs, batch_size, ...)
    configs/x.yaml: model.layers[8] (dense): units: is required

Validation never builds weights: the model section is checked by inferring shapes from the
layer specs.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cnncli.config.overrides import Override, apply_override, origin
from cnncli.config.schema import MNIST_SHAPE, RunConfig
from cnncli.config.yaml_io import parse_yaml
from cnncli.errors import ConfigError, format_path, quote
from cnncli.network import infer_shapes, resolve_specs
from cnncli.spec import check


@dataclass(frozen=True)
class LoadedConfig:
    """A validated, resolved config plus where it came from.

    `name` is a short label for run folders (the file stem or preset name); `source` is how
    errors refer to the file; `notes` are things worth telling the user (e.g. keys an override
    dropped), for the CLI to print.
    """

    run: RunConfig
    name: str
    source: str
    notes: tuple[str, ...] = field(default=())

    def resolved(self) -> dict[str, Any]:
        """Every section with every default filled in, as plain data; loading it again (e.g.
        from a run's config.yaml) gives the same config."""
        return self.run.model_dump(mode="json")


def preset_names() -> list[str]:
    """The bundled presets, e.g. ['lenet', 'lenet5-classic', ...]."""
    folder = resources.files("cnncli") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str | None:
    """The YAML text of a bundled preset, or None if there is no such preset."""
    res = resources.files("cnncli") / "configs" / f"{name}.yaml"
    return res.read_text(encoding="utf-8") if res.is_file() else None


@dataclass(frozen=True)
class PresetInfo:
    """What a preset's leading comment says: a description, its accuracy and time."""

    name: str
    description: str
    accuracy: str
    time: str


def preset_info(name: str) -> PresetInfo:
    """Read a preset's leading comment: its first paragraph is the description; lines
    `# accuracy: ...` and `# time: ...` give the measured figures."""
    text = preset_text(name) or ""
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line[1:].strip())
    first = " ".join(itertools.takewhile(bool, comment))
    fields = {k: v.strip() for k, _, v in (c.partition(":") for c in comment)
              if k in ("accuracy", "time")}
    return PresetInfo(name, first, fields.get("accuracy", "-"), fields.get("time", "-"))


def find_config(name_or_path: str) -> tuple[str, str, str]:
    """A path or preset name -> (text, short name, source label). ConfigError if neither."""
    path = Path(name_or_path)
    if path.is_file():
        return _read_text(path, name_or_path), path.stem, name_or_path
    if "/" not in name_or_path and "\\" not in name_or_path:
        stem = re.sub(r"\.ya?ml$", "", name_or_path)
        text = preset_text(stem)
        if text is not None:  # a preset, even where a folder of that name exists here
            return text, stem, f"configs/{stem}.yaml"
    if path.is_dir():
        raise ConfigError(f"{name_or_path}: is a folder, expected a YAML config file")
    raise ConfigError(f"config {name_or_path!r} not found: no such file and no such preset "
                      f"(presets: {', '.join(preset_names())})")


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: is not UTF-8 text, expected a YAML config file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.strerror})") from None


def load_config(name_or_path: str, overrides: Sequence[Override | str] = ()) -> LoadedConfig:
    """Read a config file or preset, apply overrides, validate everything (model included).

    Overrides apply in order; a plain string is parsed like `--set key.path=value`.
    """
    text, name, source = find_config(name_or_path)
    data = parse_yaml(text, source)
    parsed = [ov if isinstance(ov, Override) else Override.parse(ov) for ov in overrides]
    return validate_config(data, source=source, name=name, overrides=parsed)


def validate_config(data: dict[str, Any], *, source: str, name: str = "run",
                    overrides: Sequence[Override] = ()) -> LoadedConfig:
    """A parsed config mapping (+ overrides) -> LoadedConfig, or one-line ConfigError."""
    data = copy.deepcopy(data)
    notes = []
    for i, ov in enumerate(overrides):
        note = _switch_type(data, ov, overrides[:i])
        if note:
            notes.append(note)
        apply_override(data, ov)
    try:
        run = check(RunConfig, data)
        run = _resolve(run)
    except ConfigError as exc:
        raise exc.located(source=origin(exc.loc, source, overrides)) from None
    return LoadedConfig(run=run, name=name, source=source, notes=tuple(notes))


def _switch_type(data: dict[str, Any], ov: Override, earlier: Sequence[Override]) -> str | None:
    """Before `--set X.type=new` changes the type of a mapping holding another type (an
    optimizer, a schedule, a layer), drop the keys of the old type, so that none survives
    silently or changes its meaning (Adam's decoupled weight_decay is not SGD's L2 penalty);
    keys set by earlier overrides stay. Returns the note that says what was dropped."""
    if len(ov.path) < 2 or ov.path[-1] != "type" or not isinstance(ov.value, str):
        return None
    node: Any = data
    for part in ov.path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, dict) or node.get("type") in (None, ov.value):
        return None
    prefix = ov.path[:-1]
    kept = {o.path[len(prefix)] for o in earlier
            if len(o.path) > len(prefix) and o.path[:len(prefix)] == prefix}
    dropped = {k: node.pop(k) for k in list(node) if k != "type" and k not in kept}
    if not dropped:
        return None
    where = format_path(prefix)
    settings = ", ".join(f"{k}={quote(v)}" for k, v in dropped.items())
    return (f"{ov.source}: {where} switched from {node['type']} to {ov.value}, dropping "
            f"{node['type']}'s {settings} ({ov.value} starts from its defaults; set them with "
            f"--set {where}.KEY=VALUE)")


def check_outputs(output_shape: tuple[int, ...], classes: int, dataset: str) -> None:
    """The network's last layer must give one output per class; ConfigError naming both."""
    if tuple(output_shape) != (classes,):
        raise ConfigError(f"the network outputs shape {tuple(output_shape)} but {dataset} has "
                          f"{classes} classes; end with {{type: dense, units: {classes}}}",
                          loc=("model", "layers"))


def _resolve(run: RunConfig) -> RunConfig:
    """Infer the model's shapes, decide every default init, check the model fits the data."""
    model = run.model
    try:
        shapes = infer_shapes(model.input_shape, model.layers)
    except ConfigError as exc:
        raise exc.located(("model",)) from None
    if run.data.dataset == "idx" and model.input_shape[0] != 1:
        raise ConfigError(f"IDX images have one channel, so it must be [1, height, width], "
                          f"received {list(model.input_shape)}", loc=("model", "input_shape"))
    if run.data.dataset != "idx" and tuple(model.input_shape) != MNIST_SHAPE:
        raise ConfigError(f"must be {list(MNIST_SHAPE)} for {run.data.dataset}, received "
                          f"{list(model.input_shape)}", loc=("model", "input_shape"))
    classes = run.data.num_classes()
    if classes is not None:
        check_outputs(shapes[-1], classes, run.data.dataset)
    layers = resolve_specs(model.layers)
    return run.model_copy(update={"model": model.model_copy(update={"layers": layers})})
