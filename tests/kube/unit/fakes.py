"""An in-memory stand-in for `KubeApi`, and a fake kubelet, for the Kubernetes runtime's unit
tests. The real API server is exercised by tests/kube; these pin down the runtime's own logic
(laziness, bounds, adoption after a restart, the journal) quickly and exactly."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from meta.kube.api import LISTED, LISTING, ApiFailed, Calls, Conflict, Connection, KubeApi, NotFound
from meta.kube.broker import Watches
from meta.kube.types import ANNOTATION_UNIT_ID


class FakeApi:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.flows: dict[tuple[str, str], dict[str, Any]] = {}
        """ServiceAccounts, Roles and RoleBindings, by (kind, namespace, name)."""
        self.statuses: list[dict[str, Any]] = []
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.graces: dict[str, int] = {}
        """The grace period each deleted pod was given, by name."""
        self.on_delete: Callable[[dict[str, Any]], None] | None = None
        self.calls = Calls(Counter())
        self.on_create: Callable[[dict[str, Any]], None] | None = None
        self.logs: dict[tuple[str, str, str, bool], str] = {}
        """Container logs, by (namespace, pod, container, previous)."""
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        """Leases, whose writes name the resourceVersion they read, as the API server's do."""
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}
        """MetaSchemas, their status merged in as patches arrive."""

    def _count(self, verb: str) -> None:
        self.calls.by_verb[verb] += 1

    async def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create")
        key = (namespace, pod["metadata"]["name"])
        if key in self.pods:
            raise Conflict("create", f"pod {key}", 409, "exists")
        body = copy.deepcopy(dict(pod))
        body["status"] = {"phase": "Pending"}
        self.pods[key] = body
        self.created.append(key[1])
        if self.on_create is not None:
            self.on_create(body)
        return body

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get")
        try:
            return copy.deepcopy(self.pods[(namespace, name)])
        except KeyError:
            raise NotFound("get", name, 404, "not found") from None

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int = 5) -> None:
        self._count("delete")
        pod = self.pods.pop((namespace, name), None)
        if pod is not None:
            self.deleted.append(name)
            self.graces[name] = grace_seconds
            if self.on_delete is not None:
                self.on_delete(pod)

    async def delete_pods(
        self, namespace: str, selector: str, *, succeeded_only: bool = False
    ) -> None:
        self._count("deletecollection")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        for (where, name), pod in list(self.pods.items()):
            labels = pod["metadata"].get("labels", {})
            if where != namespace or any(labels.get(k) != v for k, v in wanted.items()):
                continue
            if not succeeded_only or pod["status"].get("phase") == "Succeeded":
                del self.pods[(where, name)]
                self.deleted.append(name)

    async def watch_pods(
        self, namespace: str, selector: str
    ) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
        """The pods there are that have the label `selector`, listed; then nothing (the tests'
        kubelet feeds the broker)."""
        yield LISTING, {"metadata": {"namespace": namespace}}
        for (where, _), pod in list(self.pods.items()):
            if namespace in ("", where) and selector in (pod["metadata"].get("labels") or {}):
                yield None, copy.deepcopy(pod)
        yield LISTED, {"metadata": {"namespace": namespace}}
        await asyncio.Event().wait()

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get")
        try:
            return copy.deepcopy(self.config_maps[(namespace, name)])
        except KeyError:
            raise NotFound("get", name, 404, "not found") from None

    async def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create")
        key = (namespace, body["metadata"]["name"])
        if key in self.config_maps:
            raise Conflict("create", name_of(body), 409, "exists")
        self.config_maps[key] = copy.deepcopy(dict(body))
        return self.config_maps[key]

    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._count("patch")
        found = self.config_maps[(namespace, name)]
        found.setdefault("data", {}).update(patch.get("data", {}))
        return found

    async def delete_config_map(self, namespace: str, name: str) -> None:
        self._count("delete")
        self.config_maps.pop((namespace, name), None)

    async def create_namespaced(self, namespace: str, body: Mapping[str, Any]) -> None:
        self._count("create")
        key = (body["kind"], namespace, body["metadata"]["name"])
        if key in self.objects:
            raise Conflict("create", str(key), 409, "exists")
        self.objects[key] = copy.deepcopy(dict(body))

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        self._count("create")
        self.events.append(dict(body))

    async def patch_flow_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._count("patch")
        merged = {**(self.statuses[-1] if self.statuses else {}), **copy.deepcopy(dict(status))}
        self.statuses.append(merged)

    @property
    def status(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}

    def connection(self) -> Connection:
        return Connection(self.host, None, False, None, None, None)

    @property
    def host(self) -> str:
        return "https://fake.invalid"

    async def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._count("patch")
        pod = await self.get_pod(namespace, name)
        self.pods[(namespace, name)] = _merged(pod, patch)
        return copy.deepcopy(self.pods[(namespace, name)])

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._count("list")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        return [
            copy.deepcopy(pod)
            for (where, _), pod in self.pods.items()
            if where == namespace
            and all(pod["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    async def read_log(
        self,
        namespace: str,
        name: str,
        container: str,
        *,
        follow: bool = False,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> AsyncIterator[str]:
        self._count("get")
        if (namespace, name) not in self.pods:
            raise NotFound("get", f"pod {namespace}/{name}", 404, "not found")
        text = self.logs.get((namespace, name, container, previous))
        if text is None:
            raise ApiFailed("get", f"log of {name}", 400, f"container {container} is waiting")
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        if not follow:
            yield text
            return
        # A followed log arrives in pieces, as the container writes it.
        half = len(text) // 2
        for piece in (text[:half], text[half:]):
            await asyncio.sleep(0)
            yield piece

    async def get_flow(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get")
        try:
            return copy.deepcopy(self.flows[(namespace, name)])
        except KeyError:
            raise NotFound("get", f"metaflow {namespace}/{name}", 404, "not found") from None

    async def list_flows(self, namespace: str) -> list[dict[str, Any]]:
        self._count("list")
        return [
            copy.deepcopy(body) for (ns, _), body in sorted(self.flows.items()) if ns == namespace
        ]

    async def create_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create")
        key = (namespace, name_of(body))
        if key in self.flows:
            raise Conflict("create", f"metaflow {key}", 409, "exists")
        self.flows[key] = copy.deepcopy(dict(body))
        return copy.deepcopy(self.flows[key])

    async def replace_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update")
        await self.get_flow(namespace, name_of(body))
        self.flows[(namespace, name_of(body))] = copy.deepcopy(dict(body))
        return copy.deepcopy(dict(body))

    async def delete_flow(self, namespace: str, name: str) -> None:
        self._count("delete")
        self.flows.pop((namespace, name), None)

    async def get_schema(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get")
        try:
            return copy.deepcopy(self.schemas[(namespace, name)])
        except KeyError:
            raise NotFound("get", f"metaschema {namespace}/{name}", 404, "not found") from None

    async def create_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create")
        key = (namespace, name_of(body))
        if key in self.schemas:
            raise Conflict("create", f"metaschema {key}", 409, "exists")
        self.schemas[key] = copy.deepcopy(dict(body))
        return copy.deepcopy(self.schemas[key])

    async def replace_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update")
        await self.get_schema(namespace, name_of(body))
        self.schemas[(namespace, name_of(body))] = copy.deepcopy(dict(body))
        return copy.deepcopy(dict(body))

    async def patch_schema_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._count("patch")
        found = self.schemas[(namespace, name)]
        found["status"] = _merged(found.get("status") or {}, status)

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        self._count("get")
        try:
            return copy.deepcopy(self.leases[(namespace, name)])
        except KeyError:
            raise NotFound("get", f"lease {namespace}/{name}", 404, "not found") from None

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create")
        key = (namespace, name_of(body))
        if key in self.leases:
            raise Conflict("create", f"lease {key}", 409, "exists")
        self.leases[key] = copy.deepcopy(dict(body))
        self.leases[key]["metadata"]["resourceVersion"] = "1"
        return copy.deepcopy(self.leases[key])

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("update")
        key = (namespace, name_of(body))
        current = await self.get_lease(namespace, key[1])
        version = current["metadata"]["resourceVersion"]
        if body["metadata"].get("resourceVersion") != version:
            raise Conflict("replace", f"lease {key}", 409, "the object has been modified")
        self.leases[key] = copy.deepcopy(dict(body))
        self.leases[key]["metadata"]["resourceVersion"] = str(int(version) + 1)
        return copy.deepcopy(self.leases[key])

    def close(self) -> None:
        pass


def _merged(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied to a copy of `target`."""
    merged = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def name_of(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["name"])


class FakeKubelet:
    """Ends each pod as the test says (by unit id), after `delay` seconds, through the broker,
    as watch events would; tracks how many pods run at once."""

    def __init__(
        self,
        api: FakeApi,
        watches: Watches,
        *,
        delay: float = 0.001,
        exit_codes: Mapping[str, int] | None = None,
        hold: Callable[[str], bool] | None = None,
        messages: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.broker = watches.pods
        self.delay = delay
        self.exit_codes = dict(exit_codes or {})
        self.hold = hold or (lambda unit: False)
        self.messages = dict(messages or {})
        """The termination message of a pod that succeeds, by unit id (a quarterback's report)."""
        self.live = 0
        self.peak = 0
        self.order: list[str] = []
        api.on_create = self._created

    def _created(self, pod: dict[str, Any]) -> None:
        unit = pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
        self.order.append(unit)
        self.live += 1
        self.peak = max(self.peak, self.live)
        if not self.hold(unit):
            asyncio.get_running_loop().call_later(
                self.delay, self.end, pod, self.exit_codes.get(unit, 0)
            )

    def end(self, pod: dict[str, Any], code: int) -> None:
        self.live -= 1
        unit = pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
        pod["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": "step",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": "Completed" if code == 0 else "Error",
                            "message": self.messages.get(unit, "")
                            if code == 0
                            else "boom: the last words\n",
                        }
                    },
                }
            ],
        }
        self.broker.observe(copy.deepcopy(pod))


_CONFORMS: type[KubeApi] = FakeApi
"""mypy (in `make lint`) holds the fake to the protocol the cluster side is typed against."""
