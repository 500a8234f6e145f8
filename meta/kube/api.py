"""The one module that talks to the Kubernetes API (through the official `kubernetes` client).

Everything above it sees plain dicts and two errors, `Conflict` and `NotFound`. Every call made
through it (every create, patch, delete and read of the operator and the quarterback; kopf's
own watches and its few writes of its annotations go their own way) goes through one
client-side rate limit (a token bucket: `qps` tokens a second, at most `burst` saved
up; kopf and the client have none of their own) and is counted, so a run can report how many API
writes each unit cost. The client is synchronous; calls run on worker threads.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from meta.errors import Fault, MetaError, UserError
from meta.kube import metrics
from meta.kube.ratelimit import RateLimit
from meta.kube.types import GROUP, PLURAL, SCHEMA_PLURAL, VERSION


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "256Mi") as a number, to compare two of them."""
    value: Decimal = parse_quantity(text)
    return value


REQUEST_SECONDS = 60
# A Lease call answers within the renewal's deadline, or the renewal is tried again.
LEASE_REQUEST_SECONDS = 5
ATTEMPTS = 5
RETRY_SECONDS = 0.5
FOLLOW_SILENCE_SECONDS = 86400
"""A followed log ends with an error after a container stays silent this long."""
WATCH_SECONDS = 300
"""How long the API server keeps one watch request open; the next resumes where it ended."""
WATCH_RETRY_SECONDS = 30.0
"""The longest wait before a broken watch is opened again."""
LIST_PAGE = 500
"""Pods listed per request: a namespace of 100,000 ended pods is never one answer."""
log = logging.getLogger(__name__)


class ApiFailed(MetaError):
    """The API server refused a request, or gave no answer (status 0). Raised from the client's
    own exception, which stays its cause."""

    def __init__(self, verb: str, what: str, status: int, reason: str) -> None:
        self.status = status
        super().__init__(f"{verb} {what}: {status} {reason}")

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: the server was busy (429), failing
        (5xx) or silent; anything else (refused, not found, conflict) will fail again."""
        return self.status in (0, 429) or self.status >= 500


class Conflict(ApiFailed):
    """The object exists already (409), or changed since it was read."""


class NotFound(ApiFailed):
    """No such object (404)."""


@dataclass(frozen=True)
class Connection:
    host: str
    ca_file: str | None
    verify: bool
    token: str | None
    cert_file: str | None
    key_file: str | None


@dataclass
class Calls:
    """What this process asked of the API server, by verb."""

    by_verb: Counter[str] = field(default_factory=Counter)

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.by_verb.items() if verb not in ("get", "list", "watch"))


LISTING = "LISTING"
"""The kind of the event `watch_pods` gives as a listing begins: what an earlier listing that
broke off had shown counts for nothing."""
LISTED = "LISTED"
"""The kind of the event `watch_pods` gives once a listing is whole: a pod it did not list is
gone, even if no DELETED event said so (it went while the watch was away)."""


class KubeApi(Protocol):
    """What the cluster side asks of the API server: pods, ConfigMaps, Events, RBAC objects and
    MetaFlows of one cluster. `ClientApi` is the real one; tests give a fake of this shape."""

    calls: Calls

    def connection(self) -> Connection: ...

    @property
    def host(self) -> str: ...

    async def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> dict[str, Any]: ...

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int = 5) -> None: ...

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    async def delete_pods(
        self, namespace: str, selector: str, *, succeeded_only: bool = False
    ) -> None: ...

    def watch_pods(
        self, namespace: str, selector: str
    ) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
        """The pods `selector` matches in `namespace` ("": every namespace), for as long as it
        is iterated: (LISTING, {}) as a listing begins, (None, pod) for each listed, (LISTED,
        {}) once the listing is whole, then (ADDED | MODIFIED | DELETED, pod); listed again (a
        watch that fell too far behind, a listing that broke off) the same way. The empty
        objects name `namespace` only."""
        ...

    def read_log(
        self,
        namespace: str,
        name: str,
        container: str,
        *,
        follow: bool = False,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> AsyncIterator[str]:
        """A container's log: at once, or (`follow`) as it is written, until it ends; with
        `previous`, that of the container it replaced (a slot restarted with a new image);
        with `tail_lines`, only its last lines."""
        ...

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def create_config_map(
        self, namespace: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def delete_config_map(self, namespace: str, name: str) -> None:
        """Delete it; one already gone is not a fault."""
        ...

    async def create_namespaced(self, namespace: str, body: Mapping[str, Any]) -> None: ...

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None: ...

    async def get_flow(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def list_flows(self, namespace: str) -> list[dict[str, Any]]: ...

    async def create_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete_flow(self, namespace: str, name: str) -> None: ...

    async def patch_flow_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None: ...

    async def get_schema(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def create_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def patch_schema_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None: ...

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ClientApi:
    """The `KubeApi` of the official client: rate limited and counted."""

    def __init__(self, api_client: client.ApiClient, limit: RateLimit | None = None) -> None:
        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._rbac = client.RbacAuthorizationV1Api(api_client)
        self._coordination = client.CoordinationV1Api(api_client)
        self.limit = limit or RateLimit()
        self.calls = Calls()

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, limit: RateLimit | None = None
    ) -> ClientApi:
        """In a pod, its ServiceAccount; elsewhere `kubeconfig` or $KUBECONFIG / ~/.kube/config."""
        if kubeconfig is None:
            try:
                config.load_incluster_config()
                return cls(client.ApiClient(), limit)
            except config.ConfigException:
                pass
        try:
            return cls(config.new_client_from_config(config_file=kubeconfig), limit)
        except (config.ConfigException, OSError) as exc:
            # No cluster to talk to is the user's to fix: one line, not the client's traceback.
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(Fault(where, "", f"no cluster to use: {reason}")) from None

    @classmethod
    def with_token(
        cls, host: str, token: str, ca_file: str, limit: RateLimit | None = None
    ) -> ClientApi:
        """A client that authenticates with a bearer token (a ServiceAccount's)."""
        configuration = client.Configuration()
        configuration.host = host
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = ca_file
        return cls(client.ApiClient(configuration), limit)

    def connection(self) -> Connection:
        """Where and how this client connects, for another library to connect alike (kopf).
        A rotating ServiceAccount token is read afresh at each call."""
        c = self._client.configuration
        header = c.get_api_key_with_prefix("BearerToken") or c.get_api_key_with_prefix(
            "authorization"
        )
        token = header.split(" ", 1)[-1] if header else None
        return Connection(
            host=c.host,
            ca_file=c.ssl_ca_cert,
            verify=bool(c.verify_ssl),
            token=token,
            cert_file=c.cert_file,
            key_file=c.key_file,
        )

    @property
    def host(self) -> str:
        host: str = self._client.configuration.host
        return host

    async def _call(self, verb: str, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """One call, rate limited, counted, bounded in time; a busy or failing server (429,
        5xx, no answer) is asked again with backoff, a few times, before its error is raised."""
        kwargs.setdefault("_request_timeout", REQUEST_SECONDS)
        delay = RETRY_SECONDS
        attempt = 0
        while True:
            attempt += 1
            await self.limit.take()
            self.calls.by_verb[verb] += 1
            cause: Exception
            try:
                answer = await asyncio.to_thread(method, *args, **kwargs)
                metrics.api_call(verb, 200)
                return answer
            except ApiException as exc:
                cause, failed = exc, _translated(verb, what, exc)
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                cause, failed = exc, ApiFailed(verb, what, 0, f"no answer: {exc}")
            metrics.api_call(verb, failed.status)
            if attempt == ATTEMPTS or not failed.retryable:
                raise failed from cause
            await asyncio.sleep(delay)
            delay *= 2

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self._client.sanitize_for_serialization(obj)
        return plain

    # Pods
    async def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        created = await self._call(
            "create", f"pod {namespace}/{name}", self._core.create_namespaced_pod, namespace, pod
        )
        return self._plain(created)

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod = await self._call(
            "get", f"pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace
        )
        return self._plain(pod)

    async def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        patched = await self._call(
            "patch",
            f"pod {namespace}/{name}",
            self._core.patch_namespaced_pod,
            name,
            namespace,
            patch,
        )
        return self._plain(patched)

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int = 5) -> None:
        with contextlib.suppress(NotFound):
            await self._call(
                "delete",
                f"pod {namespace}/{name}",
                self._core.delete_namespaced_pod,
                name,
                namespace,
                grace_period_seconds=grace_seconds,
            )

    async def delete_pods(
        self, namespace: str, selector: str, *, succeeded_only: bool = False
    ) -> None:
        """Delete the pods `selector` matches (only those that succeeded, if so asked), in one
        call: the API server deletes them, the operator never lists them."""
        await self._call(
            "deletecollection",
            f"pods {selector} in {namespace}",
            self._core.delete_collection_namespaced_pod,
            namespace,
            label_selector=selector,
            field_selector="status.phase=Succeeded" if succeeded_only else None,
            grace_period_seconds=0,
        )

    async def watch_pods(
        self, namespace: str, selector: str
    ) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
        """List, then watch from where the list was; a watch that ends or breaks is opened
        again from the last version seen, one the server no longer has (410) lists again.
        Pods stay plain JSON (no client models) and nothing is kept of them here: the
        operator's memory does not grow with the pods it has seen."""
        what = f"pods {selector} in {namespace or 'every namespace'}"
        method = (
            self._core.list_namespaced_pod if namespace else self._core.list_pod_for_all_namespaces
        )
        where = (namespace,) if namespace else ()
        version = ""
        delay = RETRY_SECONDS
        while True:
            try:
                if not version:
                    yield LISTING, {"metadata": {"namespace": namespace}}
                    token = None
                    while True:
                        page = await self._call(
                            "list", what, method, *where, label_selector=selector,
                            limit=LIST_PAGE, _continue=token, _preload_content=False,
                        )  # fmt: skip
                        listed = json.loads(page.data)
                        for pod in listed.get("items") or []:
                            yield None, pod
                        token = listed["metadata"].get("continue")
                        if not token:
                            version = listed["metadata"]["resourceVersion"]
                            break
                    yield LISTED, {"metadata": {"namespace": namespace}}
                response = await self._call(
                    "watch", what, method, *where, label_selector=selector, watch=True,
                    resource_version=version, allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS, _preload_content=False,
                    _request_timeout=(REQUEST_SECONDS, WATCH_SECONDS + 30),
                )  # fmt: skip
                async with contextlib.aclosing(_events(response)) as events:
                    async for event in events:
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            if obj.get("code") == 410:
                                version = ""
                            break
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            yield event["type"], obj
                delay = RETRY_SECONDS
            except ApiFailed as failed:
                if failed.status == 410:
                    version = ""
                    continue
                log.warning("watch of %s: %s; watching again in %.1f s", what, failed, delay)
            except (OSError, urllib3.exceptions.HTTPError, ValueError, KeyError) as exc:
                log.warning("watch of %s broke off: %s; watching again in %.1f s", what, exc, delay)
            else:
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, WATCH_RETRY_SECONDS)

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        pods = await self._call(
            "list",
            f"pods in {namespace}",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )
        return [self._plain(p) for p in pods.items]

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
        what = f"log of pod {namespace}/{name} ({container})"
        read = self._core.read_namespaced_pod_log
        if not follow:
            text: str = await self._call(
                "get", what, read, name, namespace, container=container, previous=previous,
                **({} if tail_lines is None else {"tail_lines": tail_lines}),
            )  # fmt: skip
            yield text
            return
        # Streamed: each read waits as long as the container may stay silent.
        response = await self._call(
            "get", what, read, name, namespace, container=container, follow=True,
            _preload_content=False, _request_timeout=(REQUEST_SECONDS, FOLLOW_SILENCE_SECONDS),
        )  # fmt: skip
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            # As the client's watches read: each HTTP chunk the server sends, as it comes.
            chunks = response.stream(amt=None, decode_content=False)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield decoder.decode(chunk)
            yield decoder.decode(b"", final=True)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise ApiFailed("get", what, 0, f"the log stream broke off: {exc}") from exc
        finally:
            response.release_conn()

    # ConfigMaps
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        found = await self._call(
            "get",
            f"configmap {namespace}/{name}",
            self._core.read_namespaced_config_map,
            name,
            namespace,
        )
        return self._plain(found)

    async def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        created = await self._call(
            "create",
            f"configmap {namespace}/{name}",
            self._core.create_namespaced_config_map,
            namespace,
            body,
        )
        return self._plain(created)

    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        patched = await self._call(
            "patch",
            f"configmap {namespace}/{name}",
            self._core.patch_namespaced_config_map,
            name,
            namespace,
            patch,
        )
        return self._plain(patched)

    async def delete_config_map(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call(
                "delete",
                f"configmap {namespace}/{name}",
                self._core.delete_namespaced_config_map,
                name,
                namespace,
            )

    # A quarterback's access: its ServiceAccount, Role and RoleBinding
    async def create_namespaced(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Create a ServiceAccount, Role or RoleBinding."""
        creators = {
            "ServiceAccount": self._core.create_namespaced_service_account,
            "Role": self._rbac.create_namespaced_role,
            "RoleBinding": self._rbac.create_namespaced_role_binding,
        }
        kind = body["kind"]
        what = f"{kind.lower()} {namespace}/{body['metadata']['name']}"
        await self._call("create", what, creators[kind], namespace, body)

    # Events
    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
        await self._call(
            "create", f"event in {namespace}", self._core.create_namespaced_event, namespace, body
        )

    # MetaFlows
    async def get_flow(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "get",
            f"metaflow {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )
        return found

    async def list_flows(self, namespace: str) -> list[dict[str, Any]]:
        found: dict[str, Any] = await self._call(
            "list",
            f"metaflows in {namespace}",
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
        )
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    async def create_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            "create",
            f"metaflow {namespace}/{body['metadata']['name']}",
            self._custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            body,
        )
        return created

    async def replace_flow(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        replaced: dict[str, Any] = await self._call(
            "update",
            f"metaflow {namespace}/{name}",
            self._custom.replace_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
        )
        return replaced

    async def delete_flow(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call(
                "delete",
                f"metaflow {namespace}/{name}",
                self._custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )

    async def patch_flow_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self._call(
            "patch",
            f"metaflow {namespace}/{name} status",
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    # MetaSchemas (data descriptions the operator generates MetaFlows from)
    async def get_schema(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "get",
            f"metaschema {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SCHEMA_PLURAL,
            name,
        )
        return found

    async def create_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            "create",
            f"metaschema {namespace}/{body['metadata']['name']}",
            self._custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SCHEMA_PLURAL,
            body,
        )
        return created

    async def replace_schema(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        replaced: dict[str, Any] = await self._call(
            "update",
            f"metaschema {namespace}/{name}",
            self._custom.replace_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            SCHEMA_PLURAL,
            name,
            body,
        )
        return replaced

    async def patch_schema_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        await self._call(
            "patch",
            f"metaschema {namespace}/{name} status",
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            SCHEMA_PLURAL,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    # The operators' Lease (one active replica)
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        found = await self._call(
            "get",
            f"lease {namespace}/{name}",
            self._coordination.read_namespaced_lease,
            name,
            namespace,
            _request_timeout=LEASE_REQUEST_SECONDS,
        )
        return self._plain(found)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        created = await self._call(
            "create",
            f"lease {namespace}/{name}",
            self._coordination.create_namespaced_lease,
            namespace,
            body,
            _request_timeout=LEASE_REQUEST_SECONDS,
        )
        return self._plain(created)

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace it as it was read (metadata.resourceVersion): Conflict when it changed since."""
        name = body["metadata"]["name"]
        replaced = await self._call(
            "replace",
            f"lease {namespace}/{name}",
            self._coordination.replace_namespaced_lease,
            name,
            namespace,
            body,
            _request_timeout=LEASE_REQUEST_SECONDS,
        )
        return self._plain(replaced)

    def close(self) -> None:
        self._client.close()


async def _events(response: Any) -> AsyncGenerator[dict[str, Any], None]:
    """The events of a watch response, one JSON line each. Read on a daemon thread of its own:
    a watch waits for minutes, and a thread of the loop's pool would hold the operator's exit
    for as long (the pool is joined when the loop closes); leaving, the socket is shut so the
    thread wakes and ends."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    def read() -> None:
        buffer = b""
        end: bytes | BaseException | None = None
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                *whole, buffer = buffer.split(b"\n")
                for line in whole:
                    if line.strip():
                        loop.call_soon_threadsafe(lines.put_nowait, line)
        except Exception as exc:  # handed to the loop, which raises it
            end = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody reads
            loop.call_soon_threadsafe(lines.put_nowait, end)

    threading.Thread(target=read, name="meta-watch", daemon=True).start()
    ended = False
    try:
        while (line := await lines.get()) is not None:
            if isinstance(line, BaseException):
                raise line
            yield json.loads(line)
        ended = True
    finally:
        if ended:
            response.release_conn()
        else:
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            response.close()


def _translated(verb: str, what: str, exc: ApiException) -> ApiFailed:
    status = int(exc.status or 0)
    reason = str(exc.reason or "")
    body = exc.body if isinstance(exc.body, str) else ""
    if '"message"' in body:
        with contextlib.suppress(ValueError):
            reason = json.loads(body).get("message", reason)
    kind = {409: Conflict, 404: NotFound}.get(status, ApiFailed)
    return kind(verb, what, status, reason)
