"""The MetaFlow operator: kopf reconciles MetaFlow resources with the Macro engine.

`run_operator` blocks until the operator is stopped (SIGINT/SIGTERM). It can be killed at any
moment: progress lives in the cluster (the flow's pods, its journal ConfigMaps and its status),
and the next operator session resumes every flow without recreating a finished pod.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import kopf

from meta.operator.handlers import Memo, registry
from meta.runtime.kube.api import KubeApi
from meta.runtime.kube.broker import Watches
from meta.runtime.kube.runner import OperatorSettings


def run_operator(
    api: KubeApi,
    settings: OperatorSettings,
    namespaces: Sequence[str] = (),
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Reconcile MetaFlows in `namespaces` (all namespaces when empty) until stopped."""
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
        )
    )
