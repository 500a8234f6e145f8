"""`meta step`: the built-in step programs generated flows run, one process per unit. Its own
module, importing only what a step needs: a validator flow starts one per node, and the other
commands' modules cost more to load than checking a node does."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

STEP_MODULES = {"validate-node": "meta.steps.validate_node"}
"""Each step program's module: the warm starter loads them, and calls a module's `warm(args)`
before it forks a step with those arguments (meta.cli.warm)."""


@click.group()
def step() -> None:
    """Built-in step programs, for generated flows (they run inside steps)."""


@step.command(
    "validate-node",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def validate_node_step(args: Sequence[str]) -> None:
    """Validate META_INPUT against its type's schema; write META_OUTPUT/report.json."""
    from meta.steps import validate_node

    sys.exit(validate_node.main(list(args)))


@step.command("warm-starter", hidden=True)
@click.option("--fd", type=int, required=True, help="the socket the local driver asks on")
def warm_starter(fd: int) -> None:
    """Fork `meta step` programs for a local session (meta.local.warm starts it)."""
    from meta.cli.warm import serve

    sys.exit(serve(fd))
