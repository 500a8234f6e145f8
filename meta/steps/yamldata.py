"""YAML read as the JSON it stands for: flows, data files and schemas.

Apart from meta.steps.validate_node, which uses it too, so that reading a flow does not import
jsonschema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class UniqueKeysLoader(yaml.SafeLoader):
    """Safe YAML in which a mapping naming one key twice is an error: YAML says keys are
    unique, and PyYAML would otherwise keep the last value without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping itself refuses it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


class JsonYamlLoader(UniqueKeysLoader):
    """YAML read as the JSON it stands for (data, schemas): a key is the text written (`on:` of a
    CI workflow stays "on", YAML 1.1 would make it true), only true/false are booleans, and
    dates stay strings, as a JSON Schema expects them. A tool's own local tag (`!reference`)
    is read as the value it tags; tags that build Python objects stay refused."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, Any]]] = {  # noqa: RUF012 - as PyYAML declares it
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            key = str(key_node.value)
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=True)
        return mapping


def _untagged(loader: JsonYamlLoader, suffix: str, node: yaml.Node) -> Any:
    # A tool's own tag (GitLab's `!reference [...]`) reads as the value written after it.
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return [loader.construct_object(item, deep=True) for item in node.value]
    return loader.construct_scalar(node)  # type: ignore[arg-type]


JsonYamlLoader.add_multi_constructor("!", _untagged)
JsonYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def is_yaml(path: Path, text: str) -> bool:
    """Whether a data file is YAML: by its suffix, and for a suffix that says neither (a
    CITATION.cff), when it does not start as JSON does."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    if suffix in (".json", ".ipynb", ".jsonl", ".ndjson"):
        return False
    return not text.lstrip().startswith(("{", "["))


def load_yaml_data(text: str) -> Any:
    """YAML text as JSON data (see JsonYamlLoader); raises yaml.YAMLError."""
    return yaml.load(text, Loader=JsonYamlLoader)
