"""What the operator hands a micro pod's quarterback: the flow and the section to run in it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from meta.engine.driver import PodTask

TASK = "task.json"


@dataclass(frozen=True)
class Work:
    task: PodTask
    flow: Mapping[str, Any]
    """The flow document (apiVersion, kind, metadata.name, spec)."""
    file: str
    """How faults name the flow: the same name the operator's plan gave it."""
    slots: list[str]
    """The image each slot container starts with."""
    default_image: str

    def document(self) -> str:
        """The work as the ConfigMap's one file holds it."""
        body = {
            "task": {**asdict(self.task), "upstream": [list(u) for u in self.task.upstream]},
            "flow": self.flow,
            "file": self.file,
            "slots": self.slots,
            "defaultImage": self.default_image,
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def read(cls, work_dir: str) -> Work:
        with open(os.path.join(work_dir, TASK), encoding="utf-8") as handle:
            body = json.load(handle)
        raw = body["task"]
        task = PodTask(
            **{
                **raw,
                "hidden": tuple(raw["hidden"]),
                "upstream": [tuple(u) for u in raw["upstream"]],
            }
        )
        return cls(task, body["flow"], body["file"], list(body["slots"]), body["defaultImage"])
