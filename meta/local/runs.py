"""Reading workdirs after the fact, or while they run: the runs under a folder, one run's state
and counts, a unit's logs, and what `meta clean` may remove.

Nothing here writes a workdir; only `clean` removes runs (what they wrote in their workdirs)
and RAM scratch. A run's state comes from its files and from whether the session that wrote
them is still alive:

- the journal's last `session` record names the session (pid and time); it is alive when that
  pid is a process that started no later than the record (so a pid the kernel reused for
  another program is not mistaken for it);
- a live session's run is `running`; otherwise `report.json`, when it was written after the last
  session began, says how the run ended (`succeeded`, `failed`, `cancelled`);
- otherwise the session died without a report (`kill -9`, a crash): `interrupted`.

While a run is live its counts come from the journal; once it ended, from its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta.engine.records import (
    ATTEMPT_ENDS,
    CONDITION,
    UPSTREAM_FAILED,
    UnitRecord,
    add_attempt,
)
from meta.errors import Fault, UserError
from meta.flow.files import display_path
from meta.flow.reading import read_regular_bytes
from meta.local.driver import LOGS, OWNER_FILE, RUN_TOKEN, kill_leftovers, scratch_root, unit_tag
from meta.local.journal import JOURNAL, RECORD_FIELDS
from meta.local.lock import lock_holder
from meta.local.runner import REPORT_FILE, RUN_FILE, WRITTEN
from meta.trees import remove_tree

SCRATCH_BASE = Path("/dev/shm")
"""Where sessions keep their RAM scratch (see `scratch_root`)."""
SCRATCH_NAME = re.compile(r"meta-[0-9a-f]{12}")
STARTING_SECONDS = 60.0
"""A run whose journal names no session yet is taken as starting (so running, never cleaned)
for this long after its run.json was written: its session records itself only once its
journal and scratch are set up."""
MAX_DEPTH = 4
"""How deep under a folder runs are looked for (`runs/<flow>-<time>` is one level)."""
FOLLOW_SECONDS = 0.2
TIMESTAMP_SLACK = 0.05
"""File times may be a few milliseconds coarse: a log copied just after its attempt started
must not look older than the attempt. (An earlier session's log is older by at least the time
`meta` takes to start.)"""
MAX_LISTED = 10
"""Candidates named in an error at most."""
COUNTED = ("succeeded", "failed", "cancelled", "cached", "running", "skipped")


@dataclass(frozen=True)
class Counts:
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    cached: int = 0
    """Units that succeeded in an earlier session and were not run again."""
    running: int = 0
    skipped: int = 0
    """Units not run: their `when` was false, or a unit they read failed."""


@dataclass(frozen=True)
class Unit:
    """What a run's files say of one step."""

    id: str
    name: str
    state: str
    attempt: int
    """Its last attempt started (attempts count from 1 again in each session)."""
    started_at: float
    """When that attempt started."""
    cached_from: str = ""
    """The run whose outputs it reused, for a unit the cache had."""
    reason: str = ""
    """Why a skipped unit was (`condition`, `upstream-failed`), or why one failed."""
    result: Any = None
    """What it wrote to META_RESULT (or the cache entry it reused kept)."""


@dataclass(frozen=True)
class Run:
    workdir: Path
    flow: str
    state: str
    """running, succeeded, failed, cancelled or interrupted."""
    started_at: float
    finished_at: float | None
    last_active: float
    """When its files last changed: how old it is for `meta clean`."""
    counts: Counts
    units: Mapping[str, Unit]
    sections: Sequence[Mapping[str, Any]] = ()
    failed_unit: str | None = None
    failed_units: tuple[str, ...] = ()
    """Every unit that failed (a section with `onFailure: continue` may fail several)."""
    reason: str | None = None
    outputs: str | None = None
    result: Any = None
    """The flow's result (its root unit's), once it succeeded."""
    histories: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    """Every attempt each unit made (`attempt_entry`'s shape), those of earlier sessions too."""

    @property
    def duration(self) -> float:
        end = self.finished_at
        if end is None:
            end = time.time() if self.state == "running" else self.last_active
        return max(0.0, end - self.started_at)

    @property
    def token(self) -> str:
        """The RUN_TOKEN its steps carry (the name of its scratch folder)."""
        return scratch_root(self.workdir).name


@dataclass
class _Seen:
    name: str
    state: str
    attempt: int
    started_at: float
    session: int
    cached_from: str = ""
    reason: str = ""
    result: Any = None


@dataclass
class _Journal:
    sessions: list[tuple[int, float]] = field(default_factory=list)
    units: dict[str, _Seen] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def read_run(workdir: Path) -> Run:
    """The run in `workdir`; a folder that holds none, or whose files are not a run's, is a
    UserError naming it."""
    info_path = workdir / RUN_FILE
    try:
        info = json.loads(read_regular_bytes(info_path))
    except FileNotFoundError:
        raise UserError(Fault(display_path(workdir), "", "no run here (no run.json)")) from None
    except NotADirectoryError:
        # A flow file given where a run's workdir is asked for, most often.
        raise UserError(
            Fault(display_path(workdir), "", "not a run's workdir (a file, not a folder)")
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(Fault(display_path(info_path), "", f"unreadable: {exc}")) from None
    if not isinstance(info, dict) or not isinstance(info.get("startedAt"), int | float):
        raise UserError(Fault(display_path(info_path), "", "not a run record (no startedAt)"))
    journal = _read_journal(workdir / JOURNAL)
    report = _read_report(workdir / REPORT_FILE)
    last = journal.sessions[-1] if journal.sessions else None
    if last is not None and session_alive(*last):
        state = "running"
    elif last is None and report is None:
        holder = lock_holder(workdir)
        if holder is not None:
            # Killed before its journal named it, or starting: the lock names the session.
            state = "running" if session_alive(*holder) else "interrupted"
        else:
            starting = time.time() - _mtime(info_path) < STARTING_SECONDS
            state = "running" if starting else "interrupted"
    elif report is not None and (last is None or report.get("finishedAt", 0) >= last[1]):
        state = str(report.get("state", "interrupted"))
    else:
        state = "interrupted"
    name = info.get("name") or _flow_name(report, info)
    active = max(_mtime(workdir / f) for f in (RUN_FILE, JOURNAL, REPORT_FILE))
    units = _units(journal, report if state not in ("running", "interrupted") else None)
    common: dict[str, Any] = {
        "workdir": workdir,
        "flow": str(name),
        "state": state,
        "started_at": float(info["startedAt"]),
        "last_active": active,
        "units": units,
        "histories": journal.histories,
    }
    if state in ("running", "interrupted"):
        reason = None
        if state == "interrupted" and last is not None:
            reason = (
                f"its session (pid {last[0]}) ended without a report: `meta resume` the workdir"
            )
        return Run(
            **common,
            finished_at=None,
            counts=_journal_counts(journal, alive=state == "running"),
            reason=reason,
        )
    assert report is not None
    # The report has the last session's cancelled attempts, which the journal does not.
    common["histories"] = {
        str(entry["id"]): entry["history"] for entry in report["units"] if entry.get("history")
    }
    error = report.get("error") or {}
    reason = error.get("reason") or "; ".join(error.get("faults", [])) or None
    return Run(
        **common,
        finished_at=float(report.get("finishedAt", active)),
        counts=_report_counts(report),
        sections=tuple(report.get("sections", [])),
        failed_unit=error.get("unit"),
        failed_units=tuple(str(f.get("unit")) for f in error.get("failures", [])),
        reason=reason,
        outputs=report.get("outputs"),
        result=report.get("result"),
    )


def find_runs(root: Path) -> tuple[list[Run], list[UserError]]:
    """The runs in `root` or in folders under it (not inside a run), oldest first, and the
    faults of folders that hold a run.json that cannot be read, or that cannot be read
    themselves (skipped)."""
    try:
        is_folder = root.is_dir()
    except OSError as exc:  # under a folder that cannot be searched
        raise _unreadable(root, exc) from None
    if not is_folder:
        raise UserError(Fault(display_path(root), "", "no such folder"))
    runs: list[Run] = []
    faults: list[UserError] = []
    for folder in _run_folders(root, MAX_DEPTH, faults):
        try:
            runs.append(read_run(folder))
        except UserError as exc:
            faults.append(exc)
    runs.sort(key=lambda run: run.started_at)
    return runs, faults


def holds_run(folder: Path) -> bool:
    """Whether `folder` holds a run (a run.json); a folder that cannot be searched (its
    permissions, /proc) is a UserError naming it."""
    try:
        os.stat(folder / RUN_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise _unreadable(folder, exc) from None
    return True


def _run_folders(folder: Path, depth: int, unreadable: list[UserError]) -> Iterator[Path]:
    """The folders holding a run in `folder` and `depth` levels under it; a folder that cannot
    be read is skipped and its fault added to `unreadable`."""
    try:
        if holds_run(folder):
            yield folder
            return
        if depth == 0:
            return
        with os.scandir(folder) as entries:
            children = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except UserError as exc:
        unreadable.append(exc)
        return
    except OSError as exc:
        unreadable.append(_unreadable(folder, exc))
        return
    for child in children:
        yield from _run_folders(folder / child, depth - 1, unreadable)


def _unreadable(folder: Path, exc: OSError) -> UserError:
    return UserError(Fault(display_path(folder), "", f"unreadable: {exc.strerror or exc}"))


def session_alive(pid: int, at: float) -> bool:
    """Whether process `pid` is the session that recorded itself at `at`: it exists and
    started no later than that (a later start is another program that got the pid again)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        # No /proc (not Linux): the pid alone.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # Fields after the command name, which may hold spaces and parentheses; the 22nd field of
    # the line (the 20th after the name) is the start time in clock ticks since boot.
    ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
    started = _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    # The boot time is given in whole seconds.
    return started <= at + 1.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _read_journal(path: Path) -> _Journal:
    journal = _Journal()
    try:
        data = read_regular_bytes(path)
    except FileNotFoundError:
        return journal
    except OSError as exc:
        raise UserError(Fault(display_path(path), "", f"unreadable: {exc}")) from None
    # A line still being written (or torn by a kill) is left for its writer.
    whole = data[: data.rfind(b"\n") + 1]
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            entry = json.loads(line)
            event = entry["event"]
            if event == "session":
                journal.sessions.append((int(entry["pid"]), float(entry["at"])))
                continue
            uid = str(entry["id"])
            session = len(journal.sessions) - 1
            seen = journal.units.get(uid)
            name = seen.name if seen is not None else uid.rsplit("/", 1)[-1]
            if event == "started":
                attempt, at = int(entry["attempt"]), float(entry["at"])
                journal.units[uid] = _Seen(name, "running", attempt, at, session)
            elif event == "finished":
                # A failed attempt followed by another (a retry) leaves the unit running.
                state = "running" if entry.get("retrying") else str(entry["state"])
                journal.units[uid] = _Seen(
                    str(entry["name"]),
                    state,
                    int(entry["attempts"]),
                    float(entry["started_at"]),
                    session,
                    str(entry.get("cached_from") or ""),
                    str(entry.get("reason") or ""),
                    entry.get("result"),
                )
                if entry["state"] in ATTEMPT_ENDS:
                    fields = {name: entry[name] for name in RECORD_FIELDS if name in entry}
                    add_attempt(journal.histories.setdefault(uid, []), UnitRecord(**fields))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise UserError(
                Fault(display_path(path), f"/{number - 1}", f"line {number} is not a record: {exc}")
            ) from None
    return journal


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(read_regular_bytes(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(Fault(display_path(path), "", f"unreadable: {exc}")) from None
    if not isinstance(report, dict) or not isinstance(report.get("units", []), list):
        raise UserError(Fault(display_path(path), "", "not a report"))
    return report


def _flow_name(report: Mapping[str, Any] | None, info: Mapping[str, Any]) -> str:
    """The flow's name where run.json does not hold it (written before it did)."""
    if report is not None and report.get("flow"):
        return str(report["flow"])
    return Path(str(info.get("flow", "?"))).name.split(".")[0]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _units(journal: _Journal, report: Mapping[str, Any] | None) -> dict[str, Unit]:
    units = {
        uid: Unit(
            uid,
            seen.name,
            seen.state,
            seen.attempt,
            seen.started_at,
            seen.cached_from,
            seen.reason,
            seen.result,
        )
        for uid, seen in journal.units.items()
    }
    for entry in report.get("units", []) if report is not None else ():
        uid = str(entry["id"])
        # The report has the last session's cancelled units, which the journal does not.
        state = _shown_state(entry)
        attempt, at = int(entry["attempts"]), float(entry["startedAt"])
        cached_from = str(entry.get("cachedFrom") or "")
        reason, result = str(entry.get("reason") or ""), entry.get("result")
        units[uid] = Unit(uid, str(entry["name"]), state, attempt, at, cached_from, reason, result)
    return units


def _journal_counts(journal: _Journal, *, alive: bool) -> Counts:
    last = len(journal.sessions) - 1
    counts = dict.fromkeys(COUNTED, 0)
    for seen in journal.units.values():
        if seen.state in ("cached", "skipped"):
            counts[seen.state] += 1
        elif seen.state == "succeeded":
            counts["succeeded" if seen.session == last else "cached"] += 1
        elif seen.session != last:
            # Failed or stopped in an earlier session: it runs again when it is reached.
            continue
        elif seen.state in ("failed", "skipped", "cancelled"):
            counts[seen.state] += 1
        else:
            # Started and not finished: running now, or stopped with its session.
            counts["running" if alive else "cancelled"] += 1
    return Counts(**counts)


def _report_counts(report: Mapping[str, Any]) -> Counts:
    counts = dict.fromkeys(COUNTED, 0)
    for entry in report.get("units", []):
        state = _shown_state(entry)
        if state in counts:
            counts[state] += 1
    return Counts(**counts)


def _shown_state(entry: Mapping[str, Any]) -> str:
    """A report entry's state as status shows it: a unit that succeeded in an earlier session
    is `cached` (a skipped one stays `skipped`)."""
    state = str(entry.get("state"))
    return "cached" if entry.get("resumed") and state == "succeeded" else state


# Units and their logs


def find_unit(run: Run, given: str) -> Unit:
    """The unit `given` names: its id, or a unique name or end of an id (`root.0/sum`)."""
    if given in run.units:
        return run.units[given]
    matches = [
        unit for unit in run.units.values() if unit.name == given or unit.id.endswith("/" + given)
    ]
    if len(matches) == 1:
        return matches[0]
    where = display_path(run.workdir)
    if matches:
        reason = f"{given!r} names {len(matches)} units; give one of: {_listed(matches)}"
    elif run.units:
        reason = f"no unit {given!r}; its units: {_listed(list(run.units.values()))}"
    else:
        reason = f"no unit {given!r}: no unit has started"
    raise UserError(Fault(where, "", reason))


def default_unit(run: Run) -> Unit:
    """The unit to show when none is named: the one that failed the run, or its only one."""
    if run.failed_unit is not None and run.failed_unit in run.units:
        return run.units[run.failed_unit]
    if len(run.units) == 1:
        return next(iter(run.units.values()))
    listed = _listed(list(run.units.values())) or "none has started"
    raise UserError(Fault(display_path(run.workdir), "", f"name a unit; its units: {listed}"))


def _listed(units: Sequence[Unit]) -> str:
    shown = ", ".join(unit.id for unit in units[:MAX_LISTED])
    more = len(units) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


_Live = tuple[int, Path | None, Path | None]
"""A running step's pid, and the files its standard output and error go to."""


@dataclass(frozen=True)
class Logs:
    """Where one attempt's standard output and error are (None: it wrote none, or none yet)."""

    unit: Unit
    attempt: int
    stdout: Path | None
    stderr: Path | None
    pid: int | None = None
    """The step's process, when the attempt is running now (its logs are in its scratch)."""


def unit_logs(run: Run, unit: Unit, attempt: int | None = None) -> Logs:
    # Nothing of it ran: an empty answer would read as an attempt that printed nothing.
    never = None
    if unit.state == "skipped":
        never = skipped_because(unit.reason)
    elif unit.state == "failed" and unit.attempt == 0:
        never = f"failed before it started ({unit.reason}): it never ran"
    if never is not None:
        raise UserError(
            Fault(display_path(run.workdir), "", f"unit {unit.id} {never} and has no logs")
        )
    kept = run.workdir / LOGS / unit.id
    attempts = {unit.attempt} if unit.state in ("running", "failed", "succeeded") else set()
    # Those on record, and those that kept logs (a cancelled attempt that wrote nothing kept
    # none, and is an attempt all the same).
    attempts |= {int(entry["attempt"]) for entry in run.histories.get(unit.id, ())}
    with contextlib.suppress(OSError):
        attempts |= {int(p.stem) for p in kept.iterdir() if p.stem.isdigit()}
    chosen = attempt if attempt is not None else unit.attempt
    if attempts and chosen not in attempts:
        listed = ", ".join(str(n) for n in sorted(attempts))
        raise UserError(
            Fault(
                display_path(run.workdir),
                "",
                f"unit {unit.id} has no attempt {chosen}; its attempts: {listed}",
            )
        )
    if run.state == "running" and unit.state == "running" and chosen == unit.attempt:
        found = _running_step(run.token, unit.id, chosen)
        if found is not None:
            pid, stdout, stderr = found
            return Logs(unit, chosen, stdout, stderr, pid)
    out, err = (_kept(kept / f"{chosen}.{s}", unit, chosen) for s in ("out", "err"))
    return Logs(unit, chosen, out, err)


def skipped_because(reason: str) -> str:
    """Why a skipped unit never ran, in words."""
    if reason == CONDITION:
        return "was skipped (its `when` was false): it never ran"
    if reason == UPSTREAM_FAILED:
        return "was skipped (a unit it reads failed): it never ran"
    return f"was skipped ({reason or 'no reason recorded'}): it never ran"


def _kept(log: Path, unit: Unit, attempt: int) -> Path | None:
    """A kept log of this attempt; None when there is none, or when the one there is older
    than the attempt: an attempt that writes nothing leaves no file, so one of the same
    number from an earlier session would stay (sessions number attempts on from the journal,
    but a start the machine's crash lost from it lets a later session reuse its number)."""
    try:
        written = log.stat().st_mtime
    except OSError:
        # Not there, or a path the system cannot take (a unit id past PATH_MAX: its attempt
        # could not keep its logs either).
        return None
    earlier = written < unit.started_at - TIMESTAMP_SLACK
    return None if earlier and attempt == unit.attempt and unit.state != "cached" else log


def _running_step(
    token: str, uid: str, attempt: int
) -> tuple[int, Path | None, Path | None] | None:
    """The process of a running attempt (the leader of its group: the step's own program)
    and the log files it writes in its scratch, found through /proc by the variables that
    every step's environment holds; a step forked by the warm starter (whose environment as
    /proc shows it is the warm starter's, the run's token without the step's variables) by
    its standard output, the attempt's log in the scratch folder named for the unit."""
    run = f"{RUN_TOKEN}={token}".encode()
    try:
        with os.scandir("/proc") as entries:
            pids = [int(e.name) for e in entries if e.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            environ = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
            if run not in environ or os.getpgid(pid) != pid:
                continue
            streams = [Path(os.readlink(f"/proc/{pid}/fd/{fd}")) for fd in (1, 2)]
        except (OSError, ProcessLookupError):
            continue
        if not _runs_attempt(environ, streams[0], uid, attempt):
            continue
        stdout, stderr = (s if s.is_file() else None for s in streams)
        return pid, stdout, stderr
    return None


def _runs_attempt(environ: set[bytes], stdout: Path, uid: str, attempt: int) -> bool:
    """Whether a process of the run, of this environment (as /proc shows it) and standard
    output, is the attempt's step."""
    if {f"META_UNIT_ID={uid}".encode(), f"META_ATTEMPT={attempt}".encode()} <= environ:
        return True
    if any(variable.startswith(b"META_UNIT_ID=") for variable in environ):
        return False  # another step's
    # Forked by the warm starter: its log is the attempt's, in a folder named for the unit.
    return stdout.name == f"{attempt}.out" and stdout.parent.name.endswith(f"-{unit_tag(uid)}")


def log_chunks(logs: Logs, *, follow: bool) -> Iterator[tuple[str, bytes]]:
    """("out" | "err", bytes): what the attempt wrote so far, and with `follow`, while it
    runs, what it writes next, until it ends. The files are held open, so the copy the
    attempt's end makes and the removal of its scratch lose nothing."""
    handles = []
    for stream, path in (("out", logs.stdout), ("err", logs.stderr)):
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                handles.append((stream, path.open("rb")))
    try:
        while True:
            ended = not follow or logs.pid is None or not Path(f"/proc/{logs.pid}").exists()
            for stream, handle in handles:
                while chunk := handle.read(65536):
                    yield stream, chunk
            if ended:
                return
            time.sleep(FOLLOW_SECONDS)
    finally:
        for _, handle in handles:
            handle.close()


# Cleaning


@dataclass(frozen=True)
class Cleanup:
    runs: list[Run]
    """Runs removed (or, in a dry run, that would be)."""
    kept: list[Path]
    """The workdirs of those runs that stay: they hold files the runs did not write."""
    scratch: list[Path]
    """Scratch folders of dead sessions removed (or that would be)."""
    in_use: list[Path] = field(default_factory=list)
    """The workdirs of old runs, and scratch folders of dead sessions, left whole: the current
    folder is inside what would go."""


def parse_age(text: str) -> float:
    """Seconds from `30s`, `15m`, `12h`, `7d` or `2w`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected a number and a unit (s, m, h, d, w), as in 7d")
    return int(match[1]) * units[match[2]]


def clean_up(
    root: Path, older_than: float, *, dry_run: bool, scratch_base: Path = SCRATCH_BASE
) -> tuple[Cleanup, list[UserError]]:
    """Remove the runs under `root` not running and unchanged for `older_than` seconds, and
    the RAM scratch (under `scratch_base`) of sessions that are dead, with any steps such a
    session left running. A running run, or scratch a live session owns, is never touched."""
    runs, faults = find_runs(root)
    now = time.time()
    old = [run for run in runs if run.state != "running" and now - run.last_active > older_than]
    in_use = [run.workdir for run in old if _holds_current_folder(run)]
    old = [run for run in old if run.workdir not in in_use]
    scratch = list(_dead_scratch(scratch_base, {run.token: run for run in runs}))
    in_use += [folder for folder in scratch if _inside(folder)]
    scratch = [folder for folder in scratch if folder not in in_use]
    if dry_run:
        kept = [run.workdir for run in old if _holds_more(run) or is_current_folder(run.workdir)]
    else:
        old = [run for run in old if _remove_run(run)]
        kept = [run.workdir for run in old if os.path.lexists(run.workdir)]
        for folder in scratch:
            kill_leftovers(folder.name)
            remove_tree(str(folder))
        scratch = [folder for folder in scratch if not folder.exists()]
    return Cleanup(old, kept, scratch, in_use), faults


def _written(run: Run) -> list[str]:
    """The names in its workdir that a run writes there, run.json last."""
    return [*WRITTEN, run.token, RUN_FILE]


def is_current_folder(folder: Path) -> bool:
    """Whether `folder` is this process's current folder: `clean` leaves it (the shell that
    started `meta` is in it), however it was named."""
    try:
        return os.path.samefile(folder, os.curdir)
    except OSError:
        return False


def _holds_current_folder(run: Run) -> bool:
    """Whether the current folder is inside something `clean` removes of the run (its store,
    its logs, its scratch): the shell that started `meta` would be left in a removed folder."""
    return any(_inside(run.workdir / name) for name in _written(run))


def _inside(removed: Path) -> bool:
    """Whether the current folder is `removed` or inside it."""
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:
        return False
    folder = os.path.realpath(removed)
    return here == folder or here.startswith(folder + os.sep)


def _holds_more(run: Run) -> bool:
    """Whether its workdir holds anything the run did not write: a workdir may be any folder
    (a project's own, `--workdir .`), and what the user keeps there is not the run's."""
    try:
        names = set(os.listdir(run.workdir))
    except OSError:
        return False
    return bool(names - set(_written(run)))


def _remove_run(run: Run) -> bool:
    """Remove what the run wrote in its workdir, and the workdir when that leaves it empty;
    whether the run is gone. Its run.json goes last, and only once the rest is gone: a
    removal cut short leaves a run that `clean` finds again."""
    *rest, record = (run.workdir / name for name in _written(run))
    for path in rest:
        remove_tree(str(path))
    if any(os.path.lexists(path) for path in rest):
        return False
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    if not is_current_folder(run.workdir):
        with contextlib.suppress(OSError):
            run.workdir.rmdir()  # fails, as it should, while the folder holds anything else
    return not os.path.lexists(record)


def _dead_scratch(base: Path, runs: Mapping[str, Run]) -> Iterator[Path]:
    """This user's scratch folders whose session is dead: by the owner file a session writes
    there, or, for scratch of an earlier meta that wrote none, by the run it belongs to."""
    try:
        with os.scandir(base) as entries:
            found = [
                Path(e.path)
                for e in entries
                if SCRATCH_NAME.fullmatch(e.name)
                and e.is_dir(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_uid == os.getuid()
            ]
    except OSError:
        return
    for folder in sorted(found):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
            dead = not session_alive(int(owner["pid"]), float(owner["at"]))
        except FileNotFoundError:
            run = runs.get(folder.name)
            # A session writes its owner file just after making the folder: a young folder
            # may be one starting now.
            settled = time.time() - _mtime(folder) > STARTING_SECONDS
            dead = run is not None and run.state != "running" and settled
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
        if dead:
            yield folder
