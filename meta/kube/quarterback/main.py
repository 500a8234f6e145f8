"""The quarterback: the container in every micro pod that runs the Micro engine over its
section, with the pod's step slots as its driver.

The operator hands it its work in a ConfigMap mounted at /meta/work: the flow (the MetaFlow's
spec, so the quarterback validates and plans the very same flow) and the `PodTask` naming the
section, its input, iteration and upstream. It never writes the MetaFlow: it reports through its
own pod, in the termination message the operator reads when the pod ends, and in its exit code
(0 the section succeeded, 1 a unit failed, 2 the work it was given is wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from meta.cachedir import CacheDir
from meta.engine.caching import StoreCache
from meta.engine.driver import PodTask
from meta.engine.engine import Engine
from meta.engine.frontiers import Done
from meta.engine.records import ATTEMPT_ENDS, NullListener, UnitRecord, worth_a_look
from meta.engine.results import RESULT_FILE, keep
from meta.errors import RunFailed, UserError
from meta.flow.parse import flow_from_document
from meta.kube.layout import ATTEMPTS_FILE, CACHED_FILE, MAX_POD_ATTEMPTS
from meta.kube.quarterback.driver import MicroDriver, PodPaths
from meta.kube.quarterback.launcher import CLOSED
from meta.kube.quarterback.slots import Slots, Swap
from meta.kube.types import PodBrief
from meta.plan.plan import plan_flow
from meta.trees import OutputRefused, copy_tree

TERMINATION_BYTES = 4096


class _Count(NullListener):
    def __init__(self) -> None:
        self.units = 0
        self.cached: list[dict[str, str]] = []
        self.attempts: list[dict[str, Any]] = []
        """What the operator journals of the pod's units (see ATTEMPTS_FILE)."""
        self.attempts_not_kept = 0

    def unit_finished(self, record: UnitRecord) -> None:
        if record.state in ATTEMPT_ENDS and worth_a_look(
            record.state, record.reason, record.attempts, record.retrying
        ):
            if len(self.attempts) < MAX_POD_ATTEMPTS:
                # Its result stays in the store: the journal keeps no step's result.
                self.attempts.append({**asdict(record), "result": None})
            else:
                self.attempts_not_kept += 1
        if record.state == "succeeded":
            self.units += 1
        elif record.state == "cached":
            self.cached.append(
                {
                    "id": record.id,
                    "name": record.name,
                    "section": record.section,
                    "from": record.cached_from,
                }
            )


async def run_quarterback(
    paths: PodPaths, swap: Swap, termination: str, stop: asyncio.Event | None = None
) -> int:
    """Run the section of the work in `paths.work`; the exit code the container ends with.
    When `stop` is set first (the pod is being deleted: the section holding it stops after a
    failure), the running units are stopped and the section's `finally` units run, in the
    pod's slots, before it ends."""
    os.makedirs(os.path.dirname(paths.socket), exist_ok=True)
    work = PodBrief.read(paths.work)
    try:
        # Planned where the operator planned it when its steps start there (see PodBrief).
        folder = Path(work.directory or paths.work)
        flow = flow_from_document(dict(work.flow), folder / "flow.yaml", file=work.file)
        plan = plan_flow(flow)
    except UserError as exc:
        _report(termination, "\n".join(str(f) for f in exc.faults))
        # The slots wait for a quarterback that will not come: let them go at once.
        Path(paths.socket + CLOSED).touch()
        return 2
    slots = Slots(work.slots, swap)
    await slots.serve(paths.socket)
    driver = MicroDriver(
        paths, slots, work.default_image, work.task.upstream, in_folder=bool(work.directory)
    )
    counted = _Count()
    cache = None
    if os.path.isdir(paths.cache):
        cache = StoreCache(
            CacheDir(paths.cache, shared=True),
            run=work.run,
            outputs=driver.outputs,
            place=driver.adopt,
            placed=driver.adopted,
        )
    engine = Engine(plan, driver, listener=counted, cache=cache)
    try:
        done = await _until_stopped(engine, work.task, stop)
        if done is None:
            _report(termination, f"stopped before its end: {STOPPED}")
            return 1
        result = driver.outputs(done.unit_id)
        await asyncio.to_thread(keep_result, driver.parts, result, paths.output)
        await asyncio.to_thread(keep, os.path.join(paths.result, RESULT_FILE), done.result)
    except RunFailed as exc:
        others = "".join(f"\nunit {f.unit_id} {f.reason}" for f in exc.failures[1:])
        _report(termination, f"unit {exc.unit_id} {exc.reason}{others}\n{exc.stderr_tail}")
        return 1
    except OutputRefused as exc:
        _report(termination, f"the section's outputs could not be kept: {exc}")
        return 1
    except UserError as exc:
        _report(termination, "\n".join(str(f) for f in exc.faults))
        return 2
    finally:
        await slots.close(paths.socket)
        if counted.cached:
            with contextlib.suppress(OSError):
                cached = os.path.join(paths.result, CACHED_FILE)
                await asyncio.to_thread(keep, cached, counted.cached)
        if counted.attempts:
            with contextlib.suppress(OSError):
                attempts = {"records": counted.attempts, "notKept": counted.attempts_not_kept}
                path = os.path.join(paths.result, ATTEMPTS_FILE)
                await asyncio.to_thread(keep, path, attempts)
    swaps = sum(slot.swaps for slot in slots.slots)
    report = {"unitsRun": counted.units, "peakActive": slots.peak, "imageSwaps": swaps}
    if counted.cached:
        report["unitsCached"] = len(counted.cached)
    _report(termination, json.dumps(report))
    return 0


STOPPED = "the section holding it stopped after a failure; its finally units ran"


async def _until_stopped(engine: Engine, task: PodTask, stop: asyncio.Event | None) -> Done | None:
    """The section's end; None when `stop` came first (its units stopped, its `finally` units
    run: the engine's cancel after a failure)."""
    run = asyncio.ensure_future(engine.run_pod(task))
    if stop is None:
        return await run
    asked = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({run, asked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
    if run.done():
        return run.result()
    engine.wind_down()
    run.cancel()
    try:
        return await run
    except asyncio.CancelledError:
        if run.cancelled():
            return None
        raise


def keep_result(parts: Mapping[str, Sequence[tuple[str, str]]], result: str, target: str) -> None:
    """Copy the section's result to the pod's output: a step's outputs as the local runtime
    keeps them (no link out of them followed, `META_OUTPUT` itself included), and a combined
    result through the links the driver made, part by part."""
    pending = [(result, target)]
    while pending:
        source, into = pending.pop()
        made_of = parts.get(source)
        if made_of is not None:
            os.makedirs(into, exist_ok=True)
            pending.extend((part, os.path.join(into, name)) for name, part in made_of)
        elif os.path.lexists(source):
            copy_tree(source, into)
        else:
            os.makedirs(into, exist_ok=True)  # a result that wrote nothing: an empty folder


def _report(termination: str, message: str) -> None:
    data = message.encode()[-TERMINATION_BYTES:]
    try:
        with open(termination, "wb") as handle:
            handle.write(data)
    except OSError:
        pass
