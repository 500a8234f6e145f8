"""Fixtures of the Kubernetes tests (tests/kube/cluster): a real API server for the whole session.

`cluster` (session): if `KUBECONFIG` is set and that cluster answers `/readyz`, it is used as it
is; nothing is started or stopped. Otherwise the local control plane is built
(tests/e2e/cluster/build.sh: etcd, kube-apiserver, kube-controller-manager and kwok from Go
modules, into ~/.cache/meta-orchestrator; 10-25 minutes the first time, a second the next) and
started into a temporary directory (tests/e2e/cluster/up.sh), with the CRDs of crds/ already
created, `KUBECONFIG` is pointed at it for the session (so a `kopf` or `kubernetes` client in the
test process finds it too), and it is stopped at the end (down.sh; and by a watchdog if this
process dies first).

The garbage collector of kube-controller-manager discovers resource types at its start and then
every 30 s: ownerReferences to or from a CRD created later (not in crds/ at session start) may take
up to ~40 s to be honoured. On an outside cluster (KUBECONFIG) nothing is pre-created.

Pods are scheduled (kube-scheduler): nobody sets `spec.nodeName`. kwok plays the kubelet of one
fake node, `cluster.node_name` (kwok-node-0), labelled `type=kwok` and tainted: a pod lands there
when it selects `cluster.selector` and tolerates `cluster.toleration`; kwok moves it to Running,
then after 1 s to Succeeded, or to Failed (exit code 3) with the annotation
`meta-orchestrator.io/kwok-result: failed`, or leaves it Running with `hang`
(`meta-orchestrator.io/kwok-delay: 0s` for no wait; see tests/e2e/cluster/up.sh).

Beside it runs one real node, `cluster.real_node` (meta-node-0, labelled `type=real`: kubelet,
kube-proxy and containerd in a network namespace of their own, pods on a CNI bridge reaching the
API server through the `kubernetes` service), when this process is root and containerd is
installed; the images of tests/e2e/images (built and cached by its build.sh) are loaded into it,
and pods there use them with `imagePullPolicy: IfNotPresent`. Its image registry
(`RealNode.registry`) is where containerd pulls what it lacks. Tests that need it take the
`real_node` fixture, which skips (or, under META_E2E=required, fails) when there is none.
`META_CLUSTER_NODE=kwok` leaves it out.

Environment: `META_E2E=required` turns "cannot build or start the plane" into a failure instead of
a skip; `META_E2E=skip` skips these tests without trying.

`namespace` (function): a fresh namespace `e2e-<random>` whose `default` ServiceAccount exists
(pods can be created at once), deleted after the test. It enforces the `restricted` Pod Security
Standard (`pod-security.kubernetes.io/enforce: restricted`), as a careful cluster does: a pod
that asks for more is refused by the API server (`RESTRICTED_POD` and `RESTRICTED_CONTAINER`
make a hand-written test pod pass).

`tools` (session): the bin directory of the client tools, kubectl and helm, built from Go modules
by tests/e2e/cluster/build-tools.sh (cached by version).

Every test under tests/kube/cluster gets the `kube` marker (`pytest -m 'not kube'` leaves them out).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[3]
CLUSTER_SCRIPTS = REPO / "tests" / "e2e" / "cluster"
IMAGE_SCRIPTS = REPO / "tests" / "e2e" / "images"
REAL_NODE = "meta-node-0"
KWOK_NODE = "kwok-node-0"
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
KWOK_SELECTOR = {"type": "kwok"}
REAL_SELECTOR = {"type": "real"}
BUILD_TIMEOUT = 3600
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
"""The labels of every test namespace: the API server refuses pods that ask for more."""
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
UP_TIMEOUT = 300


@dataclass(frozen=True)
class Cluster:
    """The cluster of this test session."""

    kubeconfig: Path
    api_client: client.ApiClient
    owned: bool  # True when this session started the plane (and will stop it)
    state_dir: Path | None = None  # the plane's STATE_DIR (logs/ in it) when owned
    node_name: str = KWOK_NODE
    """The fake node, where pods selecting `selector` and tolerating `toleration` are scheduled."""
    selector: dict[str, str] = field(default_factory=lambda: dict(KWOK_SELECTOR))
    toleration: dict[str, str] = field(default_factory=lambda: dict(KWOK_TOLERATION))
    real_node: str | None = None
    """The real node's name, when it runs (see `RealNode`)."""
    no_real_node: str = "the cluster comes from KUBECONFIG"
    """Why there is no real node, when there is none."""

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at this cluster, for a subprocess (an operator)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.kube)


def _say(message: str) -> None:
    """Print to the terminal even while pytest captures output."""
    print(f"[tests/kube/cluster] {message}", file=sys.__stderr__, flush=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("META_E2E") == "required":
        pytest.fail(f"META_E2E=required, but no Kubernetes cluster: {reason}", pytrace=False)
    pytest.skip(f"no Kubernetes cluster: {reason}")


def _client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def _ready(api: client.ApiClient) -> bool:
    # Straight through the client's pool (ApiClient.call_api changed its signature in
    # kubernetes 35+), with its credentials; /readyz is not in the generated APIs.
    conf = api.configuration
    headers = {s["key"]: s["value"] for s in conf.auth_settings().values() if s.get("value")}
    try:
        response = api.rest_client.pool_manager.request(
            "GET", f"{conf.host}/readyz", headers=headers, timeout=5, retries=False
        )
    except Exception:
        return False
    return bool(response.status == 200 and response.data.strip() == b"ok")


def _external() -> Cluster | None:
    """The cluster KUBECONFIG names, if it is set and answers /readyz."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return None
    try:
        api = _client(kubeconfig)
    except Exception as error:
        _say(f"KUBECONFIG={kubeconfig} cannot be loaded ({error}); starting a local plane")
        return None
    if not _ready(api):
        api.close()
        _say(f"KUBECONFIG={kubeconfig}: no answer to /readyz; starting a local plane")
        return None
    first = Path(next(p for p in kubeconfig.split(os.pathsep) if p)).expanduser()
    plane = first.resolve().parent
    if (plane / ".meta-e2e-cluster").exists() and (plane / "network").exists():
        # A plane of up.sh with a real node (`make cluster-up`): its state directory is beside.
        return Cluster(first, api, owned=False, state_dir=plane, real_node=REAL_NODE)
    return Cluster(kubeconfig=first, api_client=api, owned=False)


def _cache_root() -> Path:
    if os.environ.get("META_CACHE_DIR"):
        return Path(os.environ["META_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "meta-orchestrator"


def _build(script: Path, what: str, env: dict[str, str] | None = None) -> str:
    """Run a build script (one at a time per cache, across processes); its last line of output."""
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    name = script.relative_to(REPO)
    with open(root / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another build ({root / 'build.lock'})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        announced = False
        proc = subprocess.Popen(
            [str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            # The cluster's build.sh says "building X", the images' "build.sh: X", when they
            # build anything at all.
            if line.startswith(("building ", "build.sh: ")) and not announced:
                announced = True
                _say(f"building {what} ({name}); a cold build takes minutes")
            if announced:
                _say(f"{script.name}: {line}")
        rc = proc.wait(timeout=BUILD_TIMEOUT)
    if rc != 0:
        detail = "\n".join(tail)
        if script.parent == CLUSTER_SCRIPTS and shutil.which("go") is None:
            _unavailable(f"no `go` on PATH to build {what} ({name})")
        _unavailable(f"{name} exited {rc}:\n{detail}")
    if announced:
        _say(f"built in {time.monotonic() - started:.0f} s")
    return tail[-1]


def _real_node() -> str | None:
    """Why this machine can run no real node, or None when it can."""
    if os.environ.get("META_CLUSTER_NODE") == "kwok":
        return "META_CLUSTER_NODE=kwok"
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd, mounts, a bridge)"
    missing = [t for t in ("containerd", "runc", "podman", "debootstrap") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (.ci/run installs them)"
    return None


def _start(bin_dir: Path, images: str | None) -> tuple[Path, Path]:
    """Start the plane into a new temporary directory: (state dir, kubeconfig); with a real
    node, loaded with the image archive `images`, when that is given."""
    state = Path(tempfile.mkdtemp(prefix="meta-kube-"))
    # The CRDs of crds/ exist before the controller manager starts, so that its garbage collector
    # collects a MetaFlow's children at once (it discovers new resource types only every 30 s).
    crds = sorted(str(p) for p in (REPO / "crds").glob("*.y*ml"))
    env = {
        **os.environ,
        "META_CLUSTER_BIN": str(bin_dir),
        "META_CLUSTER_OWNER_PID": str(os.getpid()),
        "META_CLUSTER_CRDS": os.pathsep.join(crds),
        "META_CLUSTER_NODE": "kwok" if images is None else "real",
        "META_CLUSTER_IMAGES": images or "",
    }
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(CLUSTER_SCRIPTS / "up.sh"), str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT,
            check=False,
        )
        failure = (
            None if proc.returncode == 0 else f"up.sh exited {proc.returncode}:\n{proc.stderr}"
        )
    except subprocess.TimeoutExpired as error:
        failure = f"up.sh did not finish within {UP_TIMEOUT} s:\n{error.stderr!r}"
    if failure is not None:
        _stop(state)
        _unavailable(failure)
    _say(f"local control plane up in {time.monotonic() - started:.1f} s ({state})")
    return state, state / "kubeconfig"


def _stop(state: Path) -> None:
    # Removing a real node's containerd root (the unpacked images) alone may take a minute.
    subprocess.run([str(CLUSTER_SCRIPTS / "down.sh"), str(state)], check=False, timeout=300)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.environ.get("META_E2E") == "skip":
        pytest.skip("META_E2E=skip")
    external = _external()
    if external is not None:
        try:
            yield external
        finally:
            external.api_client.close()
        return
    no_real_node = _real_node()
    real = {"META_CLUSTER_NODE": "real"} if no_real_node is None else {}
    bin_dir = Path(_build(CLUSTER_SCRIPTS / "build.sh", "the control plane", real))
    images = None
    if no_real_node is None:
        images = _build(IMAGE_SCRIPTS / "build.sh", "the images")
    state, kubeconfig = _start(bin_dir, images)
    saved = os.environ.get("KUBECONFIG")
    try:
        api = _client(str(kubeconfig))
        os.environ["KUBECONFIG"] = str(kubeconfig)
        try:
            yield Cluster(
                kubeconfig=kubeconfig,
                api_client=api,
                owned=True,
                state_dir=state,
                real_node=REAL_NODE if no_real_node is None else None,
                no_real_node=no_real_node or "",
            )
        finally:
            api.close()
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
        _stop(state)


def _wait_for_service_account(
    core: client.CoreV1Api, namespace: str, name: str, timeout: int
) -> None:
    selector = f"metadata.name={name}"
    found = core.list_namespaced_service_account(namespace, field_selector=selector)
    if found.items:
        return
    stream: Any = watch.Watch().stream(
        core.list_namespaced_service_account,
        namespace,
        field_selector=selector,
        resource_version=found.metadata.resource_version,
        timeout_seconds=timeout,
    )
    for event in stream:
        if event["type"] in ("ADDED", "MODIFIED"):
            stream.close()
            return
    raise AssertionError(f"no ServiceAccount {namespace}/{name} within {timeout} s")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    core = client.CoreV1Api(cluster.api_client)
    name = f"e2e-{secrets.token_hex(4)}"
    body = client.V1Namespace(
        metadata=client.V1ObjectMeta(
            name=name, labels={"meta-orchestrator.io/e2e": "true", **RESTRICTED}
        )
    )
    core.create_namespace(body)
    try:
        _wait_for_service_account(core, name, "default", timeout=30)
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def tools() -> Path:
    """The bin directory holding kubectl (the plane's version) and helm, built from Go modules."""
    if os.environ.get("META_E2E") == "skip":
        pytest.skip("META_E2E=skip")
    return Path(_build(CLUSTER_SCRIPTS / "build-tools.sh", "kubectl and helm"))


@pytest.fixture
def release(cluster: Cluster, namespace: str, tools: Path) -> Iterator[str]:
    """The name of a Helm release of the chart in the test's namespace, uninstalled after it."""
    name = f"meta-orchestrator-{namespace}"
    try:
        yield name
    finally:
        subprocess.run(
            [str(tools / "helm"), "uninstall", name, "--namespace", namespace],
            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(cluster.kubeconfig)},
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    """crds/metaflow.yaml, applied to the real API server and Established."""
    extensions = client.ApiextensionsV1Api(cluster.api_client)
    body = yaml.safe_load((REPO / "crds" / "metaflow.yaml").read_text())
    name = body["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = extensions.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (found.status.conditions or [])}
        if conditions.get("Established") == "True":
            return
        time.sleep(0.2)
    raise AssertionError(f"the CRD was not Established: {conditions}")


@dataclass(frozen=True)
class RealNode:
    """The real node, as one test uses it: where its pods go, the registry it pulls from, and
    a store of the test's own (a hostPath PersistentVolume, standing in for an RWX volume)."""

    name: str
    selector: dict[str, str]
    """The node's label: pods selecting it are scheduled there."""
    registry: str
    """HOST:PORT of the plane's image registry (plain HTTP), which the node pulls from."""
    claim: str
    """The PersistentVolumeClaim of the store, in the test's namespace."""
    store: Path
    """The store's folder, as this process sees it."""


@pytest.fixture
def real_node(cluster: Cluster, namespace: str) -> Iterator[RealNode]:
    if cluster.real_node is None or cluster.state_dir is None:
        _unavailable(f"no real node: {cluster.no_real_node}")
        raise AssertionError("unreachable")
    core = client.CoreV1Api(cluster.api_client)
    store = cluster.state_dir / "store" / namespace
    store.mkdir(parents=True)
    # Pods run as uid 10001 (restricted): the volume is provisioned writable for them. fsGroup
    # does not apply to hostPath, and the kubelet gives the sub-path folders it makes (each
    # unit's outputs) the volume root's mode.
    store.chmod(0o777)
    volume, claim = f"store-{namespace}", "store"
    core.create_persistent_volume(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(store), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    try:
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        deadline = time.monotonic() + 60
        read = core.read_namespaced_persistent_volume_claim
        while read(claim, namespace).status.phase != "Bound":
            assert time.monotonic() < deadline, f"the claim {namespace}/{claim} is not Bound"
            time.sleep(0.2)
        registry = (cluster.state_dir / "registry" / "address").read_text().strip()
        yield RealNode(cluster.real_node, dict(REAL_SELECTOR), registry, claim, store)
    finally:
        with contextlib.suppress(ApiException):
            core.delete_persistent_volume(volume)
        shutil.rmtree(store, ignore_errors=True)
