"""Issue 13, item 7: non-finite and absurd numbers are faults wherever a flow or its data holds
them, found at validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import HEADER, Result

STEP = "{name: s, run: {command: [x]}}"


@pytest.mark.parametrize(
    ("spec", "where", "reason"),
    [
        (
            "  defaults: {retryBackoffSeconds: .nan}\n",
            "/spec/defaults/retryBackoffSeconds",
            "not a finite",
        ),
        ("  defaults: {timeoutSeconds: .inf}\n", "/spec/defaults/timeoutSeconds", "not a finite"),
        (
            "  defaults: {timeoutSeconds: 1.0e+300}\n",
            "/spec/defaults/timeoutSeconds",
            "must be <= 31536000",
        ),
        # YAML 1.2: a float without a point is a number, not the string "1e300".
        ("  defaults: {timeoutSeconds: 1e300}\n", "/spec/defaults/timeoutSeconds", "must be <= "),
        ("  defaults: {retries: 1000000}\n", "/spec/defaults/retries", "must be <= 1000"),
        (
            f"  defaults: {{retries: {'9' * 5000}}}\n",
            "/spec/defaults/retries",
            "an integer of more",
        ),
        ("  limits: {maxDepth: 100000}\n", "/spec/limits/maxDepth", "must be <= 64"),
    ],
)
def test_absurd_numbers_in_a_flow_are_faults(
    meta: Callable[..., Result], tmp_path: Path, spec: str, where: str, reason: str
) -> None:
    (tmp_path / "n.yaml").write_text(HEADER.replace("NAME", "n") + spec + f"  root: {STEP}\n")
    result = meta("validate", "n.yaml")
    assert result.code == 2, result
    (line,) = result.fault_lines()
    assert line.startswith(f"n.yaml: {where}: {reason}"), line


@pytest.mark.parametrize("number", ["1e400", "-1e400", "9" * 5000, "NaN", "Infinity"])
def test_absurd_numbers_in_json_data_are_faults(
    meta: Callable[..., Result], tmp_path: Path, number: str
) -> None:
    (tmp_path / "d.json").write_text(f"[1, {number}]")
    root = "{name: f, scope: macro, pattern: fanout, over: {input: d}, visit: " + STEP + "}"
    (tmp_path / "n.yaml").write_text(
        HEADER.replace("NAME", "n") + "  inputs: {d: {path: d.json}}\n" + f"  root: {root}\n"
    )
    result = meta("validate", "n.yaml")
    assert result.code == 2, result
    (line,) = result.fault_lines()
    assert line.startswith("d.json: /: invalid JSON"), line
