"""The `meta` command: a thin shell over the library that prints one clear line per fault.

Exit codes: 0 success, 1 a unit failed, 2 a user error (nothing run), 130 interrupted. One
module per group of commands: `local` (validate, plan, graph, run, resume), `generate`
(generate, watch, plugins), `step` (the built-in step programs), `kube` (crd, apply, operator,
quarterback), `runs` (runs, status, logs, clean: seeing runs, local and in a cluster), `cache`
(the cache runs share: ls, clear) and `ui` (the live web page). A command's module is imported
only when that command runs (or help lists it), so `meta run` never loads the Kubernetes client
and `meta --version` loads none of them.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import sys
from importlib import import_module
from typing import Any, NoReturn

import click

from meta.local.interrupts import INTERRUPTS

COMMANDS = {
    "validate": "local:validate",
    "plan": "local:plan",
    "graph": "local:graph",
    "run": "local:run",
    "resume": "local:resume",
    "generate": "generate:generate",
    "watch": "generate:watch",
    "plugins": "generate:plugins",
    "step": "step:step",
    "crd": "kube:crd",
    "apply": "kube:apply",
    "operator": "kube:operator",
    "quarterback": "kube:quarterback_group",
    "runs": "runs:runs",
    "status": "runs:status",
    "logs": "runs:logs",
    "clean": "runs:clean",
    "cache": "cache:cache_group",
    "ui": "ui:ui",
}
"""Each command's name, and where it is defined: `MODULE:ATTRIBUTE` under meta.cli."""

SESSIONS = frozenset({"run", "resume"})
"""The commands that handle signals themselves (see meta.local.interrupts; `meta/__init__.py`
takes them first in the `meta` command's process, and the others get the defaults back)."""


UNWRITABLE = frozenset({errno.ENOSPC, errno.EPIPE, errno.EFBIG, errno.EDQUOT, errno.EIO})
"""Why what a command prints may not be written where its output goes."""


def cannot_write(exc: OSError) -> NoReturn:
    """Say once that the output could not be written (`> /dev/full`, a reader gone: `| head`),
    drop what is left of it (not tried again as the process ends), and exit 1."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if not isinstance(exc, BrokenPipeError):
        click.echo(f"error: cannot write: {exc.strerror or exc}", err=True)
    sys.exit(1)


class LazyGroup(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except OSError as exc:
            # Help and the version, printed by click itself, outside any command.
            if exc.errno not in UNWRITABLE:
                raise
            cannot_write(exc)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command: click.Command = getattr(import_module(f"meta.cli.{module}"), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meta-orchestrator")
@click.pass_context
def main(context: click.Context) -> None:
    """meta-orchestrator: data describes the pipeline."""
    if not gc.isenabled():
        # Off while the modules loaded (`meta/__init__.py`). What they made lives as long as
        # the process: frozen, it is left out of every later pass (not walked again each time).
        gc.freeze()
        gc.enable()
    if context.invoked_subcommand not in SESSIONS and INTERRUPTS.installed:
        INTERRUPTS.uninstall()
