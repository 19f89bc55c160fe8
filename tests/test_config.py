"""Config loading: presets, validation messages that name file/location/value, overrides."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from cnncli.config import (
    Override,
    dump_yaml,
    load_config,
    parse_key_path,
    preset_names,
    validate_config,
)
from cnncli.config import config_schema as schema
from cnncli.errors import ConfigError, ShapeError, format_path

SMALL = """\
model:
  input_shape: [1, 28, 28]
  layers:
    - {type: conv, filters: 2, kernel: 5}
    - {type: relu}
    - {type: maxpool, size: 2}
    - {type: flatten}
    - {type: dense, units: 10}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2, batch_size: 16}
"""


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _error(path: str, *sets: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, [Override.parse(s) for s in sets])
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", ["lenet", "lenet5-classic", "mlp", "lenet-mse"])
def test_every_preset_loads_by_name_and_round_trips_through_its_resolved_yaml(name):
    cfg = load_config(name)
    assert cfg.name == name
    again = validate_config(yaml.safe_load(dump_yaml(cfg.resolved())), source="again")
    assert again.resolved() == cfg.resolved()


def test_presets_are_shipped_and_listed():
    assert {"lenet", "lenet5-classic", "mlp", "lenet-mse"} <= set(preset_names())


def test_lenet_preset_has_the_lenet5_sizes():
    layers = load_config("lenet.yaml").resolved()["model"]["layers"]
    weighted = [(s["type"], s.get("filters", s.get("units"))) for s in layers
                if s["type"] in ("conv", "dense")]
    assert weighted == [("conv", 6), ("conv", 16), ("dense", 120), ("dense", 84), ("dense", 10)]


def test_mse_preset_ends_with_a_sigmoid():
    cfg = load_config("lenet-mse")
    assert cfg.run.loss == "mse"
    assert cfg.run.model.layers[-1].type == "sigmoid"


def test_defaults_fill_every_section(tmp_path):
    cfg = load_config(_write(tmp_path, SMALL))
    resolved = cfg.resolved()
    assert list(resolved) == ["model", "loss", "optimizer", "schedule", "train", "data"]
    assert resolved["loss"] == "softmax_cross_entropy"
    assert resolved["schedule"]["type"] == "constant"
    assert resolved["optimizer"] == {"type": "sgd", "lr": 0.1, "momentum": 0.0,
                                     "nesterov": False, "weight_decay": 0.0}
    assert resolved["data"] == {"dataset": "mnist", "data_dir": None, "mirrors": [],
                                "augment": None, "classes": None}


def test_negative_lr_names_file_location_and_value(tmp_path):
    path = _write(tmp_path, SMALL.replace("lr: 0.1", "lr: -0.1"))
    assert _error(path) == f"{path}: optimizer.lr: must be > 0, received -0.1"


def test_typo_key_is_an_error_listing_the_known_keys(tmp_path):
    path = _write(tmp_path, SMALL.replace("lr: 0.1", "learning_rate: 0.1"))
    msg = _error(path)
    assert msg.startswith(f"{path}: optimizer.learning_rate: unknown key (known: type, lr,")


def test_unknown_section_is_an_error(tmp_path):
    msg = _error(_write(tmp_path, SMALL + "trian: {epochs: 3}\n"))
    assert "trian: unknown key (known: model, loss, optimizer, schedule, train, data)" in msg


@pytest.mark.parametrize("line, expected", [
    ("train: {epochs: 2.5}", "train.epochs: must be an integer, received 2.5"),
    ("train: {epochs: true}", "train.epochs: must be an integer, received true"),
    ("train: {epochs: ten}", "train.epochs: must be an integer, received 'ten'"),
    ("train: {batch_size: 0}", "train.batch_size: must be >= 1, received 0"),
    ("train: {val_split: 1.0}", "train.val_split: must be < 1, received 1.0"),
    ("train: {patience: 2, val_split: 0}", "train.patience: needs a validation split"),
    ("loss: xent", "loss: must be 'mse' or 'softmax_cross_entropy', received 'xent'"),
    ("optimizer: {type: rmsprop}",
     "optimizer.type: unknown optimizer 'rmsprop' (known: adam, sgd)"),
    ("optimizer: {lr: 0.1}", "optimizer.type: is required (one of adam, sgd)"),
    ("optimizer: {type: adam, betas: [0.9]}", "optimizer.betas: must have at least 2 items"),
    ("optimizer: {type: adam, betas: [0.9, 1.5]}", "optimizer.betas[1]: must be < 1, received 1.5"),
    ("optimizer: {type: sgd, nesterov: true}", "optimizer.nesterov: needs momentum > 0"),
    ("optimizer: {type: sgd, lr: .inf}", "optimizer.lr: must be a finite number"),
    ("optimizer: {type: sgd, lr: .nan}", "optimizer.lr: must be a finite number, received NaN"),
    ("schedule: {type: step, gamma: 2}", "schedule.gamma: must be <= 1, received 2"),
    ("schedule: {type: cosine, every_epochs: 2}", "schedule.every_epochs: unknown key"),
    ("data: {dataset: cifar10}",
     "data.dataset: must be 'mnist', 'fashion-mnist' or 'idx', received 'cifar10'"),
    ("data: {classes: [a, b]}", "data.classes: only an idx dataset takes class names"),
    ("data: {dataset: idx, classes: [a, a]}", "data.classes: names must differ"),
    ("data: {dataset: idx, classes: [a]}", "data.classes: must have at least 2 items"),
    ("data: {mirrors: ['http://[::1']}", "data.mirrors[0]: "),
    ("data: {mirrors: http://x}", "data.mirrors: must be a list, received 'http://x'"),
    ("train: 5", "train: must be a mapping, received 5"),
])
def test_wrong_values_are_reported_with_their_location(tmp_path, line, expected):
    key = line.split(":")[0]
    text = "\n".join(ln for ln in SMALL.splitlines() if not ln.startswith(key + ":"))
    path = _write(tmp_path, text + "\n" + line + "\n")
    msg = _error(path)
    assert msg.startswith(f"{path}: {expected}"), msg


def test_float_written_without_a_dot_is_read_as_a_number(tmp_path):
    # PyYAML reads 1e-3 as the string '1e-3' (YAML 1.1); a config means the number
    cfg = load_config(_write(tmp_path, SMALL.replace("lr: 0.1", "lr: 1e-3")))
    assert cfg.run.optimizer.lr == 0.001


def test_missing_model_section(tmp_path):
    path = _write(tmp_path, "train: {epochs: 1}\n")
    assert _error(path) == f"{path}: model: is required"


def test_empty_file(tmp_path):
    path = _write(tmp_path, "\n# nothing here\n")
    assert _error(path) == f"{path}: the file is empty; a config needs at least a model section"


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = _write(tmp_path, "model:\n  layers: [\n    {type: relu\n")
    msg = _error(path)
    assert msg.startswith(f"{path}: invalid YAML: ") and "line" in msg


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path):
    # PyYAML keeps the last of two equal keys: the first optimizer section would be dropped
    path = _write(tmp_path, "model:\n  layers: [{type: flatten}, {type: dense, units: 10}]\n"
                            "optimizer: {type: adam, lr: 0.001}\n"
                            "optimizer: {type: sgd, lr: 0.5}\n")
    assert _error(path) == (f"{path}: invalid YAML: the key 'optimizer' is given twice in one "
                            "mapping at line 4, column 1")
    nested = _write(tmp_path, "model:\n  layers:\n    - {type: dense, units: 10, units: 20}\n")
    assert "the key 'units' is given twice" in _error(nested)
    # a merge's keys may be overridden: that is what a merge is for
    merged = _write(tmp_path, "model:\n  input_shape: [1, 28, 28]\n  layers:\n"
                              "    - {type: flatten}\n"
                              "    - {<<: {type: dense, units: 5}, units: 10}\n")
    assert load_config(merged).run.model.layers[-1].units == 10


def test_top_level_must_be_a_mapping(tmp_path):
    msg = _error(_write(tmp_path, "- model\n- train\n"))
    assert "the top level must be a mapping of sections" in msg and "list" in msg


def test_missing_file_lists_the_presets():
    msg = _error("no/such/file.yaml")
    assert msg.startswith("config 'no/such/file.yaml' not found")
    assert "lenet5-classic" in msg


def test_unknown_preset_name():
    assert "no such preset" in _error("lenett")


def test_folder_is_not_a_config(tmp_path):
    assert "is a folder" in _error(str(tmp_path))


def test_a_preset_name_wins_over_a_folder_of_that_name_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp").mkdir()  # e.g. a folder of one's own runs
    assert load_config("mlp").source == "configs/mlp.yaml"
    assert "is a folder" in _error("./mlp")


def test_binary_file_is_not_a_config(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01")
    assert "is not UTF-8 text" in _error(str(path))


def test_layer_error_is_prefixed_with_file_and_model(tmp_path):
    path = _write(tmp_path, SMALL.replace("kernel: 5", "kernel: 0"))
    assert _error(path) == (f"{path}: model.layers[0] (conv): kernel: must be a positive "
                            "integer or a [height, width] pair of them, received 0")


def test_impossible_shape_is_a_shape_error(tmp_path):
    path = _write(tmp_path, SMALL.replace("kernel: 5", "kernel: 40"))
    with pytest.raises(ShapeError, match=r"model\.layers\[0\] \(conv\): "):
        load_config(path)


def test_unknown_layer_type_lists_known_types(tmp_path):
    msg = _error(_write(tmp_path, SMALL.replace("type: relu", "type: rleu")))
    assert "model.layers[1].type: unknown layer type 'rleu' (known: avgpool, batchnorm, " in msg


def test_model_must_output_ten_classes(tmp_path):
    msg = _error(_write(tmp_path, SMALL.replace("units: 10", "units: 7")))
    assert "model.layers: the network outputs shape (7,) but mnist has 10 classes" in msg


def test_model_input_must_be_an_mnist_image(tmp_path):
    msg = _error(_write(tmp_path, SMALL.replace("[1, 28, 28]", "[3, 32, 32]")))
    assert "model.input_shape: must be [1, 28, 28] for mnist, received [3, 32, 32]" in msg


# -- overrides ---------------------------------------------------------------------------


def test_key_paths_parse_and_format_both_ways():
    path = parse_key_path("model.layers[3].filters")
    assert path == ("model", "layers", 3, "filters")
    assert format_path(path) == "model.layers[3].filters"


def test_set_values_are_parsed_as_yaml_and_validated(tmp_path):
    path = _write(tmp_path, SMALL)
    cfg = load_config(path, [Override.parse("train.epochs=7"),
                             Override.parse("model.layers[0].filters=3"),
                             Override.parse("optimizer={type: adam, lr: 0.01}"),
                             Override.parse("schedule.type=cosine"),
                             Override.parse("data.mirrors=[/a, /b]")])
    assert cfg.run.train.epochs == 7
    assert cfg.run.model.layers[0].filters == 3
    assert cfg.run.optimizer.type == "adam" and cfg.run.optimizer.lr == 0.01
    assert cfg.run.schedule.type == "cosine"
    assert cfg.run.data.mirrors == ["/a", "/b"]


def test_later_overrides_win():
    cfg = load_config("lenet", [Override.parse("train.epochs=3"), Override.parse("train.epochs=4")])
    assert cfg.run.train.epochs == 4


def test_bad_set_value_is_blamed_on_the_set_not_the_file(tmp_path):
    path = _write(tmp_path, SMALL)
    assert _error(path, "optimizer.lr=-0.1") == (
        "--set optimizer.lr=-0.1: optimizer.lr: must be > 0, received -0.1")
    assert _error(path, "model.layers[0].kernel=0").startswith(
        "--set model.layers[0].kernel=0: model.layers[0] (conv): kernel")


def test_dedicated_option_overrides_are_blamed_on_the_option():
    with pytest.raises(ConfigError, match=r"^--epochs: train.epochs: must be >= 1, received 0$"):
        load_config("lenet", [Override.of("--epochs", "train.epochs", 0)])


@pytest.mark.parametrize("text, expected", [
    ("train.epochs", "expected key.path=value"),
    ("=3", "expected key.path=value"),
    ("train..epochs=3", "bad key path 'train..epochs'"),
    ("train.epochs.max=3", "train.epochs is not a mapping, received 15"),
    ("model.layers[40].units=3", "model.layers has 15 items, no index 40"),
    ("model.layers.units=3", "model.layers is not a mapping"),
    ("optimizer.lr=[1, 2", "the value: invalid YAML: "),
    ("optimizer.learning_rate=0.1", "optimizer.learning_rate: unknown key"),
    ("model.layers=[]", "model.layers: must have at least 1 item, received []"),
    ("model.input_shape=[1, 28]", "model.input_shape: must be [channels, height, width]"),
])
def test_bad_set_paths_are_one_line_errors(text, expected):
    with pytest.raises(ConfigError) as info:
        load_config("lenet", [Override.parse(text)])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_validation_does_not_modify_the_callers_mapping():
    data = yaml.safe_load(SMALL)
    before = json.dumps(data, sort_keys=True)
    validate_config(data, source="x", overrides=[Override.parse("train.epochs=9")])
    assert json.dumps(data, sort_keys=True) == before


def test_schema_is_json_with_the_sections_and_one_typed_entry_per_layer_type():
    s = schema()
    json.dumps(s)
    assert s["$schema"].startswith("https://json-schema.org/") and s["title"]
    assert set(s["properties"]) == {"model", "loss", "optimizer", "schedule", "train", "data"}
    items = s["$defs"]["ModelSpec"]["properties"]["layers"]["items"]
    assert items["discriminator"]["propertyName"] == "type"
    mapping = items["discriminator"]["mapping"]
    by_type = {k: s["$defs"][v.split("/")[-1]] for k, v in mapping.items()}
    assert set(by_type) >= {"conv", "dense", "maxpool", "relu", "dropout"}
    assert by_type["conv"]["properties"]["filters"]["type"] == "integer"
    assert by_type["conv"]["required"] == ["type", "filters", "kernel"]
    assert by_type["dense"]["additionalProperties"] is False
    assert by_type["dropout"]["properties"]["rate"]["exclusiveMaximum"] == 1
    assert s["$defs"]["TrainConfig"]["additionalProperties"] is False


def test_yaml_alias_bomb_is_reported_without_expanding_it(tmp_path):
    # 8 levels of 10 aliases: a few hundred bytes as written, 10^8 leaves once expanded; an
    # error message that printed the value in full would take gigabytes and many seconds
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nmodel: {layers: [{type: flatten}, {type: dense, units: 10}]}\n"
    path = _write(tmp_path, bomb + "train: {epochs: *a8}\n")
    msg = _error(path)
    assert msg.startswith(f"{path}: ") and "[[[[..." in msg and len(msg) < 300


@pytest.mark.parametrize(("text", "expected"), [
    ("[" * 3000 + "]" * 3000, "invalid YAML: nested too deeply"),
    ("train: {epochs: " + "9" * 5000 + "}", "invalid YAML: Exceeds the limit (4300 digits)"),
])
def test_pathological_yaml_is_one_config_error(tmp_path, text, expected):
    assert expected in _error(_write(tmp_path, text))
    assert expected in _error(_write(tmp_path, "model: {}"), f"train.epochs={text}")
