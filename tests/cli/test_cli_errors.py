"""The CLI's error handling beyond the issue's list: one line per fault, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import FAULT_LINE, META, Result

MARK = "{name: mark, run: {command: [touch, ran.marker]}}"


def assert_user_error(result: Result) -> list[str]:
    """Exit 2, no traceback, and every stderr line is `FILE: /pointer: reason`."""
    assert result.code == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.fault_lines()
    assert lines
    for line in lines:
        assert FAULT_LINE.match(line), line
    return lines


def assert_nothing_ran(tmp_path: Path) -> None:
    assert not (tmp_path / "wd").exists()
    assert not (tmp_path / "ran.marker").exists()


def test_yaml_syntax_error_names_line_and_column(
    meta: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write(
        "flow.yaml",
        """\
        apiVersion: meta-orchestrator.io/v1alpha1
        kind: MetaFlow
        metadata: {name: t}
        spec:
          root: {name: a, run: {command: [touch, ran.marker]}
        """,
    )
    for args in (["validate"], ["run", "--workdir", "wd"], ["plan"], ["graph"]):
        result = meta(*args, "flow.yaml")
        (line,) = assert_user_error(result)
        assert line.startswith("flow.yaml: /: invalid YAML: line 6, column 1: "), line
    assert_nothing_ran(tmp_path)


CONTROL_FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: t}
spec:
  inputs:
    words: {value: [a]}
  root:
    name: f
    scope: macro
    pattern: fanout
    over: {input: words}
    visit: {name: a, run: {command: [touch, ran.marker]}}
"""


@pytest.mark.parametrize(
    ("files", "arguments", "line"),
    [
        (
            {"flow.yaml": CONTROL_FLOW + "# a comment \x01\n"},
            ["run", "flow.yaml", "--workdir", "wd"],
            "flow.yaml: /: invalid YAML: line 13, column 13: control character U+0001",
        ),
        (
            {"flow.yaml": CONTROL_FLOW},
            ["run", "flow.yaml", "--workdir", "wd", "--set", "words=[a\x01b]"],
            "--set: /words: input 'words': invalid YAML: line 1, column 3: control character "
            "U+0001",
        ),
        (
            {"flow.yaml": CONTROL_FLOW},
            ["run", "flow.yaml", "--workdir", "wd", "--set", "words=\x1b[1m"],
            "--set: /words: input 'words': invalid YAML: line 1, column 1: control character "
            "U+001B",
        ),
        (
            {"flow.yaml": CONTROL_FLOW, "words.yaml": "- a\n- \x7f\n"},
            ["run", "flow.yaml", "--workdir", "wd", "--set", "words=@words.yaml"],
            "words.yaml: /: invalid YAML: line 2, column 3: control character U+007F",
        ),
        (
            {"d.schema.yaml": "type: object # \x02\n"},
            ["generate", "d.schema.yaml", "-o", "wd"],
            "d.schema.yaml: /: invalid YAML: line 1, column 16: control character U+0002",
        ),
        (
            {"d.schema.json": '{"type": "object"}', "d.data.yaml": 'a: "\x02"\n'},
            ["generate", "d.schema.json", "--data", "d.data.yaml", "-o", "wd"],
            "d.data.yaml: /: invalid YAML: line 1, column 5: control character U+0002",
        ),
    ],
    ids=["flow-comment", "set-list", "set-escape", "set-file", "schema", "data"],
)
def test_a_control_character_in_yaml_is_a_fault_naming_where(
    meta: Callable[..., Result],
    tmp_path: Path,
    files: dict[str, str],
    arguments: list[str],
    line: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (fault,) = assert_user_error(meta(*arguments))
    assert fault.startswith(line), fault
    assert_nothing_ran(tmp_path)


SCHEMA = '{"type": "object", "properties": {"a": {"type": "string"}}}'


@pytest.mark.parametrize(
    ("arguments", "output"),
    [
        (["s.schema.json", "-o", "s.schema.json"], "s.schema.json"),
        (["s.schema.json", "--data", "d.json", "-o", "./d.json"], "d.json"),
        (["s.schema.json", "-o", "wd/x.flow.yaml"], "wd/x.flow.yaml"),
        # The data and the overlay read beside the schema by its name (no option names them),
        # there or not.
        (["s.schema.json", "-o", "s.data.json"], "s.data.json"),
        (["s.schema.json", "-o", "s.meta.yaml"], "s.meta.yaml"),
        (["s.schema.json", "-o", "s.data.yaml"], "s.data.yaml"),
    ],
    ids=["description", "data", "workdir", "data-beside", "overlay", "data-not-there"],
)
def test_generate_never_writes_over_what_it_is_made_from(
    meta: Callable[..., Result], tmp_path: Path, arguments: list[str], output: str
) -> None:
    (tmp_path / "s.schema.json").write_text(SCHEMA)
    (tmp_path / "d.json").write_text('{"a": "x"}')
    (tmp_path / "s.data.json").write_text('{"a": "y"}')
    (tmp_path / "s.meta.yaml").write_text("/properties/a: {}\n")
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "run.json").write_text("{}")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    (line,) = assert_user_error(meta("generate", *arguments))
    assert line.startswith(f"{output}: /: the flow would replace "), line
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize(
    ("data", "reason"),
    [("nope.json", "no such file"), (".", "not a regular file")],
    ids=["missing", "folder"],
)
def test_generate_names_a_data_file_that_is_not_there(
    meta: Callable[..., Result], tmp_path: Path, data: str, reason: str
) -> None:
    (tmp_path / "s.schema.json").write_text('{"type": "array", "items": {"type": "object"}}')
    (line,) = assert_user_error(meta("generate", "s.schema.json", "--data", data, "-o", "f.yaml"))
    assert line == f"{data}: /: {reason} (--data names the data file)"
    assert not (tmp_path / "f.yaml").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe{\x00}\x00", "is not UTF-8 text (byte 0)"),
        (b'{"a": NaN}', "invalid JSON: NaN is not a JSON value"),
    ],
    ids=["utf-16", "nan"],
)
def test_generate_names_a_data_file_the_run_could_not_read(
    meta: Callable[..., Result], tmp_path: Path, content: bytes, reason: str
) -> None:
    """A tree walk's flow only names its data file: the run would find this fault, later."""
    (tmp_path / "s.schema.json").write_text(
        '{"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}'
    )
    (tmp_path / "d.json").write_bytes(content)
    (line,) = assert_user_error(
        meta("generate", "s.schema.json", "--data", "d.json", "-o", "f.yaml")
    )
    assert line == f"d.json: /: {reason}"
    assert not (tmp_path / "f.yaml").exists()


def test_a_generated_flow_follows_the_umask(meta: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "s.schema.json").write_text(SCHEMA)
    old = os.umask(0o027)
    try:
        result = meta("generate", "s.schema.json", "-o", "s.flow.yaml")
    finally:
        os.umask(old)
    assert result.code == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "s.flow.yaml").stat().st_mode) == 0o640


def test_missing_flow_file(meta: Callable[..., Result], tmp_path: Path) -> None:
    (line,) = assert_user_error(meta("run", "nope.flow.yaml", "--workdir", "wd"))
    assert line == "nope.flow.yaml: /: no such file"
    assert_nothing_ran(tmp_path)


def test_a_document_that_is_not_an_object(
    meta: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    write("flow.yaml", "- just\n- a list\n")
    (line,) = assert_user_error(meta("validate", "flow.yaml"))
    assert line == "flow.yaml: /: must be of type object, got array"


def test_several_faults_in_one_file_are_all_listed(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow(
        "flow.yaml",
        """
        root:
          name: s
          scope: macro
          pattern: dag
          maxActive: 0
          colour: red
          units:
            - {name: mark, run: {command: touch}}
            - {name: b, retries: -1, run: {command: [touch, ran.marker]}}
        """,
    )
    for args in (["validate"], ["run", "--workdir", "wd"]):
        lines = assert_user_error(meta(*args, "flow.yaml"))
        assert len(lines) == 4, lines
        assert lines[0].startswith(
            "flow.yaml: /spec/root/colour: unknown field 'colour' (allowed here: cache, dependsOn, "
        )
        assert lines[1:] == [
            "flow.yaml: /spec/root/maxActive: must be >= 1, got 0",
            "flow.yaml: /spec/root/units/0/run/command: must be of type array, got string",
            "flow.yaml: /spec/root/units/1/retries: must be >= 0, got -1",
        ]
    assert_nothing_ran(tmp_path)


def test_several_semantic_faults_are_all_listed(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow(
        "flow.yaml",
        f"""
        root:
          name: s
          scope: macro
          pattern: dag
          units:
            - {MARK}
            - {{name: mark, run: {{command: [touch, ran.marker]}}, dependsOn: [ghost]}}
            - {{name: c, run: {{command: [echo, "{{{{ node }}}}"]}}}}
        """,
    )
    lines = assert_user_error(meta("validate", "flow.yaml"))
    assert len(lines) == 3, lines
    assert any(
        line.startswith("flow.yaml: /spec/root/units/1/name: duplicate unit name 'mark'")
        for line in lines
    )
    assert any(
        line.startswith("flow.yaml: /spec/root/units/1/dependsOn/0: 'ghost' names no sibling")
        for line in lines
    )
    assert any(
        line.startswith("flow.yaml: /spec/root/units/2/run/command/1: template variable 'node'")
        for line in lines
    )


def test_validate_several_files(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow("good.yaml", f"root: {MARK}")
    write_flow("also-good.yaml", f"root: {MARK}")
    write_flow("bad.yaml", f"root: {{name: s, scope: mezzo, pattern: sequence, units: [{MARK}]}}")
    write_flow("worse.yaml", "root: {name: a, run: {command: []}}")
    result = meta("validate", "good.yaml", "bad.yaml", "also-good.yaml", "worse.yaml")
    lines = assert_user_error(result)
    assert lines == [
        "bad.yaml: /spec/root/scope: 'mezzo' is not one of: macro, micro",
        "worse.yaml: /spec/root/run/command: needs at least 1 item(s)",
    ]
    assert result.stdout.splitlines() == ["good.yaml: valid", "also-good.yaml: valid"]

    result = meta("validate", "good.yaml", "also-good.yaml")
    assert result.code == 0, result
    assert result.stdout.splitlines() == ["good.yaml: valid", "also-good.yaml: valid"]
    assert result.stderr == ""


def test_set_naming_an_unknown_input(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"inputs: {{tree: {{value: 1}}}}\nroot: {MARK}")
    (tmp_path / "other.json").write_text("{}")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd", "--set", "nope=x"))
    assert line == "--set: /nope: the flow declares no input 'nope' (declared: tree)"
    assert_nothing_ran(tmp_path)


def test_set_without_a_path_is_a_usage_error(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"inputs: {{tree: {{value: 1}}}}\nroot: {MARK}")
    result = meta("run", "flow.yaml", "--workdir", "wd", "--set", "tree")
    assert result.code == 2
    assert "expected NAME=VALUE or NAME=@FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_ran(tmp_path)


def test_set_pointing_at_invalid_data(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
    tmp_path: Path,
) -> None:
    write("data/good.json", "[1, 2]")
    write("data/bad.json", "[1, 2")
    write_flow(
        "flow.yaml",
        f"""
        inputs: {{xs: {{path: data/good.json}}}}
        root: {{name: fan, scope: macro, pattern: fanout, over: {{input: xs}}, visit: {MARK}}}
        """,
    )
    (line,) = assert_user_error(
        meta("run", "flow.yaml", "--workdir", "wd", "--set", "xs=data/bad.json")
    )
    assert line.startswith("data/bad.json: /: invalid JSON at line 1"), line
    assert_nothing_ran(tmp_path)


def test_flowref_to_a_missing_file(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow(
        "flow.yaml",
        f"""
        root:
          name: s
          scope: macro
          pattern: sequence
          units:
            - {MARK}
            - {{name: sub, flowRef: {{path: sub/gone.flow.yaml}}}}
        """,
    )
    for args in (["validate"], ["run", "--workdir", "wd"]):
        (line,) = assert_user_error(meta(*args, "flow.yaml"))
        assert line == (
            "flow.yaml: /spec/root/units/1/flowRef/path: "
            "flowRef to a file that does not exist: sub/gone.flow.yaml"
        )
    assert_nothing_ran(tmp_path)


def test_fault_inside_a_referenced_flow_names_that_file(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", "root: {name: sub, flowRef: {path: sub/child.flow.yaml}}")
    write_flow("sub/child.flow.yaml", "root: {name: a, run: {command: [touch, x]}, bogus: 1}")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line.startswith("sub/child.flow.yaml: /spec/root/bogus: unknown field 'bogus'"), line
    assert_nothing_ran(tmp_path)


def test_over_input_naming_no_input(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow(
        "flow.yaml",
        f"""
        inputs: {{xs: {{value: [1]}}, ys: {{value: [2]}}}}
        root: {{name: fan, scope: macro, pattern: fanout, over: {{input: zs}}, visit: {MARK}}}
        """,
    )
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line == "flow.yaml: /spec/root/over/input: no input named 'zs' (declared inputs: xs, ys)"
    assert_nothing_ran(tmp_path)


def test_fanout_path_not_found_in_data(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
    tmp_path: Path,
) -> None:
    write("data/orders.json", '{"batch": {"orders": [1, 2]}}')
    spec = """
        inputs: {{orders: {{path: data/orders.json}}}}
        root:
          name: fan
          scope: macro
          pattern: fanout
          over: {{input: orders, path: {path}}}
          visit: {mark}
        """
    write_flow("flow.yaml", spec.format(path="/batch/lines", mark=MARK))
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line == "data/orders.json: /batch/lines: nothing at /batch/lines in the input data"
    write_flow("flow.yaml", spec.format(path="/bunch/orders", mark=MARK))
    (line,) = assert_user_error(meta("validate", "flow.yaml"))
    assert line == "data/orders.json: /bunch: nothing at /bunch/orders in the input data"
    assert_nothing_ran(tmp_path)


def test_fanout_over_a_scalar(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
) -> None:
    write("data/n.json", '{"n": 3}')
    write_flow(
        "flow.yaml",
        f"""
        inputs: {{n: {{path: data/n.json}}}}
        root: {{name: fan, scope: macro, pattern: fanout, over: {{input: n, path: /n}},
               visit: {MARK}}}
        """,
    )
    (line,) = assert_user_error(meta("validate", "flow.yaml"))
    assert line == "data/n.json: /n: section 'fan' needs an array or an object to fan out over"


def test_tree_node_that_is_not_an_object(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
    tmp_path: Path,
) -> None:
    tree = {"value": 1, "children": [{"value": 2}, {"children": [{"value": 3}, 7]}]}
    write("data/tree.json", json.dumps(tree))
    write_flow(
        "flow.yaml",
        f"""
        inputs: {{tree: {{path: data/tree.json}}}}
        root:
          name: walk
          scope: micro
          pattern: dfs
          over: {{input: tree, children: children}}
          visit: {MARK}
        """,
    )
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line == (
        "data/tree.json: /children/1/children/1: "
        "section 'walk' walks a tree of JSON objects; this is not an object"
    )
    assert_nothing_ran(tmp_path)


def test_children_field_that_is_not_a_list(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
) -> None:
    write("data/tree.json", json.dumps({"kids": [{"kids": "none"}]}))
    write_flow(
        "flow.yaml",
        f"""
        inputs: {{tree: {{path: data/tree.json}}}}
        root: {{name: walk, scope: macro, pattern: bfs, over: {{input: tree, children: kids}},
               visit: {MARK}}}
        """,
    )
    (line,) = assert_user_error(meta("validate", "flow.yaml"))
    assert (
        line == "data/tree.json: /kids/0/kids: children must be an array of objects or one object"
    )


def test_runtime_template_failure_names_the_field(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
    tmp_path: Path,
) -> None:
    write("data/items.json", json.dumps([{"id": 1, "size": 2}, {"id": 2}]))
    write_flow(
        "flow.yaml",
        """
        inputs: {items: {path: data/items.json}}
        root:
          name: fan
          scope: macro
          pattern: fanout
          maxActive: 1
          over: {input: items}
          visit: {name: "v-{{ node.id }}", run: {command: [echo, "{{ node.size }}"]}}
        """,
    )
    assert meta("validate", "flow.yaml").code == 0  # only the data tells
    result = meta("run", "flow.yaml", "--workdir", "wd")
    (line,) = assert_user_error(result)
    assert line.startswith("flow.yaml: /spec/root/visit/run/command/1: "), line
    assert "undefined template variable" in line
    assert "'size'" in line
    assert "data/items.json: /1" in line  # the node it failed for
    report = json.loads((tmp_path / "wd" / "report.json").read_text())
    assert report["state"] == "failed"


def test_a_fault_at_a_node_with_a_megabyte_key_names_it_cut_short(
    meta: Callable[..., Result], write: Callable[..., Path], write_flow: Callable[..., Path]
) -> None:
    key = "k" * (1 << 20)
    write("data/tree.json", json.dumps({"size": 1, "kids": {key: {}}}))
    write_flow(
        "flow.yaml",
        """
        inputs: {tree: {path: data/tree.json}}
        root:
          name: walk
          scope: macro
          pattern: dfs
          over: {input: tree, entries: kids}
          visit: {name: v, run: {command: [echo, "{{ node.size }}"]}}
        """,
    )
    result = meta("run", "flow.yaml", "--workdir", "wd")
    (line,) = assert_user_error(result)
    assert "undefined template variable" in line
    assert len(line) < 2000
    assert f"data/tree.json: /kids/{'k' * 150}" in line
    assert f"{'k' * 100} (1,048,582 characters))" in line


def test_when_expression_on_a_missing_field_is_a_user_error(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow(
        "flow.yaml",
        """
        inputs: {tree: {value: {kind: root, kids: [{name: x}]}}}
        root:
          name: walk
          scope: macro
          pattern: dfs
          over: {input: tree, children: kids}
          visit:
            cases:
              - when: node.kind
                unit: {name: a, run: {command: ["true"]}}
        """,
    )
    result = meta("run", "flow.yaml", "--workdir", "wd")
    (line,) = assert_user_error(result)
    assert line.startswith("flow.yaml: /spec/root/visit/cases/0/when: "), line
    assert "'kind'" in line


def test_no_case_matching_a_node_names_its_path(
    meta: Callable[..., Result],
    write: Callable[[str, str], Path],
    write_flow: Callable[..., Path],
) -> None:
    tree = {"kind": "root", "kids": [{"kind": "leaf"}, {"kind": "odd"}]}
    write("data/tree.json", json.dumps(tree))
    write_flow(
        "flow.yaml",
        """
        inputs: {tree: {path: data/tree.json}}
        root:
          name: walk
          scope: macro
          pattern: dfs
          maxActive: 1
          over: {input: tree, children: kids}
          visit:
            cases:
              - when: "node.kind == 'root'"
                unit: {name: r, run: {command: ["true"]}}
              - when: "node.kind == 'leaf'"
                unit: {name: l, run: {command: ["true"]}}
        """,
    )
    result = meta("run", "flow.yaml", "--workdir", "wd")
    (line,) = assert_user_error(result)
    assert line.startswith("data/tree.json: /kids/1: no case of the visit matches this node"), line
    assert "flow.yaml: /spec/root/visit/cases" in line


def test_a_node_of_an_inline_input_is_named_inside_the_flow_file(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow(
        "flow.yaml",
        """
        inputs:
          tree: {value: {kind: root, kids: [{kind: odd}]}}
        root:
          name: walk
          scope: macro
          pattern: dfs
          over: {input: tree, children: kids}
          visit:
            cases:
              - when: "node.kind == 'root'"
                unit: {name: r, run: {command: ["true"]}}
        """,
    )
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line.startswith(
        "flow.yaml: /spec/inputs/tree/value/kids/0: no case of the visit matches this node"
    ), line


def test_workdir_holding_a_run_already(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"root: {MARK}")
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "run.json").write_text("{}")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "wd"))
    assert line.startswith("wd: /: this workdir holds a run already"), line
    assert not (tmp_path / "ran.marker").exists()
    assert sorted(p.name for p in (tmp_path / "wd").iterdir()) == ["run.json"]


def test_workdir_holding_what_a_run_writes_is_refused(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    """A project folder may be a workdir (`--workdir .`), but not one whose own logs or
    report the run would write into, and `meta clean` then remove with the run."""
    write_flow("flow.yaml", f"root: {MARK}")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mine.log").write_text("mine")
    (tmp_path / "report.json").write_text("{}")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "."))
    assert line == (
        ".: /: holds report.json, logs, which a run writes there: "
        "give another --workdir (a new folder, or one without these)"
    )
    assert not (tmp_path / "ran.marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.yaml", "logs", "report.json"]
    assert (tmp_path / "report.json").read_text() == "{}"


def test_the_lock_a_session_killed_before_its_run_record_left_is_taken_again(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"root: {MARK}")
    ended = subprocess.Popen(["true"])
    ended.wait()
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "session.lock").write_text(f"{ended.pid}\n")
    assert meta("run", "flow.yaml", "--workdir", "wd").code == 0
    assert (tmp_path / "ran.marker").exists()
    # A file of that name that no session wrote stays the user's.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "session.lock").write_text("mine")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "other"))
    assert line.startswith("other: /: holds session.lock, which a run writes there"), line


def test_the_file_systems_root_is_no_workdir(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"root: {MARK}")
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "/"))
    assert line == "/: /: is the file system's root: give another --workdir"
    assert not (tmp_path / "ran.marker").exists()


def test_a_workdir_inside_another_runs_store_is_refused(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    """`meta clean` of the outer run would remove it with that run's store, running or not."""
    write_flow("flow.yaml", f"root: {MARK}")
    assert meta("run", "flow.yaml", "--workdir", "outer").code == 0
    (line,) = assert_user_error(meta("run", "flow.yaml", "--workdir", "outer/store/inner"))
    assert line == (
        "outer/store/inner: /: is inside outer/store, which belongs to the run in outer: "
        "give a --workdir outside it"
    )
    assert not (tmp_path / "outer" / "store" / "inner").exists()


def test_resume_a_directory_with_no_run(meta: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (line,) = assert_user_error(meta("resume", "empty"))
    assert line == "empty: /: no run here (no run.json)"


def test_plan_and_graph_report_faults_too(
    meta: Callable[..., Result], write_flow: Callable[..., Path]
) -> None:
    write_flow("flow.yaml", "root: {name: s, scope: macro, pattern: dag, maxActive: 0, units: []}")
    for args in (["plan"], ["graph", "--format", "dot"], ["graph", "--format", "mermaid"]):
        lines = assert_user_error(meta(*args, "flow.yaml"))
        assert lines == [
            "flow.yaml: /spec/root/maxActive: must be >= 1, got 0",
            "flow.yaml: /spec/root/units: needs at least 1 item(s)",
        ]


def test_a_workdir_or_report_that_cannot_be_written_is_refused_before_anything_runs(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    write_flow("flow.yaml", f"root: {MARK}")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    refused = [
        ("--workdir", "a-file"),
        ("--workdir", "a-file/below"),
        ("--report", "a-folder"),
        ("--report", "a-file/report.json"),
    ]
    for option, value in refused:
        result = meta("run", "flow.yaml", "--workdir", "wd", option, value)
        assert result.code == 2, (option, value, result)
        assert "Traceback" not in result.stderr + result.stdout
        assert not (tmp_path / "ran.marker").exists()
    lines = assert_user_error(meta("run", "flow.yaml", "--report", "a-file/report.json"))
    assert lines == ["a-file/report.json: /: the report cannot be written: a-file is not a folder"]
    assert_nothing_ran(tmp_path)


def test_units_nested_too_deeply_to_check_are_a_fault_not_a_crash(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    unit: dict[str, object] = {"name": "s", "run": {"command": ["touch", "ran.marker"]}}
    for level in range(200):
        unit = {"name": f"q{level}", "scope": "macro", "pattern": "sequence", "units": [unit]}
    flow = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "deep"},
        "spec": {"root": unit},
    }
    (tmp_path / "deep.flow.yaml").write_text(json.dumps(flow))
    for arguments in (["validate"], ["run", "--workdir", "wd"]):
        (line,) = assert_user_error(meta(*arguments, "deep.flow.yaml"))
        assert line.startswith("deep.flow.yaml: /spec/root/units/0/units/0/")
        assert line.endswith(": nested more than 256 levels deep")
    assert_nothing_ran(tmp_path)


def test_a_key_written_twice_is_a_fault_naming_where(
    meta: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write(
        "flow.yaml",
        """\
        apiVersion: meta-orchestrator.io/v1alpha1
        kind: MetaFlow
        metadata: {name: t}
        spec:
          root: {name: a, name: b, run: {command: [touch, ran.marker]}}
        """,
    )
    for arguments in (["validate"], ["run", "--workdir", "wd"]):
        lines = assert_user_error(meta(*arguments, "flow.yaml"))
        assert lines == [
            "flow.yaml: /: invalid YAML: line 5, column 19: the key 'name' appears twice"
        ]
    assert_nothing_ran(tmp_path)


@pytest.mark.parametrize(
    "args", [["run", "flow.yaml", "--workdir", ""], ["run", ""], ["validate", ""], ["ui", ""]]
)
def test_an_empty_path_is_refused_before_anything_runs(
    meta: Callable[..., Result], write_flow: Callable[..., Path], tmp_path: Path, args: list[str]
) -> None:
    write_flow("flow.yaml", f"root: {MARK}")
    result = meta(*args)
    assert result.code == 2, result
    assert "an empty path" in result.stderr
    assert not (tmp_path / "ran.marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.yaml"]


def test_meta_ui_refuses_a_folder_that_is_not_there_and_a_port_in_use(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    result = meta("ui", "nowhere", "--port", "0")
    assert result.code == 2, result
    assert result.stderr == (
        "meta ui: nowhere: no such folder (a run's workdir, or a folder of runs)\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "runs").mkdir()
        result = meta("ui", "runs", "--port", str(port))
    assert result.code == 2, result
    assert result.stderr.startswith(f"meta ui: cannot serve on 127.0.0.1:{port}: "), result


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_output_that_cannot_be_written_is_one_line_not_a_traceback(
    write_flow: Callable[..., Path], tmp_path: Path
) -> None:
    flow = write_flow("flow.yaml", f"root: {MARK}")
    for args in (["plan", str(flow)], ["--help"], ["--version"], ["generate", "--help"]):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [str(META), *args], stdout=full, stderr=subprocess.PIPE, text=True
            )
        said = (done.returncode, done.stderr)
        assert said == (1, "error: cannot write: No space left on device\n"), args
    reader = subprocess.Popen(
        [str(META), "plan", str(flow)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()
    assert reader.wait(timeout=60) == 1
    assert reader.stderr.read() == b"", "a reader gone is no fault to speak of"
