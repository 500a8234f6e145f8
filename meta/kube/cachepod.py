"""`meta cache ls` and `meta cache clear` against a cluster's cache, the store's `.cache` folder.

The store is a PersistentVolumeClaim that only pods see, so the command runs where the cache
is: a short-lived pod (restricted, placed and run as the operator's pods are) mounts the claim
and runs `meta cache ... -o json` on it with the framework image; its log is the answer, and
the pod is deleted whatever happened. Nothing else is kept in the cluster: no index to keep in
step with the entries the operator and the quarterbacks write.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from meta.errors import Fault, UserError
from meta.kube.api import ApiFailed, KubeApi
from meta.kube.broker import pod_end
from meta.kube.layout import container_security, place, pod_security, store_volume
from meta.kube.types import CACHE_DIR, MANAGED_BY, STORE_VOLUME, PodSettings

CONTAINER = "cache"
STORE_MOUNT = "/store"
WAIT_SECONDS = 300.0
POLL_SECONDS = 0.5


def cache_pod(name: str, settings: PodSettings, args: Sequence[str]) -> dict[str, Any]:
    """The pod that runs `meta cache ARGS -o json` on the store's cache."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(settings),
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.default_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": [
                    "meta", "cache", *args, "-o", "json",
                    "--cache-dir", f"{STORE_MOUNT}/{CACHE_DIR}",
                ],
                "volumeMounts": [{"name": STORE_VOLUME, "mountPath": STORE_MOUNT}],
                "securityContext": container_security(),
            }
        ],
        "volumes": [store_volume(settings)],
    }  # fmt: skip
    place(spec, settings)
    labels = {**MANAGED_BY, "app.kubernetes.io/component": "cache"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


async def run_cache_command(
    api: KubeApi,
    namespace: str,
    settings: PodSettings,
    args: Sequence[str],
    wait_seconds: float = WAIT_SECONDS,
) -> Any:
    """What `meta cache ARGS -o json` says of the store's cache (parsed), run in a pod of
    `namespace`."""
    if not settings.store_claim:
        raise UserError(
            Fault("--store-claim", "", "the cluster's cache is in the store: name its claim")
        )
    name = f"meta-cache-{secrets.token_hex(4)}"
    where = f"pod {namespace}/{name}"
    try:
        await api.create_pod(namespace, cache_pod(name, settings, args))
    except ApiFailed as exc:
        raise UserError(
            Fault(where, "", f"cannot make the pod that reads the cache: {exc}")
        ) from None
    try:
        code, why = await _ended(api, namespace, name, wait_seconds)
        log = "".join([chunk async for chunk in api.read_log(namespace, name, CONTAINER)])
    except ApiFailed as exc:
        raise UserError(Fault(where, "", f"cannot read the cache through its pod: {exc}")) from None
    finally:
        await api.delete_pod(namespace, name, 0)
    if code != 0:
        said = log.strip()[-2000:] or why
        raise UserError(Fault(where, "", f"`meta cache {' '.join(args)}` failed there: {said}"))
    try:
        return json.loads(log)
    except ValueError:
        raise UserError(
            Fault(where, "", f"not the answer of `meta cache`: {log[-2000:]}")
        ) from None


async def _ended(api: KubeApi, namespace: str, name: str, wait_seconds: float) -> tuple[int, str]:
    """The pod's exit code and why it failed, once it has ended. Asked every half second: it
    lives for about a second, and a watch costs more than the few reads."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        end = pod_end(await api.get_pod(namespace, name))
        if end is not None:
            return end.code, end.reason or end.message
        await asyncio.sleep(POLL_SECONDS)
    return -1, f"it did not end within {wait_seconds:g} s"
