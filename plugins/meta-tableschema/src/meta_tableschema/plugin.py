"""The plugin module (entry point `tableschema` in the group `meta.plugins`).

The `tableschema` generator turns a Frictionless Data Package (a datapackage.json whose
resources carry Table Schemas) into a flow: a fan-out over the resources, one step per resource
that checks its CSV against its schema, and a gather that writes one report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from meta import hookimpl
from meta.errors import Fault, UserError
from meta.hookspecs import Description, GeneratorRegistry
from meta_tableschema.check import resource_problems

SCORE = 50.0
"""Above the built-ins' guesses (10-40), below a JSON Schema's explicit x-meta.pattern (100)."""

UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TableSchemaGenerator:
    """Data Package → fan-out of CSV checks → one report."""

    name = "tableschema"

    def score(self, description: Description) -> float:
        """`SCORE` for a JSON document whose `resources` all carry `schema.fields`, else 0."""
        document = description.document
        if not isinstance(document, dict):
            return 0.0
        resources = document.get("resources")
        if not isinstance(resources, list) or not resources:
            return 0.0
        described = all(
            isinstance(resource, dict)
            and isinstance(resource.get("schema"), dict)
            and isinstance(resource["schema"].get("fields"), list)
            for resource in resources
        )
        return SCORE if described else 0.0

    def generate(self, description: Description) -> dict[str, Any]:
        """The flow; `UserError` naming each fault of the package by its JSON pointer."""
        faults = _faults(description)
        if faults:
            raise UserError(faults)
        package = description.path
        return {
            "apiVersion": "meta-orchestrator.io/v1alpha1",
            "kind": "MetaFlow",
            "metadata": {"name": _flow_name(description.document, package)},
            "spec": {
                "inputs": {"package": {"path": description.relative(package)}},
                "root": {
                    "name": "tables",
                    "scope": "macro",
                    "pattern": "fanout",
                    "over": {"input": "package", "path": "/resources"},
                    "visit": {
                        "name": "check-{{ item.name }}",
                        "run": {
                            "command": [
                                "meta-tableschema-check",
                                "{{ inputs.package }}",
                                "{{ index }}",
                            ]
                        },
                    },
                    "gather": {
                        "name": "report",
                        "run": {"command": ["meta-tableschema-report", "{{ inputs.package }}"]},
                    },
                },
            },
        }


def _faults(description: Description) -> list[Fault]:
    file = _display(description.path)
    faults: list[Fault] = []
    seen: dict[str, int] = {}
    for i, resource in enumerate(description.document["resources"]):
        at = f"/resources/{i}"
        name = resource.get("name")
        if not isinstance(name, str) or not UNIT_NAME.match(name):
            faults.append(
                Fault(
                    file,
                    f"{at}/name",
                    f"resource name {name!r} must start with a letter or digit and hold only "
                    "letters, digits, '_', '.' and '-' (it names the resource's check)",
                )
            )
        elif name in seen:
            faults.append(
                Fault(
                    file,
                    f"{at}/name",
                    f"duplicate resource name {name!r} (see /resources/{seen[name]})",
                )
            )
        else:
            seen[name] = i
        faults.extend(Fault(file, at + p.pointer, p.reason) for p in resource_problems(resource))
    return faults


def _flow_name(document: dict[str, Any], package: Path) -> str:
    for candidate in (document.get("name"), package.parent.name):
        if isinstance(candidate, str):
            name = re.sub(r"[^a-z0-9-]+", "-", candidate.lower()).strip("-")[:63].strip("-")
            if name:
                return name
    return "datapackage"


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    except ValueError:
        return str(path)


@hookimpl
def meta_register_generators(registry: GeneratorRegistry) -> None:
    registry.register(TableSchemaGenerator())
