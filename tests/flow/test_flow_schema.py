"""meta.flow.schema.schema_faults: one fault per problem, at the right pointer, in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from meta.errors import Fault, FlowInvalid
from meta.flow.parse import load_flow
from meta.flow.schema import flow_schema, schema_faults

STEP = {"name": "a", "run": {"command": ["true"]}}


def doc(root: Any, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "t"},
        "spec": {"root": root, **spec},
    }


def faults(document: Any) -> list[tuple[str, str]]:
    found = schema_faults(document, "f.yaml")
    assert all(isinstance(f, Fault) and f.file == "f.yaml" for f in found)
    return [(f.pointer, f.reason) for f in found]


def section(pattern: str, **fields: Any) -> dict[str, Any]:
    return {"name": "s", "scope": "macro", "pattern": pattern, **fields}


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(flow_schema())


@pytest.mark.parametrize(
    "root",
    [
        STEP,
        section("sequence", units=[STEP]),
        section("dag", maxActive=2, units=[STEP, {**STEP, "name": "b", "dependsOn": ["a"]}]),
        section("fanin", units=[STEP], gather={**STEP, "name": "g"}),
        section("fanout", over={"input": "x", "path": "/a/0"}, visit=STEP, gather=STEP),
        section("dfs", order="post", over={"input": "x", "children": ["a", "b"]}, visit=STEP),
        section(
            "bfs",
            over={"input": "x", "children": "kids"},
            visit={"cases": [{"when": "depth == 0", "unit": STEP}]},
        ),
        section("cycle", rounds=2, over={"input": "x", "chunk": 3}, ring=[STEP, STEP]),
        {"name": "r", "flowRef": {"path": "o.yaml", "inputs": {"a": {"value": [1]}}}},
    ],
    ids=["step", "sequence", "dag", "fanin", "fanout", "dfs", "bfs-cases", "cycle", "flowRef"],
)
def test_valid_documents_have_no_faults(root: dict[str, Any]) -> None:
    inputs = {"x": {"path": "data.json"}, "y": {"value": None}}
    defaults = {"retries": 1, "timeoutSeconds": 1.5, "retryBackoffSeconds": 0}
    assert faults(doc(root, inputs=inputs, defaults=defaults)) == []


def test_unknown_field_names_the_field_and_what_is_allowed() -> None:
    assert faults(doc({**STEP, "colour": "red", "size": 1})) == [
        (
            "/spec/root/colour",
            "unknown field 'colour' "
            "(allowed here: cache, dependsOn, name, retries, run, timeoutSeconds, when)",
        ),
        (
            "/spec/root/size",
            "unknown field 'size' "
            "(allowed here: cache, dependsOn, name, retries, run, timeoutSeconds, when)",
        ),
    ]


def test_unknown_top_level_field_and_wrong_constants() -> None:
    document = {**doc(STEP), "apiVersion": "v1", "kind": "Flow", "extra": 1}
    assert faults(document) == [
        ("/apiVersion", "must be 'meta-orchestrator.io/v1alpha1', got 'v1'"),
        ("/extra", "unknown field 'extra' (allowed here: apiVersion, kind, metadata, spec)"),
        ("/kind", "must be 'MetaFlow', got 'Flow'"),
    ]


def test_missing_required_fields() -> None:
    assert faults({"apiVersion": "meta-orchestrator.io/v1alpha1", "kind": "MetaFlow"}) == [
        ("", "missing required field 'metadata'"),
        ("", "missing required field 'spec'"),
    ]
    assert faults(doc(section("fanin", units=[STEP]))) == [
        ("/spec/root", "missing required field 'gather'")
    ]
    assert faults(doc(section("dfs", over={"input": "x"}, visit=STEP))) == [
        ("/spec/root/over", "missing required field 'children'")
    ]


def test_wrong_types() -> None:
    root = section("dag", maxActive="4", units=[{"name": 7, "run": {"command": "ls"}}])
    assert faults(doc(root)) == [
        ("/spec/root/maxActive", "must be of type integer, got string"),
        (
            "/spec/root/units/0/name",
            "must be of type string, got number (quote it, as '7', for text)",
        ),
        ("/spec/root/units/0/run/command", "must be of type array, got string"),
    ]
    assert faults(None) == [("", "must be of type object, got null")]
    assert faults([]) == [("", "must be of type object, got array")]


def test_unknown_pattern_and_scope() -> None:
    assert faults(doc({**section("zigzag", units=[STEP]), "scope": "mezzo"})) == [
        (
            "/spec/root/pattern",
            "'zigzag' is not one of: sequence, dag, fanout, fanin, dfs, bfs, cycle",
        ),
        ("/spec/root/scope", "'mezzo' is not one of: macro, micro"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("maxActive", 0, "must be >= 1, got 0"),
        ("maxActive", -3, "must be >= 1, got -3"),
        ("rounds", 0, "must be >= 1, got 0"),
    ],
)
def test_bounds_of_a_section(field: str, value: int, reason: str) -> None:
    root = section("cycle", over={"input": "x", "chunk": 1}, ring=[STEP], **{field: value})
    assert faults(doc(root)) == [(f"/spec/root/{field}", reason)]


def test_bounds_of_a_step() -> None:
    assert faults(doc({**STEP, "retries": -1, "timeoutSeconds": 0})) == [
        ("/spec/root/retries", "must be >= 0, got -1"),
        ("/spec/root/timeoutSeconds", "must be > 0, got 0"),
    ]
    assert faults(doc({"name": "", "run": {"command": []}})) == [
        ("/spec/root/name", "must not be empty"),
        ("/spec/root/run/command", "needs at least 1 item(s)"),
    ]


def test_a_field_the_pattern_does_not_take_is_named_at_its_own_pointer() -> None:
    root = section("fanout", over={"input": "x"}, visit=STEP, order="pre", units=[STEP])
    assert faults(doc(root)) == [
        ("/spec/root/order", "'order' is not a field of a 'fanout' section"),
        ("/spec/root/units", "'units' is not a field of a 'fanout' section"),
    ]


def test_a_field_not_taken_is_found_even_when_another_field_has_the_same_value() -> None:
    root = {**section("sequence", units=[STEP]), "name": "pre", "order": "pre"}
    assert faults(doc(root)) == [
        ("/spec/root/order", "'order' is not a field of a 'sequence' section")
    ]


@pytest.mark.parametrize(
    ("pattern", "extra", "field"),
    [
        ("sequence", {"units": [STEP], "over": {"input": "x"}}, "over"),
        ("dag", {"units": [STEP], "ring": [STEP]}, "ring"),
        ("fanin", {"units": [STEP], "gather": STEP, "visit": STEP}, "visit"),
        ("dfs", {"over": {"input": "x", "children": "c"}, "visit": STEP, "gather": STEP}, "gather"),
        ("cycle", {"over": {"input": "x", "chunk": 1}, "ring": [STEP], "order": "post"}, "order"),
    ],
)
def test_fields_not_taken_per_pattern(pattern: str, extra: dict[str, Any], field: str) -> None:
    assert faults(doc(section(pattern, **extra))) == [
        (f"/spec/root/{field}", f"'{field}' is not a field of a '{pattern}' section")
    ]


def test_over_is_checked_against_the_pattern() -> None:
    root = section("dfs", over={"input": "x", "children": "c", "chunk": 2}, visit=STEP)
    assert faults(doc(root)) == [
        (
            "/spec/root/over/chunk",
            "unknown field 'chunk' (allowed here: children, entries, input, misfits, path)",
        )
    ]
    root = section("cycle", over={"input": "x", "chunk": 0}, ring=[STEP])
    assert faults(doc(root)) == [("/spec/root/over/chunk", "must be >= 1, got 0")]


def test_children_is_a_name_or_a_list_of_names() -> None:
    def over(children: Any) -> list[tuple[str, str]]:
        return faults(doc(section("dfs", over={"input": "x", "children": children}, visit=STEP)))

    assert over(3) == [
        (
            "/spec/root/over/children",
            "must be of type string or array, got number (quote it, as '3', for text)",
        )
    ]
    assert over([]) == [("/spec/root/over/children", "needs at least 1 item(s)")]
    assert over(["a", ""]) == [("/spec/root/over/children/1", "must not be empty")]
    assert over("") == [("/spec/root/over/children", "must not be empty")]


def test_a_walk_takes_its_children_from_children_or_entries_fields() -> None:
    def over(**fields: Any) -> list[tuple[str, str]]:
        return faults(doc(section("dfs", over={"input": "x", **fields}, visit=STEP)))

    assert over(entries="jobs") == []
    assert over(children=["steps"], entries=["jobs", "services"]) == []
    assert over(entries=[]) == [("/spec/root/over/entries", "needs at least 1 item(s)")]
    assert over(entries=["a", "a"]) == [("/spec/root/over/entries", "lists 'a' more than once")]
    fanout = section("fanout", over={"input": "x", "entries": "jobs"}, visit=STEP)
    assert faults(doc(fanout)) == [
        (
            "/spec/root/over/entries",
            "unknown field 'entries' (allowed here: dependsOn, input, misfits, path, result)",
        )
    ]


def test_json_pointer_in_words() -> None:
    root = section("fanout", over={"input": "x", "path": "a/b"}, visit=STEP)
    assert faults(doc(root)) == [
        (
            "/spec/root/over/path",
            "'a/b' must be a JSON pointer such as /items/0 (empty for the whole document)",
        )
    ]


def test_names_in_words_at_the_pointer_of_the_name() -> None:
    document = doc(
        {"name": "a", "run": {"command": ["x"], "env": {"1A": "x", "OK": "y"}}},
        inputs={"9y": {"path": "a"}, "fine": {"value": 1}},
    )
    document["metadata"]["name"] = "Bad_Name"
    assert faults(document) == [
        (
            "/metadata/name",
            "'Bad_Name' must be lower case letters, digits and '-', starting and ending with "
            "a letter or digit, at most 63 characters",
        ),
        (
            "/spec/inputs/9y",
            "the name '9y' must be letters, digits and '_', not starting with a digit",
        ),
        (
            "/spec/root/run/env/1A",
            "the name '1A' must be letters, digits and '_', not starting with a digit",
        ),
    ]


def test_an_input_defaults_to_a_path_or_a_value_or_to_nothing() -> None:
    document = doc(
        STEP,
        inputs={
            "required": {"description": "given with --set", "schema": {"type": "integer"}},
            "b": {"path": "x", "value": 1},
            "c": {"path": ""},
            "d": {"schema": "integer", "description": 3},
        },
    )
    assert faults(document) == [
        ("/spec/inputs/b", "an input's default is a path or a value, not both"),
        ("/spec/inputs/c/path", "must not be empty"),
        (
            "/spec/inputs/d/description",
            "must be of type string, got number (quote it, as '3', for text)",
        ),
        ("/spec/inputs/d/schema", "must be of type object or boolean, got string"),
    ]


def test_a_flowref_binds_an_input_to_exactly_a_path_or_a_value() -> None:
    reason = "an input is exactly one of {path: FILE} or {value: JSON}"
    ref = {"name": "r", "flowRef": {"path": "x.yaml", "inputs": {"a": {}, "b": {"value": 1}}}}
    assert faults(doc(ref)) == [("/spec/root/flowRef/inputs/a", reason)]


def test_a_variable_is_a_string_or_names_where_its_value_comes_from() -> None:
    env = {
        "A": {"fromEnv": "HOME"},
        "B": {"secretRef": {"name": "db.creds", "key": "pass_word"}},
        "C": {"fromEnv": "X", "secretRef": {"name": "a", "key": "b"}},
        "D": {"secretRef": {"name": "Bad_", "key": "k"}},
        "E": {"nope": 1},
        "F": 3,
        "G": {"secretRef": {"name": "a"}},
    }
    assert faults(doc({"name": "a", "run": {"command": ["x"], "env": env}})) == [
        ("/spec/root/run/env/C", "a variable is a string, {fromEnv: NAME} or {secretRef}"),
        (
            "/spec/root/run/env/D/secretRef/name",
            "'Bad_' must be a Kubernetes Secret name (lower case letters, digits, '-' and '.')",
        ),
        ("/spec/root/run/env/E/nope", "unknown field 'nope' (allowed here: fromEnv, secretRef)"),
        (
            "/spec/root/run/env/F",
            "must be of type string or object, got number (quote it, as '3', for text)",
        ),
        ("/spec/root/run/env/G/secretRef", "missing required field 'key'"),
    ]


def test_env_values_are_strings_or_sources() -> None:
    assert faults(doc({"name": "a", "run": {"command": ["x"], "env": {"N": 3}}})) == [
        (
            "/spec/root/run/env/N",
            "must be of type string or object, got number (quote it, as '3', for text)",
        )
    ]


def test_depends_on_twice() -> None:
    assert faults(doc({**STEP, "dependsOn": ["b", "c", "b"]})) == [
        ("/spec/root/dependsOn", "lists 'b' more than once")
    ]


def test_cases_are_checked_inside() -> None:
    visit = {"cases": [{"when": "", "unit": STEP, "x": 1}, {"unit": STEP}], "y": 2}
    root = section("dfs", over={"input": "x", "children": "c"}, visit=visit)
    assert faults(doc(root)) == [
        ("/spec/root/visit/cases/0/when", "must not be empty"),
        ("/spec/root/visit/cases/0/x", "unknown field 'x' (allowed here: unit, when)"),
        ("/spec/root/visit/cases/1", "missing required field 'when'"),
        ("/spec/root/visit/y", "unknown field 'y' (allowed here: cases)"),
    ]


def test_flowref_fields() -> None:
    root = {"name": "r", "flowRef": {"path": "x", "inputs": {"a": {"path": "p", "value": 1}}}}
    assert faults(doc({**root, "scope": "micro"})) == [
        ("/spec/root/flowRef/inputs/a", "an input is exactly one of {path: FILE} or {value: JSON}"),
        (
            "/spec/root/scope",
            "unknown field 'scope' (allowed here: dependsOn, flowRef, name, when)",
        ),
    ]


def test_a_fault_deep_in_a_nested_section_has_the_full_pointer() -> None:
    inner = section("sequence", units=[STEP, {"name": "b", "run": {"command": ["x"], "img": 1}}])
    root = section("fanout", over={"input": "x"}, visit=section("dag", units=[inner]))
    assert faults(doc(root)) == [
        (
            "/spec/root/visit/units/0/units/1/run/img",
            "unknown field 'img' (allowed here: command, env, image, resources)",
        )
    ]


def test_faults_are_sorted_by_pointer_and_not_repeated() -> None:
    root = section("dag", maxActive=0, units=[{**STEP, "z": 1}, {**STEP, "a": 1}])
    pointers = [pointer for pointer, _ in faults(doc(root))]
    assert pointers == sorted(pointers)
    assert len(pointers) == len(set(pointers)) == 3


def test_a_fanout_may_run_named_entries_as_a_dag_and_leave_out_its_input() -> None:
    def over(**fields: Any) -> list[tuple[str, str]]:
        return faults(doc(section("fanout", over=fields, visit=STEP)))

    assert over(input="x", path="/jobs", dependsOn="needs") == []
    assert over(path="/steps") == []
    assert over(input="x", dependsOn="") == [("/spec/root/over/dependsOn", "must not be empty")]


def test_a_bare_yaml_word_read_as_another_type_says_how_to_write_the_text(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: f}\n"
        "spec:\n  root: {name: s, run: {command: [echo, false, ~], env: {DEBUG: true}}}\n"
    )
    with pytest.raises(FlowInvalid) as caught:
        load_flow(flow)
    reasons = {f.pointer: f.reason for f in caught.value.faults}
    assert "as a boolean: quote it for text" in reasons["/spec/root/run/command/1"]
    assert "as a boolean: quote it for text" in reasons["/spec/root/run/env/DEBUG"]
    assert "as null: quote it for text" in reasons["/spec/root/run/command/2"]
