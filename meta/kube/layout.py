"""The one place that lays out pods: what a step's container sees is the same as locally.

A macro step is one pod with one container running the step's argv (no shell, no launcher):
- `META_INPUT` is a file projected from the pod's own annotation by the downward API, so the
  input costs no extra API object;
- `META_OUTPUT`, the folder of `META_RESULT` and every `META_UPSTREAM/<name>` are sub-paths
  of the store volume (a PersistentVolumeClaim in production, an emptyDir when none is
  configured), mounted by the kubelet: outputs and results are persisted where they are
  written (the operator reads a result there), and upstream outputs are mounted read-only,
  without copies;
- `META_SCRATCH` is an emptyDir on RAM (medium Memory);
- the flow's files (`spec.files`, see `meta.kube.controller.files`) are the store's `.files` folder,
  mounted read-only at the path the operator sees it at, so an input's path opens the same file
  in the operator and in every pod.
Names are deterministic (flow, a hash of the unit id, the attempt), so a restarted operator finds
the pod it made before instead of making another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from meta.engine.driver import FlowTask, PodTask, StepTask
from meta.engine.results import RESULT_FILE
from meta.errors import Fault, MetaError
from meta.flow.model import (
    Cases,
    EnvValue,
    FromEnv,
    SecretRef,
    Section,
    Step,
    Unit,
    ValueInput,
    max_active,
)
from meta.flow.parse import read_document
from meta.flow.templates import is_template
from meta.kube.api import quantity
from meta.kube.types import (
    ANNOTATION_FLOW_NAME,
    ANNOTATION_INPUT,
    ANNOTATION_RUNS_IN,
    ANNOTATION_SPEC_DIGEST,
    ANNOTATION_STORE,
    ANNOTATION_UNIT_ID,
    ANNOTATION_UPSTREAM,
    ANNOTATION_WITHIN,
    API_VERSION,
    CACHE_DIR,
    CACHE_MOUNT,
    INPUT_DIR,
    KIND,
    LABEL_ATTEMPT,
    LABEL_FLOW,
    LABEL_JOURNAL,
    LABEL_NAME,
    LABEL_PARENT,
    LABEL_SCHEMA,
    LABEL_SCOPE,
    LABEL_UNIT,
    MANAGED_BY,
    MAX_INPUT_BYTES,
    OUTPUT_DIR,
    RESULT_DIR,
    SCHEMA_KIND,
    SCRATCH_DIR,
    STORE_VOLUME,
    UPSTREAM_DIR,
    FlowOwner,
    PodSettings,
)
from meta.plan.plan import Plan, plan_steps, walk_units


class InputTooLarge(MetaError):
    """A unit's input too large for the pod annotation that carries it: the attempt is refused."""


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


def result_path(owner: FlowOwner, unit_id: str, attempt: int) -> str:
    """The folder inside the store volume where one attempt of a unit writes its result
    (one per attempt: a failed attempt's result is never taken for a later one's)."""
    return f"{owner.store_root}/{unit_id}/result/{attempt}"


def flow_result_path(owner: FlowOwner, unit_id: str) -> str:
    """Where a child flow leaves its root's result for the flowRef `unit_id` of its parent."""
    return f"{owner.store_root}/{unit_id}/result/flow.json"


def fed_by_path(owner: FlowOwner, unit_id: str) -> str:
    """Where a parent leaves, for the child flow of its flowRef `unit_id`, the units that feed
    it with their states and results."""
    return f"{owner.store_root}/{unit_id}/fed-by.json"


def journal_path(owner: FlowOwner) -> str:
    """Where an ended flow's journal is kept once its ConfigMaps are compacted (one file per
    flow: a child flow shares its parent's store root, not its name)."""
    return f"{owner.store_root}/.journal/{owner.name}.jsonl"


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
    mounts = _step_mounts(task, owner, upstream, store_dir)
    working = _working_dir(task.workdir, store_dir)
    # A flow that runs in its files' folder (generated from a MetaSchema) has it mounted already.
    if working and working != files_path(owner):
        mounts.append(_store_mount(working, store_dir))
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "securityContext": pod_security(settings),
        "containers": [
            {
                **({"workingDir": task.workdir} if working else {}),
                "name": "step",
                "image": task.image or settings.default_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": list(task.command),
                "env": _step_env(task),
                "volumeMounts": mounts,
                # The log's tail becomes the status's reason; a step holding a secret may
                # print it, and the operator never sees a secret to mask it.
                "terminationMessagePolicy": (
                    "File" if _has_secret(task) else "FallbackToLogsOnError"
                ),
                "securityContext": container_security(settings.read_only_root),
                **_resources(task.resources),
            }
        ],
        "volumes": [
            _INPUT_VOLUME,
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "upstream", "emptyDir": {}},
            _TMP_VOLUME,
            store_volume(settings),
        ],
    }
    place(spec, settings)
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


def _step_env(task: StepTask) -> list[dict[str, Any]]:
    return [
        {"name": "META_UNIT_ID", "value": task.id},
        {"name": "META_INPUT", "value": f"{INPUT_DIR}/input.json"},
        {"name": "META_OUTPUT", "value": OUTPUT_DIR},
        {"name": "META_UPSTREAM", "value": UPSTREAM_DIR},
        {"name": "META_SCRATCH", "value": SCRATCH_DIR},
        {"name": "META_ATTEMPT", "value": str(task.attempt)},
        {"name": "META_RESULT", "value": f"{RESULT_DIR}/{RESULT_FILE}"},
        *(_variable(k, v) for k, v in task.env.items()),
    ]


def _has_secret(task: StepTask) -> bool:
    return any(isinstance(value, SecretRef) for value in task.env.values())


def _variable(name: str, value: EnvValue) -> dict[str, Any]:
    """A container's variable: a secret's by reference, so the kubelet alone reads it."""
    if isinstance(value, SecretRef):
        return {"name": name, "valueFrom": _secret_key(value)}
    if isinstance(value, FromEnv):
        # Refused when the flow is planned (`env_faults`): never laid out.
        raise MetaError(f"variable {name}: fromEnv has no meaning in the cluster")
    return {"name": name, "value": value}


def _secret_key(ref: SecretRef) -> dict[str, Any]:
    return {"secretKeyRef": {"name": ref.name, "key": ref.key}}


SECRET_PREFIX = "META_SECRET_"
"""Slot containers of a micro pod hold the section's secrets under these names (the kubelet
sets them); the launcher hands each step the ones it declares, under its own names, and no
others (meta.kube.quarterback.launcher has the same prefix: it imports nothing of meta's)."""


def secret_variable(ref: SecretRef) -> str:
    """The name a slot container holds the secret key `ref` under."""
    digest = hashlib.sha256(f"{ref.name}/{ref.key}".encode()).hexdigest()[:16].upper()
    return SECRET_PREFIX + digest


def _slot_secrets(secrets: Sequence[SecretRef]) -> list[dict[str, Any]]:
    return [{"name": secret_variable(ref), "valueFrom": _secret_key(ref)} for ref in secrets]


def section_secrets(section: Section) -> list[SecretRef]:
    """The secret keys the steps of a micro section take, each once, in a stable order."""
    found = {
        value
        for unit in walk_units(section)
        if isinstance(unit, Step)
        for value in unit.run.env.values()
        if isinstance(value, SecretRef)
    }
    return sorted(found, key=lambda ref: (ref.name, ref.key))


def env_faults(plan: Plan) -> list[Fault]:
    """What the cluster cannot give a step: a variable taken `fromEnv` (the operator's
    environment is not the user's; a Secret is the way in)."""
    faults: list[Fault] = []
    for step in plan_steps(plan):
        for key, value in step.run.env.items():
            if isinstance(value, FromEnv):
                origin = step.origin.at("run", "env", key)
                reason = (
                    f"fromEnv: {value.name} has no meaning in the cluster (the operator's "
                    "environment is not yours): put the value in a Secret and use secretRef"
                )
                faults.append(Fault(origin.file, origin.pointer, reason))
    return faults


def _step_mounts(
    task: StepTask, owner: FlowOwner, upstream: Sequence[tuple[str, str]], store_dir: str
) -> list[dict[str, Any]]:
    return [
        {"name": "task", "mountPath": INPUT_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        _TMP_MOUNT,
        {"name": STORE_VOLUME, "mountPath": OUTPUT_DIR, "subPath": store_path(owner, task.id)},
        _result_mount(owner, task.id, task.attempt),
        # META_UPSTREAM is a folder even for a unit nothing flows into, as it is locally.
        {"name": "upstream", "mountPath": UPSTREAM_DIR},
        *_upstream_mounts(owner, upstream),
        _files_mount(owner, store_dir),
    ]


def pod_security(settings: PodSettings) -> dict[str, Any]:
    """What every pod of the operator runs as: the `restricted` Pod Security Standard, whatever
    user its images name (fsGroup makes the volumes that support it writable by that user).
    uid 0 is for namespaces that allow root (baseline, privileged): a restricted one refuses
    the pod."""
    uid = settings.run_as_user
    return {
        **({"runAsNonRoot": True} if uid else {}),
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only_root: bool = True) -> dict[str, Any]:
    """Every container's: no privilege escalation, no capabilities, and (where the program
    allows) a read-only root file system."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
    }


_TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
_TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
"""/tmp stays writable under a read-only root file system."""

_INPUT_VOLUME = {
    "name": "task",
    "downwardAPI": {
        "items": [
            {
                "path": "input.json",
                "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_INPUT}']"},
            }
        ]
    },
}
"""META_INPUT: the pod's own input annotation, projected as a file."""


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
    meta = owned(owner, name, {LABEL_FLOW: owner.name})
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


CACHED_FILE = "cached.json"
"""Beside a micro section's result in the store: the units of the pod its cache stood for, each
with the run it came from (the operator records them as the engine records its own hits)."""
ATTEMPTS_FILE = "attempts.json"
"""Beside a micro section's result in the store: the ended attempts of the pod's units that were
retried or did not succeed, at most MAX_POD_ATTEMPTS (`records`), and how many more there were
(`notKept`); the operator adds them to the flow's journal, where `meta status` reads them."""
MAX_POD_ATTEMPTS = 1000


def work_config_map(owner: FlowOwner, pod: str, document: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned(owner, work_name(pod), {LABEL_FLOW: owner.name}),
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
    secrets: Sequence[SecretRef] = (),
    cache: bool = False,
) -> dict[str, Any]:
    """The pod of one attempt at a micro section: the quarterback, and one slot container per
    unit that may run at once, each running the launcher (put on a shared volume by an init
    container) until the quarterback gives it work. All of them share /scratch (RAM),
    localhost and IPC; only the quarterback mounts the section's output folder, and the
    store's cache when `cache` (a unit of the section says `cache:`). Each slot holds the
    section's `secrets` (see `secret_variable`); the quarterback holds none."""
    name = pod_name(owner, task.id, task.attempt)
    framework = settings.default_image
    pull = settings.image_pull_policy
    shared: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        _TMP_MOUNT,
        {"name": "launcher", "mountPath": LAUNCHER_DIR, "readOnly": True},
        *_upstream_mounts(owner, upstream),
        _files_mount(owner, store_dir),
    ]
    quarterback = _quarterback_container(task, owner, settings, shared)
    if cache:
        quarterback["volumeMounts"].append(
            {"name": STORE_VOLUME, "mountPath": CACHE_MOUNT, "subPath": CACHE_DIR}
        )
    slots = [
        {
            "name": f"slot-{index}",
            "image": image,
            "imagePullPolicy": pull,
            "command": ["python3", f"{LAUNCHER_DIR}/launcher.py", SOCKET, str(index)],
            **({"env": _slot_secrets(secrets)} if secrets else {}),
            "volumeMounts": shared,
            "securityContext": container_security(settings.read_only_root),
            **_resources(slot_resources),
        }
        for index, image in enumerate(slot_images)
    ]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "securityContext": pod_security(settings),
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
                "securityContext": container_security(),
            }
        ],
        "containers": [quarterback, *slots],
        "volumes": [
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "launcher", "emptyDir": {}},
            _TMP_VOLUME,
            {"name": "work", "configMap": {"name": work_name(name)}},
            _TOKEN_VOLUME,
            store_volume(settings),
        ],
    }
    place(spec, settings)
    metadata = _pod_metadata(name, owner, task.id, task.name, task.attempt, {})
    metadata["labels"][LABEL_SCOPE] = "micro"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
    }


def _quarterback_container(
    task: PodTask, owner: FlowOwner, settings: PodSettings, shared: list[dict[str, Any]]
) -> dict[str, Any]:
    """The quarterback: the only container of a micro pod that holds a token and mounts the
    section's output folder."""
    framework = settings.default_image
    pull = settings.image_pull_policy
    return {
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
        ],
        "volumeMounts": [
            *shared,
            {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "work", "mountPath": WORK_DIR, "readOnly": True},
            {"name": STORE_VOLUME, "mountPath": OUTPUT_DIR, "subPath": store_path(owner, task.id)},
            _result_mount(owner, task.id, task.attempt),
        ],
        "terminationMessagePolicy": "File",
        "securityContext": container_security(),
    }


_TOKEN_VOLUME = {
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
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ]
    },
}
"""The quarterback's own projected token (with the CA and namespace the client looks for)."""


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


def _working_dir(workdir: str, store_dir: str) -> str | None:
    """A step of a generated flow runs where its flow was written, in a producer's outputs in
    the store: that folder's path inside the store (any other step keeps its image's working
    directory: its flow's folder is the operator's, not the pod's)."""
    root = store_dir.rstrip("/")
    return workdir[len(root) + 1 :] if workdir.startswith(root + "/") else None


def _files_mount(owner: FlowOwner, store_dir: str) -> dict[str, Any]:
    return _store_mount(files_path(owner), store_dir)


def _result_mount(owner: FlowOwner, unit_id: str, attempt: int) -> dict[str, Any]:
    """META_RESULT's folder: the attempt's result folder of the store."""
    return {
        "name": STORE_VOLUME,
        "mountPath": RESULT_DIR,
        "subPath": result_path(owner, unit_id, attempt),
    }


def _store_mount(path: str, store_dir: str) -> dict[str, Any]:
    """A folder of the store, read-only, at the path the operator sees it at."""
    return {
        "name": STORE_VOLUME,
        "mountPath": f"{store_dir.rstrip('/')}/{path}",
        "subPath": path,
        "readOnly": True,
    }


def store_volume(settings: PodSettings) -> dict[str, Any]:
    if settings.store_claim:
        return {"name": STORE_VOLUME, "persistentVolumeClaim": {"claimName": settings.store_claim}}
    return {"name": STORE_VOLUME, "emptyDir": {}}


def place(spec: dict[str, Any], settings: PodSettings) -> None:
    """The scheduler places pods; the operator only narrows where (no nodeName)."""
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]


def slot_images(section: Section, max_active: int, default_image: str) -> list[str]:
    """One image per slot: as many slots as units may run at once in the section (at most
    MAX_SLOTS), starting with the images its steps name, in the order they are written, so the
    first steps of each image find a slot running it. Templated images are known only at run
    time: a slot takes them by an in-place swap."""
    images: list[str] = []
    for unit in walk_units(section):
        if isinstance(unit, Step):
            image = unit.run.image or default_image
            if not is_template(image) and image not in images:
                images.append(image)
    count = max(1, min(MAX_SLOTS, max_live(section, max_active)))
    images = images or [default_image]
    return [images[i % len(images)] for i in range(count)]


def wind_down_seconds(section: Section, default_timeout: float, grace: int) -> int | None:
    """How long a micro pod stopped from outside may take to end when its section (or one in
    it) has `finally` units: the time limits of their steps, one after another, and the grace
    a pod gets. None when it has none (a pod is then given its grace only)."""
    total = 0.0
    finals = [
        last for unit in walk_units(section) if isinstance(unit, Section) for last in unit.final
    ]
    for last in finals:
        for unit in walk_units(last):
            if isinstance(unit, Step):
                total += default_timeout if unit.timeout_seconds is None else unit.timeout_seconds
    return math.ceil(total) + grace if finals else None


def slot_resources(section: Section) -> dict[str, dict[str, str]]:
    """What each slot asks: per resource, the most any step of the section asks. A slot runs
    one step at a time, so the pod asks the most of what may run at once, not the sum of all."""
    most: dict[str, dict[str, str]] = {}
    for unit in walk_units(section):
        if not isinstance(unit, Step):
            continue
        for kind, amounts in unit.run.resources.items():
            kept = most.setdefault(kind, {})
            for name, amount in amounts.items():
                if name not in kept or quantity(amount) > quantity(kept[name]):
                    kept[name] = amount
    # A limit below the most that a step requests would make the pod invalid.
    requests, limits = most.get("requests", {}), most.get("limits", {})
    for name, limit in limits.items():
        if name in requests and quantity(requests[name]) > quantity(limit):
            limits[name] = requests[name]
    return most


def max_live(unit: Unit | Cases | None, limit: int | None = None) -> int:
    """The most steps of a unit that may run at once."""
    if unit is None:
        return 0
    if isinstance(unit, Cases):
        return max(max_live(case.unit) for case in unit.cases)
    if not isinstance(unit, Section):
        return 1
    children = [*unit.units, *unit.ring, unit.visit, unit.gather, *unit.final]
    widest = max((max_live(child) for child in children), default=1)
    return (limit or max_active(unit)) * widest


def child_flow(
    owner: FlowOwner,
    plan: Plan,
    document: Mapping[str, Any],
    task: FlowTask,
    upstream: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The child MetaFlow of a flowRef: the referenced flow's document (from the parent's
    `spec.flows`), its inputs as the flowRef binds them, the parent's embedded flows rebased
    to where the child's own references resolve, and what it runs within."""
    base = plan.flow.source.parent
    sub: Plan = task.plan
    key = os.path.relpath(sub.flow.source, base)
    flows: Mapping[str, Any] = document["spec"].get("flows", {})
    # Embedded by `meta apply`, or a file on the operator's data volume.
    written = copy.deepcopy(flows[key]) if key in flows else read_document(sub.flow.source)
    spec = written["spec"]
    # As bound by the flowRef: values stay values; files stay files, by their absolute paths
    # (the parent's embedded files in the store, or files on the operator's data volume).
    spec["inputs"] = {
        name: {"value": given.value} if isinstance(given, ValueInput) else {"path": str(given.path)}
        for name, given in sub.inputs.items()
    }
    here = os.path.dirname(key)
    rebased = {os.path.relpath(other, here or "."): doc for other, doc in flows.items()}
    if rebased:
        spec["flows"] = rebased
    # The root flow's podGC and parallelism hold for the whole run: a referenced flow's own are
    # ignored (the child runs its units under the same bound, and is one unit of its parent).
    for run_wide in ("podGC", "parallelism"):
        spec.pop(run_wide, None)
        if run_wide in document["spec"]:
            spec[run_wide] = document["spec"][run_wide]
    digest = hashlib.sha256(task.id.encode()).hexdigest()[:8]
    return {
        "apiVersion": document["apiVersion"],
        "kind": document["kind"],
        "metadata": {
            "name": f"{short_name(owner.name)}-{digest}-{task.attempt}",
            "namespace": owner.namespace,
            "labels": {**MANAGED_BY, LABEL_PARENT: owner.name},
            "annotations": {
                ANNOTATION_WITHIN: task.id,
                ANNOTATION_STORE: owner.store_root,
                ANNOTATION_UPSTREAM: json.dumps([list(u) for u in upstream]),
                ANNOTATION_FLOW_NAME: written.get("metadata", {}).get("name", sub.flow.name),
            },
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }


def event_body(
    owner: FlowOwner, kind: str, reason: str, message: str, stamp: str, about: str = KIND
) -> dict[str, Any]:
    """An Event about the MetaFlow (or, with `about`, the MetaSchema `owner` names), `kind`
    Normal or Warning, as `kubectl describe` shows it."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{owner.name}.", "namespace": owner.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": about,
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": "meta-operator"},
        "reportingComponent": "meta-operator",
    }


def schema_flow(
    schema: FlowOwner,
    name: str,
    document: Mapping[str, Any],
    files: Mapping[str, str],
    digest: str,
) -> dict[str, Any]:
    """The MetaFlow generated from the MetaSchema `schema` (its namespace, name and uid): the
    generated document, carrying the description and its data in `spec.files` (written into
    the store as `meta apply`'s are) and running its steps in that folder, where the flow was
    generated (as locally, where a generated flow's steps run in its folder). Owned by the
    MetaSchema: deleting it deletes its flows. Its units are named after the generated flow
    (as `meta run` names them), not after the resource."""
    written = document.get("metadata") or {}
    spec = {**copy.deepcopy(dict(document["spec"])), "files": dict(sorted(files.items()))}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": schema.namespace,
            "labels": {**MANAGED_BY, LABEL_SCHEMA: schema.name},
            "annotations": {
                **(written.get("annotations") or {}),
                ANNOTATION_FLOW_NAME: written.get("name", schema.name),
                ANNOTATION_RUNS_IN: "files",
                ANNOTATION_SPEC_DIGEST: digest,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SCHEMA_KIND,
                    "name": schema.name,
                    "uid": schema.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def outputs_config_map(owner: FlowOwner, name: str, parts: list[list[str]]) -> dict[str, Any]:
    """The ConfigMap holding a child flow's result parts when they are too many for its status."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned(owner, name),
        "data": {"parts.json": json.dumps(parts)},
    }


def journal_config_map(owner: FlowOwner, name: str, key: str, text: str) -> dict[str, Any]:
    """A chunk of a MetaFlow's journal, made with its first record."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owned(owner, name, {LABEL_JOURNAL: owner.name}),
        "data": {key: text},
    }


def owned(owner: FlowOwner, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The metadata of an object the MetaFlow owns: deleted with it, labelled as ours."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**MANAGED_BY, **(labels or {})},
        "ownerReferences": [owner.reference()],
    }
