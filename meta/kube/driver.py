"""The Kubernetes driver: every macro step is a pod, created when the walk reaches it, and
every outermost micro section is one pod whose quarterback runs the section's units.

A pod's end comes from watch events (through the pods' `Broker`), never from polling. Creating a
pod that exists already (a restarted operator reaching a unit it had started) adopts it: a pod
that finished while the operator was away counts as that attempt's end, so finished work is
never done again.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from meta.engine.driver import Exit, FlowTask, PodTask, Refused, Running, StepTask
from meta.engine.records import Observer, SectionRecord
from meta.flow.model import Cases, Section, Step, Unit, ValueInput, max_active
from meta.flow.parse import read_document
from meta.flow.templates import is_template
from meta.kube.api import ApiFailed, Conflict, KubeApi, quantity
from meta.kube.broker import Watches
from meta.kube.layout import (
    MAX_SLOTS,
    micro_pod,
    quarterback_access,
    short_name,
    step_pod,
    store_path,
    work_config_map,
)
from meta.kube.types import (
    ANNOTATION_FLOW_NAME,
    ANNOTATION_STORE,
    ANNOTATION_UPSTREAM,
    ANNOTATION_WITHIN,
    LABEL_PARENT,
    MANAGED_BY,
    FlowOwner,
    InputTooLarge,
    PodBrief,
    PodSettings,
)
from meta.plan.plan import Plan, walk_units


class KubeRunning:
    def __init__(self, driver: KubeDriver, name: str, section: SectionRecord | None = None) -> None:
        self._driver = driver
        self.name = name
        self._section = section
        """For a micro pod: its section, whose peak and count its quarterback reports."""

    async def wait(self) -> Exit:
        driver = self._driver
        end = await driver.watches.pods.ended(driver.owner.namespace, self.name)
        if end.stuck:
            # It would wait for ever, and a retry must not run beside it.
            with contextlib.suppress(ApiFailed):
                await driver.api.delete_pod(driver.owner.namespace, self.name, 0)
        if end.code == 0 and self._section is not None:
            driver.report_section(self._section, end.message)
        return Exit(end.code, end.message[-2048:], end.reason)

    async def stop(self) -> None:
        driver = self._driver
        driver.watches.pods.cancel(driver.owner.namespace, self.name)
        if driver.detached:
            return
        with contextlib.suppress(ApiFailed):
            await driver.api.delete_pod(
                driver.owner.namespace, self.name, driver.settings.grace_seconds
            )


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
        return Exit(end.code, end.message[-2048:], end.reason)

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
        self._store_dir = store_dir.rstrip("/")
        self._combined: dict[str, list[tuple[str, str]]] = {}
        self.detached = False
        self.sections: Observer | None = None
        """Told of the micro sections that ran in pods, as the engine tells of its own."""

    def detach(self) -> None:
        """The operator is going away: attempts stopped from now on keep their pods running,
        for the next operator session to adopt."""
        self.detached = True

    async def start(self, task: StepTask) -> Running:
        try:
            pod = step_pod(
                task, self.owner, self.settings, self.expanded(task.upstream), self._store_dir
            )
        except InputTooLarge as exc:
            return Refused(str(exc))
        return await self._create(pod)

    def report_section(self, section: SectionRecord, message: str) -> None:
        """Merge what a micro pod's quarterback reported (its termination message) into the
        flow's section records."""
        try:
            report = json.loads(message)
            peak, units = int(report["peakActive"]), int(report["unitsRun"])
        except (ValueError, KeyError, TypeError):
            return
        if self.sections is not None:
            self.sections.section_finished(replace(section, peak_active=peak, units_run=units))

    async def _create(self, pod: dict[str, Any], section: SectionRecord | None = None) -> Running:
        name = pod["metadata"]["name"]
        try:
            await self.api.create_pod(self.owner.namespace, pod)
        except Conflict:
            # Made by an earlier operator session: its watch events say how it stands.
            try:
                self.watches.pods.observe(await self.api.get_pod(self.owner.namespace, name))
            except ApiFailed as exc:
                return Refused(f"cannot read pod {name}: {exc}")
        except ApiFailed as exc:
            # Refused for good (quota, admission, a bad field): this attempt fails, like a
            # program that cannot start; the engine's retries and failure rules take over.
            return Refused(f"cannot create pod {name}: {exc}")
        return KubeRunning(self, name, section)

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
        _, section = self._plan.section_at(task.file, task.pointer)
        slots = slot_images(section, task.max_active, self.settings.default_image)
        upstream = self.expanded(task.upstream)
        asks = slot_resources(section)
        pod = micro_pod(task, self.owner, self.settings, upstream, slots, asks, self._store_dir)
        name = pod["metadata"]["name"]
        work = PodBrief(task, self._document, task.file, slots, self.settings.default_image)
        namespace = self.owner.namespace
        try:
            for body in quarterback_access(self.owner, name):
                await _created(self.api.create_namespaced(namespace, body))
            config = work_config_map(self.owner, name, work.document())
            await _created(self.api.create_config_map(namespace, config))
        except ApiFailed as exc:
            return Refused(f"cannot prepare the micro pod: {exc}")
        record = SectionRecord(task.id, task.name, section.pattern, "micro", task.max_active, 0, 0)
        return await self._create(pod, record)

    async def open_pod(self, pod: str) -> None:
        """Not called: micro sections run in their pods (`start_pod`)."""

    async def close_pod(self, pod: str) -> None:
        """Not called: micro sections run in their pods (`start_pod`)."""

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        self._combined[unit_id] = list(parts)

    def outputs(self, unit_id: str) -> str:
        return f"{self._store_dir}/{store_path(self.owner, unit_id)}"


async def _created(creating: Awaitable[Any]) -> None:
    """Create, taking an object an earlier session made as made."""
    with contextlib.suppress(Conflict):
        await creating


def slot_images(section: Section, max_active: int, default_image: str) -> list[str]:
    """One image per slot: as many slots as units may run at once in the section (at most
    MAX_SLOTS), starting with the images its steps name, in the order they are written, so the
    first steps of each image find a slot running it. Templated images are known only at run
    time: a slot takes them by an in-place swap."""
    images: list[str] = []
    for unit in walk_units(section):
        if isinstance(unit, Step):
            image = unit.run.image or default_image
            if not is_template(image) and image not in images:
                images.append(image)
    count = max(1, min(MAX_SLOTS, max_live(section, max_active)))
    images = images or [default_image]
    return [images[i % len(images)] for i in range(count)]


def slot_resources(section: Section) -> dict[str, dict[str, str]]:
    """What each slot asks: per resource, the most any step of the section asks. A slot runs
    one step at a time, so the pod asks the most of what may run at once, not the sum of all."""
    most: dict[str, dict[str, str]] = {}
    for unit in walk_units(section):
        if not isinstance(unit, Step):
            continue
        for kind, amounts in unit.run.resources.items():
            kept = most.setdefault(kind, {})
            for name, amount in amounts.items():
                if name not in kept or quantity(amount) > quantity(kept[name]):
                    kept[name] = amount
    # A limit below the most that a step requests would make the pod invalid.
    requests, limits = most.get("requests", {}), most.get("limits", {})
    for name, limit in limits.items():
        if name in requests and quantity(requests[name]) > quantity(limit):
            limits[name] = requests[name]
    return most


def max_live(unit: Unit | Cases | None, limit: int | None = None) -> int:
    """The most steps of a unit that may run at once."""
    if unit is None:
        return 0
    if isinstance(unit, Cases):
        return max(max_live(case.unit) for case in unit.cases)
    if not isinstance(unit, Section):
        return 1
    children = [*unit.units, *unit.ring, unit.visit, unit.gather]
    widest = max((max_live(child) for child in children), default=1)
    return (limit or max_active(unit)) * widest


def child_flow(
    owner: FlowOwner,
    plan: Plan,
    document: Mapping[str, Any],
    task: FlowTask,
    upstream: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The child MetaFlow of a flowRef: the referenced flow's document (from the parent's
    `spec.flows`), its inputs as the flowRef binds them, the parent's embedded flows rebased
    to where the child's own references resolve, and what it runs within."""
    base = plan.flow.source.parent
    sub: Plan = task.plan
    key = os.path.relpath(sub.flow.source, base)
    flows: Mapping[str, Any] = document["spec"].get("flows", {})
    # Embedded by `meta apply`, or a file on the operator's data volume.
    written = copy.deepcopy(flows[key]) if key in flows else read_document(sub.flow.source)
    spec = written["spec"]
    # As bound by the flowRef: values stay values; files stay files, by their absolute paths
    # (the parent's embedded files in the store, or files on the operator's data volume).
    spec["inputs"] = {
        name: {"value": given.value} if isinstance(given, ValueInput) else {"path": str(given.path)}
        for name, given in sub.inputs.items()
    }
    here = os.path.dirname(key)
    rebased = {os.path.relpath(other, here or "."): doc for other, doc in flows.items()}
    if rebased:
        spec["flows"] = rebased
    digest = hashlib.sha256(task.id.encode()).hexdigest()[:8]
    return {
        "apiVersion": document["apiVersion"],
        "kind": document["kind"],
        "metadata": {
            "name": f"{short_name(owner.name)}-{digest}-{task.attempt}",
            "namespace": owner.namespace,
            "labels": {**MANAGED_BY, LABEL_PARENT: owner.name},
            "annotations": {
                ANNOTATION_WITHIN: task.id,
                ANNOTATION_STORE: owner.store_root,
                ANNOTATION_UPSTREAM: json.dumps([list(u) for u in upstream]),
                ANNOTATION_FLOW_NAME: written.get("metadata", {}).get("name", sub.flow.name),
            },
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }
