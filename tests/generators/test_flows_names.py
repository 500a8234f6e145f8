"""Unit names the generators make from what a schema calls things: always valid names."""

from __future__ import annotations

import pytest
from meta_generators.flows import unit_slug

from meta.flow.checks import name_problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Finally", "finally-entry"), ("Order Line", "order-line"), ("__x__", "x"), ("!!", "entry")],
)
def test_a_schemas_name_becomes_a_unit_name(text: str, expected: str) -> None:
    assert unit_slug(text, "entry") == expected
    assert name_problem(unit_slug(text, "entry")) is None


def test_a_long_name_is_cut_to_a_unit_names_length() -> None:
    name = unit_slug("field" * 60)
    assert len(name) == 100
    assert name_problem(name) is None
