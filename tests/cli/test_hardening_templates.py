"""Issue 13, item 5: templates cannot make huge values or work without end, in validation and
at run time alike: one line naming the place, exit 2, within a few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import HEADER, Result

COSTLY = [
    ("{{ 9 ** (9 ** 9) }}", "a power larger than"),
    ("{{ 'x' * 300000000 }}", "a repetition longer than"),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "steps of work",
    ),
    ("{{ 'x'|center(1000000000) }}", "a call is given a number past"),
    ("{{ '{:>999999999}'.format(1) }}", "a format asks for a width"),
    ("{{ (range(100000)|list) * 100 }}", "a repetition longer than"),
    ("{{ ('x'*1000000) | replace('x','xxxxxxxxxx') | length }}", "a replacement longer than"),
    ("{{ range(100000)|map('string')|join(('x'*1000000)) | length }}", "a join longer than"),
]


def _command_flow(template: str) -> str:
    return (
        HEADER.replace("NAME", "t")
        + f"  root: {{name: s, run: {{command: [echo, {template!r}]}}}}\n"
    )


@pytest.mark.parametrize(("template", "reason"), COSTLY)
def test_a_costly_constant_template_is_refused_at_validation(
    meta: Callable[..., Result], tmp_path: Path, template: str, reason: str
) -> None:
    (tmp_path / "t.yaml").write_text(_command_flow(template))
    started = time.monotonic()
    result = meta("validate", "t.yaml")
    assert time.monotonic() - started < 5
    assert result.code == 2, result
    (line,) = result.fault_lines()
    assert line.startswith("t.yaml: /spec/root/run/command/1: ") and reason in line, line


def test_a_costly_template_over_data_is_a_fault_at_run_time(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "t.yaml").write_text(
        HEADER.replace("NAME", "t")
        + "  inputs: {d: {value: [300000000]}}\n"
        + "  root: {name: f, scope: macro, pattern: fanout, over: {input: d},"
        + " visit: {name: s, run: {command: [echo, \"{{ 'x' * item }}\"]}}}\n"
    )
    assert meta("validate", "t.yaml").code == 0
    started = time.monotonic()
    result = meta("run", "t.yaml", "--workdir", "wd")
    assert time.monotonic() - started < 10
    assert result.code == 2, result
    assert any("a repetition longer than" in line for line in result.fault_lines()), result


def test_loops_over_the_data_with_nothing_inside_are_work_too(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    # Three loops over 1,000 items, each empty: a billion passes that neither call, look up nor
    # write anything, so only the loops themselves can be charged.
    loops = "{% for a in inputs.xs %}{% for b in inputs.xs %}{% for c in inputs.xs %}"
    ends = "{% endfor %}{% endfor %}{% endfor %}"
    (tmp_path / "t.yaml").write_text(
        HEADER.replace("NAME", "t")
        + f"  inputs: {{xs: {{value: {list(range(1000))}}}}}\n"
        + f"  root: {{name: s, run: {{command: [echo, {loops + ends + 'ok'!r}]}}}}\n"
    )
    started = time.monotonic()
    result = meta("run", "t.yaml", "--workdir", "wd")
    assert time.monotonic() - started < 10
    assert result.code == 2, result
    (line,) = [line for line in result.fault_lines() if "steps of work" in line]
    assert line.startswith("t.yaml: /spec/root/run/command/1: "), line
