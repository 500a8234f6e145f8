"""The flow schema's verdict on a document, remembered when it was "valid".

Checking a flow against meta/flow/schema.json takes jsonschema, whose import alone costs tens of
milliseconds at every `meta run`. The check is a pure function of the document, the schema and
the code that applies it, so a document found valid once is valid again: its digest, with
those of the schema, of meta/flow/schema.py and of the installed jsonschema, names an empty
file under `cache_home()/flows-valid/`, and a document whose file is there, made by this user,
is not checked (nor jsonschema imported). Only "valid" is remembered: a document with faults is
checked every time, and its faults come from meta.flow.schema as ever. A document that is not
plain JSON data (a YAML date, a key that is not text) is always checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from meta.cachedir import cache_home
from meta.errors import Fault

FOLDER = "flows-valid"
KEPT = 2000
"""At most this many documents are remembered; past it the oldest half is forgotten."""
_PLAIN = (str, int, float, bool, type(None))


def schema_faults(document: Any, file: str) -> list[Fault]:
    """meta.flow.schema's `schema_faults`, skipped for a document found valid before."""
    mark = _mark(document)
    if mark is not None and _remembered(mark):
        return []
    from meta.flow.schema import schema_faults as checked

    faults = checked(document, file)
    if not faults and mark is not None:
        _remember(mark)
    return faults


def _remembered(mark: str) -> bool:
    """Whether the mark is there, made by this process's user: one another user could plant
    (a cache folder others may write to) would let a document skip its check."""
    try:
        return os.stat(mark).st_uid == os.geteuid()
    except OSError:
        return False


def _mark(document: Any) -> str | None:
    """The file that says `document` is valid, or None when it cannot be named."""
    if not _plain(document):
        return None
    implementation = _implementation()
    if implementation is None:
        return None
    digest = hashlib.sha256(implementation)
    # sort_keys: the order of a mapping's keys changes no verdict. ASCII: any text encodes.
    digest.update(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    return os.path.join(cache_home(), FOLDER, digest.hexdigest())


def _plain(document: Any) -> bool:
    """Whether `document` is JSON data that json.dumps writes one way only: text keys (an
    integer key would be written as the text of a different document) and JSON values."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                return False
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif not isinstance(value, _PLAIN):
            return False
    return True


@cache
def _implementation() -> bytes | None:
    """The digest of what decides validity: schema.json and schema.py as they are here, and
    the installed jsonschema (its package folder and files, by path, size and time); None
    when one of them cannot be read (then nothing is remembered)."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    spec = importlib.util.find_spec("jsonschema")
    try:
        digest.update((here / "schema.json").read_bytes())
        digest.update((here / "schema.py").read_bytes())
        if spec is None or spec.origin is None:
            return None
        package = os.path.dirname(spec.origin)
        with os.scandir(package) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                stat = entry.stat(follow_symlinks=False)
                digest.update(f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    except OSError:
        return None
    return digest.digest()


def _remember(mark: str) -> None:
    folder = os.path.dirname(mark)
    try:
        os.makedirs(folder, exist_ok=True)
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        _forget_the_oldest(folder)
    except OSError:
        pass  # a cache that cannot be written only means checking again next time


def _forget_the_oldest(folder: str) -> None:
    """Keep the folder bounded (every edit of every flow leaves a mark): a new mark is rare,
    so listing the folder then costs little."""
    with os.scandir(folder) as entries:
        marks = [(entry.stat().st_mtime_ns, entry.path) for entry in entries]
    if len(marks) <= KEPT:
        return
    for _, path in sorted(marks)[: len(marks) - KEPT // 2]:
        with contextlib.suppress(OSError):
            os.unlink(path)
