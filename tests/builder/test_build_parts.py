"""meta.builder: each function writes the flow language's keys (camelCase, in the order YAML shows
them), the flow it makes passes the flow layer's checks, and a fault names the Python line that
made the part at fault."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import meta.builder as mb
from meta.errors import FlowInvalid
from meta.flow.files import display_path
from meta.flow.model import Section
from meta.flow.parse import flow_from_document

HERE = display_path(Path(__file__).resolve())


def line() -> int:
    """The line of the caller (where the part under test is made)."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def echo(name: str, *args: str, **options: Any) -> mb.Step:
    return mb.step(name, ["echo", name, *args], **options)


def test_a_dag_of_steps_writes_the_flow_language_keys_in_order() -> None:
    extract = mb.step("extract", ["python3", "extract.py"], timeout_seconds=30, retries=2)
    load = mb.step(
        "load",
        ["python3", "load.py", "{{ inputs.target }}"],
        image="python:3.12",
        env={"MODE": "full"},
        resources={"requests": {"cpu": "500m"}},
        depends_on=[extract],
    )
    document = mb.flow(
        "etl",
        mb.dag("etl", extract, load, max_active=2),
        inputs={"rows": Path("data/rows.json"), "target": "warehouse"},
        defaults=mb.defaults(retries=1, timeout_seconds=60, retry_backoff_seconds=0.5),
        limits=mb.limits(max_depth=3, max_units=50),
        parallelism=4,
        labels={"team": "data"},
    ).to_dict()
    assert document == {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "etl", "labels": {"team": "data"}},
        "spec": {
            "inputs": {"rows": {"path": "data/rows.json"}, "target": {"value": "warehouse"}},
            "defaults": {"retries": 1, "timeoutSeconds": 60, "retryBackoffSeconds": 0.5},
            "limits": {"maxDepth": 3, "maxUnits": 50},
            "parallelism": 4,
            "root": {
                "name": "etl",
                "scope": "macro",
                "pattern": "dag",
                "maxActive": 2,
                "units": [
                    {
                        "name": "extract",
                        "run": {"command": ["python3", "extract.py"]},
                        "retries": 2,
                        "timeoutSeconds": 30,
                    },
                    {
                        "name": "load",
                        "dependsOn": ["extract"],
                        "run": {
                            "command": ["python3", "load.py", "{{ inputs.target }}"],
                            "image": "python:3.12",
                            "env": {"MODE": "full"},
                            "resources": {"requests": {"cpu": "500m"}},
                        },
                    },
                ],
            },
        },
    }
    assert list(document["spec"]["root"]) == ["name", "scope", "pattern", "maxActive", "units"]


def test_every_pattern_makes_the_section_the_schema_describes() -> None:
    walk = mb.dfs(
        "walk",
        over="tree",
        children=["kids"],
        order="post",
        scope="micro",
        max_active=1,
        visit=[
            mb.case("depth == 0", echo("root-{{ node.id }}")),
            mb.case("depth > 0", echo("node-{{ node.id }}")),
        ],
    )
    levels = mb.bfs(
        "levels", over="tree", path="/top", children="kids", misfits="keep", visit=echo("level")
    )
    each = mb.fanout(
        "each", over="items", path="/list", visit=echo("item-{{ index }}"), gather=echo("sum")
    )
    gathered = mb.fanin("both", echo("a"), echo("b"), gather=echo("merge"))
    ring = mb.cycle(
        "ring", echo("parse"), echo("tally"), over="lines", chunk=10, rounds=2, scope="micro"
    )
    root = mb.sequence("all", walk, levels, each, gathered, ring)
    flow = mb.flow(
        "patterns",
        root,
        inputs={"tree": {"id": 1, "kids": []}, "items": {"list": [1]}, "lines": Path("l.jsonl")},
    )
    units = flow.to_dict()["spec"]["root"]["units"]
    walk_keys = {key: value for key, value in units[0].items() if key != "visit"}
    assert walk_keys == {
        "name": "walk",
        "scope": "micro",
        "pattern": "dfs",
        "order": "post",
        "maxActive": 1,
        "over": {"input": "tree", "children": ["kids"]},
    }
    assert list(units[0]) == ["name", "scope", "pattern", "order", "maxActive", "over", "visit"]
    assert units[0]["visit"]["cases"][1] == {
        "when": "depth > 0",
        "unit": {"name": "node-{{ node.id }}", "run": {"command": ["echo", "node-{{ node.id }}"]}},
    }
    assert units[1]["over"] == {
        "input": "tree",
        "path": "/top",
        "children": "kids",
        "misfits": "keep",
    }
    assert units[1]["pattern"] == "bfs" and "order" not in units[1]
    assert [units[2][key] for key in ("pattern", "over")] == [
        "fanout",
        {"input": "items", "path": "/list"},
    ]
    assert units[2]["gather"]["name"] == "sum"
    assert [unit["name"] for unit in units[3]["units"]] == ["a", "b"]
    assert units[3]["gather"]["name"] == "merge"
    assert units[4]["over"] == {"input": "lines", "chunk": 10}
    assert units[4]["rounds"] == 2 and [u["name"] for u in units[4]["ring"]] == ["parse", "tally"]
    typed = flow.to_flow()
    assert isinstance(typed.root, Section) and typed.root.pattern == "sequence"


def test_flow_refs_and_generate_units() -> None:
    schema = echo("schema")
    made = mb.generate(
        "made",
        mb.from_unit(schema, "schema.json"),
        data=mb.from_input("rows"),
        generator="tree",
        depends_on="schema",
    )
    child = mb.flow_ref(
        "child", "child.flow.yaml", inputs={"n": 3, "rows": Path("rows.json")}, depends_on=[made]
    )
    document = mb.flow("refs", mb.dag("refs", schema, made, child), inputs={"rows": 1}).to_dict()
    units = document["spec"]["root"]["units"]
    assert units[1] == {
        "name": "made",
        "dependsOn": ["schema"],
        "generate": {
            "description": {"fromUnit": "schema", "file": "schema.json"},
            "data": {"input": "rows"},
            "generator": "tree",
        },
    }
    assert units[2] == {
        "name": "child",
        "dependsOn": ["made"],
        "flowRef": {
            "path": "child.flow.yaml",
            "inputs": {"n": {"value": 3}, "rows": {"path": "rows.json"}},
        },
    }


def test_fields_other_branches_add_are_written_as_their_keys() -> None:
    """when, cache, onFailure/finally, fromEnv/secretRef and input schema/description: the keys
    the flow language gives them (their validation comes with their schema)."""
    cleanup = echo("cleanup")
    work = mb.step(
        "work",
        ["run"],
        env={"TOKEN": mb.secret_ref("api", "token"), "HOME_DIR": mb.from_env("HOME")},
        cache="2",
        when="inputs.enabled",
    )
    section = mb.sequence(
        "main", work, on_failure="continue", finally_=[cleanup], cache=True, when="true"
    )
    document = mb.flow(
        "extras",
        section,
        inputs={
            "enabled": mb.value_input(True, description="run at all", schema={"type": "boolean"}),
            "rows": mb.file_input("rows.json", description="the rows"),
        },
        defaults=mb.defaults(cache=True),
        finally_=[echo("notify")],
    ).to_dict(validate=False)
    spec = document["spec"]
    assert spec["inputs"] == {
        "enabled": {"value": True, "description": "run at all", "schema": {"type": "boolean"}},
        "rows": {"path": "rows.json", "description": "the rows"},
    }
    assert spec["defaults"] == {"cache": True}
    assert "onFailure" not in spec  # a section says how its failures go; the flow does not
    assert spec["finally"] == [{"name": "notify", "run": {"command": ["echo", "notify"]}}]
    root = spec["root"]
    assert root["when"] == "true" and root["onFailure"] == "continue" and root["cache"] is True
    assert root["finally"] == [{"name": "cleanup", "run": {"command": ["echo", "cleanup"]}}]
    assert root["units"][0] == {
        "name": "work",
        "when": "inputs.enabled",
        "run": {
            "command": ["run"],
            "env": {
                "TOKEN": {"secretRef": {"name": "api", "key": "token"}},
                "HOME_DIR": {"fromEnv": "HOME"},
            },
        },
        "cache": {"version": "2"},
    }


def test_to_yaml_is_a_flow_file_the_flow_layer_reads() -> None:
    flow = mb.flow("one", echo("hello", "{{ inputs.who }}"), inputs={"who": "world"})
    text = flow.to_yaml()
    assert yaml.safe_load(text) == flow.to_dict()
    assert text.startswith("apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n")
    typed = flow_from_document(yaml.safe_load(text), Path("one.flow.yaml").resolve())
    assert typed.name == "one"


def test_a_schema_fault_names_the_line_that_made_the_unit() -> None:
    good = echo("good")
    bad, at = mb.step("bad", [], retries=-1), line()
    flow = mb.flow("faulty", mb.sequence("main", good, bad))
    with pytest.raises(FlowInvalid) as caught:
        flow.to_yaml()
    faults = {(fault.file, fault.pointer) for fault in caught.value.faults}
    assert faults == {
        (f"{HERE}:{at}", "/spec/root/units/1/retries"),
        (f"{HERE}:{at}", "/spec/root/units/1/run/command"),
    }


def test_a_semantic_fault_names_the_line_that_made_the_unit() -> None:
    first = echo("first")
    second, at = mb.step("second", ["true"], depends_on=["third"]), line()
    flow = mb.flow("faulty", mb.dag("main", first, second))
    with pytest.raises(FlowInvalid) as caught:
        flow.to_dict()
    (fault,) = caught.value.faults
    assert (fault.file, fault.pointer) == (f"{HERE}:{at}", "/spec/root/units/1/dependsOn/0")
    assert "'third' names no sibling of 'second'" in fault.reason
    assert str(fault).startswith(f"{HERE}:{at}: /spec/root/units/1/dependsOn/0: ")


def test_an_unknown_upstream_and_a_bad_when_name_the_lines_that_made_them() -> None:
    first = echo("first")
    reads, reads_at = mb.step("reads", ["echo", "{{ upstream.nope.result }}"]), line()
    guarded = mb.step("guarded", ["true"], when="{{ upstream.zzz.state == 'x' }}")
    guarded_at = line() - 1
    broken, broken_at = mb.step("broken", ["true"], when="{{ 1 + }}"), line()
    flow = mb.flow("faulty", mb.sequence("main", first, reads, guarded, broken))
    with pytest.raises(FlowInvalid) as caught:
        flow.to_yaml()
    assert [str(fault) for fault in caught.value.faults] == [
        f"{HERE}:{reads_at}: /spec/root/units/1/run/command/1: upstream.nope: 'nope' does not "
        "feed 'reads' (the units that do: first)",
        f"{HERE}:{guarded_at}: /spec/root/units/2/when: upstream.zzz: 'zzz' does not feed "
        "'guarded' (the units that do: reads)",
        f"{HERE}:{broken_at}: /spec/root/units/3/when: template syntax error: unexpected "
        "'end of print statement'",
    ]


def test_a_template_that_fails_as_it_runs_names_the_line_that_made_it(tmp_path: Path) -> None:
    """Faults found only at run time (a result without the key a template reads) too."""
    program = tmp_path / "late.py"
    program.write_text(
        "import meta.builder as mb\n"
        "WRITE = \"import json, os; json.dump({'x': 1}, open(os.environ['META_RESULT'], 'w'))\"\n"
        "flow = mb.flow('late', mb.sequence(\n"
        "    'main',\n"
        "    mb.step('made', ['python3', '-c', WRITE]),\n"
        "    mb.step('reads', ['echo', '{{ upstream.made.result.y }}']),\n"
        "))\n"
    )
    meta = Path(sys.executable).with_name("meta")
    ran = subprocess.run(
        [str(meta), "run", "late.py", "--workdir", "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith("late.py:6: /spec/root/units/1/run/command/1: "), ran.stderr


def test_a_fault_of_the_flow_itself_names_the_flow_line() -> None:
    flow, at = mb.flow("Not A Name", echo("x")), line()
    with pytest.raises(FlowInvalid) as caught:
        flow.to_dict()
    assert [(f.file, f.pointer) for f in caught.value.faults] == [
        (f"{HERE}:{at}", "/metadata/name")
    ]


def test_a_fault_in_a_visit_case_names_the_case_or_its_unit() -> None:
    unit, unit_at = mb.step("n", ["echo", "{{ nodee }}"]), line()
    walk = mb.dfs("walk", over="tree", children="kids", visit=[mb.case("depth >", unit)])
    case_at = line() - 1
    with pytest.raises(FlowInvalid) as caught:
        mb.flow("walk", walk, inputs={"tree": {}}).to_dict()
    places = {fault.pointer: fault.file for fault in caught.value.faults}
    assert places["/spec/root/visit/cases/0/unit/run/command/1"] == f"{HERE}:{unit_at}"
    assert places["/spec/root/visit/cases/0/when"] == f"{HERE}:{case_at}"


def test_a_string_command_is_a_fault_not_a_list_of_letters() -> None:
    flow = mb.flow("one", mb.step("s", "echo hi"))  # type: ignore[arg-type]
    with pytest.raises(FlowInvalid, match="must be of type array, got string"):
        flow.to_dict()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1, 2}, "a value of type set is not JSON"),
        (float("nan"), "not a finite number"),
        ({"when": object()}, "a value of type object is not JSON"),
        ({3: "three"}, "a key that is not a string (3) is not JSON"),
    ],
)
def test_a_value_json_cannot_carry_is_a_fault_at_its_line(value: Any, reason: str) -> None:
    flow, at = mb.flow("values", echo("x"), inputs={"v": value}), line()
    with pytest.raises(FlowInvalid) as caught:
        flow.to_yaml()
    (fault,) = caught.value.faults
    assert fault.file == f"{HERE}:{at}" and fault.pointer.startswith("/spec/inputs/v/value")
    assert fault.reason.startswith(reason)


def test_generators_may_skip_the_check() -> None:
    flow = mb.flow("one", mb.step("s", []))
    assert flow.to_dict(validate=False)["spec"]["root"]["run"] == {"command": []}


def test_parts_are_frozen_and_compare_by_value() -> None:
    a, b = echo("x"), echo("x")
    assert a == b
    with pytest.raises(AttributeError):
        a.name = "y"  # type: ignore[misc]


def test_a_value_its_yaml_file_could_not_hold_is_refused_as_there() -> None:
    flow = mb.flow("big", echo("a"), inputs={"x": 10**30})
    with pytest.raises(FlowInvalid) as caught:
        flow.to_dict()
    (fault,) = caught.value.faults
    assert (fault.pointer, fault.reason) == (
        "/spec/inputs/x/value",
        "an integer of more than 19 digits",
    )


def test_an_unknown_keyword_is_refused_with_the_one_meant() -> None:
    with pytest.raises(TypeError, match=r"step\(\) .* 'dependson' \(did you mean 'depends_on'\?\)"):
        mb.step("b", ["true"], dependson=["a"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"'retrys' \(did you mean 'retries'\?\)"):
        mb.step("b", ["true"], retrys=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"dag\(\) .* 'onFailure' \(did you mean 'on_failure'\?\)"):
        mb.dag("d", mb.step("a", ["true"]), onFailure="continue")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"fanout\(\) .* 'max_actve'"):
        mb.fanout("f", over="xs", visit=mb.step("v", ["true"]), max_actve=9)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"flow_ref\(\) .* 'input' \(did you mean 'inputs'\?\)"):
        mb.flow_ref("r", "child.flow.yaml", input={})  # type: ignore[call-arg]
