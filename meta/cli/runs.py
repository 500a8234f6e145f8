"""Seeing runs: runs, status, logs and clean, on local workdirs and (status, logs) on MetaFlows
in a cluster. A local run and a MetaFlow are shown in one shape (`status_view`'s), as text or,
with `-o json`, as JSON for scripts. The Kubernetes layer is imported only when a cluster is
asked."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from meta.cli.common import (
    EXIT_INTERRUPTED,
    OUTPUT,
    Place,
    duration,
    printable,
    shown_result,
    user_errors,
)
from meta.cli.kube import KUBECONFIG, NAMESPACE, kube_api
from meta.errors import Fault, UserError
from meta.flow.files import display_path
from meta.local.runner import RUNS_DIR
from meta.local.runs import (
    Run,
    clean_up,
    default_unit,
    find_runs,
    find_unit,
    holds_run,
    is_current_folder,
    log_chunks,
    parse_age,
    read_run,
    skipped_because,
    unit_logs,
)

if TYPE_CHECKING:
    from meta.kube.api import KubeApi
    from meta.kube.history import Histories

COUNTS = ("succeeded", "failed", "skipped", "cancelled", "cached", "running")
MAX_CACHED_SHOWN = 100
"""Cache hits a status names with their source run (as the operator's status keeps them)."""
CACHED_LINES = 10
MAX_ATTEMPT_UNITS = 20
"""Units whose attempts the text lists; JSON lists them all."""
STDERR_LINES = 5
"""Lines of an attempt's stderr tail the text shows."""


def _is_local(target: str) -> bool:
    """A folder holding a run, or anything that looks like a path, is a workdir; anything else
    is the name of a MetaFlow (whose names hold no '/')."""
    return os.sep in target or holds_run(Path(target))


@click.command()
@click.argument("folder", required=False, type=Place(path_type=Path))
@OUTPUT
@user_errors
def runs(folder: Path | None, fmt: str) -> None:
    """List the local runs under FOLDER, past and running [default: runs, where `meta run`
    puts them]."""
    runs_found, faults = find_runs(folder or RUNS_DIR)
    for fault in faults:
        for line in fault.faults:
            click.echo(f"skipped: {line}", err=True)
    views = [local_view(run) for run in runs_found]
    if fmt == "json":
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo(f"no runs under {display_path(folder or RUNS_DIR)}")
        return
    header = ("WORKDIR", "FLOW", "STATE", "STARTED", "DURATION", *(c.upper() for c in COUNTS))
    rows = [
        (
            view["run"],
            view["flow"],
            view["state"],
            _when(view["startedAt"]),
            duration(view["durationSeconds"]),
            *(str(view["units"][c]) for c in COUNTS),
        )
        for view in views
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@click.command()
@click.argument("target", metavar="WORKDIR|NAME")
@click.option(
    "--unit",
    "unit",
    metavar="UNIT",
    help="Show every attempt of this unit (an id, or a name or end of one that only one unit "
    "has), even a single one.",
)
@NAMESPACE
@KUBECONFIG
@OUTPUT
@user_errors
def status(
    target: str, unit: str | None, namespace: str, kubeconfig: Path | None, fmt: str
) -> None:
    """Show a run's state, times, unit counts and sections, and every attempt of the units
    tried more than once: a local WORKDIR, or the MetaFlow NAME in the cluster."""
    if _is_local(target):
        run = read_run(Path(target))
        asked = find_unit(run, unit).id if unit else None
        view = local_view(run, asked)
    else:
        view = asyncio.run(_cluster_status(target, unit, namespace, kubeconfig))
    if fmt == "json":
        click.echo(json.dumps(view, indent=2))
        return
    for line in describe(view):
        click.echo(line)


async def _cluster_status(
    name: str, unit: str | None, namespace: str, kubeconfig: Path | None
) -> dict[str, Any]:
    from meta.kube.api import NotFound
    from meta.kube.apply import status_view
    from meta.kube.history import flow_histories

    api = _cluster(name, kubeconfig)
    where = f"metaflow {namespace}/{name}"
    try:
        resource = await api.get_flow(namespace, name)
        found = await flow_histories(api, resource, every=unit is not None)
    except NotFound:
        raise UserError(Fault(where, "", "no such MetaFlow")) from None
    finally:
        api.close()
    asked = _asked(where, found, unit) if unit else None
    return {
        **status_view(resource),
        "attempts": [
            {**entry, **found.unattempted.get(entry["id"], {})}
            for entry in attempts_view(found.attempts, found.names, asked)
        ],
        "attemptsMissing": found.missing or None,
    }


def _asked(where: str, found: Histories, given: str) -> str:
    """The unit of the journal's that `given` names, as `find_unit` finds a local run's."""
    known = [*found.attempts, *found.unattempted]
    if given in known:
        return given
    matches = [uid for uid in known if found.names.get(uid) == given or uid.endswith("/" + given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        reason = f"{given!r} names {len(matches)} units; give one of: {', '.join(matches[:10])}"
    else:
        reason = f"no attempt of a unit {given!r} has ended on the journal's record"
        if found.archive:
            reason += (
                " (its journal was compacted: the cluster keeps no record of a unit that "
                f"succeeded at its first attempt; every record is in the store, at {found.archive})"
            )
        elif found.missing:
            reason += f" ({found.missing})"
    raise UserError(Fault(where, "", reason))


def _cluster(name: str, kubeconfig: Path | None) -> KubeApi:
    """The cluster's API; a UserError saying why NAME was looked for there when none is set."""
    try:
        api: KubeApi = kube_api(kubeconfig)
    except UserError as exc:
        (fault,) = exc.faults
        reason = (
            f"no run folder here, and no cluster to look it up in ({fault.file}: {fault.reason})"
        )
        raise UserError(Fault(name, "", reason)) from None
    return api


@click.command()
@click.argument("target", metavar="WORKDIR|NAME")
@click.argument("unit", required=False)
@click.option("--attempt", type=click.IntRange(min=1), help="This attempt [default: the last one].")
@click.option("-f", "--follow", is_flag=True, help="Go on printing while the attempt runs.")
@NAMESPACE
@KUBECONFIG
@OUTPUT
@user_errors
def logs(
    target: str,
    unit: str | None,
    attempt: int | None,
    follow: bool,
    namespace: str,
    kubeconfig: Path | None,
    fmt: str,
) -> None:
    """Print a unit's standard output and error (by default the failed unit's, last attempt):
    from a local WORKDIR, or from the pods of the MetaFlow NAME. UNIT is a unit id, or a name
    or end of one (`root.0/sum`) that only one unit has."""
    if follow and fmt == "json":
        raise click.UsageError("--follow prints as the unit writes: it takes no -o json")
    try:
        if _is_local(target):
            run = read_run(Path(target))
            chosen = find_unit(run, unit) if unit else default_unit(run)
            found = unit_logs(run, chosen, attempt)
            header = {"run": display_path(run.workdir), "unit": chosen.id, "attempt": found.attempt}
            _print_logs(header, log_chunks(found, follow=follow), fmt)
            return
        asyncio.run(_cluster_logs(target, unit, attempt, follow, namespace, kubeconfig, fmt))
    except KeyboardInterrupt:
        # Ctrl-C is how a person stops following: no traceback for it.
        sys.exit(EXIT_INTERRUPTED)


async def _cluster_logs(
    name: str,
    unit: str | None,
    attempt: int | None,
    follow: bool,
    namespace: str,
    kubeconfig: Path | None,
    fmt: str,
) -> None:
    from meta.kube.apply import unit_log

    api = _cluster(name, kubeconfig)
    try:
        found = await unit_log(api, namespace, name, unit, attempt, follow=follow)
        header = {
            "run": f"{namespace}/{name}",
            "unit": found.unit,
            "attempt": found.attempt,
            "pod": found.pod,
            "container": found.container,
        }
        if fmt == "json":
            _print_logs(header, [item async for item in _encoded(found.chunks)], fmt)
        else:
            await _print_async(header, found.chunks)
    finally:
        api.close()


async def _encoded(chunks: AsyncIterator[tuple[str, str]]) -> AsyncIterator[tuple[str, bytes]]:
    async for stream, text in chunks:
        yield stream, text.encode()


async def _print_async(header: Mapping[str, Any], chunks: AsyncIterator[tuple[str, str]]) -> None:
    wrote = False
    async for stream, text in chunks:
        wrote = _write(stream, text.encode()) or wrote
    _nothing(header, wrote)


def _print_logs(header: Mapping[str, Any], chunks: Iterable[tuple[str, bytes]], fmt: str) -> None:
    """Standard output to standard output and standard error to standard error, as the step
    wrote them; or one JSON document holding both."""
    if fmt != "json":
        wrote = False
        for stream, data in chunks:
            wrote = _write(stream, data) or wrote
        _nothing(header, wrote)
        return
    texts = {"out": b"", "err": b""}
    for stream, data in chunks:
        texts[stream] += data
    click.echo(
        json.dumps(
            {
                **header,
                "stdout": texts["out"].decode("utf-8", "replace"),
                "stderr": texts["err"].decode("utf-8", "replace"),
            },
            indent=2,
        )
    )


def _nothing(header: Mapping[str, Any], wrote: bool) -> None:
    """Say so when there was nothing to print: an empty answer could be mistaken for a fault."""
    if not wrote:
        click.echo(f"({header['unit']} attempt {header['attempt']} wrote no output)", err=True)


def _write(stream: str, data: bytes) -> bool:
    """Write `data` where the step wrote it; whether there was any."""
    target = sys.stdout if stream == "out" else sys.stderr
    target.buffer.write(data)
    target.flush()
    return bool(data)


@click.command()
@click.argument("folder", required=False, type=Place(path_type=Path))
@click.option(
    "--older-than",
    "age",
    default="7d",
    show_default=True,
    metavar="AGE",
    help="Remove runs unchanged for this long (30m, 12h, 7d, 2w).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@OUTPUT
@user_errors
def clean(folder: Path | None, age: str, dry_run: bool, fmt: str) -> None:
    """Remove old runs under FOLDER [default: runs], and the RAM scratch (/dev/shm/meta-*)
    that sessions killed before their end left behind. A running run is never removed, nor
    anything in a workdir that its run did not write."""
    try:
        seconds = parse_age(age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    done, faults = clean_up(folder or RUNS_DIR, seconds, dry_run=dry_run)
    for fault in faults:
        for line in fault.faults:
            click.echo(f"skipped: {line}", err=True)
    if fmt == "json":
        removed = {
            "dryRun": dry_run,
            "runs": [display_path(run.workdir) for run in done.runs],
            "kept": [display_path(workdir) for workdir in done.kept],
            "inUse": [display_path(workdir) for workdir in done.in_use],
            "scratch": [str(folder) for folder in done.scratch],
        }
        click.echo(json.dumps(removed, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for run in done.runs:
        shown = f"{display_path(run.workdir)} ({run.flow}, {run.state})"
        if run.workdir in done.kept:
            shown = f"the run in {shown}; the folder stays: {_why_kept(run.workdir)}"
        click.echo(f"{verb} {shown}")
    for scratch in done.scratch:
        click.echo(f"{verb} {scratch} (scratch of a dead session)")
    for workdir in done.in_use:
        shown = display_path(workdir)
        click.echo(f"left {shown} whole: the current folder is inside it (cd out first)")
    if not done.runs and not done.scratch and not done.in_use:
        click.echo("nothing to remove")


def _why_kept(workdir: Path) -> str:
    """Why `clean` leaves a run's folder: files of the user's in it, or `meta` runs in it (a
    process's current folder is not removed from under it)."""
    if is_current_folder(workdir):
        return "it is the current folder"
    return "it holds files the run did not write"


def local_view(run: Run, unit: str | None = None) -> dict[str, Any]:
    """A local run in the shape of `meta.kube.apply.status_view` with the attempts `meta
    status` adds to it (of `unit` too, when given)."""
    names = {uid: seen.name for uid, seen in run.units.items()}
    return {
        "run": display_path(run.workdir),
        "flow": run.flow,
        "state": run.state,
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "durationSeconds": round(run.duration, 3),
        "units": {name: getattr(run.counts, name) for name in COUNTS},
        "failedUnit": run.failed_unit,
        "failedUnits": list(run.failed_units),
        "reason": run.reason,
        "conditions": [],
        "sections": [dict(section) for section in run.sections],
        "outputs": run.outputs,
        "cachedUnits": [
            {"id": unit.id, "from": unit.cached_from}
            for unit in run.units.values()
            if unit.cached_from
        ][:MAX_CACHED_SHOWN],
        "result": run.result,
        "attempts": [
            _with_end(run, entry, unit) for entry in attempts_view(run.histories, names, unit)
        ],
        "attemptsMissing": None,
    }


def _with_end(run: Run, entry: dict[str, Any], asked: str | None) -> dict[str, Any]:
    """A shown unit's attempts and how it ended: a skipped or cached unit made none. Only the
    unit asked for (`--unit`) shows its result: the others are shown for their attempts."""
    seen = run.units.get(entry["id"])
    if seen is None:
        return entry
    ended = {"state": seen.state, "reason": seen.reason}
    if entry["id"] == asked:
        ended["result"] = seen.result
    if seen.cached_from:
        ended["cachedFrom"] = seen.cached_from
    return {**entry, **ended}


def attempts_view(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    names: Mapping[str, str],
    unit: str | None,
) -> list[dict[str, Any]]:
    """Every attempt of the units tried more than once, and of `unit`, as status shows them:
    the same for a local run (its report or journal) and a MetaFlow (its journal)."""
    attempts = {uid: _last_of_each(history) for uid, history in histories.items()}
    shown = [uid for uid, history in attempts.items() if len(history) > 1 or uid == unit]
    if unit is not None and unit not in histories:
        shown.append(unit)
    return [
        {
            "id": uid,
            "name": names.get(uid) or uid.rsplit("/", 1)[-1],
            "history": [_attempt(entry) for entry in attempts.get(uid, ())],
        }
        for uid in shown
    ]


def _last_of_each(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record per attempt, its last: an attempt cancelled while it waited to be retried is
    on record twice (failed, to be retried; then cancelled), and is one attempt."""
    last: dict[Any, Mapping[str, Any]] = {}
    for entry in history:
        last[entry["attempt"]] = entry
    return list(last.values())


def _attempt(entry: Mapping[str, Any]) -> dict[str, Any]:
    started, finished = entry["startedAt"], entry.get("finishedAt")
    took = None if finished is None else round(max(0.0, finished - started), 3)
    return {
        "attempt": entry["attempt"],
        "state": entry["state"],
        "startedAt": _iso(started),
        "finishedAt": _iso(finished),
        "durationSeconds": took,
        "exitCode": entry.get("exitCode"),
        "reason": entry.get("reason") or "",
        "stderrTail": entry.get("stderrTail") or "",
    }


def describe(view: Mapping[str, Any]) -> Iterator[str]:
    """A status view in words, the same for a local run and a MetaFlow."""
    yield f"{view['run']}: {view['state']}"
    took = duration(view["durationSeconds"])
    yield f"  flow {view['flow']}, started {_when(view['startedAt'])}, took {took}"
    counts = [f"{n} {state}" for state, n in view["units"].items() if n is not None]
    yield f"  units: {', '.join(counts)}"
    for item in view["conditions"]:
        yield f"  condition {item['type']}={item['status']}: {item['message']}"
    failed = view.get("failedUnits") or []
    if len(failed) > 1:
        yield f"  failed units ({len(failed)}): {', '.join(failed)}"
    elif view["failedUnit"]:
        yield f"  failed unit: {view['failedUnit']}"
    for line in str(view["reason"] or "").splitlines():
        yield f"  {printable(line)}"
    yield from _attempt_lines(view.get("attempts") or [], view.get("attemptsMissing"))
    for section in view["sections"]:
        yield (
            f"  section {section['id']}: {section['pattern']} ({section['scope']}), "
            f"peak {section['peakActive']}/{section['maxActive']}, {section['unitsRun']} units"
            + (", failed" if section.get("state") == "failed" else "")
        )
    hits = view.get("cachedUnits") or []
    for hit in hits[:CACHED_LINES]:
        yield f"  cached {hit['id']} (from {hit['from']})"
    if len(hits) > CACHED_LINES:
        yield f"  ... and {len(hits) - CACHED_LINES} more cached"
    if view["outputs"]:
        yield f"  outputs: {view['outputs']}"
    if view.get("result") is not None:
        yield f"  result: {shown_result(view['result'])}"


def _attempt_lines(units: Sequence[Mapping[str, Any]], missing: str | None) -> Iterator[str]:
    """Each shown unit's attempts, one line each and the last lines of its stderr tail: what
    `argo get` shows of a node's retries."""
    for unit in units[:MAX_ATTEMPT_UNITS]:
        history = unit["history"]
        if unit.get("result") is not None:
            yield f"  result of {unit['id']}: {shown_result(unit['result'])}"
        if not history:
            yield _no_attempt(unit)
            continue
        yield f"  attempts of {unit['id']} ({len(history)}):"
        for entry in history:
            code = "" if entry["exitCode"] is None else f", exit code {entry['exitCode']}"
            took = (
                ""
                if entry["durationSeconds"] is None
                else f", took {duration(entry['durationSeconds'])}"
            )
            why = f": {printable(entry['reason'])}" if entry["reason"] else ""
            yield (
                f"    {entry['attempt']}. {entry['state']}{code}, started "
                f"{_when(entry['startedAt'])}{took}{why}"
            )
            tail = entry["stderrTail"].splitlines()
            if len(tail) > STDERR_LINES:
                yield f"       | ... ({len(tail) - STDERR_LINES} lines before; -o json has them)"
            for line in tail[-STDERR_LINES:]:
                yield f"       | {printable(line)}"
    if len(units) > MAX_ATTEMPT_UNITS:
        more = len(units) - MAX_ATTEMPT_UNITS
        yield f"  ... and {more} more units tried more than once (--unit UNIT, or -o json)"
    if missing:
        yield f"  attempts not shown: {missing}"


def _no_attempt(unit: Mapping[str, Any]) -> str:
    if unit.get("state") == "skipped":
        return f"  {unit['id']} {skipped_because(unit.get('reason') or '')}"
    if unit.get("state") == "cached":
        source = unit.get("cachedFrom") or "an earlier session"
        return f"  {unit['id']} was not run again: its outputs are those of {source}"
    return f"  attempts of {unit['id']}: none ended yet"


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(iso: str | None) -> str:
    """An ISO time (UTC) in this machine's local time, to the second."""
    if not iso:
        return "-"
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
