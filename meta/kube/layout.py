"""The one place that lays out pods: what a step's container sees is the same as locally.

A macro step is one pod with one container running the step's argv (no shell, no launcher):
- `META_INPUT` is a file projected from the pod's own annotation by the downward API, so the
  input costs no extra API object;
- `META_OUTPUT` and every `META_UPSTREAM/<name>` are sub-paths of the store volume (a
  PersistentVolumeClaim in production, an emptyDir when none is configured), mounted by the
  kubelet: outputs are persisted where they are written, and upstream outputs are mounted
  read-only, without copies;
- `META_SCRATCH` is an emptyDir on RAM (medium Memory);
- the flow's files (`spec.files`, see `meta.kube.controller.files`) are the store's `.files` folder,
  mounted read-only at the path the operator sees it at, so an input's path opens the same file
  in the operator and in every pod.
Names are deterministic (flow, a hash of the unit id, the attempt), so a restarted operator finds
the pod it made before instead of making another.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from meta.engine.driver import PodTask, StepTask
from meta.kube.types import (
    ANNOTATION_INPUT,
    ANNOTATION_UNIT_ID,
    GROUP,
    INPUT_DIR,
    LABEL_ATTEMPT,
    LABEL_FLOW,
    LABEL_NAME,
    LABEL_UNIT,
    MANAGED_BY,
    MAX_INPUT_BYTES,
    OUTPUT_DIR,
    SCRATCH_DIR,
    STORE_VOLUME,
    UPSTREAM_DIR,
    FlowOwner,
    InputTooLarge,
    PodSettings,
)


def short_name(name: str) -> str:
    """A name kept to 40 characters, still telling names apart: a long one keeps its first 31
    characters and gains a hash of the whole (names of objects made from it add up to 22)."""
    if len(name) <= 40:
        return name
    return f"{name[:31].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def pod_name(owner: FlowOwner, unit_id: str, attempt: int) -> str:
    digest = hashlib.sha256(unit_id.encode()).hexdigest()[:10]
    return f"{short_name(owner.name)}-{digest}-{attempt}"


def unit_label(unit_id: str) -> str:
    return hashlib.sha256(unit_id.encode()).hexdigest()[:16]


def store_path(owner: FlowOwner, unit_id: str) -> str:
    """Where a unit's outputs live inside the store volume."""
    return f"{owner.store_root}/{unit_id}/outputs"


def files_path(owner: FlowOwner) -> str:
    """Where the flow's embedded files live inside the store volume (its child flows' too): a
    name no unit id can take (they start with a flow's name, which starts with a letter or a
    digit)."""
    return f"{owner.store_root}/.files"


def step_pod(
    task: StepTask,
    owner: FlowOwner,
    settings: PodSettings,
    upstream: Sequence[tuple[str, str]],
    store_dir: str,
) -> dict[str, Any]:
    """The pod of one attempt at a macro step. `upstream` is (subdirectory, unit id) per
    producer, with combined sections already expanded into their parts; `store_dir` is where
    the operator sees the store (the flow's files are mounted at the same path)."""
    text = json.dumps(task.input, separators=(",", ":"))
    if len(text.encode()) > MAX_INPUT_BYTES:
        raise InputTooLarge(
            f"the unit's input is {len(text.encode())} bytes; a pod annotation holds at most "
            f"{MAX_INPUT_BYTES} (give large data as an input file and pass its path)"
        )
    name = pod_name(owner, task.id, task.attempt)
    env = [
        {"name": "META_UNIT_ID", "value": task.id},
        {"name": "META_INPUT", "value": f"{INPUT_DIR}/input.json"},
        {"name": "META_OUTPUT", "value": OUTPUT_DIR},
        {"name": "META_UPSTREAM", "value": UPSTREAM_DIR},
        {"name": "META_SCRATCH", "value": SCRATCH_DIR},
        {"name": "META_ATTEMPT", "value": str(task.attempt)},
        *({"name": k, "value": v} for k, v in task.env.items()),
    ]
    mounts = [
        {"name": "task", "mountPath": INPUT_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": STORE_VOLUME, "mountPath": OUTPUT_DIR, "subPath": store_path(owner, task.id)},
        # META_UPSTREAM is a folder even for a unit nothing flows into, as it is locally.
        {"name": "upstream", "mountPath": UPSTREAM_DIR},
        *_upstream_mounts(owner, upstream),
        _files_mount(owner, store_dir),
    ]
    working = _working_dir(task.workdir, store_dir)
    if working:
        mounts.append(_store_mount(working, store_dir))
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "containers": [
            {
                **({"workingDir": task.workdir} if working else {}),
                "name": "step",
                "image": task.image or settings.default_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": list(task.command),
                "env": env,
                "volumeMounts": mounts,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                **_resources(task.resources),
            }
        ],
        "volumes": [
            {
                "name": "task",
                "downwardAPI": {
                    "items": [
                        {
                            "path": "input.json",
                            "fieldRef": {
                                "fieldPath": f"metadata.annotations['{ANNOTATION_INPUT}']"
                            },
                        }
                    ]
                },
            },
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "upstream", "emptyDir": {}},
            _store_volume(settings),
        ],
    }
    _place(spec, settings)
    # A step needs no API access: its pod holds no token.
    spec["automountServiceAccountToken"] = False
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _pod_metadata(
            name, owner, task.id, task.name, task.attempt, {ANNOTATION_INPUT: text}
        ),
        "spec": spec,
    }


def label_value(text: str) -> str:
    """`text` as a valid label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return cleaned.strip("_.-")


QUARTERBACK_SUFFIX = "qb"
WORK_DIR = "/meta/work"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where the in-cluster configuration of the client looks for the token."""
LAUNCHER_DIR = "/meta/bin"
SOCKET = f"{SCRATCH_DIR}/.meta/quarterback.sock"
MAX_SLOTS = 16
"""A micro pod's step containers: its section's maxActive, at most this many."""


def quarterback_name(pod: str) -> str:
    """The ServiceAccount, Role and RoleBinding of one micro pod's quarterback."""
    return f"{pod}-{QUARTERBACK_SUFFIX}"


def work_name(pod: str) -> str:
    return f"{pod}-work"


def quarterback_access(owner: FlowOwner, pod: str) -> list[dict[str, Any]]:
    """A ServiceAccount whose Role names one pod alone: the quarterback may patch its own pod
    (to swap a slot's image) and do nothing else."""
    name = quarterback_name(pod)
    meta = {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**MANAGED_BY, LABEL_FLOW: owner.name},
        "ownerReferences": [owner.reference()],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "resourceNames": [pod],
                    "verbs": ["patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def work_config_map(owner: FlowOwner, pod: str, document: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": work_name(pod),
            "namespace": owner.namespace,
            "labels": {**MANAGED_BY, LABEL_FLOW: owner.name},
            "ownerReferences": [owner.reference()],
        },
        "data": {"task.json": document},
    }


def micro_pod(
    task: PodTask,
    owner: FlowOwner,
    settings: PodSettings,
    upstream: Sequence[tuple[str, str]],
    slot_images: Sequence[str],
    slot_resources: Mapping[str, Mapping[str, str]],
    store_dir: str,
) -> dict[str, Any]:
    """The pod of one attempt at a micro section: the quarterback, and one slot container per
    unit that may run at once, each running the launcher (put on a shared volume by an init
    container) until the quarterback gives it work. All of them share /scratch (RAM),
    localhost and IPC; only the quarterback mounts the section's output folder."""
    name = pod_name(owner, task.id, task.attempt)
    framework = settings.default_image
    pull = settings.image_pull_policy
    shared = [
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": "launcher", "mountPath": LAUNCHER_DIR, "readOnly": True},
        *_upstream_mounts(owner, upstream),
        _files_mount(owner, store_dir),
    ]
    quarterback = {
        "name": "quarterback",
        "image": framework,
        "imagePullPolicy": pull,
        "command": ["meta", "quarterback", "run", "--work", WORK_DIR],
        "env": [
            {"name": "META_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "META_POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            *_api_server(settings),
        ],
        "volumeMounts": [
            *shared,
            {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "work", "mountPath": WORK_DIR, "readOnly": True},
            {"name": STORE_VOLUME, "mountPath": OUTPUT_DIR, "subPath": store_path(owner, task.id)},
        ],
        "terminationMessagePolicy": "File",
    }
    slots = [
        {
            "name": f"slot-{index}",
            "image": image,
            "imagePullPolicy": pull,
            "command": ["python3", f"{LAUNCHER_DIR}/launcher.py", SOCKET, str(index)],
            "volumeMounts": shared,
            **_resources(slot_resources),
        }
        for index, image in enumerate(slot_images)
    ]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "serviceAccountName": quarterback_name(name),
        # The token goes to the quarterback alone (below), never to the slots running steps.
        "automountServiceAccountToken": False,
        "initContainers": [
            {
                "name": "install-launcher",
                "image": framework,
                "imagePullPolicy": pull,
                "command": ["meta", "quarterback", "install-launcher", LAUNCHER_DIR],
                "volumeMounts": [{"name": "launcher", "mountPath": LAUNCHER_DIR}],
            }
        ],
        "containers": [quarterback, *slots],
        "volumes": [
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "launcher", "emptyDir": {}},
            {"name": "work", "configMap": {"name": work_name(name)}},
            {
                "name": "token",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ]
                },
            },
            _store_volume(settings),
        ],
    }
    _place(spec, settings)
    metadata = _pod_metadata(name, owner, task.id, task.name, task.attempt, {})
    metadata["labels"][f"{GROUP}/scope"] = "micro"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
    }


def _pod_metadata(
    name: str,
    owner: FlowOwner,
    unit_id: str,
    unit_name: str,
    attempt: int,
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {
            **MANAGED_BY,
            LABEL_FLOW: owner.name,
            LABEL_UNIT: unit_label(unit_id),
            LABEL_ATTEMPT: str(attempt),
            LABEL_NAME: label_value(unit_name),
        },
        "annotations": {ANNOTATION_UNIT_ID: unit_id, **annotations},
        "ownerReferences": [owner.reference()],
    }


def _resources(resources: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    kept = {kind: dict(amounts) for kind, amounts in resources.items() if amounts}
    return {"resources": kept} if kept else {}


def _upstream_mounts(owner: FlowOwner, upstream: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each producer's outputs, read-only at META_UPSTREAM/<name>: a sub-path of the store."""
    return [
        {
            "name": STORE_VOLUME,
            "mountPath": f"{UPSTREAM_DIR}/{subdir}",
            "subPath": store_path(owner, unit_id),
            "readOnly": True,
        }
        for subdir, unit_id in upstream
    ]


def _api_server(settings: PodSettings) -> list[dict[str, str]]:
    """The in-cluster client finds the API server by these variables; a container's own value
    takes the place of the one the kubelet derives from the `kubernetes` service."""
    if settings.api_server is None:
        return []
    host, port = settings.api_server
    return [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)},
    ]


def _working_dir(workdir: str, store_dir: str) -> str | None:
    """A step of a generated flow runs where its flow was written, in a producer's outputs in
    the store: that folder's path inside the store (any other step keeps its image's working
    directory: its flow's folder is the operator's, not the pod's)."""
    root = store_dir.rstrip("/")
    return workdir[len(root) + 1 :] if workdir.startswith(root + "/") else None


def _files_mount(owner: FlowOwner, store_dir: str) -> dict[str, Any]:
    return _store_mount(files_path(owner), store_dir)


def _store_mount(path: str, store_dir: str) -> dict[str, Any]:
    """A folder of the store, read-only, at the path the operator sees it at."""
    return {
        "name": STORE_VOLUME,
        "mountPath": f"{store_dir.rstrip('/')}/{path}",
        "subPath": path,
        "readOnly": True,
    }


def _store_volume(settings: PodSettings) -> dict[str, Any]:
    if settings.store_claim:
        return {"name": STORE_VOLUME, "persistentVolumeClaim": {"claimName": settings.store_claim}}
    return {"name": STORE_VOLUME, "emptyDir": {}}


def _place(spec: dict[str, Any], settings: PodSettings) -> None:
    if settings.node_name:
        spec["nodeName"] = settings.node_name
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
