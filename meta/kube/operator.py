"""The MetaFlow operator: kopf handlers only. A daemon per MetaFlow runs it through the
controller; pod and MetaFlow events feed the watches.

`run_operator` blocks until the operator is stopped (SIGINT/SIGTERM). It can be killed at any
moment: progress lives in the cluster (the flow's pods, its journal ConfigMaps and its status),
and the next operator session resumes every flow without recreating a finished pod.

kopf is imported here and nowhere else. Each MetaFlow gets one daemon for as long as the
operator runs; after a restart kopf starts the daemons again and each resumes its flow. Pod
phases arrive through kopf's watch of the pods the operator labelled.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

import kopf

from meta.kube import metrics
from meta.kube.api import KubeApi
from meta.kube.broker import Watches
from meta.kube.controller.reconcile import run_flow
from meta.kube.types import GROUP, LABEL_FLOW, PLURAL, VERSION, OperatorSettings

registry = kopf.OperatorRegistry()


class Memo(kopf.Memo):
    api: KubeApi
    watches: Watches
    settings: OperatorSettings


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
    phase = await run_flow(memo.api, memo.watches, dict(body), memo.settings, stopped.wait())
    logger.info("flow %s", phase.lower())


@kopf.on.event("", "v1", "pods", labels={LABEL_FLOW: kopf.PRESENT}, registry=registry)
async def pod_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """On the event loop (an async handler), where the waiting attempts are."""
    memo.watches.pods.follow(event["type"], event["object"])
    metrics.PODS.observe(event["type"], event["object"])


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
    health_port: int = 0,
) -> None:
    """Reconcile MetaFlows in `namespaces` (all namespaces when empty) until stopped; with a
    `health_port`, kopf answers `/healthz` there (200 while its event loop turns: the probes)."""
    memo = Memo(api=api, watches=Watches(), settings=settings)
    asyncio.run(
        kopf.operator(
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
    )


def _identity() -> Any:
    """This process's name among operators. kopf's own asks the passwd database for the user,
    which a uid the image does not list (10001, set by the pod) is not in."""
    # kopf's Identity is a NewType of str that kopf does not export.
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}/{os.getpid()}"
