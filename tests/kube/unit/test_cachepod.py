"""`meta cache ls|clear -n NS`: a short-lived restricted pod mounts the store's claim and runs
`meta cache ... -o json` there; its log is the answer and the pod is deleted whatever happened."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from meta.errors import UserError
from meta.kube.cachepod import run_cache_command
from meta.kube.types import PodSettings
from tests.kube.unit.fakes import FakeApi

NS = "team"
SETTINGS = PodSettings(
    default_image="framework:1",
    store_claim="store",
    node_selector={"disk": "ssd"},
    tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
)


def ends(api: FakeApi, code: int, log: str) -> None:
    """Each pod made ends at once with `code`, having written `log`."""

    def created(pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        api.logs[(NS, name, "cache", False)] = log
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        pod["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": "cache", "state": {"terminated": terminated}}],
        }

    api.on_create = created


def test_ls_runs_in_a_restricted_pod_on_the_store_claim_and_reads_its_log() -> None:
    api = FakeApi()
    entries = [{"key": "ab" * 32, "unit": "f/a", "run": f"{NS}/f", "bytes": 3, "ageSeconds": 1}]
    ends(api, 0, json.dumps(entries))
    assert asyncio.run(run_cache_command(api, NS, SETTINGS, ["ls"])) == entries
    (name,) = api.created
    assert api.deleted == [name], "the pod goes once it has answered"
    spec = made_pod(api)
    (container,) = spec["containers"]
    assert container["image"] == "framework:1"
    assert container["command"] == [
        "meta", "cache", "ls", "-o", "json", "--cache-dir", "/store/.cache",
    ]  # fmt: skip
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert spec["volumes"] == [{"name": "store", "persistentVolumeClaim": {"claimName": "store"}}]
    assert spec["nodeSelector"] == {"disk": "ssd"} and spec["tolerations"]


def test_a_failing_command_is_a_user_error_naming_the_pod_and_what_it_said() -> None:
    api = FakeApi()
    ends(api, 2, "--older-than: not an age\n")
    with pytest.raises(UserError) as caught:
        asyncio.run(run_cache_command(api, NS, SETTINGS, ["clear", "--older-than", "x"]))
    (fault,) = caught.value.faults
    assert fault.file.startswith(f"pod {NS}/meta-cache-")
    assert "not an age" in fault.reason
    assert api.deleted == api.created


def test_without_a_store_claim_nothing_is_made() -> None:
    api = FakeApi()
    with pytest.raises(UserError):
        asyncio.run(run_cache_command(api, NS, PodSettings(), ["ls"]))
    assert api.created == []


MADE: dict[int, dict[str, Any]] = {}


def made_pod(api: FakeApi) -> dict[str, Any]:
    return MADE[id(api)]


@pytest.fixture(autouse=True)
def keep_made_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    """FakeApi forgets a deleted pod: keep the body each test's pod was made with."""
    original = FakeApi.create_pod

    async def create_pod(self: FakeApi, namespace: str, pod: Any) -> dict[str, Any]:
        MADE[id(self)] = pod["spec"]
        return await original(self, namespace, pod)

    monkeypatch.setattr(FakeApi, "create_pod", create_pod)
