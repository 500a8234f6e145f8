"""The kopf handlers: a daemon per MetaFlow runs it; pod and MetaFlow events feed the watches.

kopf is imported here and nowhere else. Each MetaFlow gets one daemon for as long as the
operator runs; after a restart kopf starts the daemons again and each resumes its flow. Pod
phases arrive through kopf's watch of the pods the operator labelled.
"""

from __future__ import annotations

from typing import Any

import kopf

from meta.flow.crd import GROUP, PLURAL, VERSION
from meta.runtime.kube.api import KubeApi
from meta.runtime.kube.broker import Watches
from meta.runtime.kube.pods import LABEL_FLOW
from meta.runtime.kube.runner import OperatorSettings, run_flow

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


@kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
async def flow_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Child flows end through their status; the flowRef unit waiting on one learns it here."""
    memo.watches.flows.follow(event["type"], event["object"])
