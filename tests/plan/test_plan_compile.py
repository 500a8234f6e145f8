"""meta.plan.plan.compile_plan: flowRefs followed, inputs bound and overridden, data checked."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meta.errors import FlowInvalid, InputFault
from meta.flow.files import display_path
from meta.flow.model import FileInput, FlowRef, Over, Section, ValueInput
from meta.flow.parse import load_flow
from meta.plan.plan import compile_plan, plan_flow

STEP = "{name: a, run: {command: ['true']}}"
STEP_D: dict[str, Any] = {"name": "a", "run": {"command": ["true"]}}
SECTION: dict[str, Any] = {"name": "s", "scope": "macro", "pattern": "sequence"}


def spec(root: dict[str, Any], **inputs: Any) -> str:
    """A flow's spec written as JSON, which YAML reads as it is."""
    return f"inputs: {json.dumps(inputs)}\nroot: {json.dumps(root)}"


def cycle(over: dict[str, Any]) -> dict[str, Any]:
    return {**SECTION, "pattern": "cycle", "over": over, "ring": [STEP_D]}


def only_ref(unit: object) -> FlowRef:
    assert isinstance(unit, Section)
    refs = [u for u in unit.units if isinstance(u, FlowRef)]
    assert len(refs) == 1
    return refs[0]


def test_a_plain_flow(write_flow: Callable[..., Path], write: Callable[[str, str], Path]) -> None:
    data = write("data/xs.json", "[1, 2, 3]")
    path = write_flow(
        "f.yaml",
        """
        inputs: {xs: {path: data/xs.json}, n: {value: 4}}
        root: {name: fan, scope: macro, pattern: fanout, over: {input: xs},
               visit: {name: v, run: {command: ['true']}}}
        """,
    )
    plan = compile_plan(path)
    assert plan.flow.name == "t"
    assert plan.inputs == {"xs": FileInput(data.resolve()), "n": ValueInput(4)}
    assert plan.subplans == {}
    assert plan.data("xs") == [1, 2, 3]
    assert plan.data("n") == 4
    assert plan.over(Over("xs", "/1")) == 2
    assert plan.template_inputs() == {"xs": str(data.resolve()), "n": 4}


def test_file_data_is_read_once(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    data = write("xs.json", "[1]")
    path = write_flow("f.yaml", f"inputs: {{xs: {{path: xs.json}}}}\nroot: {STEP}")
    plan = compile_plan(path)
    first = plan.data("xs")
    data.write_text("[2]")
    assert plan.data("xs") is first


def test_set_overrides_replace_an_input(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write("a.json", '{"kids": []}')
    other = write("other/b.json", '{"kids": [{"kids": []}]}')
    path = write_flow(
        "f.yaml",
        f"""
        inputs: {{tree: {{path: a.json}}, n: {{value: 1}}}}
        root: {{name: w, scope: macro, pattern: dfs, over: {{input: tree, children: kids}},
               visit: {STEP}}}
        """,
    )
    plan = compile_plan(path, {"tree": other})
    assert plan.inputs["tree"] == FileInput(other.resolve())
    assert plan.inputs["n"] == ValueInput(1)
    assert plan.data("tree") == {"kids": [{"kids": []}]}
    assert plan.template_inputs()["tree"] == str(other.resolve())
    assert compile_plan(path).inputs["tree"] == FileInput((tmp_path / "a.json").resolve())


def test_set_may_replace_an_inline_value_with_a_file(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    data = write("n.json", "5")
    path = write_flow("f.yaml", f"inputs: {{n: {{value: 1}}}}\nroot: {STEP}")
    assert compile_plan(path, {"n": data}).data("n") == 5


def test_set_naming_an_unknown_input(write_flow: Callable[..., Path]) -> None:
    path = write_flow("f.yaml", f"inputs: {{b: {{value: 1}}, a: {{value: 2}}}}\nroot: {STEP}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path, {"c": Path("x.json"), "a": Path("y.json")})
    ((fault),) = caught.value.faults
    assert (fault.file, fault.pointer) == ("--set", "/c")
    assert fault.reason == "the flow declares no input 'c' (declared: a, b)"


def test_set_pointing_at_a_missing_file(write_flow: Callable[..., Path], tmp_path: Path) -> None:
    path = write_flow("f.yaml", f"inputs: {{xs: {{value: []}}}}\nroot: {STEP}")
    with pytest.raises(InputFault) as caught:
        compile_plan(path, {"xs": tmp_path / "none.json"})
    ((fault),) = caught.value.faults
    assert (fault.file, fault.pointer) == ("--set", "/xs")
    assert fault.reason.startswith("input file not found: ")
    assert fault.reason.endswith("none.json")


def test_flowref_inputs_override_the_child_flows_inputs(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write("main-data.json", "[10, 20]")
    write("sub/own.json", "[1]")
    write_flow(
        "sub/child.flow.yaml",
        """
        inputs: {xs: {path: own.json}, k: {value: 1}, keep: {value: kept}}
        root: {name: fan, scope: macro, pattern: fanout, over: {input: xs},
               visit: {name: v, run: {command: ['true']}}}
        """,
        "child",
    )
    path = write_flow(
        "main.flow.yaml",
        f"""
        root:
          name: s
          scope: macro
          pattern: sequence
          units:
            - {STEP}
            - name: sub
              flowRef:
                path: sub/child.flow.yaml
                inputs: {{xs: {{path: main-data.json}}, k: {{value: 2}}}}
        """,
        "main",
    )
    plan = compile_plan(path)
    ref = only_ref(plan.flow.root)
    sub = plan.subplan(ref)
    assert sub.flow.name == "child"
    assert sub.flow.source == (tmp_path / "sub" / "child.flow.yaml").resolve()
    # flowRef input paths are relative to the flow that writes them, not the child's
    assert sub.inputs == {
        "xs": FileInput((tmp_path / "main-data.json").resolve()),
        "k": ValueInput(2),
        "keep": ValueInput("kept"),
    }
    assert sub.data("xs") == [10, 20]
    assert sub.flow.inputs["xs"] == FileInput((tmp_path / "sub" / "own.json").resolve())


def test_the_same_flow_referenced_twice_gets_two_subplans(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write_flow(
        "child.yaml",
        "inputs: {n: {value: 0}}\nroot: {name: c, run: {command: [echo, '{{ inputs.n }}']}}",
        "child",
    )
    path = write_flow(
        "main.yaml",
        """
        root:
          name: s
          scope: macro
          pattern: fanin
          units:
            - {name: one, flowRef: {path: child.yaml, inputs: {n: {value: 1}}}}
            - {name: two, flowRef: {path: child.yaml, inputs: {n: {value: 2}}}}
          gather: {name: g, run: {command: ['true']}}
        """,
    )
    plan = compile_plan(path)
    assert isinstance(plan.flow.root, Section)
    one, two = plan.flow.root.units
    assert isinstance(one, FlowRef) and isinstance(two, FlowRef)
    assert plan.subplan(one).inputs["n"] == ValueInput(1)
    assert plan.subplan(two).inputs["n"] == ValueInput(2)
    assert plan.subplan(one).flow is plan.subplan(two).flow  # the file is loaded once


def test_flowref_input_unknown_to_the_child(write_flow: Callable[..., Path]) -> None:
    write_flow("child.yaml", f"inputs: {{n: {{value: 0}}}}\nroot: {STEP}", "child")
    path = write_flow(
        "main.yaml",
        "root: {name: sub, flowRef: {path: child.yaml, inputs: {m: {value: 1}}}}",
    )
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("main.yaml")
    assert fault.pointer == "/spec/root/flowRef/inputs/m"
    assert fault.reason == "flow 'child' declares no input 'm' (declared: n)"


def test_flowref_to_a_missing_file(write_flow: Callable[..., Path]) -> None:
    path = write_flow("main.yaml", "root: {name: sub, flowRef: {path: gone/child.yaml}}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("main.yaml")
    assert fault.pointer == "/spec/root/flowRef/path"
    assert fault.reason.startswith("flowRef to a file that does not exist: ")
    assert fault.reason.endswith("child.yaml")


def test_flowref_to_a_python_flow_says_to_name_its_yaml(
    write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "etl.py").write_text("import meta.builder as mb\n", encoding="utf-8")
    path = write_flow("main.yaml", "root: {name: sub, flowRef: {path: etl.py}}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == (
        "/spec/root/flowRef/path",
        f"{display_path(tmp_path / 'etl.py')} is a Python flow: a flowRef names a YAML flow "
        "file (write it with the flow's to_yaml(), and name that)",
    )


def test_faults_in_a_referenced_flow_name_that_file(write_flow: Callable[..., Path]) -> None:
    write_flow("child.yaml", "root: {name: s, scope: micro, pattern: sequence, units: []}")
    path = write_flow("main.yaml", "root: {name: sub, flowRef: {path: child.yaml}}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("child.yaml")
    assert (fault.pointer, fault.reason) == ("/spec/root/units", "needs at least 1 item(s)")


def test_a_flowref_cycle(write_flow: Callable[..., Path]) -> None:
    start = write_flow("a.yaml", "root: {name: to-b, flowRef: {path: b.yaml}}")
    write_flow("b.yaml", "root: {name: to-c, flowRef: {path: c.yaml}}")
    write_flow(
        "c.yaml",
        spec({**SECTION, "units": [STEP_D, {"name": "back", "flowRef": {"path": "a.yaml"}}]}),
    )
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(start)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("c.yaml")
    assert fault.pointer == "/spec/root/units/1/flowRef/path"
    assert fault.reason.startswith("flowRef cycle: ")
    chain = [Path(p).name for p in fault.reason.removeprefix("flowRef cycle: ").split(" -> ")]
    assert chain == ["a.yaml", "b.yaml", "c.yaml", "a.yaml"]


def test_a_flow_referencing_itself(write_flow: Callable[..., Path]) -> None:
    path = write_flow("a.yaml", "root: {name: me, flowRef: {path: a.yaml}}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.pointer == "/spec/root/flowRef/path"
    assert [Path(p).name for p in fault.reason.split(": ", 1)[1].split(" -> ")] == [
        "a.yaml",
        "a.yaml",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": [1,,]}', "invalid JSON at line 1, column 10: Expecting value"),
        ("", "invalid JSON at line 1, column 1: Expecting value"),
        ('{"a": [1, NaN]}', "invalid JSON: NaN is not a JSON value"),
        ("[-Infinity]", "invalid JSON: -Infinity is not a JSON value"),
        (
            '{"k": [' * 5000 + "]}" * 5000,
            f"invalid JSON: nested more than {sys.getrecursionlimit()} levels deep",
        ),
    ],
    ids=["syntax", "empty", "nan", "infinity", "deep"],
)
def test_invalid_json_data(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path], text: str, reason: str
) -> None:
    write("d.json", text)
    path = write_flow("f.yaml", f"inputs: {{d: {{path: d.json}}}}\nroot: {STEP}")
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("d.json")
    assert (fault.pointer, fault.reason) == ("", reason)


def test_missing_input_files_are_all_listed(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        f"inputs: {{a: {{path: a.json}}, b: {{path: b.csv}}, c: {{path: c.jsonl}}}}\nroot: {STEP}",
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    assert sorted((f.pointer, Path(f.reason).name) for f in caught.value.faults) == [
        ("/spec/inputs/a/path", "a.json"),
        ("/spec/inputs/b/path", "b.csv"),
        ("/spec/inputs/c/path", "c.jsonl"),
    ]


def test_a_bad_json_lines_record(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("s.jsonl", '{"a": 1}\n\n   \n{"a": 2}\n[1, 2\n')
    path = write_flow(
        "f.yaml",
        spec(cycle({"input": "s", "chunk": 1}), s={"path": "s.jsonl"}),
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("s.jsonl")
    assert fault.pointer == "/2"
    assert fault.reason.startswith("invalid JSON on line 5: ")


def test_a_json_lines_record_that_is_not_utf8_is_named_by_its_line(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("s.jsonl", "").write_bytes(b'{"s": "t-1"}\n{"s": "t-1\xff"}\n')
    path = write_flow("f.yaml", spec(cycle({"input": "s", "chunk": 1}), s={"path": "s.jsonl"}))
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == ("/1", "line 2 is not UTF-8 text (byte 10)")


def test_a_byte_order_mark_may_start_json_and_json_lines_data(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("s.jsonl", '\ufeff{"a": 1}\n{"a": 2}\n')
    write("d.json", '\ufeff{"b": [3]}')
    fanout = _fanout_of("d", "/b")
    plan = compile_plan(
        write_flow("f.yaml", spec(fanout, s={"path": "s.jsonl"}, d={"path": "d.json"}))
    )
    assert plan.data("s") == [{"a": 1}, {"a": 2}]
    assert plan.data("d") == {"b": [3]}


def test_an_integer_too_long_to_convert_is_said_so(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("d.json", '{"b": [' + "9" * 5000 + "]}")
    fanout = _fanout_of("d", "/b")
    with pytest.raises(InputFault) as caught:
        compile_plan(write_flow("f.yaml", spec(fanout, d={"path": "d.json"})))
    ((fault),) = caught.value.faults
    assert fault.reason == "invalid JSON: an integer of more than 4,300 digits"


def test_json_lines_records_are_read_lazily(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    stream = write("s.ndjson", "".join(json.dumps({"i": i}) + "\n" for i in range(5)))
    path = write_flow(
        "f.yaml",
        spec(cycle({"input": "s", "chunk": 2}), s={"path": "s.ndjson"}),
    )
    plan = compile_plan(path)
    assert isinstance(plan.flow.root, Section) and plan.flow.root.over is not None
    records = plan.records(plan.flow.root.over)
    assert next(records) == {"i": 0}
    stream.write_text("")  # the rest is read as it is needed, not up front
    assert [r["i"] for r in records] == [1, 2, 3, 4]


def test_a_fanout_walks_a_json_lines_files_records_as_an_array(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    """As the cluster is given a JSON-lines input: the array of its records."""
    write("s.jsonl", '{"a": 1}\n\n{"a": 2}\n')
    fanout = _fanout_of("s", "/1")
    plan = compile_plan(write_flow("f.yaml", spec(fanout, s={"path": "s.jsonl"})))
    assert plan.data("s") == [{"a": 1}, {"a": 2}]
    assert isinstance(plan.flow.root, Section) and plan.flow.root.over is not None
    assert plan.over(plan.flow.root.over) == {"a": 2}


def _fanout_of(data: str, path: str) -> dict[str, Any]:
    """A fanout `each` over the value at `path` of input `data`."""
    return {
        "name": "each",
        "scope": "macro",
        "pattern": "fanout",
        "over": {"input": data, "path": path},
        "visit": {"name": "v", "run": {"command": ["echo"]}},
    }


def _fanout_over(name: str, result: str) -> dict[str, Any]:
    return {
        "name": name,
        "scope": "macro",
        "pattern": "fanout",
        "over": {"result": result},
        "visit": {"name": "v", "run": {"command": ["echo"]}},
    }


def test_nothing_feeds_the_root_of_the_flow_run(write_flow: Callable[..., Path]) -> None:
    root = {**_fanout_over("s", "nope"), "when": "{{ upstream.x.state == 'succeeded' }}"}
    final = json.dumps([_fanout_over("each", "s")])
    path = write_flow("f.yaml", f"root: {json.dumps(root)}\nfinally: {final}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    assert [(f.pointer, f.reason) for f in caught.value.faults] == [
        ("/spec/root/over/result", "'nope' is not among the units that feed 's' (those are: none)"),
        ("/spec/root/when", "upstream.x: 'x' does not feed 's' (the units that do: none)"),
    ]
    # Run as a flowRef's or a generate unit's flow, its root is fed by what feeds that unit.
    plan_flow(load_flow(path))


def test_nothing_feeds_the_units_the_root_of_the_flow_run_feeds(
    write_flow: Callable[..., Path],
) -> None:
    reads = {"name": "r", "run": {"command": ["echo", "{{ upstream.zzz.result }}"]}}
    later = {"name": "l", "dependsOn": ["r"], "run": {"command": ["echo", "{{ upstream.r }}"]}}
    root = {"name": "d", "scope": "macro", "pattern": "dag", "units": [reads, later]}
    path = write_flow("f.yaml", f"root: {json.dumps(root)}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    assert [(f.pointer, f.reason) for f in caught.value.faults] == [
        (
            "/spec/root/units/0/run/command/1",
            "upstream.zzz: 'zzz' does not feed 'r' (the units that do: none)",
        )
    ]


def test_what_feeds_a_flowref_feeds_its_flows_root(
    write_flow: Callable[..., Path],
) -> None:
    child = write_flow("child.yaml", f"root: {json.dumps(_fanout_over('fan', 'other'))}", "child")
    ref = {"name": "ref", "flowRef": {"path": "child.yaml"}, "dependsOn": ["list"]}
    root = {
        "name": "d",
        "scope": "macro",
        "pattern": "dag",
        "units": [{**STEP_D, "name": "list"}, ref],
    }
    path = write_flow("f.yaml", f"root: {json.dumps(root)}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(path)
    assert [(Path(f.file).name, f.pointer, f.reason) for f in caught.value.faults] == [
        (
            "child.yaml",
            "/spec/root/over/result",
            "'other' is not among the units that feed 'fan' (those are: list)",
        )
    ]
    child.write_text(child.read_text().replace("other", "list"))
    compile_plan(path)
    # Run by the flow run's root itself, nothing feeds it.
    alone = write_flow("g.yaml", "root: {name: ref, flowRef: {path: child.yaml}}")
    with pytest.raises(FlowInvalid) as caught:
        compile_plan(alone)
    assert [f.reason for f in caught.value.faults] == [
        "'list' is not among the units that feed 'fan' (those are: none)"
    ]


def test_the_root_alone_feeds_the_flows_finally_units(write_flow: Callable[..., Path]) -> None:
    notify = {"name": "n", "run": {"command": ["echo", "{{ upstream.nope.state }}"]}}
    final = json.dumps([_fanout_over("each", "s"), _fanout_over("other", "nope"), notify])
    path = write_flow("f.yaml", f"root: {STEP}\nfinally: {final}".replace("name: a", "name: s"))
    with pytest.raises(FlowInvalid) as caught:
        load_flow(path)
    assert [(f.pointer, f.reason) for f in caught.value.faults] == [
        (
            "/spec/finally/1/over/result",
            "'nope' is not among the units that feed 'other' (those are: s)",
        ),
        (
            "/spec/finally/2/run/command/1",
            "upstream.nope: 'nope' does not feed 'n' (the units that do: s)",
        ),
    ]


def test_a_json_lines_stream_takes_no_path(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("s.jsonl", '{"a": 1}\n')
    path = write_flow(
        "f.yaml",
        spec(cycle({"input": "s", "chunk": 1, "path": "/a"}), s={"path": "s.jsonl"}),
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == (
        "/spec/root/over/path",
        "a JSON-lines stream takes no 'path'",
    )


@pytest.mark.parametrize(
    ("pattern", "over", "value", "pointer", "reason"),
    [
        (
            "fanout",
            "{input: d, path: /n}",
            {"n": 3},
            "/n",
            "section 's' needs an array or an object to fan out over",
        ),
        (
            "cycle",
            "{input: d, chunk: 2}",
            {"n": 3},
            "",
            "section 's' needs a JSON array or a JSON-lines file here",
        ),
        (
            "fanout",
            "{input: d, path: /a/b}",
            {"a": {}},
            "/a/b",
            "nothing at /a/b in the input data",
        ),
        ("fanout", "{input: d, path: /x/b}", {"a": {}}, "/x", "nothing at /x/b in the input data"),
        (
            "fanout",
            "{input: d, path: /a/5}",
            {"a": [1]},
            "/a/5",
            "nothing at /a/5 in the input data",
        ),
        (
            "dfs",
            "{input: d, children: c}",
            [1],
            "",
            "section 's' walks a tree of JSON objects; this is not an object",
        ),
        (
            "bfs",
            "{input: d, children: [c, k]}",
            {"c": {"k": [{}, "x"]}},
            "/c/k/1",
            "section 's' walks a tree of JSON objects; this is not an object",
        ),
        (
            "dfs",
            "{input: d, children: c}",
            {"c": 4},
            "/c",
            "children must be an array of objects or one object",
        ),
        (
            "dfs",
            "{input: d, children: c, entries: jobs}",
            {"c": {"jobs": ["build"]}},
            "/c/jobs",
            "entries must be an object of objects keyed by name",
        ),
        (
            "bfs",
            "{input: d, entries: jobs}",
            {"jobs": {"a/b": {"jobs": {"x": 3}}}},
            "/jobs/a~1b/jobs/x",
            "section 's' walks a tree of JSON objects; this is not an object",
        ),
    ],
)
def test_data_that_has_not_the_shape_a_section_walks(
    write_flow: Callable[..., Path],
    write: Callable[[str, str], Path],
    pattern: str,
    over: str,
    value: object,
    pointer: str,
    reason: str,
) -> None:
    write("d.json", json.dumps(value))
    body = "ring: [STEP]" if pattern == "cycle" else "visit: STEP"
    path = write_flow(
        "f.yaml",
        f"inputs: {{d: {{path: d.json}}}}\n"
        f"root: {{name: s, scope: macro, pattern: {pattern}, over: {over},\n"
        f"       {body.replace('STEP', STEP)}}}",
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("d.json")
    assert (fault.pointer, fault.reason) == (pointer, reason)


def test_inline_data_is_checked_too(write_flow: Callable[..., Path]) -> None:
    path = write_flow(
        "f.yaml",
        spec(
            {**SECTION, "pattern": "dfs", "over": {"input": "d", "children": "c"}, "visit": STEP_D},
            d={"value": {"c": [{}, 3]}},
        ),
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert (Path(fault.file).name, fault.pointer) == ("f.yaml", "/spec/inputs/d/value/c/1")


def test_data_in_a_referenced_flow_is_checked(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("bad.json", "{")
    write_flow(
        "child.yaml",
        spec(
            {**SECTION, "pattern": "fanout", "over": {"input": "xs"}, "visit": STEP_D},
            xs={"value": []},
        ),
        "child",
    )
    path = write_flow(
        "main.yaml",
        "root: {name: sub, flowRef: {path: child.yaml, inputs: {xs: {path: bad.json}}}}",
    )
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert fault.file.endswith("bad.json")
    assert fault.reason.startswith("invalid JSON")


def test_a_json_lines_record_with_a_value_json_has_not(
    write_flow: Callable[..., Path], write: Callable[[str, str], Path]
) -> None:
    write("s.jsonl", '{"a": 1}\n{"a": Infinity}\n')
    path = write_flow("f.yaml", spec(cycle({"input": "s", "chunk": 1}), s={"path": "s.jsonl"}))
    with pytest.raises(InputFault) as caught:
        compile_plan(path)
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == ("/1", "line 2: Infinity is not a JSON value")


def test_the_python_suffix_is_the_builders() -> None:
    # compile_plan tells a Python flow by its suffix without importing the builder.
    from meta.builder.module import SUFFIX
    from meta.plan.plan import PYTHON_SUFFIX

    assert PYTHON_SUFFIX == SUFFIX
