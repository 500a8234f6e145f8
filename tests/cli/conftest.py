"""Running the installed `meta` console script on flows written into a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.local.runs import env  # noqa: F401  (the local-run fixture, for `meta watch`)

META = Path(sys.executable).with_name("meta")
HEADER = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: NAME}
spec:
"""
# `FILE: /json/pointer: reason`; the pointer is "/" for a whole file.
FAULT_LINE = re.compile(r"^(?P<file>[^:]+): (?P<pointer>/[^:]*|[^/:][^:]*): (?P<reason>.+)$")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def fault_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture
def meta(tmp_path: Path) -> Callable[..., Result]:
    """Run `meta ARGS...` in `tmp_path` (so files display relative to it), never on a terminal."""

    def run(*args: str | Path, cwd: Path = tmp_path) -> Result:
        environ = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        proc = subprocess.run(
            [str(META), *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env=environ,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a file (dedented) under `tmp_path`, making its directories; return its path."""

    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def write_flow(write: Callable[[str, str], Path]) -> Callable[..., Path]:
    """Write a flow file: the header and `spec` (YAML indented under `spec:`)."""

    def write_one(name: str, spec: str, flow_name: str = "t") -> Path:
        body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        return write(name, HEADER.replace("NAME", flow_name) + body + "\n")

    return write_one
