"""The files a MetaFlow carries (`spec.files`, embedded by `meta apply`), put in the store.

A step reads a file input as a file, wherever it runs: locally the input is the file's absolute
path, and so it is in the cluster. The operator writes each embedded file into the flow's store
folder and makes every input path that names one absolute there; every pod mounts that folder,
read-only, at the very path the operator sees it at, so the path the plan hands a step (in its
input, its templates) opens the same bytes in the operator, the quarterback and the step.
"""

from __future__ import annotations

import contextlib
import copy
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from meta.errors import Fault, FlowInvalid, MetaError
from meta.flow.model import Origin


class StoreEscape(MetaError):
    """A folder of the store that leads out of it (through a link): nothing is written there."""


def place_files(body: Mapping[str, Any], directory: Path, file: str) -> dict[str, Any]:
    """The resource with its `spec.files` written under `directory` and each input path naming
    one of them made absolute there (in its own inputs, its flowRefs' inputs and its embedded
    flows'). Faults name `file` and the key's JSON path; a fault writes nothing."""
    placed = copy.deepcopy(dict(body))
    spec = placed.get("spec") or {}
    given: Mapping[str, str] = spec.pop("files", None) or {}
    if not given:
        return placed
    files = {posixpath.normpath(key): text for key, text in given.items()}
    faults = [
        Fault(file, Origin(file, "/spec/files").at(key).pointer, reason)
        for key in given
        if (reason := _refused(posixpath.normpath(key), files))
    ]
    if faults:
        raise FlowInvalid(faults)
    for key, text in files.items():
        _write(directory, key, text)
    _rebase(spec, "", files, directory)
    for key, embedded in (spec.get("flows") or {}).items():
        _rebase(embedded.get("spec") or {}, posixpath.dirname(key), files, directory)
    return placed


def _refused(key: str, files: Mapping[str, str]) -> str:
    """Why a (normalised) key cannot be a file here, or "" when it can."""
    if posixpath.isabs(key) or key == "." or key.split("/")[0] == "..":
        return "a file's key must be a relative path inside the flow's folder"
    if "\0" in key:
        return "a file's key holds a NUL character"
    parents = {"/".join(key.split("/")[:i]) for i in range(1, key.count("/") + 1)}
    if clash := sorted(parents & files.keys()):
        return f"a file's key lies inside another file's, {clash[0]!r}"
    return ""


def _rebase(spec: dict[str, Any], folder: str, files: Mapping[str, str], directory: Path) -> None:
    """Make absolute, under `directory`, each input path of this flow document (relative to
    `folder`, its place among the files) that names an embedded file."""
    for entries in (spec.get("inputs"), *_flow_ref_inputs(spec.get("root"))):
        # Not yet validated: what is not a map of inputs is the flow language's to report.
        if not isinstance(entries, dict):
            continue
        for entry in entries.values():
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


def _write(directory: Path, key: str, text: str) -> None:
    """Write once (a resumed flow finds its files in place and rewrites none), through a
    temporary file of its own, never through a link that leads out of `directory`."""
    target = directory / key
    data = text.encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(directory)
    if os.path.commonpath([root, os.path.realpath(target.parent)]) != root:
        raise StoreEscape(f"{target.parent} leads out of {directory}")
    with contextlib.suppress(OSError):
        if not target.is_symlink() and target.read_bytes() == data:
            return
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            # mkstemp makes it 0600: every pod reads it, as whatever uid it runs as.
            os.fchmod(out.fileno(), 0o644)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
