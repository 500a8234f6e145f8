"""The Kubernetes driver: every macro step is a pod, created when the walk reaches it, and
every outermost micro section is one pod whose quarterback runs the section's units.

A pod's end comes from watch events (through the pods' `Broker`), never from polling. Creating a
pod that exists already (a restarted operator reaching a unit it had started) adopts it: a pod
that finished while the operator was away counts as that attempt's end, so finished work is
never done again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from meta.engine.caching import uses_cache
from meta.engine.driver import Exit, FlowTask, PodTask, Refused, Running, StepTask
from meta.engine.records import Journal, Listener, SectionRecord, UnitRecord
from meta.engine.results import RESULT_FILE, ResultRefused, keep, read_kept, read_result
from meta.kube.api import ApiFailed, Conflict, KubeApi
from meta.kube.broker import PodEnd, Watches
from meta.kube.layout import (
    ATTEMPTS_FILE,
    CACHED_FILE,
    MAX_POD_ATTEMPTS,
    InputTooLarge,
    child_flow,
    fed_by_path,
    flow_result_path,
    micro_pod,
    quarterback_access,
    result_path,
    section_secrets,
    slot_images,
    slot_resources,
    step_pod,
    store_path,
    wind_down_seconds,
    work_config_map,
)
from meta.kube.podgc import PodCollector
from meta.kube.types import (
    ANNOTATION_UNIT_ID,
    FlowOwner,
    PodBrief,
    PodSettings,
)
from meta.plan.plan import Plan

WIND_DOWN_MARGIN_SECONDS = 30
LAST_WORDS_LINES = 20
"""Of a timed-out step's log, the lines read as its last words."""
log = logging.getLogger(__name__)
"""Beyond a micro pod's grace: for the kubelet to report it ended."""


class KubeRunning:
    def __init__(
        self,
        driver: KubeDriver,
        name: str,
        unit_id: str,
        result: str,
        section: SectionRecord | None = None,
        wind_down: int | None = None,
    ) -> None:
        self._driver = driver
        self.name = name
        self.unit_id = unit_id
        self._result = result
        """Where the operator finds the attempt's result in the store."""
        self._section = section
        """For a micro pod: its section, whose peak and count its quarterback reports."""
        self._wind_down = wind_down
        """For a micro pod whose section has `finally` units: the grace its deletion gives
        them (`meta.kube.layout.wind_down_seconds`)."""
        self.log_readable = False
        """Whether its step's log may be read for its last words."""

    async def last_words(self) -> str:
        """The end of the step's log, read before the pod (and its log) goes: what a timed-out
        step said last, as the termination message says it for a step that ends by itself."""
        if not self.log_readable:
            return ""
        driver = self._driver
        try:
            parts = [
                text
                async for text in driver.api.read_log(
                    driver.owner.namespace, self.name, "step", tail_lines=LAST_WORDS_LINES
                )
            ]
        except ApiFailed:
            return ""
        return "".join(parts)[-2048:].strip()

    async def wait(self) -> Exit:
        driver = self._driver
        end = await driver.watches.pods.ended(driver.owner.namespace, self.name)
        if end.stuck:
            # It would wait for ever, and a retry must not run beside it.
            with contextlib.suppress(ApiFailed):
                await driver.api.delete_pod(driver.owner.namespace, self.name, 0)
        exit_ = await self._exit(end)
        if not end.stuck and driver.collector is not None:
            # Only now, with nothing awaited before the engine journals the attempt: a wait
            # cancelled earlier journals it as cancelled, and its pod must stay to be adopted.
            driver.collector.pod_ended(self.unit_id, self.name, exit_.code == 0)
        return exit_

    async def _exit(self, end: PodEnd) -> Exit:
        driver = self._driver
        if self._section is not None:
            if end.code == 0:
                driver.report_section(self._section, end.message)
            cached = os.path.join(os.path.dirname(self._result), CACHED_FILE)
            with contextlib.suppress(OSError, ValueError):
                driver.report_cached(await asyncio.to_thread(read_kept, cached))
            attempts = os.path.join(os.path.dirname(self._result), ATTEMPTS_FILE)
            with contextlib.suppress(OSError, ValueError):
                driver.report_attempts(self.name, await asyncio.to_thread(read_kept, attempts))
        result = None
        if end.code == 0:
            try:
                # A step's result is what its program wrote (bounded); a micro section's is
                # what its quarterback kept.
                read = read_result if self._section is None else read_kept
                result = await asyncio.to_thread(read, self._result)
            except (ResultRefused, OSError, ValueError) as exc:
                return Exit(1, end.message[-2048:], f"exited with code 0, but {exc}")
        # A micro pod that succeeded leaves its quarterback's report there, no step's stderr;
        # stripped as the local runtime strips a tail.
        tail = "" if end.code == 0 and self._section is not None else end.message[-2048:].strip()
        return Exit(end.code, tail, end.reason, result)

    async def stop(self) -> None:
        driver = self._driver
        namespace = driver.owner.namespace
        if driver.detached or self._wind_down is None:
            driver.watches.pods.cancel(namespace, self.name)
            if not driver.detached:
                with contextlib.suppress(ApiFailed):
                    await driver.api.delete_pod(namespace, self.name, driver.settings.grace_seconds)
            return
        # A micro pod with `finally` units: deleted, its quarterback gets SIGTERM, stops its
        # units and runs its finally units in its slots, as the local runtime does in place.
        # The section holding it ends once the pod has.
        try:
            with contextlib.suppress(ApiFailed):
                await driver.api.delete_pod(namespace, self.name, self._wind_down)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wind_down + WIND_DOWN_MARGIN_SECONDS):
                    await driver.watches.pods.ended(namespace, self.name)
        finally:
            driver.watches.pods.cancel(namespace, self.name)


class ChildFlow:
    def __init__(self, driver: KubeDriver, unit_id: str, name: str) -> None:
        self._driver = driver
        self._unit_id = unit_id
        self.name = name

    async def wait(self) -> Exit:
        driver = self._driver
        namespace = driver.owner.namespace
        end = await driver.watches.flows.ended(namespace, self.name)
        if end.code == 0:
            parts: Sequence[tuple[str, str]] = end.outputs
            if end.outputs_config_map:
                try:
                    found = await driver.api.get_config_map(namespace, end.outputs_config_map)
                except ApiFailed as exc:
                    return Exit(-1, "", f"cannot read the child flow's outputs: {exc}")
                parts = [tuple(p) for p in json.loads(found["data"]["parts.json"])]
            driver.combine(self._unit_id, parts)
            kept = f"{driver.store_dir}/{flow_result_path(driver.owner, self._unit_id)}"
            try:
                result = await asyncio.to_thread(read_kept, kept)
            except (OSError, ValueError) as exc:
                return Exit(-1, "", f"cannot read the child flow's result: {exc}")
            return Exit(0, end.message[-2048:], end.reason, result)
        return Exit(end.code, end.message[-2048:], end.reason)

    async def last_words(self) -> str:
        return ""

    async def stop(self) -> None:
        driver = self._driver
        driver.watches.flows.cancel(driver.owner.namespace, self.name)
        if not driver.detached:
            with contextlib.suppress(ApiFailed):
                await driver.api.delete_flow(driver.owner.namespace, self.name)


class KubeDriver:
    def __init__(
        self,
        api: KubeApi,
        watches: Watches,
        owner: FlowOwner,
        settings: PodSettings,
        plan: Plan,
        document: Mapping[str, Any],
        store_dir: str = "/store",
    ) -> None:
        """`document` is the flow as the quarterbacks of micro pods get it to plan again."""
        self.api = api
        self._plan = plan
        self._document = document
        self.watches = watches
        self.owner = owner
        self.settings = settings
        self.store_dir = store_dir.rstrip("/")
        self._combined: dict[str, list[tuple[str, str]]] = {}
        self.detached = False
        self.sections: Listener | None = None
        """Told of the micro sections that ran in pods, as the engine tells of its own."""
        self.journal: Journal | None = None
        """Told of the units of micro pods that the cache stood for."""
        self.collector: PodCollector | None = None
        """Told of each pod that ended (`spec.podGC`)."""

    def detach(self) -> None:
        """The operator is going away: attempts stopped from now on keep their pods running,
        for the next operator session to adopt."""
        self.detached = True

    async def start(self, task: StepTask) -> Running:
        try:
            pod = step_pod(
                task, self.owner, self.settings, self.expanded(task.upstream), self.store_dir
            )
        except InputTooLarge as exc:
            return Refused(str(exc))
        return await self._create(pod, self._result_file(task.id, task.attempt))

    def _result_file(self, unit_id: str, attempt: int) -> str:
        """Where the operator reads an attempt's result (what the pod wrote to META_RESULT)."""
        return f"{self.store_dir}/{result_path(self.owner, unit_id, attempt)}/{RESULT_FILE}"

    def report_section(self, section: SectionRecord, message: str) -> None:
        """Merge what a micro pod's quarterback reported (its termination message) into the
        flow's section records."""
        try:
            report = json.loads(message)
            peak, units = int(report["peakActive"]), int(report["unitsRun"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return
        if self.sections is not None:
            self.sections.section_finished(replace(section, peak_active=peak, units_run=units))

    def report_cached(self, hits: Any) -> None:
        """Record the units of a micro pod that its cache stood for (what its quarterback kept
        in the store) as the engine records its own hits: `cached`, from the run that made
        the entry, in the journal and the status."""
        if not isinstance(hits, list):
            return
        now = time.time()
        for hit in hits:
            record = UnitRecord(
                str(hit["id"]), str(hit["name"]), str(hit["section"]), "micro", "cached",
                0, now, now, cached_from=str(hit["from"]),
            )  # fmt: skip
            if self.journal is not None:
                self.journal.record_finished(record)
            if self.sections is not None:
                self.sections.unit_finished(record)

    def report_attempts(self, pod: str, kept: Any) -> None:
        """Journal the attempts of a micro pod's units that its quarterback kept in the store
        (ATTEMPTS_FILE): `meta status` shows them as the engine's own."""
        if not isinstance(kept, dict) or self.journal is None:
            return
        for fields in kept.get("records") or []:
            try:
                record = UnitRecord(**fields)
            except TypeError:
                continue
            self.journal.record_finished(record)
        if kept.get("notKept"):
            log.warning(
                "micro pod %s: %s attempts of its units past the first %d are only in its "
                "slots' logs",
                pod, kept["notKept"], MAX_POD_ATTEMPTS,
            )  # fmt: skip

    async def _create(
        self,
        pod: dict[str, Any],
        result: str,
        section: SectionRecord | None = None,
        wind_down: int | None = None,
    ) -> Running:
        name = pod["metadata"]["name"]
        self.watches.pods.expect(self.owner.namespace, name)
        try:
            await self.api.create_pod(self.owner.namespace, pod)
        except Conflict:
            # Made by an earlier operator session: its watch events say how it stands.
            try:
                self.watches.pods.observe(await self.api.get_pod(self.owner.namespace, name))
            except ApiFailed as exc:
                self.watches.pods.cancel(self.owner.namespace, name)
                return Refused(f"cannot read pod {name}: {exc}")
        except ApiFailed as exc:
            # Refused for good (quota, admission, a bad field): this attempt fails, like a
            # program that cannot start; the engine's retries and failure rules take over.
            self.watches.pods.cancel(self.owner.namespace, name)
            return Refused(f"cannot create pod {name}: {exc}")
        unit_id = pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
        running = KubeRunning(self, name, unit_id, result, section, wind_down)
        # A step holding no secret has its log read for its last words (one holding one may
        # print it: its log is never read by the operator, as its termination message is not).
        running.log_readable = section is None and any(
            container["name"] == "step"
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            for container in pod["spec"]["containers"]
        )
        return running

    def expanded(
        self, upstream: Sequence[tuple[str, str]], prefix: str = ""
    ) -> list[tuple[str, str]]:
        """Combined sections (and child flows) become one mount per part, nested as the local
        runtime nests them; a part named "" is its whole."""
        mounts: list[tuple[str, str]] = []
        for subdir, unit_id in upstream:
            path = "/".join(part for part in (prefix, subdir) if part)
            parts = self._combined.get(unit_id)
            if parts is None:
                mounts.append((path, unit_id))
            else:
                mounts.extend(self.expanded(parts, path))
        return mounts

    async def start_flow(self, task: FlowTask) -> Running:
        """A flowRef: a child MetaFlow owned by this one, run by the operator like any other,
        its units' outputs in this flow's store folder."""
        child = child_flow(
            self.owner, self._plan, self._document, task, self.expanded(task.upstream)
        )
        name = child["metadata"]["name"]
        fed_by = f"{self.store_dir}/{fed_by_path(self.owner, task.id)}"
        try:
            await asyncio.to_thread(keep, fed_by, [list(feeder) for feeder in task.fed_by])
        except OSError as exc:
            return Refused(f"cannot write what feeds child flow {name} into the store: {exc}")
        self.watches.flows.expect(self.owner.namespace, name)
        try:
            await self.api.create_flow(self.owner.namespace, child)
        except Conflict:
            try:
                self.watches.flows.observe(await self.api.get_flow(self.owner.namespace, name))
            except ApiFailed as exc:
                return Refused(f"cannot read child flow {name}: {exc}")
        except ApiFailed as exc:
            return Refused(f"cannot create child flow {name}: {exc}")
        return ChildFlow(self, task.id, name)

    async def start_pod(self, task: PodTask) -> Running:
        """A micro section: its quarterback's access, its work, then its pod."""
        plan, section = self._plan.section_at(task.file, task.pointer)
        slots = slot_images(section, task.max_active, self.settings.default_image)
        upstream = self.expanded(task.upstream)
        asks = slot_resources(section)
        cache = uses_cache(section, plan.flow.defaults.cache)
        pod = micro_pod(
            task,
            self.owner,
            self.settings,
            upstream,
            slots,
            asks,
            self.store_dir,
            section_secrets(section),
            cache,
        )
        name = pod["metadata"]["name"]
        owner = self.owner
        # Steps start where the flow is when it lies in the store (its files' folder, mounted
        # in every slot); the operator's own folders are no pod's.
        folder = str(self._plan.flow.source.parent)
        work = PodBrief(
            task, self._document, task.file, slots, self.settings.default_image,
            f"{owner.namespace}/{owner.name}",
            folder if folder.startswith(self.store_dir + "/") else "",
        )  # fmt: skip
        namespace = self.owner.namespace
        try:
            for body in quarterback_access(self.owner, name):
                await _created(self.api.create_namespaced(namespace, body))
            config = work_config_map(self.owner, name, work.document())
            await _created(self.api.create_config_map(namespace, config))
        except ApiFailed as exc:
            return Refused(f"cannot prepare the micro pod: {exc}")
        record = SectionRecord(task.id, task.name, section.pattern, "micro", task.max_active, 0, 0)
        wind_down = wind_down_seconds(
            section, plan.flow.defaults.timeout_seconds, self.settings.grace_seconds
        )
        return await self._create(pod, self._result_file(task.id, task.attempt), record, wind_down)

    async def open_pod(self, pod: str) -> None:
        """Not called: micro sections run in their pods (`start_pod`)."""

    async def close_pod(self, pod: str) -> None:
        """Not called: micro sections run in their pods (`start_pod`)."""

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        self._combined[unit_id] = list(parts)

    def outputs(self, unit_id: str) -> str:
        return f"{self.store_dir}/{store_path(self.owner, unit_id)}"


async def _created(creating: Awaitable[Any]) -> None:
    """Create, taking an object an earlier session made as made."""
    with contextlib.suppress(Conflict):
        await creating
