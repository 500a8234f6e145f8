"""The files a MetaFlow carries (`spec.files`, embedded by `meta apply`), put in the store.

A step reads a file input as a file, wherever it runs: locally the input is the file's absolute
path, and so it is in the cluster. The operator writes each embedded file into the flow's store
folder and makes every input path that names one absolute there; every pod mounts that folder,
read-only, at the very path the operator sees it at, so the path the plan hands a step (in its
input, its templates) opens the same bytes in the operator, the quarterback and the step.
"""

from __future__ import annotations

import copy
import os
import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from meta.errors import Fault, FlowInvalid


def place_files(body: Mapping[str, Any], directory: Path, file: str) -> dict[str, Any]:
    """The resource with its `spec.files` written under `directory` and each input path naming
    one of them made absolute there (in its own inputs, its flowRefs' inputs and its embedded
    flows'). Faults name `file` and the key's JSON path."""
    placed = copy.deepcopy(dict(body))
    spec = placed.get("spec") or {}
    files: Mapping[str, str] = spec.pop("files", None) or {}
    if not files:
        return placed
    reason = "a file's key must be a relative path inside the flow's folder"
    faults = [Fault(file, f"/spec/files/{_escaped(k)}", reason) for k in files if _outside(k)]
    if faults:
        raise FlowInvalid(faults)
    for key, text in files.items():
        _write(directory / key, text)
    _rebase(spec, "", files, directory)
    for key, embedded in (spec.get("flows") or {}).items():
        _rebase(embedded.get("spec") or {}, posixpath.dirname(key), files, directory)
    return placed


def _rebase(spec: dict[str, Any], folder: str, files: Mapping[str, str], directory: Path) -> None:
    """Make absolute, under `directory`, each input path of this flow document (relative to
    `folder`, its place among the files) that names an embedded file."""
    for entries in (spec.get("inputs"), *_flow_ref_inputs(spec.get("root"))):
        for entry in (entries or {}).values():
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str) and not os.path.isabs(path):
                key = posixpath.normpath(posixpath.join(folder, path))
                if key in files:
                    entry["path"] = str(directory / key)


def _flow_ref_inputs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        reference = node.get("flowRef")
        if isinstance(reference, dict):
            yield reference.get("inputs")
        for value in node.values():
            yield from _flow_ref_inputs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _flow_ref_inputs(value)


def _outside(key: str) -> bool:
    normal = posixpath.normpath(key)
    return posixpath.isabs(key) or normal == "." or normal.split("/")[0] == ".."


def _escaped(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _write(target: Path, text: str) -> None:
    """Write once: a resumed flow finds its files in place and rewrites none."""
    data = text.encode()
    try:
        if target.read_bytes() == data:
            return
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
