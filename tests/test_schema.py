"""`cnncli config schema` agrees with `cnncli train` on field types and ranges: every preset
passes both, and a corpus of broken configs fails both (checked with the jsonschema package, as
an editor's YAML support would check them). Shape misfits and cross-field rules (nesterov needs
momentum) are beyond what a JSON schema can say; they are not in the corpus."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from cnncli.config import (
    config_schema,
    load_config,
    parse_yaml,
    preset_names,
    preset_text,
    validate_config,
)
from cnncli.errors import ConfigError

SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

BASE = parse_yaml(preset_text("lenet") or "", "lenet")


def _with(path: str, value: Any) -> dict[str, Any]:
    """The lenet preset with the value at a dotted path (list items as numbers) replaced;
    `...` deletes the key."""
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for p in parts[:-1]:
        node = node.setdefault(p, {}) if isinstance(node, dict) else node[p]
    if value is ...:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


def _cnncli_accepts(data: dict[str, Any]) -> bool:
    try:
        validate_config(data, source="corpus")
        return True
    except ConfigError:
        return False


def _schema_accepts(data: dict[str, Any]) -> bool:
    return VALIDATOR.is_valid(data)


BROKEN = [
    ("model.layers.0.filters", "six"), ("model.layers.0.filters", 0),
    ("model.layers.0.filters", 6.5), ("model.layers.0.filters", True),
    ("model.layers.0.filters", 2**31), ("model.layers.0.filters", ...),
    ("model.layers.0.kernel", [5]), ("model.layers.0.kernel", [5, 5, 5]),
    ("model.layers.0.kernel", [5, 0]), ("model.layers.0.kernel", "5"),
    ("model.layers.0.stride", 0), ("model.layers.0.padding", "full"),
    ("model.layers.0.padding", -1), ("model.layers.0.padding", [1, -1]),
    ("model.layers.0.init", "xavier"), ("model.layers.0.kernl", 3),
    ("model.layers.0.type", "convv"), ("model.layers.0.type", ...),
    ("model.layers.2.size", 0), ("model.layers.2.stride", [2]),
    ("model.layers.7.rate", 1.5), ("model.layers.7.rate", 1), ("model.layers.7.rate", -0.1),
    ("model.layers.7.rate", "half"), ("model.layers.8.units", ...),
    ("model.layers.8.units", -3), ("model.layers.8.units", "many"),
    ("model.layers", []), ("model.layers", "conv"), ("model.layers.1", "relu"),
    ("model.input_shape", [1, 28]), ("model.input_shape", [1, 28, 0]),
    ("model", ...), ("loss", "xent"), ("optimizer.type", "rmsprop"),
    ("optimizer.lr", 0), ("optimizer.lr", -1e-3), ("optimizer.lr", "fast"),
    ("optimizer.betas", [0.9]), ("optimizer.betas", [0.9, 1.0]), ("optimizer.eps", 0),
    ("optimizer.weight_decay", -1), ("optimizer.momentum", 0.9),
    ("schedule.type", "linear"), ("schedule.min_lr", -1), ("schedule.gamma", 0.5),
    ("schedule.warmup_epochs", -1), ("train.epochs", 0), ("train.epochs", 2.5),
    ("train.epochs", "ten"), ("train.batch_size", True), ("train.seed", -1),
    ("train.val_split", 1.0), ("train.val_split", -0.1), ("train.limit", 0),
    ("train.target_accuracy", 1.5), ("train.patience", 0), ("train.epohcs", 3),
    ("data.dataset", "cifar10"), ("data.mirrors", "http://x"), ("data.data_dir", 5),
    ("trian", {}),
]

VALID = [
    ("model.layers.0.filters", 6.0), ("model.layers.0.kernel", [5, 3]),
    ("model.layers.0.padding", 2), ("model.layers.0.padding", [2, 2]),
    ("model.layers.0.init", "glorot"), ("model.layers.2.stride", None),
    ("model.layers.7.rate", 0), ("optimizer.lr", 1), ("train.limit", None),
    ("train.target_accuracy", 1), ("data.data_dir", "/somewhere"),
]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_and_its_resolved_form_validate_against_the_schema(name):
    text = preset_text(name) or ""
    VALIDATOR.validate(parse_yaml(text, name))
    VALIDATOR.validate(load_config(name).resolved())


@pytest.mark.parametrize(("path", "value"), BROKEN, ids=[f"{p}={v!r}" for p, v in BROKEN])
def test_the_schema_rejects_what_cnncli_rejects(path, value):
    data = _with(path, value)
    assert not _cnncli_accepts(data), "the corpus entry must be invalid for cnncli"
    assert not _schema_accepts(data), "an editor would not flag what cnncli refuses"


@pytest.mark.parametrize(("path", "value"), VALID, ids=[f"{p}={v!r}" for p, v in VALID])
def test_the_schema_accepts_what_cnncli_accepts(path, value):
    data = _with(path, value)
    assert _cnncli_accepts(data) and _schema_accepts(data)


def test_a_float_without_a_dot_means_a_number_to_both(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text((preset_text("lenet") or "").replace("lr: 1.0e-3", "lr: 1e-3"))
    cfg = load_config(str(path))
    assert cfg.run.optimizer.lr == 0.001
    VALIDATOR.validate(parse_yaml(path.read_text(), "x"))
