"""Inputs given when a flow is run (`--set`): bound by their declaration, required ones
demanded, every value checked against its input's schema before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from meta.errors import UserError
from meta.flow.model import FileInput, ValueInput
from meta.plan.describe import describe
from meta.plan.given import parse_sets
from meta.plan.plan import compile_plan

STEP = "{name: s, run: {command: [echo, '{{ inputs }}']}}"
FLOW = f"""
inputs:
  n: {{value: 2, description: how many, schema: {{type: integer, minimum: 1}}}}
  mode: {{value: fast, schema: {{enum: [fast, slow]}}}}
  tags: {{schema: {{type: array, items: {{type: string}}}}}}
  data: {{path: d.json, schema: {{type: object, required: [id]}}}}
root: {STEP}
"""


def reasons(exc: pytest.ExceptionInfo[UserError]) -> list[str]:
    return [str(fault) for fault in exc.value.faults]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults name files relative to the working directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def flow(write_flow: Callable[..., Path], write: Callable[[str, str], Path]) -> Path:
    write("d.json", '{"id": 1}')
    return write_flow("f.yaml", FLOW)


def test_values_are_read_as_yaml_and_files_by_at(
    flow: Path, write: Callable[[str, str], Path]
) -> None:
    other = write("o.json", '{"id": 2}')
    given = parse_sets(["n=3", "tags=[a, b]", "mode=slow", f"data=@{other}"])
    plan = compile_plan(flow, given)
    assert plan.inputs["n"] == ValueInput(3)
    assert plan.inputs["tags"] == ValueInput(["a", "b"])
    assert plan.inputs["mode"] == ValueInput("slow")
    assert plan.inputs["data"] == FileInput(other.resolve())


def test_values_are_read_by_yaml_1_2_numbers(write_flow: Callable[..., Path]) -> None:
    flow = write_flow(
        "z.yaml",
        f"""
        inputs:
          zip: {{value: "00000"}}
          ver: {{value: "1.0"}}
          t: {{value: "00:00"}}
          big: {{value: 0}}
        root: {STEP}
        """,
    )
    plan = compile_plan(flow, parse_sets(["zip=02134", "ver=1.10", "t=12:30:00", "big=1e300"]))
    assert plan.inputs["zip"] == ValueInput(2134)
    assert plan.inputs["ver"] == ValueInput(1.1)
    assert plan.inputs["t"] == ValueInput("12:30:00")
    assert plan.inputs["big"] == ValueInput(1e300)


def test_an_input_declared_with_a_path_takes_a_path_without_at(
    flow: Path, write: Callable[[str, str], Path]
) -> None:
    other = write("o.json", '{"id": 2}')
    plan = compile_plan(flow, parse_sets(["tags=[]", f"data={other}"]))
    assert plan.inputs["data"] == FileInput(other.resolve())


def test_a_required_input_left_out_is_one_clear_fault(flow: Path) -> None:
    with pytest.raises(UserError) as exc:
        compile_plan(flow)
    assert reasons(exc) == [
        "f.yaml: /spec/inputs/tags: input 'tags' has no default: give it with --set tags=VALUE"
    ]


def test_every_value_breaking_its_schema_is_named_with_its_path(
    flow: Path, write: Callable[[str, str], Path]
) -> None:
    bad = write("bad.json", '{"name": "x"}')
    given = parse_sets(["n=0", "mode=slower", "tags=[a, 1]", f"data=@{bad}"])
    with pytest.raises(UserError) as exc:
        compile_plan(flow, given)
    assert sorted(reasons(exc)) == [
        "--set: /mode: input 'mode': 'slower' is not one of ['fast', 'slow']",
        "--set: /n: input 'n': 0 is less than the minimum of 1",
        "--set: /tags/1: input 'tags': 1 is not of type 'string'",
        "bad.json: /: input 'data': 'id' is a required property",
    ]


def test_unknown_inputs_malformed_sets_and_bad_yaml(flow: Path) -> None:
    with pytest.raises(UserError) as exc:
        compile_plan(flow, parse_sets(["tags=[", "nope=1"]))
    assert reasons(exc)[0].startswith("--set: /tags: input 'tags': invalid YAML: line ")
    assert reasons(exc)[0].endswith(" (to give it as a string, quote it: tags='\"...\"')")
    assert reasons(exc)[1] == (
        "--set: /nope: the flow declares no input 'nope' (declared: data, mode, n, tags)"
    )
    with pytest.raises(UserError, match="expected NAME=VALUE or NAME=@FILE"):
        parse_sets(["novalue"])
    with pytest.raises(UserError, match="input 'n' is set twice"):
        parse_sets(["n=1", "n=2"])


def test_a_flowref_must_bind_the_inputs_its_flow_requires(
    write_flow: Callable[..., Path],
) -> None:
    write_flow("child.yaml", f"inputs: {{must: {{}}}}\nroot: {STEP}", flow_name="child")
    parent = write_flow("p.yaml", "root: {name: c, flowRef: {path: child.yaml}}")
    with pytest.raises(UserError) as exc:
        compile_plan(parent)
    assert reasons(exc) == [
        "p.yaml: /spec/root/flowRef/inputs: input 'must' of flow 'child' has no default: "
        "give it in this flowRef's inputs"
    ]
    bound = write_flow(
        "q.yaml", "root: {name: c, flowRef: {path: child.yaml, inputs: {must: {value: 1}}}}"
    )
    assert compile_plan(bound).subplans


def test_meta_plan_shows_the_inputs_and_their_values(flow: Path) -> None:
    lines = describe(compile_plan(flow, parse_sets(["tags=[a, b]"])))
    assert lines[1:5] == [
        "  input n (how many): 2, checked against its schema",
        '  input mode: "fast", checked against its schema',
        '  input tags: ["a", "b"] (--set), checked against its schema',
        "  input data: file d.json, checked against its schema",
    ]


def test_meta_plan_names_where_variables_come_from_never_their_values(
    write_flow: Callable[..., Path],
) -> None:
    env = "{A: x, B: {fromEnv: HOME}, C: {secretRef: {name: db, key: pass}}}"
    path = write_flow("e.yaml", f"root: {{name: s, run: {{command: [env], env: {env}}}}}")
    (line,) = [line for line in describe(compile_plan(path)) if "step s" in line]
    assert line.endswith("; env B from $HOME, C from secret db/pass")
