"""Writing flows and data files into a temporary directory for the plan tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: NAME}\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def write_flow(write: Callable[[str, str], Path]) -> Callable[..., Path]:
    """Write a flow file named `name` whose `spec` is the given YAML."""

    def write_one(name: str, spec: str, flow_name: str = "t") -> Path:
        body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        return write(name, HEADER.replace("NAME", flow_name) + "spec:\n" + body + "\n")

    return write_one
