"""Every pod the operator lays out passes the `restricted` Pod Security Standard (the API server
enforces it in namespaces labelled `pod-security.kubernetes.io/enforce: restricted`; the cluster
tests run there)."""

from __future__ import annotations

from typing import Any

import pytest

from meta.engine.driver import PodTask, StepTask
from meta.kube.layout import micro_pod, step_pod
from meta.kube.types import FlowOwner, PodSettings

OWNER = FlowOwner("team", "flow", "uid-1")
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def restricted_faults(pod: dict[str, Any]) -> list[str]:
    """What the restricted profile (Kubernetes 1.36) refuses in this pod, as its checks name it."""
    spec = pod["spec"]
    pod_context = spec.get("securityContext") or {}
    faults = [
        f"volume {v['name']}: {kind}"
        for v in spec["volumes"]
        for kind in v
        if kind != "name" and kind not in RESTRICTED_VOLUMES
    ]
    faults += [f"host namespace {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        name, context = container["name"], container.get("securityContext") or {}

        def effective(key: str, ctx: dict[str, Any] = context) -> Any:
            return ctx.get(key, pod_context.get(key))

        if context.get("privileged"):
            faults.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            faults.append(f"{name}: allowPrivilegeEscalation != false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            faults.append(f"{name}: capabilities not dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            faults.append(f"{name}: capabilities added")
        if effective("runAsNonRoot") is not True:
            faults.append(f"{name}: runAsNonRoot != true")
        if effective("runAsUser") == 0:
            faults.append(f"{name}: runAsUser=0")
        if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            faults.append(f"{name}: seccompProfile")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            faults.append(f"{name}: hostPort")
    return faults


def step_task() -> StepTask:
    return StepTask(
        id="flow/s", name="s", section="flow", scope="macro", command=("true",), env={},
        image="python:3.12", input={}, upstream=[("a", "flow/a")], pod=None, workdir="/",
        attempt=1,
    )  # fmt: skip


def pod_task() -> PodTask:
    return PodTask(
        id="flow/m", name="m", section="flow", file="f", pointer="/spec/root", input={},
        iteration=None, hidden=(), upstream=[("a", "flow/a")], attempt=1, max_active=2,
    )  # fmt: skip


def micro(settings: PodSettings) -> dict[str, Any]:
    return micro_pod(pod_task(), OWNER, settings, [], ["img-a", "img-b"], {}, "/store")


@pytest.mark.parametrize("claim", [None, "store"])
def test_step_and_micro_pods_pass_the_restricted_profile(claim: str | None) -> None:
    settings = PodSettings(store_claim=claim)
    assert restricted_faults(step_pod(step_task(), OWNER, settings, [], "/store")) == []
    assert restricted_faults(micro(settings)) == []


def test_pods_run_as_the_framework_uid_whatever_their_images_say() -> None:
    pod = step_pod(step_task(), OWNER, PodSettings(), [], "/store")
    context = pod["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (10001,) * 3
    other = step_pod(step_task(), OWNER, PodSettings(run_as_user=2000), [], "/store")
    assert other["spec"]["securityContext"]["runAsUser"] == 2000


def test_root_is_only_for_namespaces_that_allow_it() -> None:
    pod = step_pod(step_task(), OWNER, PodSettings(run_as_user=0), [], "/store")
    assert "runAsNonRoot" not in pod["spec"]["securityContext"], "the kubelet would refuse it"
    assert restricted_faults(pod) == ["step: runAsNonRoot != true", "step: runAsUser=0"]


def test_root_file_systems_are_read_only_and_tmp_stays_writable() -> None:
    step = step_pod(step_task(), OWNER, PodSettings(), [], "/store")["spec"]
    pod = micro(PodSettings())["spec"]
    for container in [*step["containers"], *pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
    for container in [*step["containers"], *pod["containers"]]:
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and not tmp[0].get("readOnly"), container["name"]


def test_steps_may_be_given_a_writable_root_but_the_framework_keeps_its_own_read_only() -> None:
    settings = PodSettings(read_only_root=False)
    step = step_pod(step_task(), OWNER, settings, [], "/store")["spec"]["containers"][0]
    assert step["securityContext"]["readOnlyRootFilesystem"] is False
    pod = micro(settings)["spec"]
    read_only = {
        c["name"]: c["securityContext"]["readOnlyRootFilesystem"]
        for c in [*pod["initContainers"], *pod["containers"]]
    }
    assert read_only == {
        "install-launcher": True, "quarterback": True, "slot-0": False, "slot-1": False,
    }  # fmt: skip
    assert restricted_faults({"spec": pod}) == []
