"""What the cluster side shares: the MetaFlow's identity (group, version, kind), the labels and
annotations on the objects the operator makes, the operator's settings, the MetaFlow whose
objects they are, and the brief a micro pod's quarterback reads (its wire format).

Every other module of `meta.kube` may import this one; it imports nothing of `meta.kube`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meta.engine.driver import PodTask

GROUP = "meta-orchestrator.io"
VERSION = "v1alpha1"
KIND = "MetaFlow"
PLURAL = "metaflows"
SINGULAR = "metaflow"
SHORT_NAMES = ("mf",)
API_VERSION = f"{GROUP}/{VERSION}"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Invalid")
SCHEMA_KIND = "MetaSchema"
"""A data description dropped into the cluster: the operator generates a MetaFlow from it."""
SCHEMA_PLURAL = "metaschemas"
SCHEMA_SINGULAR = "metaschema"
SCHEMA_SHORT_NAMES = ("msc",)

LABEL_FLOW = f"{GROUP}/flow"
LABEL_UNIT = f"{GROUP}/unit"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_NAME = f"{GROUP}/unit-name"
LABEL_SCOPE = f"{GROUP}/scope"
"""On a micro section's pod: `micro` (its steps run in its slot containers)."""
ANNOTATION_UNIT_ID = f"{GROUP}/unit-id"
ANNOTATION_INPUT = f"{GROUP}/input"
ANNOTATION_WITHIN = f"{GROUP}/within"
"""On a child flow: the id of the flowRef it runs for (its units' ids start with it)."""
ANNOTATION_STORE = f"{GROUP}/store"
ANNOTATION_UPSTREAM = f"{GROUP}/upstream"
ANNOTATION_FLOW_NAME = f"{GROUP}/flow-name"
LABEL_PARENT = f"{GROUP}/parent"
LABEL_SCHEMA = f"{GROUP}/schema"
"""On a MetaFlow generated from a MetaSchema: that MetaSchema's name."""
ANNOTATION_SPEC_DIGEST = f"{GROUP}/spec-digest"
"""On a MetaFlow generated from a MetaSchema: the digest of the spec it was generated from."""
ANNOTATION_RUNS_IN = f"{GROUP}/runs-in"
"""`files` on a MetaFlow whose steps run in the folder of its embedded files, where its flow
was generated (as a generated flow's steps run in their flow's folder locally)."""
LABEL_JOURNAL = f"{GROUP}/journal-of"
MANAGED_BY = {"app.kubernetes.io/managed-by": "meta-orchestrator"}

INPUT_DIR = "/meta/task"
OUTPUT_DIR = "/meta/output"
RESULT_DIR = "/meta/result"
"""Where a step pod (or a micro pod's quarterback) writes its result: a folder of the store."""
UPSTREAM_DIR = "/meta/upstream"
SCRATCH_DIR = "/scratch"
STORE_VOLUME = "store"
CACHE_DIR = ".cache"
"""The store's folder of cache entries, shared by every flow that uses the store."""
CACHE_MOUNT = "/meta/cache"
"""Where a micro pod's quarterback sees the store's cache (when its section uses it)."""
MAX_INPUT_BYTES = 200 * 1024
"""Annotations hold at most 256 KiB in all; a larger input belongs in an input file."""
DEFAULT_IMAGE = "meta-orchestrator:0.1.0"
RUN_AS_USER = 10001
"""The uid of the framework image (Containerfile: `USER 10001`), and of every container by
default."""


@dataclass(frozen=True)
class FlowOwner:
    """The MetaFlow whose pods these are."""

    namespace: str
    name: str
    uid: str
    store: str = ""
    """The folder of the store its units' outputs go to: the uid of the flow at the top of the
    flowRef chain, shared by the child flows it made, so outputs cross flows without copies."""

    @property
    def store_root(self) -> str:
        return self.store or self.uid

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class PodSettings:
    """How the operator's pods are placed and what they mount."""

    default_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    store_claim: str | None = None
    """The PersistentVolumeClaim holding the store; None keeps outputs in the pod (emptyDir)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    grace_seconds: int = 5
    run_as_user: int = RUN_AS_USER
    """The uid (and gid, and fsGroup) every container runs as: pods pass the `restricted` Pod
    Security Standard whatever user their images name (unless it is 0, root)."""
    read_only_root: bool = True
    """Steps (and the slots running them) get a read-only root file system; /tmp, /scratch and
    their outputs stay writable."""


@dataclass
class OperatorSettings:
    pods: PodSettings = field(default_factory=PodSettings)
    store_dir: str = "/store"
    """Where the operator sees the store volume (for `generate` units reading outputs)."""
    data_dir: Path = field(default_factory=Path.cwd)
    """File inputs of MetaFlows are read relative to this directory."""
    generate_seconds: float = 60.0
    """How long generating the flow of one MetaSchema may take before its worker is stopped."""
    compact_journal: bool = False
    """Whether an ended flow's journal leaves its ConfigMaps for a file in the store (which must
    outlive the operator: a volume, not its own file system)."""


TASK = "task.json"


@dataclass(frozen=True)
class PodBrief:
    task: PodTask
    flow: Mapping[str, Any]
    """The flow document (apiVersion, kind, metadata.name, spec)."""
    file: str
    """How faults name the flow: the same name the operator's plan gave it."""
    slots: list[str]
    """The image each slot container starts with."""
    default_image: str
    run: str = ""
    """The MetaFlow it runs for (namespace/name), as cache entries it makes name their run."""
    directory: str = ""
    """The folder of the store the flow's steps start in (a flow generated from a MetaSchema
    runs in its files' folder, which every slot mounts at that path); empty: each step starts
    in its image's working directory."""

    def document(self) -> str:
        """The brief as the ConfigMap's one file holds it."""
        body = {
            "task": {**asdict(self.task), "upstream": [list(u) for u in self.task.upstream]},
            "flow": self.flow,
            "file": self.file,
            "slots": self.slots,
            "defaultImage": self.default_image,
            "run": self.run,
            "directory": self.directory,
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def read(cls, work_dir: str) -> PodBrief:
        with open(os.path.join(work_dir, TASK), encoding="utf-8") as handle:
            body = json.load(handle)
        raw = body["task"]
        task = PodTask(
            **{
                **raw,
                "hidden": tuple(raw["hidden"]),
                "upstream": [tuple(u) for u in raw["upstream"]],
                "fed_by": [tuple(f) for f in raw.get("fed_by", [])],
            }
        )
        return cls(
            task,
            body["flow"],
            body["file"],
            list(body["slots"]),
            body["defaultImage"],
            str(body.get("run", "")),
            str(body.get("directory", "")),
        )
