"""meta.flow.dump: a flow's YAML reads back as the same document, by `meta` and by YAML 1.1."""

from __future__ import annotations

import yaml

from meta.flow.dump import dump_flow
from meta.flow.files import parse_yaml

# Strings that YAML 1.2 (meta) or YAML 1.1 (PyYAML, kubectl) would read as numbers if plain.
LOOK_LIKE_NUMBERS = ["1e5", "0o17", "0755", "1_000", "22:22", ".5", "+12", "0x1F", "1.10"]


def test_strings_that_look_like_numbers_read_back_as_strings() -> None:
    document = {"spec": {"values": [*LOOK_LIKE_NUMBERS, 1e300, 493, -0.5, "plain"]}}
    text = dump_flow(document)
    assert parse_yaml(text, "f.yaml") == document
    assert yaml.safe_load(text) == document
