"""`when` on every unit kind, `over: {result}`, and the template variable `upstream`: the schema,
the model and the checks made before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meta.flow.checks import semantic_faults
from meta.flow.model import FlowRef, Generate, Section, Step
from meta.flow.parse import build_flow
from meta.flow.schema import schema_faults
from meta.flow.templates import holds, upstream_names

HEAD = {
    "apiVersion": "meta-orchestrator.io/v1alpha1",
    "kind": "MetaFlow",
    "metadata": {"name": "t"},
}


def step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"command": ["true"]}, **extra}


def fanout_over(name: str, result: str) -> dict[str, Any]:
    """A fanout over the result of the unit `result` names."""
    return {
        "name": name,
        "scope": "macro",
        "pattern": "fanout",
        "over": {"result": result},
        "visit": step("v"),
    }


def dag(*units: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "d", "scope": "macro", "pattern": "dag", "units": list(units), **extra}


def document(root: dict[str, Any]) -> dict[str, Any]:
    return {**HEAD, "spec": {"root": root, "inputs": {"xs": {"value": [1, 2]}}}}


def checked(root: dict[str, Any]) -> list[tuple[str, str]]:
    """Schema faults, or else semantic faults, as (pointer, reason)."""
    found = schema_faults(document(root), "f.yaml")
    if not found:
        flow = build_flow(document(root), Path("/flows/f.yaml"), "f.yaml")
        found = semantic_faults(flow)
    return [(f.pointer, f.reason) for f in found]


def test_every_unit_kind_takes_when_and_the_model_keeps_it() -> None:
    root = dag(
        step("a", when="true"),
        {"name": "r", "flowRef": {"path": "o.yaml"}, "when": "{{ inputs.xs }}"},
        {"name": "g", "generate": {"description": {"input": "xs"}}, "when": "false"},
        {
            "name": "f",
            "scope": "micro",
            "pattern": "fanout",
            "when": "{{ upstream.a.state == 'succeeded' }}",
            "dependsOn": ["a"],
            "over": {"result": "a", "path": "/list"},
            "visit": step("v-{{ index }}", when="{{ item > 1 }}"),
        },
    )
    assert checked(root) == []
    flow = build_flow(document(root), Path("/flows/f.yaml"), "f.yaml")
    assert isinstance(flow.root, Section)
    a, r, g, f = flow.root.units
    assert isinstance(a, Step) and a.when == "true"
    assert isinstance(r, FlowRef) and r.when == "{{ inputs.xs }}"
    assert isinstance(g, Generate) and g.when == "false"
    assert isinstance(f, Section) and f.over is not None
    assert (f.over.result, f.over.path, f.over.input) == ("a", "/list", None)
    assert isinstance(f.visit, Step) and f.visit.when == "{{ item > 1 }}"


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        (
            {"input": "xs", "result": "a"},
            (
                "/spec/root/units/1/over",
                "takes 'input' or 'result', not both",
            ),
        ),
        (
            {"path": "/x"},
            (
                "/spec/root/units/1/over",
                "over needs an input here: only a section inside a visit may leave it out to "
                "walk the visit's node",
            ),
        ),
        ({"result": ""}, ("/spec/root/units/1/over/result", "must not be empty")),
    ],
)
def test_over_names_an_input_or_a_result(over: dict[str, Any], expected: tuple[str, str]) -> None:
    fan = {
        "name": "f",
        "scope": "macro",
        "pattern": "fanout",
        "dependsOn": ["a"],
        "over": over,
        "visit": step("v"),
    }
    assert checked(dag(step("a"), fan)) == [expected]


@pytest.mark.parametrize(("over", "kind"), [(None, "null"), ([], "array"), ("xs", "string")])
def test_an_over_that_is_no_object_is_named_for_its_type_alone(over: Any, kind: str) -> None:
    fan = {"name": "f", "scope": "macro", "pattern": "fanout", "over": over, "visit": step("v")}
    assert checked(fan) == [("/spec/root/over", f"must be of type object, got {kind}")]


def test_a_tree_walk_or_a_cycle_takes_no_result() -> None:
    walk = {
        "name": "w",
        "scope": "macro",
        "pattern": "dfs",
        "over": {"result": "a", "children": "c"},
        "visit": step("v"),
    }
    found = checked(
        {"name": "s", "scope": "macro", "pattern": "sequence", "units": [step("a"), walk]}
    )
    assert (
        "/spec/root/units/1/over/result",
        "unknown field 'result' (allowed here: children, entries, input, misfits, path)",
    ) in found


def test_when_is_an_empty_string_nowhere() -> None:
    assert [p for p, _ in checked(step("a", when=""))] == ["/spec/root/when"]


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("{{ nope }}", "undefined template variable 'nope' (defined here: flow, inputs, upstream)"),
        ("nope == 1", "undefined template variable 'nope' (defined here: flow, inputs, upstream)"),
        ("{{ item }}", "template variable 'item' is not defined here"),
        ("{{ x ", "template syntax error"),
        ("upstream._x", "internal attribute '_x'"),
    ],
)
def test_a_when_is_checked_like_every_template(when: str, reason: str) -> None:
    found = checked(step("a", when=when))
    assert len(found) == 1 and found[0][0] == "/spec/root/when" and reason in found[0][1], found


def test_upstream_names_a_unit_that_feeds_where_that_is_known() -> None:
    root = dag(
        step("a"),
        step("b", dependsOn=["a"], when="{{ upstream.a.result }}"),
        step("c", dependsOn=["b"], when="upstream.a.state == 'skipped'"),
        {
            "name": "e",
            "run": {"command": ["echo", "{{ upstream['zz'].result }}"]},
            "dependsOn": ["c"],
        },
    )
    assert checked(root) == [
        (
            "/spec/root/units/2/when",
            "upstream.a: 'a' does not feed 'c' (the units that do: b)",
        ),
        (
            "/spec/root/units/3/run/command/1",
            "upstream.zz: 'zz' does not feed 'e' (the units that do: c)",
        ),
    ]


def test_upstream_in_a_sequence_names_the_unit_just_before() -> None:
    seq = {
        "name": "s",
        "scope": "macro",
        "pattern": "sequence",
        "units": [
            step("a"),
            step("b", when="upstream.a.result"),
            step("c", when="upstream.a.result"),
        ],
    }
    assert checked(seq) == [
        ("/spec/root/units/2/when", "upstream.a: 'a' does not feed 'c' (the units that do: b)")
    ]


def test_a_fanout_over_a_result_must_be_fed_by_that_unit() -> None:
    fan = fanout_over("f", "a")
    assert checked(dag(step("a"), fan)) == [
        ("/spec/root/units/1/over/result", "'a' does not feed 'f' (list it in dependsOn)")
    ]


def test_a_nested_sections_first_units_may_name_what_feeds_the_section() -> None:
    """A dag's unit without dependsOn and a sequence's first unit get the section's upstream:
    `a` feeds them through `b`. A sibling they name that does not feed them is still a fault."""
    fan = fanout_over("f", "a")
    inner_dag = dag(fan, {**fan, "name": "g", "over": {"result": "h"}}, step("h"))
    inner_sequence = {**inner_dag, "name": "s", "pattern": "sequence"}
    for inner in (inner_dag, inner_sequence):
        outer = {**dag(), "pattern": "sequence", "units": [step("a"), {**inner, "name": "b"}]}
        expected = "'h' does not feed 'g' ({})".format(
            "list it in dependsOn" if inner is inner_dag else "it must come just before"
        )
        assert checked(outer) == [("/spec/root/units/1/units/1/over/result", expected)]


def test_what_feeds_a_nested_section_feeds_its_first_units_when_it_is_known() -> None:
    """`s` depends on `b` alone: its first unit is fed by `b`, not `a`; a name shared by a
    sibling and the unit feeding the section means the feeder there."""
    fan = fanout_over("fan", "a")
    nested = {**dag(fan, step("b")), "name": "s", "dependsOn": ["b"]}
    assert checked(dag(step("a"), step("b"), nested)) == [
        (
            "/spec/root/units/2/units/0/over/result",
            "'a' is not among the units that feed 'fan' (those are: b)",
        )
    ]
    on_b = {**fan, "over": {"result": "b"}}
    assert checked(dag(step("a"), step("b"), {**nested, "units": [on_b, step("b")]})) == []


def test_a_sections_finally_units_name_only_its_units_where_those_are_known() -> None:
    fan = fanout_over("f", "zz")
    notify = step("n", when="{{ upstream.a.state == 'failed' and upstream.yy }}")
    section = dag(step("a"), step("b"), **{"finally": [fan, notify]})
    assert checked(section) == [
        (
            "/spec/root/finally/0/over/result",
            "'zz' is not among the units that feed 'f' (those are: a, b)",
        ),
        (
            "/spec/root/finally/1/when",
            "upstream.yy: 'yy' does not feed 'n' (the units that do: a, b)",
        ),
    ]
    # A fanout's finally units are fed by its visits, named as they render: not checked.
    visits = {
        "name": "each",
        "scope": "macro",
        "pattern": "fanout",
        "over": {"input": "xs"},
        "visit": step("v"),
        "finally": [notify],
    }
    assert checked(visits) == []


def test_upstream_is_defined_in_visits_and_gathers_too() -> None:
    fan = {
        "name": "f",
        "scope": "macro",
        "pattern": "fanout",
        "over": {"input": "xs"},
        "visit": step("v-{{ index }}", when="{{ upstream | length > 0 }}"),
        "gather": step("g", when="{{ upstream['v-0'].state == 'succeeded' }}"),
    }
    assert checked(fan) == []


@pytest.mark.parametrize(
    ("text", "condition", "names"),
    [
        ("{{ upstream.a.result }} {{ upstream['b'] }}", False, {"a", "b"}),
        ("upstream.a.state and upstream.c", True, {"a", "c"}),
        ("{{ upstream[x] }}", False, set()),
        ("plain", False, set()),
        # The mapping's own methods, as templates resolve them; a unit by them is subscripted.
        ("{% for n, u in upstream.items() %}{{ n }}{% endfor %}", False, set()),
        ("upstream.get('x') is none and upstream.keys() | list", True, set()),
        ("{{ upstream['items'].state }}", False, {"items"}),
    ],
)
def test_upstream_names(text: str, condition: bool, names: set[str]) -> None:
    assert upstream_names(text, condition=condition) == names


@pytest.mark.parametrize(
    ("condition", "variables", "expected"),
    [
        ("{{ x }}", {"x": 0}, False),
        ("{{ x }}", {"x": [0]}, True),
        ("{{ x }}", {"x": " False "}, False),
        ("{{ x }}", {"x": "null"}, False),
        ("{{ x }}", {"x": "anything"}, True),
        ("{{ x }}{{ y }}", {"x": "fal", "y": "se"}, False),
        ("x > 1", {"x": 2}, True),
        ("'no'", {}, False),
        ("{%- if x %}yes{% endif %}", {"x": False}, False),
    ],
)
def test_holds(condition: str, variables: dict[str, Any], expected: bool) -> None:
    assert holds(condition, variables) is expected
