"""The Micro driver: the steps of one micro pod, run in its slots by the quarterback.

Layout inside the pod (every container mounts the same volumes at the same paths, so a link
made by the quarterback resolves in every slot):

    /scratch                          META_SCRATCH of every unit of the section (RAM)
    /scratch/.meta/units/<n>/         one step attempt: input.json, result.json (META_RESULT),
                                      upstream/, out/, n.out/.err
    /scratch/.meta/quarterback.sock   where the slots' launchers connect
    /meta/upstream/<name>             outputs of macro units feeding the section (read-only)
    /meta/output                      where the section's outputs are persisted (the store)
    /meta/result                      where the section's result (JSON) is kept (the store)
    /meta/cache                       the store's cache, when a unit of the section says `cache:`

A step's outputs stay in RAM and the next step reads them through a link: no copy. Only the
section's result is copied, once, to /meta/output when the section ends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meta.engine.driver import Exit, Refused, Running, StepTask
from meta.engine.results import RESULT_FILE, ResultRefused, read_result
from meta.errors import MetaError
from meta.flow.model import SecretRef
from meta.kube.layout import secret_variable
from meta.kube.quarterback.slots import Slot, SlotLost, Slots

STOP_SECONDS = 10.0


@dataclass(frozen=True)
class PodPaths:
    scratch: str = "/scratch"
    upstream: str = "/meta/upstream"
    output: str = "/meta/output"
    work: str = "/meta/work"
    cache: str = "/meta/cache"
    result: str = "/meta/result"

    @property
    def socket(self) -> str:
        return os.path.join(self.scratch, ".meta", "quarterback.sock")

    @property
    def units(self) -> str:
        return os.path.join(self.scratch, ".meta", "units")


class MicroRunning:
    def __init__(
        self,
        driver: MicroDriver,
        slot: Slot,
        task: StepTask,
        answer: asyncio.Future[dict[str, object]],
        output: str,
        result: str,
    ) -> None:
        self._driver = driver
        self._slot = slot
        self._task = task
        self._answer = answer
        self._output = output
        self._result = result
        self._released = False

    async def wait(self) -> Exit:
        try:
            answer = await asyncio.shield(self._answer)
        except SlotLost as lost:
            await self._release()
            return Exit(-1, "", str(lost))
        await self._release()
        code = int(str(answer["code"]))
        # Stripped as the local runtime strips a tail: `meta status` shows both alike.
        tail = str(answer.get("stderrTail", "")).strip()
        if code != 0:
            return Exit(code, tail)
        try:
            result = await asyncio.to_thread(read_result, self._result)
        except ResultRefused as refused:
            return Exit(1, tail, f"exited with code 0, but {refused}")
        self._driver.live[self._task.id] = self._output
        return Exit(code, tail, result=result)

    async def last_words(self) -> str:
        # Its log is in the pod's scratch, kept after the stop: `wait` gives its tail.
        return ""

    async def stop(self) -> None:
        driver = self._driver
        if not self._answer.done():
            driver.slots.stop(self._slot, self._task.id)
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await asyncio.shield(self._answer)
            except (TimeoutError, SlotLost):
                pass
        await self._release()

    async def _release(self) -> None:
        if not self._released:
            self._released = True
            await self._driver.slots.release(self._slot)


class MicroDriver:
    def __init__(
        self,
        paths: PodPaths,
        slots: Slots,
        default_image: str,
        upstream: Sequence[tuple[str, str]],
        environ: Mapping[str, str] | None = None,
        in_folder: bool = False,
    ) -> None:
        self.paths = paths
        self.in_folder = in_folder
        """Steps start in their flow's folder (the brief's `directory`), not their image's."""
        self.slots = slots
        self.default_image = default_image
        self.live: dict[str, str] = {}
        """Outputs of the pod's finished units, in its scratch, by unit id."""
        self._outside = {unit_id: os.path.join(paths.upstream, name) for name, unit_id in upstream}
        self._combined: dict[str, str] = {}
        self.parts: dict[str, list[tuple[str, str]]] = {}
        """A combined folder's links (its own), by folder: what each result is made of."""
        self._attempts = itertools.count(1)
        self._environ = dict(environ or {})

    async def open_pod(self, pod: str) -> None:
        os.makedirs(self.paths.units, exist_ok=True)

    async def close_pod(self, pod: str) -> None:
        pass

    def outputs(self, unit_id: str) -> str:
        for known in (self.live, self._combined, self._outside):
            if unit_id in known:
                return known[unit_id]
        return os.path.join(self.paths.upstream, "missing", unit_id)

    def adopt(self, unit_id: str) -> str:
        """Where a unit's outputs restored from the cache go: a folder of the pod's scratch,
        read by the units after it as any sibling's outputs."""
        target = os.path.join(self.paths.units, f"cached-{next(self._attempts)}")
        self.live[unit_id] = target
        return target

    def adopted(self, unit_id: str, manifest: object) -> None:
        """A unit restored from the cache: one that wrote nothing has an empty folder."""
        os.makedirs(self.live[unit_id], exist_ok=True)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        target = os.path.join(self.paths.units, f"combined-{next(self._attempts)}")
        os.makedirs(target)
        for name, part in parts:
            os.symlink(self.outputs(part), os.path.join(target, name))
        self._combined[unit_id] = target
        self.parts[target] = [(name, self.outputs(part)) for name, part in parts]

    async def start(self, task: StepTask) -> Running:
        unit_dir = os.path.join(self.paths.units, str(next(self._attempts)))
        upstream = os.path.join(unit_dir, "upstream")
        output = os.path.join(unit_dir, "out")
        os.makedirs(upstream)
        os.mkdir(output)
        # The slot's image may run as another user than the quarterback: its program must
        # write its outputs and logs here.
        for folder in (unit_dir, output):
            os.chmod(folder, 0o777)
        for name, producer in task.upstream:
            os.symlink(self.outputs(producer), os.path.join(upstream, name))
        input_file = os.path.join(unit_dir, "input.json")
        result = os.path.join(unit_dir, RESULT_FILE)
        with open(input_file, "w", encoding="utf-8") as handle:
            json.dump(task.input, handle, sort_keys=True)
        env = {
            **self._environ,
            **{key: value for key, value in task.env.items() if isinstance(value, str)},
            "META_UNIT_ID": task.id,
            "META_INPUT": input_file,
            "META_OUTPUT": output,
            "META_UPSTREAM": upstream,
            "META_SCRATCH": self.paths.scratch,
            "META_ATTEMPT": str(task.attempt),
            "META_RESULT": result,
        }
        try:
            slot = await self.slots.acquire(task.image or self.default_image)
        except (MetaError, TimeoutError) as exc:
            return Refused(f"no slot could take the step's image: {exc}")
        order = {
            "id": task.id,
            "attempt": task.attempt,
            "argv": list(task.command),
            "env": env,
            # The slot holds the section's secrets (the kubelet set them); the launcher gives
            # the step these, under the step's names, and no others.
            "secrets": {
                key: secret_variable(value)
                for key, value in task.env.items()
                if isinstance(value, SecretRef)
            },
            "cwd": task.workdir if self.in_folder else "",
            "stdout": os.path.join(unit_dir, f"{task.attempt}.out"),
            "stderr": os.path.join(unit_dir, f"{task.attempt}.err"),
        }
        try:
            answer = self.slots.order(slot, order)
        except SlotLost as lost:
            await self.slots.release(slot)
            return Refused(str(lost))
        return MicroRunning(self, slot, task, answer, output, result)
