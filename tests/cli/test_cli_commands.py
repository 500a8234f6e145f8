"""The command table: every command loads, and one command loads only its own module."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from meta.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_loads_under_its_name(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def _modules_after(*args: str) -> set[str]:
    probe = (
        "import sys\n"
        "from meta.cli import main\n"
        f"try:\n    main({list(args)!r})\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_version_loads_no_command_module() -> None:
    loaded = _modules_after("--version")
    assert not {m for m in loaded if m.startswith(("meta.local.runner", "meta.kube", "meta.cli."))}
    assert "networkx" not in loaded and "jsonschema" not in loaded


def test_a_local_command_never_loads_the_kubernetes_layer() -> None:
    loaded = _modules_after("validate", "--help")
    assert "meta.cli.local" in loaded
    assert not {m for m in loaded if m.startswith(("meta.kube", "kubernetes", "kopf"))}


def test_the_cli_called_in_process_leaves_signals_unblocked(tmp_path: Path) -> None:
    """Only the `meta` process itself holds signals back as it exits: a program (or a test)
    that calls the CLI goes on, and every process it starts would inherit the block."""
    flow = tmp_path / "one.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: one}\n"
        "spec: {root: {name: t, run: {command: ['true']}}}\n"
    )
    result = CliRunner().invoke(main, ["run", str(flow), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.SIGINT not in blocked and signal.SIGTERM not in blocked
