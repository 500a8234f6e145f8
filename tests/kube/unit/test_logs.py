"""`meta logs` in the cluster: a macro step's log from its pod, a micro step's from the slot
container that ran it (where the launcher copies it, framed, when the step ends). The pods are
laid out by `meta.kube.layout`, as the operator makes them; their logs are the fake's."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from meta.engine.driver import PodTask, StepTask
from meta.errors import UserError
from meta.kube.apply import UnitLog, unit_log
from meta.kube.layout import micro_pod, step_pod
from meta.kube.quarterback.launcher import Launcher
from meta.kube.types import ANNOTATION_UNIT_ID, FlowOwner, PodSettings
from tests.kube.unit.fakes import FakeApi

OWNER = FlowOwner("team", "flow", "uid-1")


def step_task(uid: str, attempt: int) -> StepTask:
    return StepTask(
        id=uid, name=uid.rsplit("/", 1)[-1], section="flow/top", scope="macro",
        command=("true",), env={}, image=None, input={}, upstream=[], pod=None,
        workdir="/", attempt=attempt,
    )  # fmt: skip


def pod_task(uid: str, attempt: int) -> PodTask:
    return PodTask(
        id=uid, name=uid.rsplit("/", 1)[-1], section="flow/top", file="f", pointer="/spec/root",
        input={}, iteration=None, hidden=(), upstream=[], attempt=attempt, max_active=2,
    )  # fmt: skip


def echoed(folder: Path, uid: str, attempt: int, streams: dict[str, bytes]) -> str:
    """What the real launcher writes to its container's log when a step has ended."""
    order: dict[str, Any] = {"id": uid, "attempt": attempt}
    for stream in ("stdout", "stderr"):
        order[stream] = str(folder / f"{uid.replace('/', '~')}.{stream}")
        if stream in streams:
            Path(order[stream]).write_bytes(streams[stream])
    captured = io.BytesIO()
    real, sys.stdout = sys.stdout, io.TextIOWrapper(captured)
    try:
        Launcher(sock=None).echo(order)  # type: ignore[arg-type]
    finally:
        # Detached, so that the wrapper leaves the buffer open when it goes.
        sys.stdout.detach()
        sys.stdout = real
    return captured.getvalue().decode()


@pytest.fixture
def api(tmp_path: Path) -> FakeApi:
    fake = FakeApi()
    pods: list[dict[str, Any]] = [
        step_pod(step_task("flow/top/fetch", 1), OWNER, PodSettings(), [], "/store"),
        step_pod(step_task("flow/top/fetch", 2), OWNER, PodSettings(), [], "/store"),
        micro_pod(pod_task("flow/top/inner", 1), OWNER, PodSettings(), [], ["a", "b"], {}, "/s"),
    ]
    for pod in pods:
        fake.pods[("team", pod["metadata"]["name"])] = pod
    fetch1, fetch2, micro = (pod["metadata"]["name"] for pod in pods)
    fake.logs[("team", fetch1, "step", False)] = "first try\n"
    fake.logs[("team", fetch2, "step", False)] = "second try\nfetched\n"
    fake.logs[("team", micro, "slot-0", False)] = echoed(
        tmp_path, "flow/top/inner/parse", 1, {"stdout": b"parsed\n", "stderr": b"warning: odd\n"}
    ) + echoed(tmp_path, "flow/top/inner/sum", 1, {"stdout": b"21"})
    # slot-1 was restarted with another image: what it ran before is in its previous log.
    fake.pods[("team", micro)]["status"] = {
        "containerStatuses": [{"name": "slot-1", "restartCount": 1}]
    }
    fake.logs[("team", micro, "slot-1", True)] = echoed(
        tmp_path, "flow/top/inner/load", 2, {"stdout": b"loaded\n"}
    )
    fake.logs[("team", micro, "slot-1", False)] = ""
    fake.flows[("team", "flow")] = {
        "metadata": {"name": "flow", "namespace": "team"},
        "status": {"phase": "Failed", "failedUnit": "flow/top/fetch"},
    }
    return fake


def read(api: FakeApi, unit: str | None, attempt: int | None = None, follow: bool = False) -> Any:
    async def go() -> tuple[UnitLog, list[tuple[str, str]]]:
        found = await unit_log(api, "team", "flow", unit, attempt, follow=follow)
        return found, [chunk async for chunk in found.chunks]

    return asyncio.run(go())


def test_a_macro_steps_log_is_its_pods_last_attempt_by_default(api: FakeApi) -> None:
    found, chunks = read(api, None)
    assert (found.unit, found.attempt, found.container) == ("flow/top/fetch", 2, "step")
    assert chunks == [("out", "second try\nfetched\n")]
    found, chunks = read(api, "fetch", attempt=1)
    assert found.pod.endswith("-1") and chunks == [("out", "first try\n")]
    _, chunks = read(api, "fetch", follow=True)
    assert "".join(text for _, text in chunks) == "second try\nfetched\n"


def test_a_micro_steps_log_comes_from_its_slot_framed_as_the_launcher_wrote_it(
    api: FakeApi,
) -> None:
    found, chunks = read(api, "parse")
    assert (found.unit, found.attempt, found.container) == ("flow/top/inner/parse", 1, "slot-0")
    assert chunks == [("out", "parsed\n"), ("err", "warning: odd\n")]
    _, chunks = read(api, "inner/sum")
    assert chunks == [("out", "21")], "no newline is added to what the step wrote"
    found, chunks = read(api, "flow/top/inner/load")
    assert (found.container, found.attempt, chunks) == ("slot-1", 2, [("out", "loaded\n")])


def test_units_that_cannot_be_shown_are_one_clear_fault(api: FakeApi) -> None:
    cases = {
        ("nothing", None): "metaflow team/flow: /: no unit 'nothing' has a pod or a log; its "
        "units: flow/top/fetch, flow/top/inner/load, flow/top/inner/parse, flow/top/inner/sum",
        ("fetch", 3): "metaflow team/flow: /: unit flow/top/fetch has no attempt 3; its "
        "attempts: 1, 2",
        ("flow/top/inner/later", None): "metaflow team/flow: /: unit flow/top/inner/later ran, "
        "or runs, in micro pod ",
    }
    for (unit, attempt), expected in cases.items():
        with pytest.raises(UserError) as refused:
            read(api, unit, attempt)
        assert str(refused.value).startswith(expected)
    with pytest.raises(UserError, match="no such MetaFlow"):
        asyncio.run(unit_log(api, "team", "other", None, None, follow=False))


def test_the_log_of_a_collected_pod_is_said_to_be_gone_with_it(api: FakeApi) -> None:
    api.flows[("team", "flow")]["spec"] = {"podGC": {"strategy": "OnPodCompletion"}}
    for key, pod in list(api.pods.items()):
        if pod["metadata"]["annotations"][ANNOTATION_UNIT_ID] == "flow/top/fetch":
            del api.pods[key]
    with pytest.raises(UserError) as refused:
        read(api, None)
    assert str(refused.value) == (
        "metaflow team/flow: /: no pod of unit 'flow/top/fetch' is left: the flow's pods are "
        "collected (spec.podGC.strategy OnPodCompletion), each deleted with its log once it "
        "ended and its unit was journaled (`meta status flow` tells how each unit ended)"
    )
