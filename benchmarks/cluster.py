"""What the cluster benchmarks share: a plane of tests/e2e/cluster started for them, and the
MetaFlow CRD in it. Not a benchmark itself (the Makefile runs bench_*.py)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "e2e" / "cluster"
IMAGES = REPO / "tests" / "e2e" / "images"
CRD = REPO / "crds" / "metaflow.yaml"


def last_line(*command: str, env: dict[str, str] | None = None) -> str:
    """The last line a build script printed; its own words when it fails. One build at a time
    per cache, across processes: the lock the Makefile and the cluster tests take (a test run
    beside a benchmark would otherwise build the same binaries into the same files)."""
    caches = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(os.environ.get("META_CACHE_DIR") or Path(caches) / "meta-orchestrator")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise SystemExit(f"{command[0]} exited {done.returncode}:\n" + "\n".join(said))
    return done.stdout.strip().splitlines()[-1]


def start_plane(
    state: Path,
    real_node: bool = False,
    crds: Sequence[Path] = (),
    images: Sequence[Path] = (),
    audit_policy: Path | None = None,
) -> Path:
    """Build what is needed and start a plane in `state` (with the real node and its images
    when asked, and these image archives too), gone with this process however it ends, with the
    MetaFlow CRD and these CRD files in it, and the API server's audit log in
    `state/logs/audit.log` if a policy is given; its kubeconfig."""
    node = {**os.environ, "META_CLUSTER_NODE": "real" if real_node else "kwok"}
    archives = [last_line(str(IMAGES / "build.sh")), *map(str, images)] if real_node else []
    env = {
        **node,
        "META_CLUSTER_BIN": last_line(str(CLUSTER / "build.sh"), env=node),
        "META_CLUSTER_IMAGES": ":".join(archives),
        "META_CLUSTER_CRDS": ":".join(map(str, [CRD, *crds])),
        "META_CLUSTER_OWNER_PID": str(os.getpid()),
        "META_CLUSTER_AUDIT_POLICY": str(audit_policy or ""),
    }
    subprocess.run([str(CLUSTER / "up.sh"), str(state)], env=env, check=True, capture_output=True)
    return state / "kubeconfig"


def stop_plane(state: Path) -> None:
    subprocess.run([str(CLUSTER / "down.sh"), str(state)], check=False, capture_output=True)


def ensure_crd(api: client.ApiClient) -> None:
    """The MetaFlow CRD, created unless it is there, and Established."""
    body = yaml.safe_load(CRD.read_text())
    extensions = client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = extensions.read_custom_resource_definition(body["metadata"]["name"])
        conditions = found.status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise SystemExit("the MetaFlow CRD was not Established within 60 s")
