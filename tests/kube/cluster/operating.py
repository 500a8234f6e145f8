"""What the Kubernetes tests share: a `meta operator` process, a watch on a namespace's pods,
and applying a MetaFlow and waiting for its phase."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import ProtocolError

from tests.kube.cluster.conftest import Cluster

META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
FLOW_LABEL = "meta-orchestrator.io/flow"
TIMEOUT = 120


@dataclass
class Operator:
    cluster: Cluster
    namespace: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    sessions: int = 0
    kubeconfig: Path | None = None
    """Who the operator is, when not the cluster's admin."""
    placement: Sequence[str] = ()
    """Where its pods go and what they use (options of `meta operator`); by default the kwok
    node."""
    options: Sequence[str] = ()
    """Further options of `meta operator` (`--leader-elect`, ...)."""
    metrics_port: int = 0
    """Where it serves /metrics (0: nowhere; operators of tests run side by side)."""

    def start(self) -> None:
        self.sessions += 1
        command = [
            str(META), "operator", "-n", self.namespace,
            "--kubeconfig", str(self.kubeconfig or self.cluster.kubeconfig),
            *(self.placement or (
                *(f"--node-selector={k}={v}" for k, v in self.cluster.selector.items()),
                "--toleration", f"{self.cluster.toleration['key']}:NoSchedule",
                "--store-dir", str(self.log.parent / "store"),
            )),
            "--metrics-port", str(self.metrics_port),
            *self.options,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            out.write(f"---- session {self.sessions}\n".encode())
            out.flush()
            # --kubeconfig alone says who the operator is: kopf and the client alike.
            env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    @contextlib.contextmanager
    def running(self) -> Iterator[Operator]:
        """Started; stopped when the block ends, the tail of its log then on stderr."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
            sys.stderr.write(self.log.read_text(errors="replace")[-4000:])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class PodLog:
    """Every pod event of a namespace, from a watch on a thread: creations by uid, peak live."""

    created: dict[str, str] = field(default_factory=dict)
    """pod uid -> pod name, for every pod ever added."""
    live: set[str] = field(default_factory=set)
    peak: int = 0
    ended: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def watching_pods(
    cluster: Cluster, namespace: str, record: Callable[[dict[str, Any]], None], selector: str = ""
) -> Iterator[None]:
    """Hand every pod event of the namespace to `record`, from a watch on a thread, until the
    block ends."""
    core = client.CoreV1Api(cluster.api_client)
    stopping = threading.Event()
    watcher = watch.Watch()

    def follow() -> None:
        while not stopping.is_set():
            try:
                for event in watcher.stream(
                    core.list_namespaced_pod,
                    namespace,
                    label_selector=selector,
                    timeout_seconds=5,
                ):
                    if event["type"] == "ERROR" or event["object"] is None:
                        # Its version expired (pods deleted meanwhile): watch again.
                        break
                    record(event)
                    if stopping.is_set():
                        return
            except (ProtocolError, ApiException):
                continue  # the stream ended early: watch again (replays are idempotent)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        watcher.stop()
        thread.join(timeout=10)


@contextlib.contextmanager
def pod_log(cluster: Cluster, namespace: str) -> Iterator[PodLog]:
    seen = PodLog()

    def record(event: dict[str, Any]) -> None:
        pod = event["object"]
        name, uid, phase = pod.metadata.name, pod.metadata.uid, pod.status.phase
        with seen.lock:
            seen.created.setdefault(uid, name)
            if event["type"] == "DELETED" or phase in ("Succeeded", "Failed"):
                seen.live.discard(uid)
                if phase:
                    seen.ended[uid] = phase
            else:
                seen.live.add(uid)
            seen.peak = max(seen.peak, len(seen.live))

    with watching_pods(cluster, namespace, record, FLOW_LABEL):
        yield seen


def apply(cluster: Cluster, namespace: str, flow: dict[str, Any]) -> dict[str, Any]:
    custom = client.CustomObjectsApi(cluster.api_client)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetaFlow", **flow}
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return created


def wait_phase(
    cluster: Cluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float = TIMEOUT
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(cluster.api_client)
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
            field_selector=f"metadata.name={name}", timeout_seconds=5,
        )  # fmt: skip
        for event in stream:
            found = event["object"]
            if (found.get("status") or {}).get("phase") in phases:
                return found
    raise AssertionError(f"{name} did not reach {phases}: status {found.get('status')}")


def journal_records(
    cluster: Cluster, namespace: str, flow: dict[str, Any], store: Path
) -> list[dict[str, Any]]:
    """Every record of a flow's journal, in order: from its file in the store once the ended
    flow's journal was compacted (`store` is the operator's store folder), then from the
    ConfigMaps the cluster still holds."""
    records: list[dict[str, Any]] = []
    compacted = (flow.get("status") or {}).get("journalCompacted")
    if compacted:
        text = (store / compacted["path"]).read_text()
        records.extend(json.loads(line) for line in text.splitlines())
    name = flow["metadata"]["name"]
    chunks = client.CoreV1Api(cluster.api_client).list_namespaced_config_map(
        namespace, label_selector=f"meta-orchestrator.io/journal-of={name}"
    )
    records.extend(
        json.loads(line)
        for config_map in chunks.items
        for text in (config_map.data or {}).values()
        for line in text.splitlines()
    )
    return records
