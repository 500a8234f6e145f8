"""The pods the operator lays out: what a step's container sees."""

from __future__ import annotations

from dataclasses import replace

from meta.engine.driver import StepTask
from meta.kube.layout import step_pod
from meta.kube.types import FlowOwner, PodSettings

OWNER = FlowOwner("team", "flow", "uid-1")


def task(workdir: str) -> StepTask:
    return StepTask(
        id="flow/s", name="s", section="flow", scope="macro", command=("true",), env={},
        image=None, input={}, upstream=[], pod=None, workdir=workdir, attempt=1,
    )  # fmt: skip


def mounts(pod: dict[str, object]) -> dict[str, dict[str, object]]:
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def test_a_generated_flows_step_starts_in_its_folder_in_the_store() -> None:
    written = "/store/uid-1/flow/discover/outputs"
    pod = step_pod(task(written), OWNER, PodSettings(), [], "/store")
    assert pod["spec"]["containers"][0]["workingDir"] == written
    assert mounts(pod)[written] == {
        "name": "store", "mountPath": written, "subPath": "uid-1/flow/discover/outputs",
        "readOnly": True,
    }  # fmt: skip


def test_any_other_step_keeps_its_images_working_directory() -> None:
    pod = step_pod(task("/operator/data"), OWNER, PodSettings(), [], "/store")
    assert "workingDir" not in pod["spec"]["containers"][0]
    assert "/operator/data" not in mounts(pod)
    assert mounts(pod)["/meta/upstream"]["name"] == "upstream", "a folder even with no producer"
    files = mounts(pod)["/store/uid-1/.files"]
    assert (files["subPath"], files["readOnly"]) == ("uid-1/.files", True)


def test_a_step_writes_its_result_into_its_attempts_folder_of_the_store() -> None:
    pod = step_pod(replace(task("/x"), attempt=2), OWNER, PodSettings(), [], "/store")
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["META_RESULT"] == "/meta/result/result.json"
    assert mounts(pod)["/meta/result"] == {
        "name": "store", "mountPath": "/meta/result", "subPath": "uid-1/flow/s/result/2",
    }  # fmt: skip
