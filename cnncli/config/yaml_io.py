"""YAML in and out: safe loading (never code), one-line errors, and the resolved dump.

PyYAML follows YAML 1.1, where `1e-3` (no dot) is text; YAML 1.2, JSON and every editor's
YAML support read it as a number. The loader here adds YAML 1.2's float rule, so a config
means the same to cnncli as to the JSON schema an editor checks it with.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from cnncli.errors import ConfigError, quote


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader, plus YAML 1.2 floats such as 1e-3 and 5E+2, and a key given twice in
    one mapping is an error (PyYAML keeps the last silently: a second `optimizer:` section
    would drop the first without a word). Keys a merge (`<<: *base`) brings in may still be
    overridden: that is what a merge is for."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {quote(key)} is given twice in one mapping",
                        key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str, source: str) -> Any:
    """YAML text -> plain data (safe: no objects), every failure one ConfigError line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        reason = str(exc).split(";")[0]
        raise ConfigError(f"{source}: invalid YAML: {reason}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """YAML text -> the top-level mapping of a config; ConfigError naming the source."""
    data = safe_load(text, source)
    if data is None:
        raise ConfigError(f"{source}: the file is empty; a config needs at least a model section")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (model, loss, optimizer, "
            f"schedule, train, data), received a {type(data).__name__}: {quote(data)}")
    return data


class _Flow(dict):
    """A mapping dumped on one line: {type: conv, filters: 6, ...}."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def dump_yaml(data: dict[str, Any]) -> str:
    """A resolved config -> YAML text in section order, one line per layer spec."""
    data = copy.deepcopy(data)
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("layers"), list):
        model["layers"] = [_Flow(s) if isinstance(s, dict) else s for s in model["layers"]]
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
