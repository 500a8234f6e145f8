"""meta.flow.checks.semantic_faults: what the schema cannot say, located and in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meta.flow.checks import semantic_faults
from meta.flow.parse import build_flow
from meta.flow.schema import schema_faults


def step(name: str, *command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"command": list(command or ["true"])}, **extra}


def section(name: str, pattern: str, scope: str = "macro", **fields: Any) -> dict[str, Any]:
    return {"name": name, "scope": scope, "pattern": pattern, **fields}


def faults(root: dict[str, Any], inputs: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The semantic faults of a flow (which must pass the schema) as (pointer, reason)."""
    document = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "t"},
        "spec": {"root": root, "inputs": {"xs": {"value": [1]}} if inputs is None else inputs},
    }
    assert schema_faults(document, "f.yaml") == []
    flow = build_flow(document, Path("/flows/f.yaml"), "f.yaml")
    found = semantic_faults(flow)
    assert {f.file for f in found} <= {"f.yaml"}
    return [(f.pointer, f.reason) for f in found]


def test_a_sound_flow_has_no_faults() -> None:
    root = section(
        "top",
        "dag",
        units=[
            step("a", "echo", "{{ inputs.xs }}", "{{ flow.name }}"),
            section(
                "fan",
                "fanout",
                dependsOn=["a"],
                over={"input": "xs"},
                visit=section("per", "sequence", "micro", units=[step("v-{{ index }}")]),
                gather=step("g"),
            ),
            section(
                "walk",
                "dfs",
                "micro",
                dependsOn=["a"],
                over={"input": "xs", "children": "kids"},
                visit={"cases": [{"when": "depth == 0", "unit": step("{{ node.name }}")}]},
            ),
            section(
                "ring",
                "cycle",
                over={"input": "xs", "chunk": 2},
                ring=[step("r1", "x", "{{ chunk | length }}"), step("r2", "{{ round }}")],
            ),
            {"name": "sub", "flowRef": {"path": "o.yaml"}, "dependsOn": ["fan", "walk"]},
        ],
    )
    assert faults(root) == []


def test_duplicate_names_in_units_and_in_a_ring() -> None:
    root = section(
        "top",
        "sequence",
        units=[
            step("a"),
            step("b"),
            step("a"),
            section("c", "cycle", over={"input": "xs", "chunk": 1}, ring=[step("r"), step("r")]),
        ],
    )
    assert faults(root) == [
        ("/spec/root/units/2/name", "duplicate unit name 'a' in units of section 'top'"),
        ("/spec/root/units/3/ring/1/name", "duplicate unit name 'r' in ring of section 'c'"),
    ]


def test_depends_on_naming_no_sibling() -> None:
    inner = section("inner", "sequence", units=[step("deep")])
    root = section(
        "top",
        "dag",
        units=[inner, step("b", dependsOn=["inner", "deep", "top"])],
    )
    assert faults(root) == [
        ("/spec/root/units/1/dependsOn/1", "'deep' names no sibling of 'b' in section 'top'"),
        ("/spec/root/units/1/dependsOn/2", "'top' names no sibling of 'b' in section 'top'"),
    ]


def test_depends_on_a_later_sibling_is_fine() -> None:
    root = section("top", "dag", units=[step("b", dependsOn=["a"]), step("a")])
    assert faults(root) == []


def test_a_dependency_cycle_names_its_units_only() -> None:
    root = section(
        "top",
        "dag",
        units=[
            step("free"),
            step("alpha", dependsOn=["gamma", "free"]),
            step("beta", dependsOn=["alpha"]),
            step("gamma", dependsOn=["beta"]),
        ],
    )
    ((pointer, reason),) = faults(root)
    assert pointer == "/spec/root/units"
    assert reason.startswith("dependency cycle in section 'top': ")
    chain = reason.split(": ", 1)[1].split(" -> ")
    assert chain[0] == chain[-1]
    assert sorted(chain[:-1]) == ["alpha", "beta", "gamma"]
    assert "free" not in reason


def test_a_unit_depending_on_itself() -> None:
    root = section("top", "dag", units=[step("a", dependsOn=["a"])])
    assert faults(root) == [("/spec/root/units", "dependency cycle in section 'top': a -> a")]


@pytest.mark.parametrize("pattern", ["sequence", "fanin"])
def test_depends_on_outside_a_dag(pattern: str) -> None:
    extra = {"gather": step("g")} if pattern == "fanin" else {}
    root = section("top", pattern, units=[step("a"), step("b", dependsOn=["a"])], **extra)
    assert faults(root) == [
        (
            "/spec/root/units/1/dependsOn",
            f"dependsOn is only for units of a dag section ('top' is a {pattern})",
        )
    ]


def test_depends_on_a_visit_or_a_gather() -> None:
    root = section(
        "fan",
        "fanout",
        over={"input": "xs"},
        visit=step("v", dependsOn=["x"]),
        gather=step("g", dependsOn=["v"]),
    )
    assert faults(root) == [
        ("/spec/root/gather/dependsOn", "dependsOn is only for units of a dag section"),
        ("/spec/root/visit/dependsOn", "dependsOn is only for units of a dag section"),
    ]


def test_a_micro_section_holds_no_macro_section() -> None:
    inner = section("inner", "sequence", "macro", units=[step("a")])
    deeper = section("mid", "sequence", "micro", units=[inner])
    root = section("top", "sequence", "micro", units=[deeper])
    assert faults(root) == [
        (
            "/spec/root/units/0/units/0/scope",
            "macro section 'inner' cannot sit inside a micro section "
            "(a micro section holds steps and micro sections only)",
        )
    ]


def test_a_micro_section_holds_no_flowref() -> None:
    root = section(
        "fan",
        "fanout",
        "micro",
        over={"input": "xs"},
        visit={"name": "sub", "flowRef": {"path": "o.yaml"}},
    )
    assert faults(root) == [
        (
            "/spec/root/visit",
            "a micro section holds steps and micro sections only, not a flowRef",
        )
    ]


def test_a_macro_section_holds_anything() -> None:
    micro = section("m", "sequence", "micro", units=[step("a")])
    root = section("top", "sequence", units=[micro, {"name": "r", "flowRef": {"path": "o"}}])
    assert faults(root) == []


def test_bounds_the_pattern_cannot_use() -> None:
    root = section(
        "top",
        "sequence",
        maxActive=2,
        units=[
            section(
                "c",
                "cycle",
                maxActive=3,
                over={"input": "xs", "chunk": 1},
                ring=[step("r1"), step("r2")],
            )
        ],
    )
    assert faults(root) == [
        ("/spec/root/maxActive", "a sequence runs one unit at a time: maxActive must be 1"),
        (
            "/spec/root/units/0/maxActive",
            "a cycle has at most one live unit per ring member: maxActive must be <= 2",
        ),
    ]
    ring = [step("r1"), step("r2")]
    cycle = section("c", "cycle", maxActive=2, over={"input": "xs", "chunk": 1}, ring=ring)
    assert faults(cycle) == []


def test_over_naming_no_input() -> None:
    root = section("fan", "fanout", over={"input": "ys"}, visit=step("v"))
    assert faults(root, {"b": {"value": 1}, "a": {"value": 2}}) == [
        ("/spec/root/over/input", "no input named 'ys' (declared inputs: a, b)")
    ]
    assert faults(root, {}) == [
        ("/spec/root/over/input", "no input named 'ys' (declared inputs: none)")
    ]


@pytest.mark.parametrize("name", ["-a", "a b", "a/b", ".hidden"])
def test_unit_names(name: str) -> None:
    ((pointer, reason),) = faults(step(name))
    assert pointer == "/spec/root/name"
    assert reason.startswith(f"unit name {name!r} must start with a letter or digit")


def test_finally_is_not_a_unit_name() -> None:
    # A section named so, holding a unit named like one of its parent's finally units, would
    # share that unit's id (its outputs, its journal entry, its logs).
    root = section("finally", "sequence", units=[step("notify")])
    ((pointer, reason),) = faults(root)
    assert pointer == "/spec/root/name"
    assert reason == (
        "unit name 'finally' is reserved: the ids of a section's finally units are "
        "SECTION/finally/NAME"
    )


def test_templated_unit_names_are_checked_as_templates() -> None:
    fan = section("fan", "fanout", over={"input": "xs"}, visit=step("v {{ item.id }}"))
    assert faults(fan) == []  # a rendered name is checked when it is rendered
    ((pointer, reason),) = faults(step("n-{{ item }}"))
    assert pointer == "/spec/root/name"
    assert "template variable 'item' is not defined here" in reason


def test_template_faults_name_the_string_field() -> None:
    root = step("a", "echo", "{{ bogus }}")
    root["run"]["image"] = "img:{{ nope }}"
    root["run"]["env"] = {"A": "{{ node.id }}", "B": "{{ inputs.xs }}"}
    assert faults(root) == [
        (
            "/spec/root/run/command/1",
            "undefined template variable 'bogus' (defined here: flow, inputs, upstream)",
        ),
        (
            "/spec/root/run/image",
            "undefined template variable 'nope' (defined here: flow, inputs, upstream)",
        ),
        (
            "/spec/root/run/env/A",
            "template variable 'node' is not defined here (defined here: flow, inputs, upstream)",
        ),
    ]


def test_iteration_variables_reach_nested_units_of_a_visit_but_not_the_gather() -> None:
    visit = section("per", "sequence", units=[step("a", "echo", "{{ item }} {{ index }}")])
    root = section(
        "fan",
        "fanout",
        over={"input": "xs"},
        visit=visit,
        gather=step("g", "echo", "{{ item }}"),
    )
    ((pointer, reason),) = faults(root)
    assert pointer == "/spec/root/gather/run/command/1"
    assert "template variable 'item' is not defined here" in reason


def test_when_expressions_are_checked() -> None:
    cases = [
        {"when": "node.kind == 'a'", "unit": step("a")},
        {"when": "nod.kind == 'b'", "unit": step("b")},
        {"when": "node.__class__", "unit": step("c")},
        {"when": "node.kind ==", "unit": step("d")},
    ]
    root = section("walk", "bfs", over={"input": "xs", "children": "c"}, visit={"cases": cases})
    found = faults(root)
    assert [pointer for pointer, _ in found] == [
        "/spec/root/visit/cases/1/when",
        "/spec/root/visit/cases/2/when",
        "/spec/root/visit/cases/3/when",
    ]
    assert "undefined template variable 'nod'" in found[0][1]
    assert "internal attribute '__class__'" in found[1][1]
    assert found[2][1].startswith("template syntax error")


def test_ring_members_see_iteration_variables() -> None:
    ring = [step("r", "echo", "{{ chunk }} {{ index }} {{ round }} {{ bogus }}")]
    root = section("c", "cycle", over={"input": "xs", "chunk": 1}, ring=ring)
    assert faults(root) == [
        (
            "/spec/root/ring/0/run/command/1",
            "undefined template variable 'bogus' "
            "(defined here: chunk, depth, flow, index, inputs, item, node, path, round, upstream)",
        )
    ]


def test_every_fault_is_listed() -> None:
    root = section(
        "top",
        "dag",
        "micro",
        units=[
            step("a", "{{ x }}"),
            step("a"),
            step("c", dependsOn=["z"]),
            section("m", "sequence", units=[step("q")]),
        ],
    )
    assert [pointer for pointer, _ in faults(root)] == [
        "/spec/root/units/1/name",
        "/spec/root/units/2/dependsOn/0",
        "/spec/root/units/0/run/command/0",
        "/spec/root/units/3/scope",
    ]


def test_a_field_is_children_or_entries_not_both() -> None:
    over = {"input": "xs", "children": ["steps", "jobs"], "entries": ["services", "jobs"]}
    root = section("walk", "dfs", over=over, visit=step("v"))
    assert faults(root) == [
        (
            "/spec/root/over/entries/1",
            "'jobs' is in over.children too: a field holds one object or an array of child "
            "nodes (children), or an object of named entries (entries)",
        )
    ]


@pytest.mark.parametrize("file", ["/etc/passwd", "../../elsewhere.json", "a/../../b.json"])
def test_a_generate_unit_reads_only_inside_its_producers_outputs(file: str) -> None:
    generate = {
        "name": "g",
        "dependsOn": ["w"],
        "generate": {"description": {"fromUnit": "w", "file": file}},
    }
    root = section("top", "dag", units=[step("w"), generate])
    assert faults(root) == [
        (
            "/spec/root/units/1/generate/description/file",
            f"'{file}' is read inside the outputs of unit 'w': a relative path, without '..'",
        )
    ]
    inside = {**generate, "generate": {"description": {"fromUnit": "w", "file": "a/..b.json"}}}
    assert faults(section("top", "dag", units=[step("w"), inside])) == []


def test_an_empty_program_and_a_variable_meta_sets_are_faults() -> None:
    root = step("a", "", "x", env={"META_OUTPUT": "/etc", "MY_META_OK": "1"})
    root["run"]["env"] = root.pop("env")
    assert faults(root) == [
        ("/spec/root/run/command/0", "the program to run is an empty string"),
        (
            "/spec/root/run/env/META_OUTPUT",
            "META_OUTPUT: variables named META_* are meta's own, set for every step",
        ),
    ]
