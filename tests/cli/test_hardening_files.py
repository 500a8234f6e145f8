"""Issue 13, items 4, 6, 8 and 15: files and YAML that would hang, explode or leak are refused
in one line, fast, quoting nothing of what they hold."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import HEADER, Result

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(12)
)


def _flow(root: str, inputs: str = "") -> str:
    return HEADER.replace("NAME", "f") + f"  root: {root}\n" + inputs


def _one_line(result: Result) -> str:
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.fault_lines()
    return line


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("fifo", "is a FIFO (a named pipe), not a regular file"),
        ("/dev/zero", "is a device, not a regular file"),
        ("/proc/self/environ", "is a file of the kernel (/proc, /sys), not a regular file"),
        ("folder", "is a folder, not a file"),
    ],
)
def test_a_flowref_to_a_special_file_is_refused_by_its_type(
    meta: Callable[..., Result], tmp_path: Path, target: str, reason: str
) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "f.yaml").write_text(_flow(f"{{name: r, flowRef: {{path: {target}}}}}"))
    started = time.monotonic()
    line = _one_line(meta("validate", "f.yaml"))
    assert time.monotonic() - started < 5
    assert line.endswith(f": /: {reason}")


def test_a_flowref_to_a_file_that_is_no_flow_quotes_none_of_it(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "shadow").write_text("root:$6$secrethash:19000:0:99999:7:::\nkey: hunter2\n")
    (tmp_path / "f.yaml").write_text(_flow("{name: r, flowRef: {path: shadow}}"))
    line = _one_line(meta("validate", "f.yaml"))
    assert line.startswith("shadow: /: not a flow: ")
    assert "secrethash" not in line and "hunter2" not in line and "key" not in line


@pytest.mark.parametrize(
    ("inputs", "where", "reason"),
    [
        ("  inputs: {d: {value: 2020-01-01}}\n", "/spec/inputs/d/value", "a date or time"),
        ("  inputs: {d: {value: !!binary aGk=}}\n", "/spec/inputs/d/value", "binary data"),
        ("  inputs: {d: {value: !!set {a: null}}}\n", "/spec/inputs/d/value", "a set"),
        ("  inputs: {d: {value: &x [*x]}}\n", "/spec/inputs/d/value/0", "an anchor refers"),
        ("  inputs: {d: {value: .nan}}\n", "/spec/inputs/d/value", "not a finite number"),
        ("  inputs: {d: {value: [-.inf]}}\n", "/spec/inputs/d/value/0", "not a finite number"),
        ("  inputs: {d: {value: 1.0e+999}}\n", "/spec/inputs/d/value", "a number out of range"),
        (f"  inputs: {{d: {{value: {'9' * 5000}}}}}\n", "/spec/inputs/d/value", "an integer"),
        ("  inputs: {d: {value: {1: a, true: c}}}\n", "/spec/inputs/d/value", "a key that is not"),
    ],
)
def test_yaml_only_values_are_refused_at_validation_naming_the_place(
    meta: Callable[..., Result], tmp_path: Path, inputs: str, where: str, reason: str
) -> None:
    (tmp_path / "f.yaml").write_text(_flow("{name: s, run: {command: [x]}}", inputs))
    for command in (["validate", "f.yaml"], ["run", "f.yaml", "--workdir", "wd"]):
        line = _one_line(meta(*command))
        assert line.startswith(f"f.yaml: {where}: {reason}"), line
    assert not (tmp_path / "wd").exists()


def test_alias_bombs_and_deep_nesting_are_refused_fast(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    for name, reason in (("laughs", "expands to more than"), ("deep", "nested")):
        (tmp_path / "f.yaml").write_text(_flow(f"{{name: r, flowRef: {{path: {name}.yaml}}}}"))
        started = time.monotonic()
        line = _one_line(meta("validate", "f.yaml"))
        assert time.monotonic() - started < 5
        assert line.startswith(f"{name}.yaml: ") and reason in line, line


def test_an_input_that_is_a_folder_fifo_or_device_says_what_it_is(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for path, reason in (
        ("fifo", "is a FIFO (a named pipe), not a regular file"),
        ("folder", "is a folder, not a file"),
        ("/dev/null", "is a device, not a regular file"),
    ):
        flow = _flow(
            "{name: s, scope: macro, pattern: fanout, over: {input: d},"
            " visit: {name: v, run: {command: [x]}}}",
            f"  inputs: {{d: {{path: {path}}}}}\n",
        )
        (tmp_path / "f.yaml").write_text(flow)
        line = _one_line(meta("validate", "f.yaml"))
        assert line == f"f.yaml: /spec/inputs/d/path: input file {path} {reason}"


def test_a_flow_file_that_is_not_utf8_says_so_and_where(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    text = _flow("{name: r, run: {command: [echo, caf\u00e9]}}").encode("latin-1")
    (tmp_path / "f.yaml").write_bytes(text)
    line = _one_line(meta("validate", "f.yaml"))
    assert line == f"f.yaml: /: is not UTF-8 text (byte {text.index(0xE9)})"
