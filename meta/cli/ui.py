"""`meta ui`: a read-only web page of local runs, or of a cluster's MetaFlows, updated live
(see meta.ui)."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

import click

from meta.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, Place, user_errors
from meta.cli.kube import KUBECONFIG
from meta.engine.records import SectionRecord, UnitRecord
from meta.flow.files import display_path
from meta.local.runner import RUNS_DIR

if TYPE_CHECKING:
    from meta.ui.server import RunsSource

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
@click.argument("folders", nargs=-1, type=Place(path_type=Path), metavar="[WORKDIR]...")
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
@click.option(
    "--until-stdin-closes",
    "tied",
    is_flag=True,
    hidden=True,
    help="Stop when standard input closes (`meta run --ui`: when the run's process ends, "
    "however it ends).",
)
@click.option(
    "-n",
    "--namespace",
    help="Show the MetaFlows of this namespace of the cluster instead of local runs "
    "[default with --kubeconfig: default].",
)
@KUBECONFIG
@user_errors
def ui(
    folders: Sequence[Path],
    port: int,
    host: str,
    tied: bool,
    namespace: str | None,
    kubeconfig: Path | None,
) -> None:
    """Serve a live, read-only page of local runs: each WORKDIR (a run, or a folder of runs)
    [default: runs]; or, with -n/--kubeconfig, of a cluster namespace's MetaFlows."""
    from meta.ui.server import LocalRuns, serve

    in_cluster = namespace is not None or kubeconfig is not None
    if in_cluster and folders:
        click.echo("meta ui: give WORKDIRs or a cluster (-n/--kubeconfig), not both", err=True)
        sys.exit(EXIT_USER_ERROR)

    missing = [folder for folder in folders if not folder.is_dir()]
    if missing and not tied:
        shown = display_path(missing[0])
        click.echo(
            f"meta ui: {shown}: no such folder (a run's workdir, or a folder of runs)", err=True
        )
        sys.exit(EXIT_USER_ERROR)

    source: RunsSource = (
        _cluster_runs(namespace or "default", kubeconfig)
        if in_cluster
        else LocalRuns(list(folders) or [RUNS_DIR])
    )

    async def main() -> None:
        until = _stdin_closed() if tied else None
        await serve(source, host, port, lambda url: announce(url, host), until)

    try:
        asyncio.run(main())
    except OSError as exc:
        click.echo(f"meta ui: cannot serve on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


def _cluster_runs(namespace: str, kubeconfig: Path | None) -> RunsSource:
    from meta.cli.kube import kube_api
    from meta.ui.cluster import ClusterRuns

    return ClusterRuns(kube_api(kubeconfig), namespace)


def _stdin_closed() -> asyncio.Future[None]:
    """Done when standard input reaches its end: a daemon thread waits for it, so Ctrl-C
    is not held up by a read that never ends."""
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()

    def close() -> None:
        if not closed.done():
            closed.set_result(None)

    def wait() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(close)

    threading.Thread(target=wait, daemon=True).start()
    return closed


class RunPage:
    """`meta run --ui`: `meta ui` for the run's workdir, as a process of its own (so serving
    the page takes nothing from the run's process), whose page is opened in a browser once
    the first unit starts (the run is on disk by then). It stops when the run ends: it is
    told to, or, if the run's process is killed, its standard input (a pipe from that
    process) closes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server: subprocess.Popen[str] | None = None
        self.url = ""
        self.opened = False

    def __enter__(self) -> RunPage:
        meta = [sys.executable, "-c", "from meta.cli import main; main()"]
        self.server = subprocess.Popen(
            [*meta, "ui", "--port", "0", "--until-stdin-closes", str(self.workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line.startswith("meta ui: "):
            self.server.wait()
            raise click.ClickException("meta ui did not start: the run was not started")
        base = line.split()[2]
        self.url = f"{base}#/run/{quote(display_path(self.workdir), safe='')}"
        click.echo(
            f"meta ui: {self.url} (read-only; bound to 127.0.0.1: only this machine can reach "
            "it; it stops when the run ends: `meta ui` the workdir to look again)",
            err=True,
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)

    def unit_started(self, record: UnitRecord) -> None:
        if not self.opened:
            self.opened = True
            # A browser may take a while to start: not on the engine's loop.
            threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True).start()

    def unit_finished(self, record: UnitRecord) -> None:
        pass

    def section_finished(self, record: SectionRecord) -> None:
        pass
