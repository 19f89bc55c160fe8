"""Run configs: typed sections (schema), `--set` overrides, files and presets (load), YAML."""

from cnncli.config.load import (
    LoadedConfig,
    PresetInfo,
    find_config,
    load_config,
    preset_info,
    preset_names,
    preset_text,
    validate_config,
)
from cnncli.config.overrides import Override, apply_override, parse_key_path
from cnncli.config.schema import (
    MNIST_SHAPE,
    NUM_CLASSES,
    DataConfig,
    ModelSpec,
    RunConfig,
    TrainConfig,
    config_schema,
)
from cnncli.config.yaml_io import dump_yaml, parse_yaml, safe_load

__all__ = [
    "MNIST_SHAPE", "NUM_CLASSES", "DataConfig", "LoadedConfig", "ModelSpec", "Override",
    "PresetInfo", "preset_info",
    "RunConfig", "TrainConfig", "apply_override", "config_schema", "dump_yaml", "find_config",
    "load_config", "parse_key_path", "parse_yaml", "preset_names", "preset_text", "safe_load",
    "validate_config",
]
