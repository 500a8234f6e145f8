"""The built-in step `validate-node` (meta.steps.validate_node.main): one report per node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from meta.steps.validate_node import _DOCUMENTS, READ_AHEAD, main, warm

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$ref": "#/$defs/team",
    "$defs": {
        "team": {
            "type": "object",
            "required": ["name", "members"],
            "additionalProperties": False,
            "properties": {
                "name": {"$ref": "#/$defs/name"},
                "members": {"type": "array", "items": {"$ref": "#/$defs/person"}},
            },
        },
        "person": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"$ref": "#/$defs/name"}, "age": {"minimum": 0}},
        },
        "name": {"type": "string", "minLength": 2},
    },
}


class Step:
    """A step's world in tmp_path: META_INPUT, META_OUTPUT, META_UPSTREAM, the schema."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.output = root / "out"
        self.upstream = root / "up"
        self.output.mkdir()
        self.upstream.mkdir()
        (root / "team.schema.json").write_text(json.dumps(SCHEMA))
        monkeypatch.chdir(root)
        monkeypatch.setenv("META_OUTPUT", str(self.output))
        monkeypatch.setenv("META_UPSTREAM", str(self.upstream))
        monkeypatch.setenv("META_UNIT_ID", "flow/walk/root.0/team")

    def input(self, value: Any) -> None:
        path = self.root / "input.json"
        path.write_text(json.dumps(value))
        os.environ["META_INPUT"] = str(path)

    def producer(self, name: str, nodes: int, invalid: int) -> None:
        (self.upstream / name).mkdir(parents=True)
        report = {"subtree": {"nodes": nodes, "invalid": invalid}}
        (self.upstream / name / "report.json").write_text(json.dumps(report))

    def process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The step run as a process of its own, as a flow runs it."""
        code = "import sys; from meta.steps.validate_node import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
        )

    def run(self, *args: str) -> dict[str, Any]:
        assert main(["--schema", "team.schema.json", *args]) == 0
        report: dict[str, Any] = json.loads((self.output / "report.json").read_text())
        return report


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Step:
    monkeypatch.delenv("META_INPUT", raising=False)
    return Step(tmp_path, monkeypatch)


def test_a_valid_node_whose_children_were_stripped(step: Step) -> None:
    step.input({"name": "platform"})
    report = step.run("--pointer", "/$defs/team", "--children=departments", "--children=members")
    assert report == {
        "unit": "flow/walk/root.0/team",
        "type": "team",
        "path": "",
        "valid": True,
        "errors": [],
        "subtree": {"nodes": 1, "invalid": 0},
    }


def test_without_children_the_missing_field_is_an_error(step: Step) -> None:
    step.input({"name": "platform"})
    report = step.run("--pointer", "/$defs/team", "--path", "/departments/0/teams/1")
    assert report["valid"] is False
    assert report["errors"] == [
        {"pointer": "/departments/0/teams/1", "message": "'members' is a required property"}
    ]


def test_only_the_children_the_node_held_are_not_required_of_it(step: Step) -> None:
    """A walk strips the children fields from META_INPUT; `--held` says which the node had, so
    a required children field that the node lacks is still an error (as jsonschema says)."""
    step.input({"name": "platform"})
    args = ["--pointer", "/$defs/team", "--children", "members", "--held"]
    assert step.run(*args, '["name", "members"]')["valid"] is True
    assert step.run(*args, '["name"]')["errors"] == [
        {"pointer": "", "message": "'members' is a required property"}
    ]
    (step.root / "team.json").write_text(json.dumps({"name": "platform"}))
    from_data = step.run("--pointer", "/$defs/team", "--children", "members", "--data", "team.json")
    assert from_data["errors"] == [{"pointer": "", "message": "'members' is a required property"}]


def test_an_invalid_node_is_reported_with_pointers_into_the_data_and_exit_0(step: Step) -> None:
    step.input({"name": "x", "extra": 1})
    report = step.run("--pointer", "/$defs/team", "--children", "members", "--path", "/teams/3")
    assert report["valid"] is False
    assert report["errors"] == [
        {
            "pointer": "/teams/3",
            "message": "Additional properties are not allowed ('extra' was unexpected)",
        },
        {"pointer": "/teams/3/name", "message": "'x' is too short"},
    ]
    assert report["subtree"] == {"nodes": 1, "invalid": 1}


def test_the_subtree_adds_up_the_upstream_reports(step: Step) -> None:
    step.producer("person", 1, 0)
    step.producer("person.1", 1, 1)
    step.producer("team", 5, 2)
    (step.upstream / "user-step").mkdir()
    (step.upstream / "user-step" / "report.json").write_text('"not a report"')
    step.input({"name": "platform"})
    report = step.run("--pointer", "/$defs/team", "--children", "members")
    assert report["subtree"] == {"nodes": 8, "invalid": 3}
    assert step.run("--pointer", "/$defs/team", "--children", "members", "--no-subtree")[
        "subtree"
    ] == {"nodes": 1, "invalid": 0}


def test_each_element_of_a_chunk_is_checked(step: Step) -> None:
    step.input([{"name": "ann"}, {"name": "b", "age": -1}, {"age": 3}])
    report = step.run("--pointer", "/$defs/person", "--each", "--offset", "200", "--no-subtree")
    assert report["type"] == "person"
    assert report["errors"] == [
        {"pointer": "/201/age", "message": "-1 is less than the minimum of 0"},
        {"pointer": "/201/name", "message": "'b' is too short"},
        {"pointer": "/202", "message": "'name' is a required property"},
    ]
    assert report["subtree"] == {"nodes": 3, "invalid": 2}


def test_the_node_may_come_from_a_place_in_a_data_file(step: Step) -> None:
    (step.root / "shop.json").write_text(json.dumps({"staff": [{"name": "al"}, {"name": ""}]}))
    report = step.run(
        "--pointer", "/$defs/person", "--each", "--data", "shop.json", "--at", "/staff"
    )
    assert report["path"] == "/staff"
    assert report["errors"] == [{"pointer": "/staff/1/name", "message": "'' is too short"}]
    absent = step.run("--pointer", "/$defs/person", "--data", "shop.json", "--at", "/boss")
    assert (absent["valid"], absent["subtree"]) == (True, {"nodes": 0, "invalid": 0})


def test_pointers_may_come_as_json_strings_so_a_nul_in_a_key_passes(step: Step) -> None:
    """Generated flows give `{{ path | tojson }}`: a key holding a NUL (valid JSON, which no
    command line can carry raw) reaches the step, and the report names it as it is."""
    keyed = {"properties": {"m": {"additionalProperties": {"required": ["z"]}}}}
    (step.root / "team.schema.json").write_text(json.dumps(keyed))
    step.input({})
    at = json.dumps("/m/a\u0000b")
    assert "\0" not in at
    report = step.run("--entry-of", "/properties/m", "--path", at)
    assert report["path"] == "/m/a\u0000b"
    assert report["errors"] == [{"pointer": "/m/a\u0000b", "message": "'z' is a required property"}]
    (step.root / "d.json").write_text(json.dumps({"m": {"a\u0000b": {"z": 1}}}))
    whole = step.run("--entry-of", "/properties/m", "--data", "d.json", "--at", at)
    assert (whole["path"], whole["valid"]) == ("/m/a\u0000b", True)


def test_a_key_utf_8_cannot_encode_is_reported_and_shown_escaped(step: Step) -> None:
    """A lone surrogate is valid in a JSON key: the step reports the node and prints its path
    escaped (printing it raw made the step end with a traceback)."""
    step.input({"name": "al"})
    at = json.dumps("/m/\ud800\n")
    result = step.process("--schema=team.schema.json", "--pointer=/$defs/person", f"--path={at}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "person /m/\\ud800\\n: valid\n"
    report = json.loads((step.output / "report.json").read_text())
    assert (report["path"], report["valid"]) == ("/m/\ud800\n", True)


def test_each_over_something_else_than_a_list_reports_it(step: Step) -> None:
    """A dag stage checks `--each --at /customers`: data holding an object there is the fault
    found (as jsonschema says it), not a misuse of the step."""
    (step.root / "shop.json").write_text(json.dumps({"staff": {"name": "al"}, "boss": "x"}))
    report = step.run(
        "--pointer", "/$defs/person", "--each", "--data", "shop.json", "--at", "/staff"
    )
    assert (report["valid"], report["subtree"]) == (False, {"nodes": 1, "invalid": 1})
    assert report["errors"] == [
        {"pointer": "/staff", "message": "{'name': 'al'} is not of type 'array'"}
    ]


def test_keys_too_many_for_a_command_line_are_read_from_the_data(step: Step) -> None:
    """`--shapes={"data": FILE}` (the generated template's answer to a map of thousands of
    entries): the node is read whole from FILE at --path, so its map's keys are checked."""
    holder = {
        "type": "object",
        "properties": {
            "teams": {
                "type": "object",
                "propertyNames": {"maxLength": 8},
                "additionalProperties": {"$ref": "#/$defs/team"},
            }
        },
        "$defs": SCHEMA["$defs"],
    }
    (step.root / "team.schema.json").write_text(json.dumps(holder))
    teams = {f"t{i}": {"name": "x"} for i in range(3)} | {"far-too-long": {}}
    (step.root / "d.json").write_text(json.dumps({"org": {"teams": teams}}))
    step.input({})
    shapes = json.dumps({"data": str(step.root / "d.json")})
    report = step.run("--pointer", "", "--entries=teams", f"--shapes={shapes}", "--path=/org")
    assert report["errors"] == [{"pointer": "/org/teams", "message": "'far-too-long' is too long"}]


def test_the_root_type_is_named_by_the_title(step: Step) -> None:
    step.input({"name": "platform", "members": []})
    assert step.run("--pointer", "")["type"] == "root"
    assert step.run("--pointer", "/$defs/name", "--type", "label")["type"] == "label"


def test_summary_only_adds_up(step: Step) -> None:
    step.producer("0", 3, 1)
    step.producer("1", 2, 0)
    assert main(["--summary"]) == 0
    report = json.loads((step.output / "report.json").read_text())
    assert report == {
        "unit": "flow/walk/root.0/team",
        "type": "summary",
        "path": "",
        "valid": False,
        "errors": [],
        "subtree": {"nodes": 5, "invalid": 1},
    }


def test_misuse_exits_2_with_a_message(step: Step, capsys: pytest.CaptureFixture[str]) -> None:
    step.input({})
    assert main(["--schema", "team.schema.json", "--pointer", "/$defs/nope"]) == 2
    assert main(["--schema", "missing.json"]) == 2
    assert main([]) == 2
    assert main(["--schema", "team.schema.json", "--held", "members"]) == 2
    assert main(["--schema", "team.schema.json", "--schema-root", "out"]) == 2
    assert main(["--schema", "team.schema.json", "--shapes", '{"data": 1}']) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == "validate-node: nothing at /$defs/nope in the schema file team.schema.json"
    assert errors[1].startswith("validate-node: cannot read the schema file missing.json")
    assert errors[2] == "validate-node: --schema is required (or --summary)"
    assert errors[3] == "validate-node: --held needs a JSON list of field names, got 'members'"
    assert (
        errors[4]
        == "validate-node: the schema file team.schema.json is not under --schema-root out"
    )
    assert errors[5] == (
        """validate-node: --shapes needs a JSON list or {"data": FILE}, got '{"data": 1}'"""
    )
    assert not (step.output / "report.json").exists()


def test_a_remote_ref_in_the_schema_is_not_fetched(
    step: Step, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = {"$ref": "#/$defs/x", "$defs": {"x": {"$ref": "https://example.com/x.json"}}}
    (step.root / "team.schema.json").write_text(json.dumps(remote))
    step.input({})
    assert main(["--schema", "team.schema.json", "--pointer", "/$defs/x"]) == 2
    assert capsys.readouterr().err == (
        "validate-node: a $ref in team.schema.json does not resolve (Unresolvable: "
        "https://example.com/x.json); only references inside the schema file and files beside "
        "it are followed\n"
    )


def test_a_schema_that_refers_to_itself_without_end_is_a_misuse_not_a_crash(
    step: Step, capsys: pytest.CaptureFixture[str]
) -> None:
    ring = {"type": "object", "allOf": [{"$ref": "#"}], "properties": {"p": {"type": "integer"}}}
    (step.root / "team.schema.json").write_text(json.dumps(ring))
    step.input({"p": 1})
    assert main(["--schema", "team.schema.json"]) == 2
    assert capsys.readouterr().err.startswith(
        "validate-node: team.schema.json refers to itself without end"
    )
    assert not (step.output / "report.json").exists()


def test_a_pattern_python_cannot_read_is_a_misuse_not_a_crash(
    step: Step, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = {"type": "object", "properties": {"p": {"type": "string", "pattern": "^\\p{L}+$"}}}
    (step.root / "team.schema.json").write_text(json.dumps(letters))
    step.input({"p": "abc"})
    assert main(["--schema", "team.schema.json"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("validate-node: team.schema.json holds a pattern Python's re cannot")
    assert said.count("\n") == 1 and "ECMA-262" in said


def test_an_entry_is_held_to_every_schema_its_key_selects(step: Step) -> None:
    keyed = {
        "type": "object",
        "properties": {
            "m": {
                "patternProperties": {"^a": {"required": ["x"]}, "b$": {"required": ["y"]}},
                "additionalProperties": {"required": ["z"]},
            }
        },
    }
    (step.root / "team.schema.json").write_text(json.dumps(keyed))
    for key, wanted in (("ab", ["x", "y"]), ("a1", ["x"]), ("q", ["z"])):
        step.input({})
        errors = step.run("--entry-of", "/properties/m", "--path", f"/m/{key}")["errors"]
        assert [e["message"] for e in errors] == [f"'{n}' is a required property" for n in wanted]


def _step_kind(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [name],
        "additionalProperties": False,
        "properties": {name: {"type": "string"}, "failOnStderr": {"type": "string"}},
    }


BRANCHES = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "steps": {"type": "array", "items": {"anyOf": [_step_kind("script"), _step_kind("bash")]}}
    },
    "oneOf": [{"required": ["steps"]}, {"required": ["jobs"]}],
}


def test_a_fault_under_any_of_is_told_where_every_branch_finds_it(step: Step) -> None:
    # Every branch that could take the step finds the same field wrong: that is the fault,
    # not "the step is not valid under any of the given schemas" with the step's repr.
    (step.root / "team.schema.json").write_text(json.dumps(BRANCHES))
    step.input({"steps": [{"script": "make"}, {"script": "make", "failOnStderr": True}]})
    assert step.run()["errors"] == [
        {"pointer": "/steps/1/failOnStderr", "message": "True is not of type 'string'"}
    ]


def test_a_fault_where_the_branches_disagree_quotes_the_value_cut_short(step: Step) -> None:
    (step.root / "team.schema.json").write_text(json.dumps(BRANCHES))
    step.input({"steps": [{"script": "x" * 100}] * 1000, "jobs": []})
    (error,) = step.run()["errors"]
    assert error["pointer"] == ""
    assert error["message"] == (
        "{'jobs': [], 'steps': [{...}, {...}, {...}, {...}, ...]} is valid under each of "
        "{'required': ['jobs']}, {'required': ['steps']}"
    )


def test_a_long_message_is_cut(step: Step) -> None:
    names = [f"name-{i:04}" for i in range(1000)]
    (step.root / "team.schema.json").write_text(json.dumps({"enum": names}))
    step.input("other")
    (error,) = step.run()["errors"]
    assert error["message"].startswith("'other' is not one of ['name-0000', 'name-0001'")
    assert error["message"].endswith("...") and len(error["message"]) == 400


def test_it_runs_as_a_process(step: Step) -> None:
    step.input({"name": "platform"})
    result = step.process("--schema", "team.schema.json", "--pointer", "/$defs/team")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "team /: invalid (1 error)\n"
    report = json.loads((step.output / "report.json").read_text())
    assert report["errors"] == [{"pointer": "", "message": "'members' is a required property"}]


def test_its_result_is_the_verdict_of_what_it_counted(
    step: Step, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = step.root / "result.json"
    monkeypatch.setenv("META_RESULT", str(result))
    step.producer("child", nodes=3, invalid=1)
    step.input({"name": "tt", "members": []})
    step.run("--pointer", "/$defs/team")
    assert json.loads(result.read_text()) == {"valid": False, "nodes": 4, "invalid": 1}


def test_an_entry_of_nothing_is_a_misuse(step: Step, capsys: pytest.CaptureFixture[str]) -> None:
    step.input({})
    assert main(["--schema", "team.schema.json", "--entry-of", "/nowhere", "--path", "/m/k"]) == 2
    assert capsys.readouterr().err == (
        "validate-node: nothing at /nowhere in the schema file team.schema.json\n"
    )


def test_warm_reads_the_schema_ahead_and_a_changed_schema_is_read_again(step: Step) -> None:
    args = ["--schema", "team.schema.json", "--pointer", "/$defs/team"]
    schema = step.root / "team.schema.json"
    step.input({"name": "x", "members": []})  # a name too short
    warm(args)
    before = schema.stat()
    lenient = json.loads(json.dumps(SCHEMA))
    lenient["$defs"]["name"]["minLength"] = 1
    schema.write_text(json.dumps(lenient))
    # The same size and times: the file as `warm` saw it, whose reading is used.
    os.utime(schema, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert main(args) == 0
    assert not json.loads((step.output / "report.json").read_text())["valid"]
    lenient["description"] = "changed"
    schema.write_text(json.dumps(lenient))
    assert main(args) == 0
    assert json.loads((step.output / "report.json").read_text())["valid"]


def test_warm_reads_data_ahead_but_never_from_a_fifo(step: Step) -> None:
    args = ["--schema", "team.schema.json", "--pointer", "/$defs/team", "--data", "d.json"]
    data = step.root / "d.json"
    data.write_text(json.dumps({"name": "x", "members": []}))
    warm(args)
    warm(args)  # read by the second step that names it
    before = data.stat()
    data.write_text(json.dumps({"name": "y", "members": []}))
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert main(args) == 0
    assert json.loads((step.output / "report.json").read_text())["errors"] == [
        {"pointer": "/name", "message": "'x' is too short"}
    ]
    data.unlink()
    os.mkfifo(data)
    reading = threading.Thread(target=warm, args=(args,), daemon=True)
    reading.start()
    reading.join(10)
    assert not reading.is_alive(), "warm waited for a writer of the FIFO"


def test_warm_keeps_the_last_few_files_steps_share(step: Step) -> None:
    for number in range(READ_AHEAD + 3):
        (step.root / f"d{number}.json").write_text(json.dumps({"name": "x" * number}))
        for _ in range(2):
            warm(["--schema", "team.schema.json", "--data", f"d{number}.json"])
    (step.root / "once.json").write_text("{}")
    warm(["--schema", "team.schema.json", "--data", "once.json"])  # left to its one step
    kept = {Path(key[0]).name for key in _DOCUMENTS}
    assert len(kept) == READ_AHEAD and "team.schema.json" in kept
    assert f"d{READ_AHEAD + 2}.json" in kept and "d0.json" not in kept


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_a_schema_file_that_holds_no_schema_is_misuse(
    step: Step, capsys: pytest.CaptureFixture[str], text: str, kind: str
) -> None:
    (step.root / "odd.json").write_text(text)
    step.input({})
    assert main(["--schema", "odd.json"]) == 2
    assert capsys.readouterr().err == (
        f"validate-node: the schema file odd.json holds {kind}: a JSON Schema is an object "
        "(or true, or false)\n"
    )
