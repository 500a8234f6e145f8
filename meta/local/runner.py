"""Running a flow locally into a workdir, and resuming a run that was interrupted.

`run.json` in the workdir says what was run (the flow file, its fingerprint, the input overrides);
the journal says how far it got. `meta resume` needs nothing but the workdir.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meta.cachedir import CacheDir, default_cache_dir
from meta.engine.caching import StoreCache, file_digest
from meta.engine.engine import Engine
from meta.engine.records import Listener
from meta.errors import Fault, MetaError, RunFailed, UserError
from meta.flow.files import display_path
from meta.flow.model import FileInput, Input, ValueInput
from meta.flow.reading import read_regular_bytes
from meta.local.driver import LOGS, STORE, LocalDriver
from meta.local.environment import Secrets, digested, missing_sources
from meta.local.interrupts import INTERRUPTS
from meta.local.journal import JOURNAL, FileJournal
from meta.local.lock import LOCK_FILE, lock_holder, session_lock
from meta.local.report import Listeners, ReportBuilder, kept, write_json
from meta.local.reportpath import RUN_RECORD, check_report_path, protected_files
from meta.plan.plan import Given, Plan, compile_plan

RUN_FILE = RUN_RECORD
REPORT_FILE = "report.json"
RUNS_DIR = Path("runs")
"""Where `meta run` puts a workdir when given none (relative to where it runs)."""
WRITTEN = (JOURNAL, REPORT_FILE, LOCK_FILE, STORE, LOGS)
"""What a run writes in its workdir besides its run.json (and, where there is no /dev/shm,
its scratch): a workdir may be any folder (`--workdir .`), so these are all `meta clean`
removes of it, and a folder that holds one of them before the run is refused."""


@dataclass(frozen=True, eq=False)
class Outcome:
    state: str
    report: dict[str, Any]
    report_path: Path | None
    """None: no report was written (the workdir was removed while the run went on)."""
    error: MetaError | None = None


def default_workdir(flow_name: str) -> Path:
    return RUNS_DIR / f"{flow_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _made_unique(workdir: Path) -> Path:
    """`workdir` made new, or `workdir-2`, `-3`...: two runs started in the same second each
    get a folder of their own (mkdir is atomic: exactly one of them makes each name)."""
    workdir.parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        candidate = workdir if number == 1 else workdir.with_name(f"{workdir.name}-{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def start_run(
    flow: Path,
    workdir: Path | None,
    overrides: Given,
    listeners: Sequence[Listener] = (),
    report: Path | None = None,
    secrets: Secrets | None = None,
    cache_dir: Path | None = None,
) -> Outcome:
    """Compile and run `flow`; nothing is written before the flow, its inputs and the
    variables its steps take from elsewhere (`secrets`, `meta`'s environment) are valid.
    Units that say `cache:` share `cache_dir` (default: `default_cache_dir()`) with other runs."""
    secrets = secrets or Secrets()
    with INTERRUPTS.allowed():
        plan = compile_plan(flow, overrides)
    _check_sources(plan, secrets)
    given = workdir
    workdir = workdir or default_workdir(plan.flow.name)
    _outside_runs(workdir)
    if given is not None:
        _fresh(workdir)
        _unclaimed(workdir)
    check_report_path(report, workdir, protected_files(plan))
    try:
        if given is None:
            workdir = _made_unique(workdir)
        else:
            workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            Fault(display_path(workdir), "", f"the workdir cannot be made: {exc.strerror}")
        ) from None
    with INTERRUPTS.deferred(), session_lock(workdir):
        _fresh(workdir)  # again, holding the lock: another session may have started it since
        info = {
            "name": plan.flow.name,
            "flow": str(plan.flow.source),
            # What --set gave, bound: files by absolute path, values as they are (no secret
            # is ever written here).
            "inputs": {
                name: str(bound.path)
                for name in overrides
                if isinstance(bound := plan.inputs[name], FileInput)
            },
            "values": {
                name: bound.value
                for name in overrides
                if isinstance(bound := plan.inputs[name], ValueInput)
            },
            "fingerprint": fingerprint(plan),
            "inputDigests": input_digests(plan),
            "startedAt": time.time(),
            "cacheDir": str(Path(cache_dir or default_cache_dir()).resolve()),
        }
        write_json(workdir / RUN_FILE, info)
        return _execute(plan, workdir, info, listeners, report, secrets)


def _check_sources(plan: Plan, secrets: Secrets) -> None:
    faults = missing_sources(plan, os.environ, secrets)
    if faults:
        raise UserError(faults)


def _fresh(workdir: Path) -> None:
    try:
        held = (workdir / RUN_FILE).exists()
    except OSError as exc:  # a folder that cannot be searched
        raise UserError(Fault(display_path(workdir), "", f"unreadable: {exc.strerror}")) from None
    if held:
        raise UserError(
            Fault(
                display_path(workdir),
                "",
                "this workdir holds a run already: `meta resume` it, or give another --workdir",
            )
        )


def _unclaimed(workdir: Path) -> None:
    """Refuse a workdir holding a file or folder of the name of one a run writes: the run
    would write into or over it, and `meta clean` would remove it with the run. The lock a
    session killed before it wrote its run.json left is not one: the next session takes it."""
    clashes = [name for name in WRITTEN if os.path.lexists(workdir / name)]
    if clashes == [LOCK_FILE] and lock_holder(workdir) is not None:
        clashes = []
    if clashes:
        raise UserError(
            Fault(
                display_path(workdir),
                "",
                f"holds {', '.join(clashes)}, which a run writes there: "
                "give another --workdir (a new folder, or one without these)",
            )
        )


def _outside_runs(workdir: Path) -> None:
    """Refuse a workdir inside another run's store or logs: those are that run's, and `meta
    clean` of it would remove this one with them, running or not; and the file system's root,
    whose `store` and `logs` no run should write (or `meta clean` remove)."""
    if workdir.resolve() == Path(workdir.resolve().anchor):
        raise UserError(
            Fault(display_path(workdir), "", "is the file system's root: give another --workdir")
        )
    for folder in workdir.resolve().parents:
        if folder.name in (STORE, LOGS) and (folder.parent / RUN_FILE).is_file():
            raise UserError(
                Fault(
                    display_path(workdir),
                    "",
                    f"is inside {display_path(folder)}, which belongs to the run in "
                    f"{display_path(folder.parent)}: give a --workdir outside it",
                )
            )


def resume_run(
    workdir: Path,
    listeners: Sequence[Listener] = (),
    report: Path | None = None,
    secrets: Secrets | None = None,
) -> Outcome:
    """Finish the run in `workdir`: units that finished before are not run again. Its
    secrets are given again (`run.json` keeps none)."""
    secrets = secrets or Secrets()
    info_path = workdir / RUN_FILE
    try:
        info = json.loads(read_regular_bytes(info_path))
    except FileNotFoundError:
        raise UserError(Fault(display_path(workdir), "", "no run here (no run.json)")) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(Fault(display_path(info_path), "", f"unreadable: {exc}")) from None
    needed = ("flow", "startedAt", "fingerprint")
    missing = [key for key in needed if not isinstance(info, dict) or key not in info]
    if missing or not all(isinstance(info.get(k, {}), dict) for k in ("inputs", "values")):
        raise UserError(
            Fault(display_path(info_path), "", f"not a run record (missing: {missing or 'inputs'})")
        )
    with INTERRUPTS.allowed():
        plan = compile_plan(Path(info["flow"]), recorded_inputs(info))
    _check_sources(plan, secrets)
    check_report_path(report, workdir, protected_files(plan))
    if fingerprint(plan) != info.get("fingerprint"):
        raise UserError(
            Fault(
                display_path(Path(info["flow"])),
                "",
                "the flow changed since this run started; `meta run` the edited flow instead: "
                "its units with `cache:` reuse what this run made, so only what the edit "
                "changed runs again",
            )
        )
    recorded = info.get("inputDigests")
    now = input_digests(plan)
    changed = (
        [path for path, digest in recorded.items() if now.get(path) != digest]
        if isinstance(recorded, dict)
        else []
    )
    with INTERRUPTS.deferred(), session_lock(workdir):
        return _execute(plan, workdir, info, listeners, report, secrets, changed)


def input_digests(plan: Plan) -> dict[str, str]:
    """The SHA-256 of each data file the run's flows take as an input, by absolute path: what
    `meta resume` compares to say a file changed since the run started (it goes on: a file
    mended after a fault is how such a run is finished)."""
    digests: dict[str, str] = {}
    for current in plan.reachable():
        for bound in current.inputs.values():
            if isinstance(bound, FileInput) and str(bound.path) not in digests:
                digests[str(bound.path)] = _file_digest(bound.path)
    return digests


def _file_digest(path: Path) -> str:
    """A regular file's SHA-256; "" for anything else (a folder, a FIFO, a file gone)."""
    try:
        # Checked first: opening a FIFO given as an input would hold the run up here.
        return file_digest(str(path)) if path.is_file() else ""
    except OSError:
        return ""


def recorded_inputs(info: Mapping[str, Any]) -> dict[str, Input]:
    """The inputs a run was given (`--set`), as run.json records them: files and values."""
    given: dict[str, Input] = {
        name: FileInput(Path(path)) for name, path in dict(info.get("inputs", {})).items()
    }
    given.update({name: ValueInput(value) for name, value in dict(info.get("values", {})).items()})
    return given


def fingerprint(plan: Plan) -> str:
    """What run.json records of the flow run: a digest of its file and of every flow file it
    reaches, or of what a Python file made (the file may read anything, so its own text does
    not say what it makes). A run whose flow's fingerprint is another now was run from another
    flow."""
    digest = hashlib.sha256()
    for current in plan.reachable():
        made_of = current.flow.made_of
        digest.update(made_of.encode() if made_of else current.flow.source.read_bytes())
    return digest.hexdigest()


def _execute(
    plan: Plan,
    workdir: Path,
    info: Mapping[str, Any],
    listeners: Sequence[Listener],
    report_path: Path | None,
    secrets: Secrets,
    changed_inputs: Sequence[str] = (),
) -> Outcome:
    """Run a plan's session in `workdir`; `changed_inputs`: data files a resumed run's earlier
    sessions read as they were before, said in the report."""
    driver = LocalDriver(workdir, secrets=secrets)
    try:
        journal = FileJournal(workdir, kept=driver.take_manifest, stored=driver.outputs)
    except BaseException:
        driver.close()
        raise
    builder = ReportBuilder(journal.history())
    cache_dir = str(info.get("cacheDir") or default_cache_dir())
    cache_root = os.path.realpath(cache_dir)
    cache = StoreCache(
        CacheDir(cache_dir),
        run=str(workdir.resolve()),
        outputs=driver.outputs,
        placed=driver.restored,
        env_value=lambda value: digested(value, os.environ, secrets),
        kept_out=lambda folder: (
            os.path.isfile(os.path.join(folder, RUN_FILE)) or os.path.realpath(folder) == cache_root
        ),
    )
    engine = Engine(
        plan, driver, listener=Listeners([builder, *listeners]), journal=journal, cache=cache
    )
    outputs: str | None = None
    result: Any = None
    error: MetaError | None = None
    try:
        journal.record_session(at=time.time(), pid=os.getpid())
        done = asyncio.run(_main(engine))
        outputs = kept(driver.shown_outputs(done.unit_id))
        result = done.result
        state = "succeeded" if INTERRUPTS.received is None else "cancelled"
    except (RunFailed, UserError) as exc:
        state, error = "failed", exc
    except OSError as exc:
        state, error = "failed", MetaError(f"the run's workdir could not be written: {exc}")
    except (KeyboardInterrupt, asyncio.CancelledError):
        state = "cancelled"
    finally:
        driver.close()
        try:
            journal.close()
        except OSError as exc:
            state, error = "failed", MetaError(f"the journal could not be written: {exc}")
    report = builder.build(
        flow=plan.flow.name,
        state=state,
        started_at=float(info["startedAt"]),
        finished_at=time.time(),
        outputs=outputs,
        result=result,
        outputs_of=driver.shown_outputs,
        bytes_persisted=driver.traffic.persisted,
        bytes_staged=driver.traffic.staged,
        error=_error(error),
    )
    rerun = journal.rerun()
    if rerun:
        report["rerun"] = [{"id": uid, "reason": reason} for uid, reason in rerun]
    if changed_inputs:
        report["changedInputs"] = list(changed_inputs)
    target = report_path
    if not journal.lost:
        # A workdir removed while the run went on is not made again to hold a report.
        write_json(workdir / REPORT_FILE, report)
        target = target or workdir / REPORT_FILE
    if report_path is not None:
        write_json(report_path, report)
    return Outcome(state, report, target, error)


async def _main(engine: Engine) -> Any:
    """Run the engine; SIGINT or SIGTERM (now, or noted before the loop began) cancels it."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    if INTERRUPTS.installed:
        # The handler stays Python's own (never the default, not for an instant); it hands the
        # cancel to the loop through its self-pipe, safe from inside a signal handler.
        INTERRUPTS.on_signal = lambda: loop.call_soon_threadsafe(cancel_once, task)
        try:
            if INTERRUPTS.received is not None:
                raise asyncio.CancelledError
            return await engine.run()
        finally:
            INTERRUPTS.on_signal = None
    loop.add_signal_handler(signal.SIGTERM, cancel_once, task)
    try:
        return await engine.run()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def cancel_once(task: asyncio.Task[Any]) -> None:
    """Cancel the run, unless a signal already has: a second signal (`timeout` sends one to
    `meta` and one to its process group) would cut short the first one's tear-down, and the
    steps it was stopping would stay `running` in the journal and the report."""
    if not task.cancelling():
        task.cancel()


def _error(error: MetaError | None) -> dict[str, Any] | None:
    if isinstance(error, RunFailed):
        return {
            "unit": error.unit_id,
            "reason": error.reason,
            "stderrTail": error.stderr_tail,
            "failures": [
                {"unit": f.unit_id, "reason": f.reason, "stderrTail": f.stderr_tail}
                for f in error.failures
            ],
        }
    if isinstance(error, UserError):
        return {"faults": [str(fault) for fault in error.faults]}
    if error is not None:
        return {"reason": str(error)}
    return None
