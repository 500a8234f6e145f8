"""The issue's "bad input" list, each through the CLI: exit 2, one clear `FILE: /pointer: reason`
line, no traceback, and for `meta run` nothing run (no workdir, no step started)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import FAULT_LINE, Result

MARK = "{name: mark, run: {command: [touch, ran.marker]}}"


@dataclass(frozen=True)
class BadInput:
    id: str
    flows: dict[str, str]  # file name -> spec (YAML under `spec:`); the first is the one run
    file: str  # the file the fault names
    pointer: str
    reasons: tuple[str, ...]  # each is part of the fault's reason
    data: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # not part of the fault line


CASES = [
    BadInput(
        "unknown-field",
        {
            "flow.yaml": """
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {name: mark, run: {command: [touch, ran.marker]}, colour: red}
            """
        },
        "flow.yaml",
        "/spec/root/units/0/colour",
        (
            "unknown field 'colour'",
            "allowed here: cache, dependsOn, name, retries, run, timeoutSeconds, when",
        ),
    ),
    BadInput(
        "wrong-type",
        {
            "flow.yaml": """
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {name: mark, run: {command: [touch, ran.marker]}, retries: two}
            """
        },
        "flow.yaml",
        "/spec/root/units/0/retries",
        ("must be of type integer, got string",),
    ),
    BadInput(
        "unknown-pattern",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: zigzag
              units: [{MARK}]
            """
        },
        "flow.yaml",
        "/spec/root/pattern",
        ("'zigzag' is not one of: sequence, dag, fanout, fanin, dfs, bfs, cycle",),
    ),
    BadInput(
        "duplicate-sibling-names",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - {{name: twin, run: {{command: [touch, ran.marker]}}}}
                - {{name: twin, run: {{command: [touch, ran.marker]}}}}
            """
        },
        "flow.yaml",
        "/spec/root/units/2/name",
        ("duplicate unit name 'twin'", "section 's'"),
    ),
    BadInput(
        "dependsOn-names-no-sibling",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: dag
              units:
                - {MARK}
                - {{name: b, run: {{command: [touch, ran.marker]}}, dependsOn: [mark, ghost]}}
            """
        },
        "flow.yaml",
        "/spec/root/units/1/dependsOn/1",
        ("'ghost' names no sibling of 'b'", "section 's'"),
    ),
    BadInput(
        "dependency-cycle",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: dag
              units:
                - {MARK}
                - {{name: alpha, run: {{command: [touch, ran.marker]}}, dependsOn: [gamma]}}
                - {{name: beta, run: {{command: [touch, ran.marker]}}, dependsOn: [alpha, mark]}}
                - {{name: gamma, run: {{command: [touch, ran.marker]}}, dependsOn: [beta]}}
            """
        },
        "flow.yaml",
        "/spec/root/units",
        ("dependency cycle in section 's'", "alpha", "beta", "gamma"),
        absent=("mark",),
    ),
    BadInput(
        "micro-section-holds-macro-section",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: micro
              pattern: sequence
              units:
                - {MARK}
                - name: inner
                  scope: macro
                  pattern: sequence
                  units: [{{name: x, run: {{command: [touch, ran.marker]}}}}]
            """
        },
        "flow.yaml",
        "/spec/root/units/1/scope",
        ("macro section 'inner' cannot sit inside a micro section",),
    ),
    BadInput(
        "flowRef-cycle",
        {
            "main.flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - {{name: there, flowRef: {{path: other.flow.yaml}}}}
            """,
            "other.flow.yaml": """
            root: {name: back, flowRef: {path: main.flow.yaml}}
            """,
        },
        "other.flow.yaml",
        "/spec/root/flowRef/path",
        ("flowRef cycle: main.flow.yaml -> other.flow.yaml -> main.flow.yaml",),
    ),
    BadInput(
        "missing-input-file",
        {
            "flow.yaml": f"""
            inputs:
              tree: {{path: data/none.json}}
            root:
              name: s
              scope: macro
              pattern: sequence
              units: [{MARK}]
            """
        },
        "flow.yaml",
        "/spec/inputs/tree/path",
        ("input file not found: data/none.json",),
    ),
    BadInput(
        "invalid-json-data",
        {
            "flow.yaml": f"""
            inputs:
              tree: {{path: data/bad.json}}
            root:
              name: s
              scope: macro
              pattern: sequence
              units: [{MARK}]
            """
        },
        "data/bad.json",
        "/",
        ("invalid JSON at line 3",),
        data={"data/bad.json": '{\n  "a": 1,\n  "b": ]\n}\n'},
    ),
    BadInput(
        "invalid-json-lines-record",
        {
            "flow.yaml": f"""
            inputs:
              stream: {{path: data/bad.jsonl}}
            root:
              name: s
              scope: macro
              pattern: cycle
              over: {{input: stream, chunk: 2}}
              ring: [{MARK}]
            """
        },
        "data/bad.jsonl",
        "/2",  # the third record, on the fourth line (blank lines are skipped)
        ("invalid JSON on line 4",),
        data={"data/bad.jsonl": '{"a": 1}\n\n{"a": 2}\n{oops\n{"a": 3}\n'},
    ),
    BadInput(
        "undefined-template-variable",
        {
            "flow.yaml": f"""
            inputs:
              n: {{value: 3}}
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - {{name: say, run: {{command: [echo, "{{{{ inputs.n }}}} {{{{ bogus }}}}"]}}}}
            """
        },
        "flow.yaml",
        "/spec/root/units/1/run/command/1",
        ("undefined template variable 'bogus'", "defined here: flow, inputs, upstream"),
    ),
    BadInput(
        "template-reaches-for-class-of-node",
        {
            "flow.yaml": f"""
            inputs:
              xs: {{value: [1, 2]}}
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - name: fan
                  scope: macro
                  pattern: fanout
                  over: {{input: xs}}
                  visit: {{name: v, run: {{command: [echo, "{{{{ node.__class__ }}}}"]}}}}
            """
        },
        "flow.yaml",
        "/spec/root/units/1/visit/run/command/1",
        ("internal attribute '__class__'", "sandbox forbids"),
    ),
    BadInput(
        "template-reaches-for-mro",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - {{name: v, run: {{command: [echo, "{{{{ ''.__class__.__mro__ }}}}"]}}}}
            """
        },
        "flow.yaml",
        "/spec/root/units/1/run/command/1",
        ("internal attribute '__", "sandbox forbids"),
    ),
    BadInput(
        "template-reaches-for-internals-with-attr-filter",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: sequence
              units:
                - {MARK}
                - {{name: v, run: {{command: [echo, "{{{{ flow|attr('__init__') }}}}"]}}}}
            """
        },
        "flow.yaml",
        "/spec/root/units/1/run/command/1",
        ("internal attribute '__init__'",),
    ),
    BadInput(
        "maxActive-below-1",
        {
            "flow.yaml": f"""
            root:
              name: s
              scope: macro
              pattern: dag
              maxActive: 0
              units: [{MARK}]
            """
        },
        "flow.yaml",
        "/spec/root/maxActive",
        ("must be >= 1, got 0",),
    ),
]


@pytest.fixture
def bad_flow(
    request: pytest.FixtureRequest,
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
) -> tuple[str, BadInput]:
    case: BadInput = request.param
    for name, text in case.data.items():
        write(name, text)
    names = list(case.flows)
    for i, (name, spec) in enumerate(case.flows.items()):
        write_flow(name, spec, flow_name=f"f{i}")
    return names[0], case


def assert_one_fault(result: Result, case: BadInput) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.fault_lines()
    assert len(lines) == 1, lines
    line = lines[0]
    match = FAULT_LINE.match(line)
    assert match, line
    assert (match["file"], match["pointer"]) == (case.file, case.pointer), line
    for reason in case.reasons:
        assert reason in match["reason"], line
    for word in case.absent:
        assert word not in line, line


@pytest.mark.parametrize("bad_flow", CASES, ids=[c.id for c in CASES], indirect=True)
def test_validate_rejects(bad_flow: tuple[str, BadInput], meta: Callable[..., Result]) -> None:
    main, case = bad_flow
    result = meta("validate", main)
    assert_one_fault(result, case)
    assert "valid" not in result.stdout


@pytest.mark.parametrize("bad_flow", CASES, ids=[c.id for c in CASES], indirect=True)
def test_run_rejects_and_runs_nothing(
    bad_flow: tuple[str, BadInput], meta: Callable[..., Result], tmp_path: Path
) -> None:
    main, case = bad_flow
    result = meta("run", main, "--workdir", "wd", "--report", "report.json")
    assert_one_fault(result, case)
    assert not (tmp_path / "wd").exists()  # so no run.json, no journal, no store outputs
    assert not (tmp_path / "report.json").exists()
    assert not (tmp_path / "ran.marker").exists()
    assert not (tmp_path / "runs").exists()
