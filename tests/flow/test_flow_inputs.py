"""Input declarations: their schemas are checked as schemas, and inline defaults against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meta.flow.checks import semantic_faults
from meta.flow.inputschema import record_faults, schema_problem, value_faults
from meta.flow.model import FileInput, FromEnv, InputDeclaration, SecretRef, Step, ValueInput
from meta.flow.parse import build_flow
from meta.flow.schema import schema_faults

STEP = {"name": "s", "run": {"command": ["true"]}}


def flow(inputs: dict[str, Any], root: dict[str, Any] = STEP) -> Any:
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "t"},
        "spec": {"root": root, "inputs": inputs},
    }
    assert schema_faults(document, "f.yaml") == []
    return build_flow(document, Path("/flows/f.yaml"), "f.yaml")


def faults(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.pointer, f.reason) for f in semantic_faults(flow(inputs))]


def test_declarations_are_typed_with_their_defaults() -> None:
    built = flow(
        {
            "n": {"value": 3, "description": "how many", "schema": {"type": "integer"}},
            "data": {"path": "d.json"},
            "must": {"schema": {"type": "string"}},
        }
    )
    assert built.declarations == {
        "n": InputDeclaration(ValueInput(3), "how many", {"type": "integer"}),
        "data": InputDeclaration(FileInput(Path("/flows/d.json"))),
        "must": InputDeclaration(None, None, {"type": "string"}),
    }
    assert built.inputs == {"n": ValueInput(3), "data": FileInput(Path("/flows/d.json"))}


def test_a_required_input_counts_as_declared_for_sections() -> None:
    root = {
        "name": "f",
        "scope": "macro",
        "pattern": "fanout",
        "over": {"input": "xs"},
        "visit": STEP,
    }
    assert semantic_faults(flow({"xs": {"schema": {"type": "array"}}}, root)) == []


def test_an_inline_default_is_checked_against_its_schema_with_its_path() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    assert faults({"xs": {"value": [1, "two"], "schema": schema}}) == [
        ("/spec/inputs/xs/value/1", "input 'xs': 'two' is not of type 'integer'")
    ]


def test_a_schema_is_read_in_the_draft_it_names() -> None:
    # draft-04's exclusiveMaximum is a boolean beside maximum; 2020-12's is a number.
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert faults({"n": {"value": 5, "schema": draft4}}) == [
        ("/spec/inputs/n/value", "input 'n': 5 is greater than or equal to the maximum of 5")
    ]
    assert faults({"n": {"value": 5, "schema": {"exclusiveMaximum": 6}}}) == []


def test_a_schema_that_is_not_one_is_a_fault_at_its_place() -> None:
    found = faults({"n": {"value": 1, "schema": {"type": "integr"}}})
    assert len(found) == 1
    where, reason = found[0]
    assert where == "/spec/inputs/n/schema"
    assert reason.startswith("input 'n': not a valid draft 2020-12 schema at /type:")
    unknown = {"$schema": "https://example.com/my-draft"}
    assert faults({"n": {"schema": unknown}}) == [
        (
            "/spec/inputs/n/schema",
            "input 'n': its $schema 'https://example.com/my-draft' names no JSON Schema draft "
            "known here",
        )
    ]


def test_refs_resolve_inside_the_schema_and_never_over_the_network() -> None:
    local = {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "$ref": "#/$defs/pos"}
    assert value_faults("n", local, 0, "--set", "/n")[0].reason == (
        "input 'n': 0 is less than the minimum of 1"
    )
    remote = {"$ref": "https://example.invalid/schema.json"}
    (fault,) = value_faults("n", remote, 0, "--set", "/n")
    assert "is not inside it" in fault.reason


@pytest.mark.parametrize("schema", [{"$ref": "#"}, {"allOf": [{"$ref": "#"}], "type": "object"}])
def test_a_schema_that_refers_to_itself_without_end_is_a_fault(schema: dict[str, Any]) -> None:
    (fault,) = value_faults("n", schema, {"a": 1}, "--set", "/n")
    assert fault.reason.startswith("input 'n': its schema refers to itself without end")
    assert schema_problem(True) is None


def test_json_lines_records_are_checked_one_by_one() -> None:
    found = record_faults("rows", {"required": ["id"]}, [{"id": 1}, {}, {"id": 3}], "r.jsonl")
    assert [(f.file, f.pointer, f.reason) for f in found] == [
        ("r.jsonl", "/1", "input 'rows': 'id' is a required property")
    ]


def test_env_values_are_typed_by_where_they_come_from() -> None:
    env = {
        "PLAIN": "x",
        "HOME_DIR": {"fromEnv": "HOME"},
        "TOKEN": {"secretRef": {"name": "api", "key": "token"}},
    }
    built = flow({}, {"name": "s", "run": {"command": ["true"], "env": env}})
    assert isinstance(built.root, Step)
    assert built.root.run.env == {
        "PLAIN": "x",
        "HOME_DIR": FromEnv("HOME"),
        "TOKEN": SecretRef("api", "token"),
    }
    assert built.root.run.literal_env == {"PLAIN": "x"}
