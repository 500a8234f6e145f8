"""Issue 13, item 14: names and paths a file system or execve cannot take are faults, each on
one line: long or multi-line names, NUL bytes, paths past 255 bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import HEADER, Result


def _one_line(result: Result) -> str:
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.fault_lines()
    return line


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("n", '  root: {name: "s\\n", run: {command: [x]}}\n', "/spec/root/name: unit name 's\\n'"),
        ("n", f"  root: {{name: {'s' * 300}, run: {{command: [x]}}}}\n", "is too long"),
        ('"n\\n"', "  root: {name: s, run: {command: [x]}}\n", "/metadata/name: 'n\\n' must be"),
        ("n", '  root: {name: s, run: {command: ["a\\0b"]}}\n', "/spec/root/run/command/0: a NUL"),
        ("n", '  root: {name: s, flowRef: {path: "a\\0b"}}\n', "/spec/root/flowRef/path: a NUL"),
        ("n", f"  root: {{name: s, flowRef: {{path: {'x' * 300}}}}}\n", "File name too long"),
        (
            "n",
            f"  inputs: {{d: {{path: {'x' * 300}}}}}\n  root: {{name: s, run: {{command: [x]}}}}\n",
            "File name too long",
        ),
    ],
)
def test_names_and_paths_nothing_can_take_are_one_line_faults(
    meta: Callable[..., Result], tmp_path: Path, name: str, spec: str, expected: str
) -> None:
    (tmp_path / "f.yaml").write_text(HEADER.replace("NAME", name) + spec)
    line = _one_line(meta("validate", "f.yaml"))
    assert expected in line, line


def test_a_rendered_name_too_long_is_a_fault_at_run_time(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "f.yaml").write_text(
        HEADER.replace("NAME", "f")
        + "  inputs: {d: {value: [300]}}\n"
        + "  root: {name: fan, scope: macro, pattern: fanout, over: {input: d},"
        + " visit: {name: \"{{ 'x' * item }}\", run: {command: [x]}}}\n"
    )
    line = _one_line(meta("run", "f.yaml", "--workdir", "wd"))
    assert "/spec/root/visit/name" in line and "longer than 100 characters" in line, line
