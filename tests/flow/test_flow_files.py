"""meta.flow.files: YAML read by YAML 1.2's core schema (numbers, booleans), in flows and in data
alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meta.errors import UserError
from meta.flow.files import nested_past, parse_yaml, parse_yaml_data

NUMBERS = "[22:22, 8080:80, 12:30:00, 0755, 02134, 1_000, 0b101, 0o17, 0x1F, -0x1, +12, -0]"
FLOATS = "[1.10, 1e300, 1E5, .5, 1., -2.5e-3, 685.230_15, 1e, '1e5']"


@pytest.mark.parametrize("parse", [parse_yaml, parse_yaml_data])
def test_numbers_are_yaml_1_2_core_schema_ones(parse: Callable[[str, str], Any]) -> None:
    assert parse(NUMBERS, "f.yaml") == [
        "22:22",
        "8080:80",
        "12:30:00",
        755,
        2134,
        "1_000",
        "0b101",
        15,
        31,
        "-0x1",
        12,
        0,
    ]
    assert parse(FLOATS, "f.yaml") == [
        1.1,
        1e300,
        1e5,
        0.5,
        1.0,
        -2.5e-3,
        "685.230_15",
        "1e",
        "1e5",
    ]


@pytest.mark.parametrize("parse", [parse_yaml, parse_yaml_data])
def test_only_true_and_false_are_booleans(parse: Callable[[str, str], Any]) -> None:
    # YAML 1.1 (PyYAML's) reads yes, no, on, off, y and n as booleans: a flow's `value: yes`
    # would pass `type: boolean` where `--set b=yes` does not.
    words = "[yes, no, on, off, Yes, NO, y, n, true, True, TRUE, false, False, FALSE]"
    assert (
        parse(words, "f.yaml")
        == ["yes", "no", "on", "off", "Yes", "NO", "y", "n"] + [True] * 3 + [False] * 3
    )
    assert parse("{on: 1, off: 2}", "f.yaml") == {"on": 1, "off": 2}


@pytest.mark.parametrize("parse", [parse_yaml, parse_yaml_data])
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, .inf]", "not a finite number"),
        ("[1, -.Inf]", "not a finite number"),
        ("[1, .NaN]", "not a finite number"),
        ("[1, 1e400]", "a number out of range"),
        ("[1, !!int 0b101]", "not an integer (YAML 1.2: decimal, 0o octal or 0x hex)"),
        ("[1, !!float '1:30']", "not a number"),
    ],
)
def test_numbers_json_lacks_or_no_number_is_are_faults(
    parse: Callable[[str, str], Any], text: str, reason: str
) -> None:
    with pytest.raises(UserError) as raised:
        parse(text, "f.yaml")
    (fault,) = raised.value.faults
    assert fault.file == "f.yaml"
    assert reason in fault.reason


def test_nested_past_names_the_first_array_or_object_past_the_limit() -> None:
    value = {"a/b": [{"~": {"c": 1}}], "d": []}
    assert nested_past(value, 4) is None
    assert nested_past(value, 3) == "/a~1b/0/~0"
    assert nested_past([[]], 1) == "/0"
    # Deeper than a recursive walk could go.
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert nested_past(deep, 256) == "/0" * 256
