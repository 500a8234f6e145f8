"""How the broker decides a pod has ended, above all one that cannot start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meta.kube import broker
from meta.kube.api import LISTED, LISTING
from meta.kube.broker import Broker, pod_end


def waiting(reason: str, message: str = "", name: str = "step") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "p"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}
            ],
        },
    }


def running() -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "p"},
        "status": {"phase": "Running", "containerStatuses": [{"name": "step", "state": {}}]},
    }


def test_an_image_that_cannot_be_pulled_ends_the_pod_at_once() -> None:
    end = pod_end(waiting("ErrImageNeverPull", "image x is not present"))
    assert end is not None and end.stuck and end.patience == 0
    assert end.reason == "container step cannot start: ErrImageNeverPull image x is not present"


def test_a_slot_waiting_for_its_image_is_the_quarterbacks_to_look_after() -> None:
    assert pod_end(waiting("ImagePullBackOff", name="slot-0")) is None


@pytest.fixture
def short_patience(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(broker, "RETRIED_PATIENCE", 0.2)
    return 0.2


def test_a_runtime_error_the_kubelet_retries_ends_the_pod_only_when_it_lasts(
    short_patience: float,
) -> None:
    async def scenario() -> None:
        pods = Broker()
        pods.observe(waiting("CreateContainerError", "context deadline exceeded"))
        ended = asyncio.ensure_future(pods.ended("ns", "p"))
        await asyncio.sleep(short_patience / 4)
        assert not ended.done(), "a busy node's first CreateContainerError is not an end"
        pods.observe(waiting("CreateContainerError", "failed to reserve container name"))
        end = await asyncio.wait_for(ended, short_patience * 10)
        assert end.stuck and end.code == -1
        assert end.reason.endswith("failed to reserve container name"), "the latest message"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("RunContainerError", "context deadline exceeded"),
        # Two pods mounting subPaths of one volume at once on a node (kubernetes#94198).
        (
            "CreateContainerConfigError",
            'failed to create subPath directory for volumeMount "store" of container "step"',
        ),
        ("CreateContainerConfigError", 'secret "token" not found'),  # applied a moment later
    ],
)
def test_a_pod_that_recovers_from_an_error_the_kubelet_retries_is_waited_on_as_usual(
    short_patience: float, reason: str, message: str
) -> None:
    async def scenario() -> None:
        pods = Broker()
        pods.observe(waiting(reason, message))
        pods.observe(running())
        ended = asyncio.ensure_future(pods.ended("ns", "p"))
        await asyncio.sleep(short_patience * 2)
        assert not ended.done(), "the container started: the pod has not ended"
        succeeded = running()
        succeeded["status"]["phase"] = "Succeeded"
        pods.observe(succeeded)
        assert (await asyncio.wait_for(ended, 1)).code == 0

    asyncio.run(scenario())


def test_a_pod_deleted_while_held_ends_as_deleted_and_no_timer_fires_after(
    short_patience: float,
) -> None:
    async def scenario() -> None:
        pods = Broker()
        pods.observe(waiting("CreateContainerError"))
        ended = asyncio.ensure_future(pods.ended("ns", "p"))
        await asyncio.sleep(0)
        pods.forget("ns", "p")
        assert (await asyncio.wait_for(ended, 1)).reason == "deleted before it ended"
        await asyncio.sleep(short_patience * 2)
        again = asyncio.ensure_future(pods.ended("ns", "p"))
        await asyncio.sleep(short_patience)
        assert not again.done(), "the held end of a deleted pod must not settle a new wait"
        again.cancel()

    asyncio.run(scenario())


def test_an_end_is_kept_for_whoever_said_they_would_ask_and_for_nobody_else() -> None:
    async def scenario() -> None:
        pods = Broker()
        done = {"metadata": {"namespace": "ns", "name": "p"}, "status": {"phase": "Succeeded"}}
        pods.expect("ns", "p")
        pods.observe(done)  # ended before its attempt waited
        assert (await asyncio.wait_for(pods.ended("ns", "p"), 1)).code == 0
        for name in ("p", "listed-at-restart"):  # an ended pod's later events, another's
            pods.observe(done | {"metadata": {"namespace": "ns", "name": name}})
        assert pods._ended == {}, "nothing is kept of pods nobody will ask for"

    asyncio.run(scenario())


def pod(name: str, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "status": {"phase": "Running"}}


def test_a_pod_a_new_listing_leaves_out_was_deleted_while_the_watch_was_away() -> None:
    """A watch that fell behind lists again, and a pod deleted meanwhile never gets its DELETED
    event: its attempt must not wait for ever. A pod not yet seen (created after the listing's
    snapshot) and a pod of another namespace's listing are not judged by it."""

    async def scenario() -> None:
        pods = Broker()
        for name in ("gone", "kept", "other"):
            pods.expect("ns", name)
        pods.expect("elsewhere", "far")
        pods.expect("ns", "new")
        for seen in (pod("gone"), pod("kept"), pod("other"), pod("far", "elsewhere")):
            pods.follow("ADDED", seen)
        waits = {
            name: asyncio.ensure_future(pods.ended(namespace, name))
            for namespace, name in (("ns", "gone"), ("ns", "kept"), ("elsewhere", "far"))
        }
        await asyncio.sleep(0)
        pods.follow(None, pod("kept"))
        pods.follow(None, pod("other"))
        pods.follow(LISTED, {"metadata": {"namespace": "ns"}})
        gone = await asyncio.wait_for(waits["gone"], 1)
        assert gone.reason == "deleted before it ended"
        await asyncio.sleep(0)
        assert not waits["kept"].done() and not waits["far"].done()
        new = asyncio.ensure_future(pods.ended("ns", "new"))
        await asyncio.sleep(0)
        assert not new.done(), "a pod no event has shown yet is not judged gone"
        pods.follow("MODIFIED", {**pod("kept"), "status": {"phase": "Succeeded"}})
        assert (await asyncio.wait_for(waits["kept"], 1)).code == 0
        for waiting_on in (new, waits["far"]):
            waiting_on.cancel()

    asyncio.run(scenario())


def test_a_listing_that_broke_off_counts_for_nothing_once_one_begins_again() -> None:
    """A pod the broken listing showed, deleted before the listing begun again: the whole
    listing leaves it out, so it is gone."""

    async def scenario() -> None:
        pods = Broker()
        pods.expect("ns", "gone")
        pods.follow("ADDED", pod("gone"))
        waiting = asyncio.ensure_future(pods.ended("ns", "gone"))
        await asyncio.sleep(0)
        pods.follow(LISTING, {"metadata": {"namespace": "ns"}})
        pods.follow(None, pod("gone"))
        pods.follow(LISTING, {"metadata": {"namespace": "ns"}})
        pods.follow(LISTED, {"metadata": {"namespace": "ns"}})
        gone = await asyncio.wait_for(waiting, 1)
        assert gone.reason == "deleted before it ended"

    asyncio.run(scenario())
