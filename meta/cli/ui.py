"""`meta ui`: a read-only web page of local runs, updated live (see meta.ui)."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from meta.cli.common import EXIT_INTERRUPTED
from meta.local.runner import RUNS_DIR

DEFAULT_PORT = 8470


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def announce(url: str, host: str) -> None:
    if loopback(host):
        click.echo(f"meta ui: {url} (read-only; bound to {host}: only this machine can reach it)")
    else:
        click.echo(
            f"meta ui: {url} (read-only; bound to {host}: other machines can reach it and read "
            "these runs' logs and outputs)"
        )


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path), metavar="[WORKDIR]...")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The port to serve on (0: any free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to bind: another one than loopback lets other machines in.",
)
def ui(folders: Sequence[Path], port: int, host: str) -> None:
    """Serve a live, read-only page of local runs: each WORKDIR (a run, or a folder of runs)
    [default: runs]."""
    from meta.ui.server import serve

    try:
        asyncio.run(serve(list(folders) or [RUNS_DIR], host, port, lambda url: announce(url, host)))
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
