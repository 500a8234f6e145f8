"""The MetaFlow operator: kopf handlers only. A daemon per MetaFlow runs it through the
controller; pod and MetaFlow events feed the watches.

`run_operator` blocks until the operator is stopped (SIGINT/SIGTERM). It can be killed at any
moment: progress lives in the cluster (the flow's pods, its journal ConfigMaps and its status),
and the next operator session resumes every flow without recreating a finished pod.

kopf is imported here and nowhere else. Each MetaFlow gets one daemon for as long as the
operator runs; after a restart kopf starts the daemons again and each resumes its flow. Pod
phases arrive through the operator's own watch of the pods it labelled (`KubeApi.watch_pods`),
not kopf's: kopf keeps a memory of every object it has seen until that object is deleted, and
a flow's ended pods stay (without `spec.podGC`), so the operator would grow with every pod it
ever made.

With a Lease (`meta.kube.lease`), replicas run side by side and one is active: every replica
watches, but a flow's daemon runs it only once its replica holds the Lease, so a standby takes
over from a killed holder within the Lease's duration, with its watches already warm. A holder
that loses the Lease stops at once (`LeadershipLost`) and is restarted as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable, Sequence
from typing import Any

import kopf

from meta.generate.plugins import Plugins, load_plugins
from meta.kube import metrics
from meta.kube.api import LISTED, LISTING, KubeApi
from meta.kube.broker import Watches
from meta.kube.controller.reconcile import run_flow
from meta.kube.controller.schemas import SchemaFeed, reconcile_schema
from meta.kube.lease import Leadership, LeaseSettings
from meta.kube.types import GROUP, LABEL_FLOW, PLURAL, SCHEMA_PLURAL, VERSION, OperatorSettings

registry = kopf.OperatorRegistry()


class LeadershipLost(Exception):
    """This replica held the Lease and could not renew it: it must stop writing at once."""


class Memo(kopf.Memo):
    api: KubeApi
    watches: Watches
    settings: OperatorSettings
    leadership: Leadership | None
    plugins: Plugins
    schemas: SchemaFeed


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Events are posted by the runner, through the rate-limited client.
    settings.posting.enabled = False
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60


@kopf.on.login(registry=registry)
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """kopf's own connection: the very credentials of the operator's client (in-cluster, or the
    kubeconfig it was given), so the operator has one set of them."""
    given = memo.api.connection()
    return kopf.ConnectionInfo(
        server=given.host,
        ca_path=given.ca_file,
        insecure=not given.verify,
        scheme="Bearer" if given.token else None,
        token=given.token,
        certificate_path=given.cert_file,
        private_key_path=given.key_file,
    )


@kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=30.0)
async def drive(
    body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, logger: Any, **_: Any
) -> None:
    if memo.leadership is not None and not await _leading(memo.leadership, stopped):
        return
    phase = await run_flow(memo.api, memo.watches, dict(body), memo.settings, stopped.wait())
    logger.info("flow %s", phase.lower())


async def _leading(leadership: Leadership, stopped: kopf.DaemonStopped) -> bool:
    """Wait until this replica holds the Lease (True) or the daemon is stopped first (False)."""
    acquired = asyncio.ensure_future(leadership.acquired.wait())
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({acquired, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        acquired.cancel()
        stop.cancel()
    return leadership.acquired.is_set() and not stopped


@kopf.daemon(GROUP, VERSION, SCHEMA_PLURAL, registry=registry, cancellation_timeout=10.0)
async def generate(
    body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, logger: Any, **_: Any
) -> None:
    """One per MetaSchema, on the active replica: a MetaFlow for each spec it is given."""
    if memo.leadership is not None and not await _leading(memo.leadership, stopped):
        return
    uid = body["metadata"]["uid"]
    try:
        while not stopped:
            latest = memo.schemas.unhandled(dict(body))
            if latest is not None:
                outcome = await reconcile_schema(memo.api, latest, memo.settings, memo.plugins)
                memo.schemas.handled(latest)
                if outcome != "Unchanged":
                    logger.info(
                        "metaschema generation %s: %s",
                        latest["metadata"].get("generation"),
                        outcome.lower(),
                    )
            await memo.schemas.changed(uid, stopped.wait())
    finally:
        memo.schemas.forget(uid)


@kopf.on.event(GROUP, VERSION, SCHEMA_PLURAL, registry=registry)
async def schema_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.schemas.follow(event["type"], event["object"])


async def follow_pods(api: KubeApi, namespaces: Sequence[str], watches: Watches) -> None:
    """Feed the pods the operator labelled to their broker, on the event loop where the
    waiting attempts are, until cancelled."""

    async def follow(namespace: str) -> None:
        async for kind, pod in api.watch_pods(namespace, LABEL_FLOW):
            watches.pods.follow(kind, pod)
            if kind not in (LISTING, LISTED):
                metrics.PODS.observe(kind, pod)

    await asyncio.gather(*(follow(namespace) for namespace in namespaces or [""]))


@kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
async def flow_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Child flows end through their status; the flowRef unit waiting on one learns it here."""
    memo.watches.flows.follow(event["type"], event["object"])
    metrics.FLOWS.observe(event["type"], event["object"])


def run_operator(
    api: KubeApi,
    settings: OperatorSettings,
    namespaces: Sequence[str] = (),
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    lease: LeaseSettings | None = None,
    health_port: int = 0,
) -> None:
    """Reconcile MetaFlows in `namespaces` (all namespaces when empty) until stopped; with a
    `lease`, only while this replica holds it (raises `LeadershipLost` when it cannot renew it).
    With a `health_port`, kopf answers `/healthz` there (200 while its event loop turns: the
    probes)."""
    leadership = Leadership(api, lease) if lease is not None else None
    memo = Memo(
        api=api,
        watches=Watches(),
        settings=settings,
        leadership=leadership,
        plugins=load_plugins(),
        schemas=SchemaFeed(),
    )
    operator = kopf.operator(
        registry=registry,
        memo=memo,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        identity=_identity(),
    )
    asyncio.run(_operate(operator, leadership, follow_pods(api, namespaces, memo.watches)))


def _identity() -> Any:
    """This process's name among operators. kopf's own asks the passwd database for the user,
    which a uid the image does not list (10001, set by the pod) is not in."""
    # kopf's Identity is a NewType of str that kopf does not export.
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}/{os.getpid()}"


async def _operate(operator: Any, leadership: Leadership | None, watching: Awaitable[None]) -> None:
    pods = asyncio.ensure_future(watching)
    leading = asyncio.ensure_future(_operate_leading(operator, leadership))
    try:
        await asyncio.wait({pods, leading}, return_when=asyncio.FIRST_COMPLETED)
        if not leading.done():
            # The pods' watch never ends by itself: an operator blind to its pods must stop.
            pods.result()
            raise RuntimeError("the watch of the operator's pods ended")
        leading.result()
    finally:
        leading.cancel()
        pods.cancel()
        await asyncio.gather(leading, pods, return_exceptions=True)


async def _operate_leading(operator: Any, leadership: Leadership | None) -> None:
    if leadership is None:
        await operator
        return
    running = asyncio.ensure_future(operator)
    campaign = asyncio.ensure_future(leadership.run())
    await asyncio.wait({running, campaign}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        # Stopped (a signal, the stop flag): the daemons have left their pods; hand over.
        campaign.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await campaign
        await leadership.release()
        running.result()
        return
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    lease = leadership.settings
    raise LeadershipLost(f"lost the lease {lease.namespace}/{lease.name}")
