"""The command table: every command loads, and one command loads only its own module."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

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
    assert not {m for m in loaded if m.startswith(("meta.local", "meta.kube", "meta.cli."))}
    assert "networkx" not in loaded and "jsonschema" not in loaded


def test_a_local_command_never_loads_the_kubernetes_layer() -> None:
    loaded = _modules_after("validate", "--help")
    assert "meta.cli.local" in loaded
    assert not {m for m in loaded if m.startswith(("meta.kube", "kubernetes", "kopf"))}
