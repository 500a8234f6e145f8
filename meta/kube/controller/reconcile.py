"""Running one MetaFlow resource to its end with the Macro engine and the Kubernetes driver.

The operator calls `run_flow` for every MetaFlow it sees, and again for each after a restart:
a flow that has ended returns at once; a flow mid-way resumes from its journal and adopts the
pods it had made. The spec is validated against the flow language first: an invalid spec gets
phase Invalid, condition `Valid=False` naming the JSON path, a Warning Event, and no pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from meta.cachedir import CacheDir
from meta.engine.caching import StoreCache
from meta.engine.engine import Engine
from meta.engine.frontiers import Done
from meta.engine.results import keep, read_kept
from meta.engine.visit import fed
from meta.errors import FlowInvalid, RunFailed, UserError
from meta.flow.parse import flow_from_document
from meta.kube.api import ApiFailed, Conflict, KubeApi
from meta.kube.broker import Watches
from meta.kube.controller.files import StoreEscape, place_files
from meta.kube.controller.journal import ConfigMapJournal, compact, drop_chunks
from meta.kube.controller.status import StatusReporter, condition, now, status_result
from meta.kube.driver import KubeDriver
from meta.kube.layout import (
    env_faults,
    event_body,
    fed_by_path,
    files_path,
    flow_result_path,
    outputs_config_map,
    short_name,
)
from meta.kube.podgc import PodCollector, strategy_of, sweep
from meta.kube.types import (
    ANNOTATION_FLOW_NAME,
    ANNOTATION_RUNS_IN,
    ANNOTATION_STORE,
    ANNOTATION_UPSTREAM,
    ANNOTATION_WITHIN,
    CACHE_DIR,
    FlowOwner,
    OperatorSettings,
)
from meta.plan.plan import Plan, plan_flow

ENDED = ("Succeeded", "Failed", "Invalid")
MAX_PARTS_IN_STATUS = 100
MAX_FAILED_IN_STATUS = 50
"""As the CRD bounds status.failedUnits: the journal names every failed unit."""
NO_STORE = "the operator has no store to compact it into (--store-claim, or --compact-journal)"
"""Why an ended flow's journal stays in its ConfigMaps."""
log = logging.getLogger(__name__)


def flow_file(namespace: str, name: str) -> str:
    """How faults name a MetaFlow resource (there is no file)."""
    return f"metaflow {namespace}/{name}"


def resource_flow_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The flow document of a MetaFlow resource: what a flow file would hold (a child flow
    keeps the name of the flow it was made from)."""
    meta = body["metadata"]
    name = (meta.get("annotations") or {}).get(ANNOTATION_FLOW_NAME, meta["name"])
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": name},
        "spec": body.get("spec"),
    }


def plan_resource(body: Mapping[str, Any], data_dir: Path) -> Plan:
    """Validate a MetaFlow resource against the flow language and plan it, as a flow file
    in `data_dir` (relative paths start there, and a generated flow's steps run there)."""
    meta = body["metadata"]
    document = resource_flow_document(body)
    file = flow_file(meta["namespace"], meta["name"])
    flow = flow_from_document(document, data_dir / f"{meta['name']}.flow.yaml", file=file)
    plan = plan_flow(flow)
    faults = env_faults(plan)
    if faults:
        raise FlowInvalid(faults)
    return plan


async def event(api: KubeApi, owner: FlowOwner, kind: str, reason: str, message: str) -> None:
    await api.create_event(owner.namespace, event_body(owner, kind, reason, message, now()))


async def run_flow(
    api: KubeApi,
    watches: Watches,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    stopped: Awaitable[object] | None = None,
) -> str:
    """Run (or resume) one MetaFlow to its end; its final phase. Returns early, leaving its
    pods running for the next operator session, when `stopped` is done first.

    Each ending posts its Event before it writes the final status, so whoever sees the phase
    change finds the Event that says why."""
    meta = body["metadata"]
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    owner = FlowOwner(
        meta["namespace"], meta["name"], meta["uid"], annotations.get(ANNOTATION_STORE, "")
    )
    generation = int(meta.get("generation", 1))
    status: Mapping[str, Any] = body.get("status") or {}
    if status.get("phase") in ENDED:
        chunks = list(status.get("journal") or [])
        if settings.compact_journal and chunks and "journalCompacted" not in status:
            # It ended before it was compacted (an operator stopped in between, or without a
            # store then).
            fields = await _journal_fields(api, owner, settings, chunks)
            await api.patch_flow_status(owner.namespace, owner.name, fields)
            await _drop_chunks(api, owner, fields, chunks)
        # An operator may have stopped before it swept the pods (`podGC`).
        strategy = strategy_of(body.get("spec") or {})
        await sweep(api, owner.namespace, owner.name, strategy, str(status["phase"]))
        return str(status["phase"])
    size = len(json.dumps(body, separators=(",", ":")).encode())
    reporter = StatusReporter(api, owner, generation, resource_bytes=size)
    planned = await _planned(api, owner, body, settings, reporter, generation)
    if isinstance(planned, str):
        return planned
    body, plan = planned
    journal = ConfigMapJournal(api, owner)
    await journal.load()
    driver = KubeDriver(
        api, watches, owner, settings.pods, plan, resource_flow_document(body), settings.store_dir
    )
    conditions = [condition("Valid", True, "Valid", "the spec is a valid flow", generation)]
    if not status.get("startedAt"):
        await event(api, owner, "Normal", "Started", "running the flow")
    reporter.extra.update(startedAt=status.get("startedAt") or now(), conditions=conditions)
    await reporter.write(phase="Running", journal=journal.chunks)
    driver.sections = reporter
    driver.journal = journal
    collector = None
    if plan.flow.pod_gc:
        collector = PodCollector(api, owner.namespace, owner.name, plan.flow.pod_gc)
        driver.collector = collector
        journal.on_written = collector.journaled
    cache = StoreCache(
        CacheDir(os.path.join(settings.store_dir, CACHE_DIR), shared=True),
        run=f"{owner.namespace}/{owner.name}",
        outputs=driver.outputs,
        # Child flows' outputs are combined by the driver itself, from their status.
        leaves=lambda unit_id: driver.expanded([("", unit_id)]),
    )
    engine = Engine(
        plan, driver, pods=driver, flows=driver, listener=reporter, journal=journal, cache=cache
    )
    within = annotations.get(ANNOTATION_WITHIN)
    upstream = await _fed_by(owner, settings, within, annotations)
    run = asyncio.ensure_future(engine.run(within, upstream))
    ended = await _ended(api, owner, settings, driver, run, journal, reporter, stopped, collector)
    if ended is not None:
        return ended
    done = run.result()
    await journal.close()
    handed: dict[str, Any] = {}
    if within is not None:
        handed = await _hand_over(api, owner, driver.expanded([("", done.unit_id)]))
        kept = f"{driver.store_dir}/{flow_result_path(owner, within)}"
        await asyncio.to_thread(keep, kept, done.result)
    resumed = reporter.cached - reporter.cache_hit_count
    before = f", {resumed} finished before" if resumed else ""
    before += f", {reporter.cache_hit_count} cached" if reporter.cache_hit_count else ""
    journaled = await _journal_fields(api, owner, settings, journal.chunks)
    await event(api, owner, "Normal", "Succeeded", f"{reporter.succeeded} units succeeded{before}")
    await reporter.write(
        phase="Succeeded",
        finishedAt=now(),
        outputs=driver.outputs(done.unit_id),
        **status_result(done.result),
        **handed,
        **journaled,
        apiWrites=api.calls.writes,
    )
    await _drop_chunks(api, owner, journaled, journal.chunks)
    if collector is not None:
        await collector.finish("Succeeded")
    return "Succeeded"


async def _journal_fields(
    api: KubeApi, owner: FlowOwner, settings: OperatorSettings, chunks: list[str]
) -> dict[str, Any]:
    """The status fields naming an ended flow's journal: compacted into the store, so that a
    cluster running many big flows does not fill etcd; or still in its chunks, and why. The
    chunks go (`_drop_chunks`) only once the status names the file."""
    if not chunks:
        return {"journal": chunks}
    if not settings.compact_journal:
        return {"journal": chunks, "journalKept": NO_STORE}
    try:
        return {**await compact(api, owner, chunks, settings.store_dir), "journalKept": None}
    except OSError as exc:
        return {"journal": chunks, "journalKept": f"cannot write it into the store: {exc}"}
    except ApiFailed as failed:
        return {"journal": chunks, "journalKept": f"cannot read it: {failed}"}


async def _drop_chunks(
    api: KubeApi, owner: FlowOwner, fields: Mapping[str, Any], chunks: list[str]
) -> None:
    """Delete the chunks of a journal the status says was compacted; one left behind is only
    bytes (it goes with its flow)."""
    if "journalCompacted" in fields:
        try:
            await drop_chunks(api, owner, chunks)
        except ApiFailed as failed:
            log.warning("journal of %s compacted, its chunks left: %s", owner.name, failed)


async def _fed_by(
    owner: FlowOwner, settings: OperatorSettings, within: str | None, annotations: Mapping[str, str]
) -> tuple[Done, ...]:
    """What feeds a child flow's root: the units its parent left in the store, with their states
    and results; or, from a parent that left none, the outputs its annotation names."""
    if within is not None:
        path = f"{settings.store_dir.rstrip('/')}/{fed_by_path(owner, within)}"
        feeders = await asyncio.to_thread(read_kept, path)
        if feeders is not None:
            return fed([tuple(feeder) for feeder in feeders])
    return tuple(
        Done(subdir, unit_id)
        for subdir, unit_id in json.loads(annotations.get(ANNOTATION_UPSTREAM, "[]"))
    )


async def _planned(
    api: KubeApi,
    owner: FlowOwner,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    reporter: StatusReporter,
    generation: int,
) -> tuple[Mapping[str, Any], Plan] | str:
    """The resource with its files placed in the store, and its plan; or, when the spec is
    invalid or its files cannot be written, the phase it ended in."""
    carries_files = bool((body.get("spec") or {}).get("files"))
    try:
        files = Path(settings.store_dir) / files_path(owner)
        file = flow_file(owner.namespace, owner.name)
        body = await asyncio.to_thread(place_files, body, files, file)
        # A flow generated from a MetaSchema runs where it was generated: its files' folder.
        runs_in = (body["metadata"].get("annotations") or {}).get(ANNOTATION_RUNS_IN)
        plan = plan_resource(body, files if runs_in == "files" else settings.data_dir)
    except UserError as exc:
        message = "; ".join(f"{f.pointer or '/'}: {f.reason}" for f in exc.faults)
        valid = condition("Valid", False, "Invalid", message, generation)
        await event(api, owner, "Warning", "Invalid", message)
        await reporter.write(phase="Invalid", reason=message, conditions=[valid])
        return "Invalid"
    except (OSError, StoreEscape) as exc:
        message = f"cannot write the flow's files into the store ({settings.store_dir}): {exc}"
        await event(api, owner, "Warning", "StoreFault", message)
        await reporter.write(phase="Failed", reason=message, finishedAt=now())
        return "Failed"
    if carries_files and settings.pods.store_claim is None:
        # The operator reads them (a section may walk one), but no pod can: say so at once.
        await event(
            api, owner, "Warning", "NoStore",
            "spec.files reach no pod: the operator runs without --store-claim, so a step that "
            "opens a file input will not find it",
        )  # fmt: skip
    return body, plan


async def _ended(
    api: KubeApi,
    owner: FlowOwner,
    settings: OperatorSettings,
    driver: KubeDriver,
    run: asyncio.Future[Done],
    journal: ConfigMapJournal,
    reporter: StatusReporter,
    stopped: Awaitable[object] | None,
    collector: PodCollector | None = None,
) -> str | None:
    """Wait for the walk: None when it succeeded; else the phase it left the flow in (Running
    when the operator stops first)."""
    stop = asyncio.ensure_future(stopped) if stopped is not None else None
    try:
        waited: set[asyncio.Future[Any]] = {run} if stop is None else {run, stop}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            await _leave(driver, run, journal, collector)
            return "Running"
        run.result()
        return None
    except RunFailed as exc:
        await journal.close()
        await reporter.close()
        reason = exc.reason + (f"\n{exc.stderr_tail[-1024:]}" if exc.stderr_tail else "")
        failed = [failure.unit_id for failure in exc.failures]
        more = f" (and {len(failed) - 1} more failed units)" if len(failed) > 1 else ""
        journaled = await _journal_fields(api, owner, settings, journal.chunks)
        await event(api, owner, "Warning", "UnitFailed", f"unit {exc.unit_id} {exc.reason}{more}")
        await reporter.write(
            phase="Failed",
            failedUnit=exc.unit_id,
            failedUnits=failed[:MAX_FAILED_IN_STATUS],
            reason=reason,
            finishedAt=now(),
            **journaled,
        )
        await _drop_chunks(api, owner, journaled, journal.chunks)
        if collector is not None:
            await collector.finish("Failed")
        return "Failed"
    except UserError as exc:
        await journal.close()
        await reporter.close()
        message = exc.one_line()
        await event(api, owner, "Warning", "FlowFault", message)
        await reporter.write(phase="Failed", reason=message, finishedAt=now())
        if collector is not None:
            await collector.finish("Failed")
        return "Failed"
    except (asyncio.CancelledError, Exception):
        # The daemon is cancelled, or something no rule covers broke.
        await _leave(driver, run, journal, collector)
        raise
    finally:
        if stop is not None:
            stop.cancel()
        await reporter.close()


async def _leave(
    driver: KubeDriver,
    run: asyncio.Future[Done],
    journal: ConfigMapJournal,
    collector: PodCollector | None,
) -> None:
    """Stop the walk, leaving every pod as it is for the next session (or kopf's retry of the
    daemon) to adopt, and keep what the journal has."""
    driver.detach()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await journal.close()
    if collector is not None:
        # Pods whose units were journaled and not yet deleted go with the flow's sweep.
        await collector.close()


async def _hand_over(
    api: KubeApi, owner: FlowOwner, parts: list[tuple[str, str]]
) -> dict[str, Any]:
    """A child flow's result for its parent: the units whose outputs are its root's, in the
    status when they are few, else in a ConfigMap the status names (a fan-out's thousands of
    results must not grow the status)."""
    listed = [list(part) for part in parts]
    if len(listed) <= MAX_PARTS_IN_STATUS:
        return {"outputParts": listed}
    name = f"{short_name(owner.name)}-outputs"
    with contextlib.suppress(Conflict):
        await api.create_config_map(owner.namespace, outputs_config_map(owner, name, listed))
    return {"outputPartsConfigMap": name}
