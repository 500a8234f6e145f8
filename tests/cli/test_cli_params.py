"""`--set NAME=VALUE` on the command line: values typed as YAML, checked against the input's
schema before anything runs (exit 2, one line naming the input), shown by `meta plan`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import Result

FLOW = """
inputs:
  mode: {value: fast, description: how hard to try, schema: {enum: [fast, slow]}}
  n: {value: 2, schema: {type: integer, minimum: 1}}
  tags: {schema: {type: array, items: {type: string}}}
root:
  name: show
  run:
    command:
      - sh
      - -c
      - 'echo "{{ inputs.mode }} {{ inputs.n + 1 }} {{ inputs.tags|join(",") }}" >"$META_OUTPUT/v"'
"""


def test_run_takes_values_typed_as_yaml(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("f.yaml", FLOW)
    result = meta(
        "run", "f.yaml", "--workdir", "w", "--set", "mode=slow", "--set", "n=3",
        "--set", "tags=[a, b]",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert (tmp_path / "w/store/t/show/@outputs/v").read_text() == "slow 4 a,b\n"
    info = json.loads((tmp_path / "w/run.json").read_text())
    assert info["values"] == {"mode": "slow", "n": 3, "tags": ["a", "b"]}


def test_a_value_breaking_its_schema_is_one_line_naming_the_input_and_nothing_runs(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("f.yaml", FLOW)
    result = meta("run", "f.yaml", "--workdir", "w", "--set", "tags=[a, [b]]")
    assert result.code == 2
    assert result.fault_lines() == ["--set: /tags/1: input 'tags': ['b'] is not of type 'string'"]
    assert not (tmp_path / "w").exists()
    missing = meta("run", "f.yaml", "--workdir", "w")
    assert missing.code == 2
    assert missing.fault_lines() == [
        "f.yaml: /spec/inputs/tags: input 'tags' has no default: give it with --set tags=VALUE"
    ]


def test_validate_checks_defaults_against_their_schemas(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow("f.yaml", FLOW.replace("value: 2,", "value: 0,"))
    result = meta("validate", "f.yaml", "--set", "tags=[]")
    assert result.code == 2
    assert result.fault_lines() == [
        "f.yaml: /spec/inputs/n/value: input 'n': 0 is less than the minimum of 1"
    ]


def test_plan_shows_the_inputs_and_their_values(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow("f.yaml", FLOW)
    result = meta("plan", "f.yaml", "--set", "tags=[x]", "--set", "mode=slow")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        '  input mode (how hard to try): "slow" (--set), checked against its schema',
        "  input n: 2, checked against its schema",
        '  input tags: ["x"] (--set), checked against its schema',
    ]
