"""The commands that run on this machine: validate, plan, graph, run and resume."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from meta.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    SETS,
    Place,
    cache_dir_option,
    printable,
    shown_result,
    user_errors,
)
from meta.engine.records import UPSTREAM_FAILED, Listener
from meta.errors import Fault, UserError
from meta.flow.files import display_path
from meta.local.environment import read_secrets
from meta.local.interrupts import INTERRUPTS
from meta.local.runner import Outcome, resume_run, start_run
from meta.plan.given import parse_sets
from meta.plan.plan import compile_plan


@click.command()
@click.argument("files", nargs=-1, required=True, type=Place(path_type=Path))
@SETS
@user_errors
def validate(files: Sequence[Path], sets: Sequence[str]) -> None:
    """Check flow files (and the flows and inputs they name, with the inputs given); exit 2
    listing every fault."""
    faults: list[Fault] = []
    given = parse_sets(sets)
    for file in files:
        try:
            compile_plan(file, given)
        except UserError as exc:
            faults.extend(exc.faults)
        else:
            click.echo(f"{display_path(file)}: valid")
    if faults:
        raise UserError(faults)


@click.command()
@click.argument("file", type=Place(path_type=Path))
@SETS
@user_errors
def plan(file: Path, sets: Sequence[str]) -> None:
    """Describe a flow: its inputs and their values, its sections, patterns and bounds."""
    # Only this command describes a flow: `meta run` need not load it (or shlex).
    from meta.plan.describe import describe

    for line in describe(compile_plan(file, parse_sets(sets))):
        click.echo(line)


@click.command()
@click.argument("file", type=Place(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@SETS
@user_errors
def graph(file: Path, fmt: str, sets: Sequence[str]) -> None:
    """Print the flow's structure as Mermaid or Graphviz DOT source."""
    # networkx costs a tenth of a second to import; only this command needs it.
    from meta.plan.graph import flow_graph, to_dot, to_mermaid

    built = flow_graph(compile_plan(file, parse_sets(sets)))
    click.echo(to_mermaid(built) if fmt == "mermaid" else to_dot(built), nl=False)


SECRETS = click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="NAME/KEY=@FILE|NAME/KEY=env:VAR|NAME=@FOLDER",
    help="Give secretRef NAME/KEY its value: a file's text, a variable of this environment, "
    "or every file of a folder as a key. Never written anywhere. Repeatable.",
)


@click.command()
@click.argument("file", type=Place(path_type=Path))
@click.option(
    "--workdir",
    type=Place(path_type=Path, file_okay=False),
    help="Where the run keeps its journal, outputs and logs [default: runs/FLOW-TIME].",
)
@click.option(
    "--report",
    type=Place(path_type=Path, dir_okay=False),
    help="Also write the JSON report here.",
)
@SETS
@SECRETS
@click.option(
    "--ui",
    "ui",
    is_flag=True,
    help="Serve this run's live page (`meta ui`, on 127.0.0.1) and open it in a browser.",
)
@cache_dir_option
@user_errors
def run(
    file: Path,
    workdir: Path | None,
    report: Path | None,
    sets: Sequence[str],
    secrets: Sequence[str],
    ui: bool,
    cache_dir: Path | None,
) -> None:
    """Run a flow locally, as real processes."""
    INTERRUPTS.install()
    overrides = parse_sets(sets)
    given = read_secrets(secrets, os.environ)
    if not ui:
        _finish(
            lambda listeners: start_run(
                file, workdir, overrides, listeners, report, given, cache_dir
            ),
            file.name,
        )
        return
    from meta.cli.ui import RunPage
    from meta.local.runner import default_workdir
    from meta.plan.plan import load_entry

    # The page is served for the workdir, so it is chosen here rather than by start_run.
    chosen = workdir or default_workdir(load_entry(file).name)
    with RunPage(chosen) as page:
        _finish(
            lambda listeners: start_run(
                file, chosen, overrides, [*listeners, page], report, given, cache_dir
            ),
            file.name,
        )


@click.command()
@click.argument("workdir", type=Place(path_type=Path))
@click.option(
    "--report",
    type=Place(path_type=Path, dir_okay=False),
    help="Also write the JSON report here.",
)
@SECRETS
@user_errors
def resume(workdir: Path, report: Path | None, secrets: Sequence[str]) -> None:
    """Finish an interrupted run; units that finished are not run again. Secrets are given
    again: a run keeps none."""
    INTERRUPTS.install()
    given = read_secrets(secrets, os.environ)
    _finish(lambda listeners: resume_run(workdir, listeners, report, given), str(workdir))


def _finish(execute: Callable[[Sequence[Listener]], Outcome], title: str) -> None:
    listeners: list[Listener] = []
    display: AbstractContextManager[Any] = nullcontext()
    if _may_be_terminal():
        # rich takes tens of milliseconds to import: only for what may show the live view.
        from rich.console import Console

        from meta.cli.progress import LiveProgress

        console = Console(stderr=True)
        if console.is_terminal:
            live = LiveProgress(console, title)
            listeners.append(live)
            display = live
    # From the session's start to the last line printed, a signal is only noted: the exit code
    # follows the report (a signal after the report said `succeeded` changes nothing).
    with INTERRUPTS.deferred():
        with display:
            outcome = execute(listeners)
        try:
            _summarise(outcome)
        finally:
            # The session is over and its exit code chosen: Python gives signals their default
            # action back while it shuts down, and one coming then would kill `meta` by signal.
            INTERRUPTS.block()


def _may_be_terminal() -> bool:
    """False when rich's Console would surely not take stderr for a terminal: it is no tty,
    and none of the variables that make rich say otherwise is set."""
    if any(name in os.environ for name in ("TTY_COMPATIBLE", "FORCE_COLOR")):
        return True
    try:
        return sys.stderr.isatty()
    except ValueError:
        return False


def _summarise(outcome: Outcome) -> None:
    report = outcome.report
    units = report["units"]
    # A cancelled unit ran when it made an attempt (stopped in one, or waiting to retry).
    tried = [u for u in units if u["state"] == "cancelled" and u["attempts"] > 0]
    ran = len(tried) + sum(
        1 for u in units if u["state"] in ("succeeded", "failed") and not u.get("resumed")
    )
    failed = sum(1 for u in units if u["state"] == "failed")
    resumed = sum(1 for u in units if u.get("resumed") and u["state"] != "skipped")
    cached = sum(1 for u in units if u["state"] == "cached" and not u.get("resumed"))
    skipped = sum(1 for u in units if u["state"] == "skipped")
    again = f", {failed} failed" if failed else ""
    again += f", {len(tried)} cancelled" if tried else ""
    again += f", {resumed} finished before" if resumed else ""
    again += f", {cached} cached" if cached else ""
    again += f", {skipped} skipped" if skipped else ""
    for changed in report.get("changedInputs", ()):
        click.echo(
            f"note: input file {display_path(Path(changed))} changed since this run started: "
            "units that finished before keep what they made from it as it was",
            err=True,
        )
    for rerun in report.get("rerun", ()):
        click.echo(f"note: unit {rerun['id']} ran again: {rerun['reason']}", err=True)
    click.echo(f"{report['flow']}: {outcome.state} ({ran} units run{again})")
    if outcome.state == "succeeded":
        click.echo(f"outputs: {report['outputs'] or '(none written)'}")
        if report.get("result") is not None:
            click.echo(f"result: {shown_result(report['result'])}")
    if outcome.report_path is not None:
        click.echo(f"report: {outcome.report_path}")
    if outcome.error is not None:
        if isinstance(outcome.error, UserError):
            for fault in outcome.error.faults:
                click.echo(str(fault), err=True)
            sys.exit(EXIT_USER_ERROR)
        click.echo(f"error: {printable(str(outcome.error))}", err=True)
        failures = report.get("error", {}).get("failures", [])
        for failure in failures if len(failures) > 1 else ():
            click.echo(f"  failed: {failure['unit']}: {printable(failure['reason'])}", err=True)
        skipped = sum(1 for u in units if u.get("reason") == UPSTREAM_FAILED)
        if skipped:
            click.echo(f"  {skipped} units skipped: a unit they depend on failed", err=True)
        tail = report.get("error", {}).get("stderrTail")
        if tail:
            click.echo("stderr (tail):", err=True)
            lines = tail.splitlines()[-20:]
            click.echo("\n".join("  " + printable(line) for line in lines), err=True)
        sys.exit(EXIT_FAILED)
    if outcome.state == "cancelled":
        click.echo("interrupted: `meta resume` the workdir to finish", err=True)
        sys.exit(INTERRUPTS.exit_code(EXIT_INTERRUPTED))
