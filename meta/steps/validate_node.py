"""`meta step validate-node`: check one data node against its type in a JSON Schema, and write a
per-node report. The built-in step of the JSON Schema generators, for types without `x-meta.run`.

    meta step validate-node --schema FILE [--schema-root DIR]
                            --pointer /$defs/Team [--pointer P2 ...] [--entry-of P]
                            [--children=F ...] [--entries=F ...] [--shapes=JSON | --held=JSON]
                            [--fanned-out=P ...] [--path P] [--type NAME]
                            [--each [--offset N]] [--data FILE --at P] [--no-subtree]
    meta step validate-node --summary

The node is META_INPUT (or, with --data, the value at --at in that file, JSON or YAML). It is
checked by jsonschema's validator for the schema's own draft; `$ref`s resolve inside the schema,
to files under its folder (or under --schema-root, a folder above it) and to the drafts'
metaschemas, never over the network. A --pointer is a JSON pointer into the schema or
`OTHER.json#/pointer` into another file (relative to the schema); given several, the node may
be of any of those types (the report gives the errors of the closest). With --entry-of P the
node is an entry, keyed by the last name of --path, of an object whose schema is at P: it is
checked as that entry of such an object, so held to every schema its key selects there, as
jsonschema holds it (repeated: the object may be any of those, the closest counts).

--children and --entries name the fields a tree walk strips from its nodes: a field holding one
node or an array of them, and a map of nodes keyed by name. Their elements are other units'
nodes, so of such a field only the container's own keywords are checked here (its type, size,
uniqueness, key names, `contains`), never what reaches into its elements. The step has the
fields' values with --data (the node read whole), else from --shapes: per field the node holds,
its size or its keys (`[[field, "array", count] | [field, "object", keys] | [field, "value",
v]]`, which a template renders from `node`), so each container is checked once, at the node
holding it, without reading the data again; `--shapes={"data": FILE}` when the keys are too
many for a command line: the node is read whole from FILE, at --path, as with --data. Keywords
that need the elements' values (`uniqueItems`, `contains`, `enum`, `const`) are checked only
with the node read whole. Without either, the old way: the node is not held to `required`,
`minProperties` or `dependencies` for the children fields it held (--held: its fields before
the walk stripped them, a JSON list; without it, all of them). --fanned-out=P names a value (a
map or an array at JSON pointer P in the data) whose entries other units check: only its own
keywords are checked here. With --each, the node is a list and every element is checked
(--offset numbers the first). It writes META_OUTPUT/report.json:

    {"unit", "type", "path", "valid", "errors": [{"pointer", "message"}],
     "subtree": {"nodes", "invalid"}}

`subtree` counts this node (or these elements) and, unless --no-subtree, adds the `subtree` of
every META_UPSTREAM/*/report.json (post-order tree walks: the children's reports). --summary
checks nothing and only adds up the upstream reports (a gather). Pointers in `errors` are JSON
pointers into the data: --path (or --at) followed by the place inside the node. --path, --at
and --fanned-out take a pointer as it is, or as a JSON string (`"/teams/a\\u0000b"`: how
generated flows pass them, so that a key holding a NUL, which no command line can, passes).

The module also holds what the generators share with the step, since steps sit below every
other layer: the draft of a schema (`dialect_of`), the registry that reads files beside a
schema and nothing remote (`local_registry`). YAML read as the JSON it stands for is
meta.steps.yamldata's (flows are read with it too, without this module's jsonschema).

Exit 0 whether the node is valid or not (the report says); 2 when the step itself is misused
(no such schema file or pointer, no META_INPUT or META_OUTPUT).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as METASCHEMAS  # type: ignore[import-untyped]
from referencing import Registry, Resource, Specification
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from meta.errors import Fault, escaped, lookup, pointer, unescape
from meta.steps.schema_faults import deepest, message
from meta.steps.walked import holds_nodes
from meta.steps.yamldata import YamlRefused, is_yaml, load_yaml_data

REPORT = "report.json"
POINTER_SAFE = "/~!$&'()*+,;=:@"
"""Characters a JSON pointer keeps as they are when it becomes a URI fragment."""
ID_SUFFIXES = (".json", ".yaml", ".yml")
ID_FILES = 1000
ID_FILE_LIMIT = 20 * 1024 * 1024
"""How many files, of at most what size, are looked through for the `$id` a `$ref` names."""
LATEST_ALIAS = "http://json-schema.org/schema"
"""An old way to say "the newest draft", still found in published schemas."""


_AN_ARRAY = Draft202012Validator({"type": "array"})


class StepMisused(Exception):
    """The step was called wrongly: exit 2 with this message."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the step; the exit code: 0 (a report was written) or 2 (misused)."""
    args = _parser().parse_args(argv)
    try:
        report = _report(args)
        output = Path(_environ("META_OUTPUT"))
        output.mkdir(parents=True, exist_ok=True)
        (output / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        result = os.environ.get("META_RESULT")
        if result:
            # The verdict as the unit's result: `meta run` shows the flow's (the whole
            # document's, at a walk's root or a gather), and templates may read it.
            totals = report["subtree"]
            verdict = {"valid": totals["invalid"] == 0, **totals}
            Path(result).write_text(json.dumps(verdict) + "\n", encoding="utf-8")
    except StepMisused as exc:
        print(f"validate-node: {exc}", file=sys.stderr)
        return 2
    count = len(report["errors"])
    state = "valid" if report["valid"] else f"invalid ({count} error{'s' if count != 1 else ''})"
    # The path as the report holds it, escaped: a key may hold what a terminal should not get
    # (a NUL, a newline), or what UTF-8 cannot encode (a lone surrogate, valid JSON).
    shown = escaped(report["path"] or "/").encode("utf-8", "backslashreplace").decode("utf-8")
    print(f"{report['type']} {shown}: {state}")
    return 0


@functools.cache
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meta step validate-node",
        description="Check a data node against its type in a JSON Schema; write report.json.",
    )
    parser.add_argument("--schema", type=Path, help="the JSON Schema file")
    parser.add_argument(
        "--schema-root",
        type=Path,
        help="the folder its $refs may read files under (default: the schema's own folder)",
    )
    parser.add_argument(
        "--pointer",
        action="append",
        help="the node type's JSON pointer in it (repeat: the node may be any of these types)",
    )
    parser.add_argument(
        "--entry-of",
        action="append",
        help="the JSON pointer of the schema of an object the node is an entry of, keyed by the "
        "last name of --path: the node is checked as that entry of such an object, held to "
        "every schema its key selects (repeat: the object may be any of these; instead of "
        "--pointer)",
    )
    parser.add_argument("--type", dest="type_name", help="the type's name in the report")
    parser.add_argument(
        "--children",
        action="append",
        default=[],
        help="a children field (repeat: one field each, so any name survives)",
    )
    parser.add_argument(
        "--entries",
        action="append",
        default=[],
        help="a children field holding a map of nodes keyed by name (repeat: one field each)",
    )
    parser.add_argument(
        "--shapes",
        help="the size or keys of each children field the node holds, as a JSON list of "
        "[field, 'array', count], [field, 'object', keys] or [field, 'value', value]; or "
        '{"data": FILE}: the node is read whole from FILE, at --path (keys too many for a '
        "command line)",
    )
    parser.add_argument(
        "--fanned-out",
        action="append",
        default=[],
        type=data_pointer,
        help="the JSON pointer of a value in the data whose entries other units check: only "
        "its own keywords are checked here (repeat: one each)",
    )
    parser.add_argument(
        "--held",
        help="the node's own fields before the walk stripped its children, as a JSON list "
        "(only the children fields it held are not required of it)",
    )
    parser.add_argument(
        "--path", default="", type=data_pointer, help="the node's JSON pointer in the data"
    )
    parser.add_argument("--each", action="store_true", help="the node is a list: check each")
    parser.add_argument("--offset", type=int, default=0, help="the index of the first element")
    parser.add_argument("--data", type=Path, help="read the node from this JSON file")
    parser.add_argument(
        "--at", default="", type=data_pointer, help="the node's JSON pointer in --data"
    )
    parser.add_argument(
        "--no-subtree", action="store_true", help="do not add up the upstream reports"
    )
    parser.add_argument("--summary", action="store_true", help="only add up upstream reports")
    return parser


def _environ(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise StepMisused(f"{name} is not set (run me as a step of a flow)")
    return value


def _report(args: argparse.Namespace) -> dict[str, Any]:
    unit = os.environ.get("META_UNIT_ID", "")
    below = {"nodes": 0, "invalid": 0} if args.no_subtree else upstream_totals()
    if args.summary:
        return {
            "unit": unit,
            "type": args.type_name or "summary",
            "path": args.path,
            "valid": below["invalid"] == 0,
            "errors": [],
            "subtree": below,
        }
    if args.schema is None:
        raise StepMisused("--schema is required (or --summary)")
    document = _read_ahead(args.schema, "schema")
    if not isinstance(document, dict | bool):
        raise StepMisused(
            f"the schema file {args.schema} holds {_json_kind(document)}: a JSON Schema is an "
            "object (or true, or false)"
        )
    places = args.pointer or [""]
    root = args.schema_root
    if root is not None and not args.schema.resolve().is_relative_to(root.resolve()):
        raise StepMisused(f"the schema file {args.schema} is not under --schema-root {root}")
    if args.entry_of:
        key = unescape((args.at if args.data is not None else args.path).rsplit("/", 1)[-1])
        check = _checker(args.schema, document, args.entry_of, root, entry=key)
    else:
        check = _checker(args.schema, document, places, root)
    children = frozenset(args.children) | frozenset(args.entries)
    if args.shapes is not None and args.shapes.startswith("{"):
        args.data, args.at, args.shapes = _shapes_file(args.shapes), args.path, None
    whole = args.data is not None
    walked: Iterable[str] = ()
    """The children fields the walk took children from: the elements are other units'."""
    if whole:
        path = args.at
        node = _at(_read_ahead(args.data, "data"), args.at, args.data)
        if isinstance(node, dict):
            walked = [
                name
                for name in children & node.keys()
                if holds_nodes(node[name], named=name in args.entries)
            ]
    else:
        path = args.path
        node = _read(Path(_environ("META_INPUT")), "META_INPUT")
        if args.shapes is not None and isinstance(node, dict):
            # A children field META_INPUT still holds was not walked (a misfit the walk
            # kept): its value is the node's data, not a shape.
            shaped = _shapes(args.shapes, children)
            walked = shaped.keys() - node.keys()
            node = {**shaped, **node}
    roles = Roles(elided=not whole)
    if isinstance(node, dict) and (whole or args.shapes is not None):
        # The node is whole again: of its walked fields, only the containers are its own.
        for name in walked:
            roles.add(node[name], "entries" if name in args.entries else "children")
        children = frozenset()
    elif args.held is not None:
        children = children & _held(args.held)
    for where in args.fanned_out:
        inside = _inside(node, path, where)
        if inside is not _ABSENT:
            roles.add(inside, "fanned-out")
    errors: list[dict[str, str]] = []
    nodes = invalid = 0
    if node is _ABSENT:
        pass  # an optional part of the data that is not there: nothing to check
    elif args.each and not isinstance(node, list):
        # The data holds something else where the schema holds an array of the type (a dag
        # stage's `--each --at /customers`): that is the fault found, as jsonschema says it.
        errors = [{"pointer": path, "message": message(next(_AN_ARRAY.iter_errors(node)))}]
        nodes, invalid = 1, 1
    elif args.each:
        for i, element in enumerate(node):
            found = list(check(element, children, f"{path}/{args.offset + i}", roles))
            errors.extend(found)
            nodes += 1
            invalid += bool(found)
    else:
        errors = list(check(node, children, path, roles))
        nodes, invalid = 1, int(bool(errors))
    return {
        "unit": unit,
        "type": args.type_name or _type_name(places[0], document),
        "path": path,
        "valid": not errors,
        "errors": errors,
        "subtree": {"nodes": nodes + below["nodes"], "invalid": invalid + below["invalid"]},
    }


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


class Elided:
    """An element of a container known by its size or keys only (--shapes): never looked into,
    as only the container's own keywords are checked; shown as `{...}` in messages."""

    def __repr__(self) -> str:
        return "{...}"


ELIDED = Elided()
ELEMENTS = frozenset({"items", "prefixItems", "additionalItems", "unevaluatedItems"}) | frozenset(
    {"properties", "patternProperties", "additionalProperties", "unevaluatedProperties"}
)
"""Keywords that reach into a container's elements (checked by the elements' own units); given
`false` they speak of the container's size or key names, and are checked with it."""
VALUES = frozenset({"uniqueItems", "contains", "minContains", "maxContains", "enum", "const"})
"""A container's own keywords that need its elements' values, not just their number or keys."""
ONE_NODE = frozenset({"type", "$ref", "$dynamicRef", "$recursiveRef", "allOf"})
"""What a parent checks of a child node it holds alone: only what says it should be an object
(the child's own unit checks it against its type)."""


class Roles:
    """The values in a node whose elements (or, for one child node, whose whole) other units
    check, by identity: a walk's children containers, a fanned-out map."""

    def __init__(self, *, elided: bool) -> None:
        self._by_id: dict[int, tuple[Any, str]] = {}
        self.elided = elided
        """Whether the children containers hold `Elided` elements (known by size or keys)."""

    def add(self, value: Any, field: str) -> None:
        if isinstance(value, list):
            self._by_id[id(value)] = (value, "container")
        elif isinstance(value, dict):
            self._by_id[id(value)] = (value, "one" if field == "children" else "container")

    def of(self, instance: Any) -> str | None:
        found = self._by_id.get(id(instance))
        return found[1] if found is not None and found[0] is instance else None

    def skips(self, keyword: str, value: Any, instance: Any) -> bool:
        """Whether the keyword is left to other units for this instance."""
        role = self.of(instance) if self._by_id else None
        if role is None:
            return False
        if role == "one":
            return keyword not in ONE_NODE
        if keyword in ELEMENTS:
            return value is not False
        return self.elided and keyword in VALUES


def _shapes(text: str, fields: frozenset[str]) -> dict[str, Any]:
    """The children fields --shapes describes, as containers of `ELIDED` elements."""
    shapes = _option_json(text)
    found: dict[str, Any] = {}
    for shape in shapes if isinstance(shapes, list) else [None]:
        if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in fields):
            raise StepMisused(
                "--shapes needs a JSON list of [field, 'array', count], [field, 'object', keys] "
                f"or [field, 'value', value] of the children fields, got {text[:60]!r}"
            )
        name, kind, what = shape
        if kind == "array" and isinstance(what, int):
            found[name] = [ELIDED] * what
        elif kind == "object" and isinstance(what, list):
            found[name] = dict.fromkeys(map(str, what), ELIDED)
        else:
            found[name] = what
    return found


def _shapes_file(text: str) -> Path:
    """The data file of `--shapes={"data": FILE}`: what a generated flow gives instead of the
    keys of a map too large for a command line (meta_generators.tree's SHAPES)."""
    named = _option_json(text)
    if not (isinstance(named, dict) and isinstance(named.get("data"), str) and named["data"]):
        raise StepMisused(f'--shapes needs a JSON list or {{"data": FILE}}, got {text[:60]!r}')
    return Path(named["data"])


def data_pointer(text: str) -> str:
    """A JSON pointer into the data, as written (it starts with "/", or is empty) or as a JSON
    string: generated flows give it so (`{{ path | tojson }}`), since a key may hold what a
    command line cannot (a NUL)."""
    if not text.startswith('"'):
        return text
    found = _option_json(text)
    if not isinstance(found, str):
        raise argparse.ArgumentTypeError(f"not a pointer, nor one as a JSON string: {text[:60]!r}")
    return found


def _inside(node: Any, path: str, where: str) -> Any:
    """The value at the data pointer `where`, inside the node at `path` (else `_ABSENT`)."""
    if where != path and not where.startswith(path + "/"):
        return _ABSENT
    try:
        return lookup(node, where[len(path) :])
    except LookupError:
        return _ABSENT


def _option_json(text: str) -> Any:
    """An option's JSON value; None when it is not JSON (each caller checks what it holds)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _held(text: str) -> frozenset[str]:
    names = _option_json(text)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise StepMisused(f"--held needs a JSON list of field names, got {text[:60]!r}")
    return frozenset(names)


def upstream_totals() -> dict[str, int]:
    """The sums of `subtree` over the reports in META_UPSTREAM (one subdir per producer; a
    producer that is a section with several results has one subdir per result)."""
    totals = {"nodes": 0, "invalid": 0}
    upstream = os.environ.get("META_UPSTREAM")
    if not upstream or not Path(upstream).is_dir():
        return totals
    for report in _reports(Path(upstream)):
        subtree = report.get("subtree") if isinstance(report, dict) else None
        if isinstance(subtree, dict):
            for key in totals:
                value = subtree.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[key] += value
    return totals


def _reports(upstream: Path) -> Iterator[Any]:
    for producer in sorted(upstream.iterdir()):
        found = [producer / REPORT] if (producer / REPORT).is_file() else []
        if not found and producer.is_dir():
            found = [sub / REPORT for sub in sorted(producer.iterdir()) if (sub / REPORT).is_file()]
        for file in found:
            try:
                yield json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue


def _read(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StepMisused(f"cannot read the {what} file {path}: {exc}") from None
    try:
        if is_yaml(path, text):
            return load_yaml_data(text)
        return json.loads(text.removeprefix("\ufeff"))
    except YamlRefused as exc:
        raise StepMisused(str(Fault(str(path), exc.where, exc.reason))) from None
    except ValueError as exc:
        raise StepMisused(f"the {what} file {path} does not parse: {exc}") from None


_DOCUMENTS: dict[tuple[str, int, int, int, int], Any] = {}
"""Schema and data files read by `warm`, by path and state on disk: the last READ_AHEAD."""
READ_AHEAD = 4
"""How many files `warm` keeps (a fan-out over many data files would keep them all)."""
_NAMED_ONCE: set[tuple[str, int, int, int, int]] = set()
"""Data files one step named: the second to name one has `warm` read it."""
NAMED_ONCE_KEPT = 4096
_REGISTRIES: dict[tuple[int, str | None], tuple[Any, Registry[Any], str]] = {}
"""The crawled registries `warm` made, by schema document and --schema-root."""


def warm(argv: Sequence[str]) -> None:
    """Read and crawl the schema `main(argv)` checks against, and read its --data once a second
    step names it, kept in this process: the warm starter (meta.cli.warm) calls it before it
    forks a step with these arguments, so that the step finds that work done (some 0.1 s for
    a large schema, and the parsing of a data file every node of a document reads; a file one
    step reads is left to it, as the steps of a fan-out over files read theirs side by side).
    What is wrong with the arguments is left for the step to say."""
    with contextlib.suppress(Exception, SystemExit):
        args = _parser().parse_args(argv)
        if args.schema is None or args.summary:
            return
        if args.data is not None:
            key = _file_key(args.data)
            if key in _NAMED_ONCE or key in _DOCUMENTS:
                _NAMED_ONCE.discard(key)
                _remembered(args.data, "data")
            elif key is not None:
                if len(_NAMED_ONCE) >= NAMED_ONCE_KEPT:
                    _NAMED_ONCE.clear()
                _NAMED_ONCE.add(key)
        document = _remembered(args.schema, "schema")
        dialect = None if document is _ABSENT else dialect_of(document)
        if dialect is None:
            return
        root = _root_key(args.schema_root)
        if (id(document), root) not in _REGISTRIES:
            registry, base = _crawl(args.schema, document, dialect, args.schema_root)
            _REGISTRIES[(id(document), root)] = (document, registry, base)


def _remembered(path: Path, what: str) -> Any:
    key = _file_key(path)
    if key is None:
        return _ABSENT  # not a regular file (a FIFO would hold the warm starter up): not read
    document = _DOCUMENTS.pop(key, _ABSENT)
    if document is _ABSENT:
        document = _read(path, what)
    _DOCUMENTS[key] = document  # the newest last
    while len(_DOCUMENTS) > READ_AHEAD:
        forgotten = _DOCUMENTS.pop(next(iter(_DOCUMENTS)))
        for crawled in [k for k, (held, *_) in _REGISTRIES.items() if held is forgotten]:
            del _REGISTRIES[crawled]
    return document


def _file_key(path: Path) -> tuple[str, int, int, int, int] | None:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return None
    return (os.path.abspath(path), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _root_key(root: Path | None) -> str | None:
    return None if root is None else os.path.abspath(root)


def _read_ahead(path: Path, what: str) -> Any:
    """The file's content, as `warm` read it if it did and the file has not changed since."""
    if _DOCUMENTS:
        with contextlib.suppress(OSError):
            key = _file_key(path)
            document = _ABSENT if key is None else _DOCUMENTS.get(key, _ABSENT)
            if document is not _ABSENT:
                return document
    return _read(path, what)


def _crawled(
    schema_file: Path, document: Any, dialect: Dialect, root: Path | None
) -> tuple[Registry[Any], str]:
    """The schema's registry and base URI, as `warm` made them if it did."""
    found = _REGISTRIES.get((id(document), _root_key(root)))
    if found is not None and found[0] is document:
        return found[1], found[2]
    return _crawl(schema_file, document, dialect, root)


def _crawl(
    schema_file: Path, document: Any, dialect: Dialect, root: Path | None
) -> tuple[Registry[Any], str]:
    registry, base, _ = local_registry(
        schema_file,
        _without_dialect(document),
        dialect,
        lambda path: _without_dialect(_read(path, "schema")),
        root,
    )
    return registry, base


_ABSENT = object()


def _at(document: Any, where: str, file: Path) -> Any:
    try:
        return lookup(document, where)
    except LookupError:
        return _ABSENT


@dataclass(frozen=True)
class Dialect:
    """The draft a schema is written in: jsonschema's validator for it and the matching
    `referencing` specification (how `$id`, `$anchor` and subschemas are read)."""

    validator: type[Validator]
    specification: Specification[Any]
    declared: bool
    """False when the schema has no `$schema` (or the old "latest" alias): read as the newest."""

    @property
    def name(self) -> str:
        """As people write it: draft-04, draft-06, draft-07, draft 2019-09, draft 2020-12."""
        name = self.specification.name  # draft-04 ... draft-07, draft2019-09, draft2020-12
        return name if name.startswith("draft-") else name.replace("draft", "draft ", 1)


def dialect_of(document: Any) -> Dialect | None:
    """The schema's own draft (from `$schema`); the newest draft when it names none; None when
    it names a dialect jsonschema does not know."""
    declared = document.get("$schema") if isinstance(document, dict) else None
    if declared is None or (isinstance(declared, str) and declared.rstrip("#") == LATEST_ALIAS):
        return Dialect(Draft202012Validator, DRAFT202012, declared=False)
    if not isinstance(declared, str):
        return None
    for spelling in dict.fromkeys((declared, declared.rstrip("#"), declared.rstrip("#") + "#")):
        validator = validators.validator_for({"$schema": spelling}, default=Draft202012Validator)
        meta = validator.META_SCHEMA
        dialect_id = str(meta.get("$id", meta.get("id", "")))
        if dialect_id.rstrip("#") == spelling.rstrip("#"):
            return Dialect(validator, specification_with(dialect_id), declared=True)
    return None


class RemoteReference(Exception):
    """A `$ref` names something that is not a file beside the schema: nothing is fetched."""


class LocalFiles:
    """A registry's retrieve function that reads only files under a root folder: the schema's
    own folder, or a folder above it that the user names (`--schema-root`).

    A URI names such a file when it is a `file:` URI below the root, when it sits below the
    directory of the schema's own `$id` or above it no higher than the root is above the
    schema (an `https://` `$id` included: a schema split over files refers to the others
    relative to it, as they are laid out on disk), or when it is the `$id` of a JSON or YAML
    file under the root. A file whose real path (links followed) is not under the root is not
    read. Anything else raises `RemoteReference`; each file is read once, and the root is
    looked through for `$id`s only when a URI names no file."""

    def __init__(
        self,
        folder: Path,
        prefixes: Sequence[str],
        read: Callable[[Path], Any],
        default: Specification[Any],
        root: Path | None = None,
    ) -> None:
        self._folder = (root or folder).resolve()
        levels = len(folder.resolve().relative_to(self._folder).parts)
        # A URI directory stands for the schema's folder, and the one `levels` above it for
        # the root: the nearer first, as a layout on disk may differ from the URIs' above it.
        self._prefixes = [
            (uri, place)
            for p in dict.fromkeys(prefixes)
            if p.endswith("/")
            for uri, place in ((p, folder.resolve()), (_up(p, levels), self._folder))
            if uri is not None
        ]
        self._prefixes = list(dict.fromkeys(self._prefixes))
        self._read = read
        self._default = default
        self._cache: dict[Path, Resource[Any]] = {}
        self._ids: dict[str, Path] | None = None

    def path_of(self, uri: str, *, existing: bool = True) -> Path | None:
        """The file beside the schema that `uri` names, if there is one (or, `existing` False,
        would be)."""
        for prefix, place in self._prefixes:
            if not uri.startswith(prefix):
                continue
            rest = unquote(urldefrag(uri).url[len(prefix) :])
            parts = rest.split("/")
            if not rest or rest.startswith("/") or ".." in parts:
                continue
            candidate = place.joinpath(*parts)
            if not existing:
                return candidate
            if candidate.is_file() and self.inside(candidate):
                return candidate
        return self._by_id().get(urldefrag(uri).url) if existing else None

    def inside(self, path: Path) -> bool:
        """Whether the real path of `path` (links followed) is under the root."""
        return path.resolve().is_relative_to(self._folder)

    def _by_id(self) -> dict[str, Path]:
        """The files of the folder (and below) by their `$id` (or draft-04 `id`)."""
        if self._ids is None:
            self._ids = {}
            found = sorted(
                path
                for suffix in ID_SUFFIXES
                for path in self._folder.rglob(f"*{suffix}")
                if path.is_file() and self.inside(path) and path.stat().st_size <= ID_FILE_LIMIT
            )
            for path in found[:ID_FILES]:
                try:
                    contents = self._read(path)
                except Exception:  # a file that does not parse names no $id: pass it by
                    continue
                own = (
                    contents.get("$id", contents.get("id")) if isinstance(contents, dict) else None
                )
                if isinstance(own, str):
                    self._ids.setdefault(urldefrag(own).url, path)
                    # A relative `$id` ("policy") is resolved against the file it is in.
                    self._ids.setdefault(urldefrag(urljoin(path.as_uri(), own)).url, path)
        return self._ids

    def __call__(self, uri: str) -> Resource[Any]:
        path = self.path_of(uri)
        if path is None:
            raise RemoteReference(uri)
        if path not in self._cache:
            contents = self._read(path)
            declared = contents.get("$schema") if isinstance(contents, dict) else None
            specification = (
                specification_with(declared, default=self._default)
                if isinstance(declared, str)
                else self._default
            )
            self._cache[path] = specification.create_resource(contents)
        return self._cache[path]


def _up(prefix: str, levels: int) -> str | None:
    """The URI directory `levels` above the directory `prefix` (ending in '/'), or None when its
    path is not that deep."""
    if levels == 0:
        return prefix
    head, slash, path = prefix.partition("://")
    authority, _, path = path.partition("/") if slash else ("", "", prefix)
    segments = path.rstrip("/").split("/") if path.strip("/") else []
    if len(segments) < levels:
        return None
    kept = "/".join(segments[: len(segments) - levels])
    start = f"{head}://{authority}/" if slash else ""
    return f"{start}{kept}/" if kept else start


def local_registry(
    schema_file: Path,
    document: Any,
    dialect: Dialect,
    read: Callable[[Path], Any],
    root: Path | None = None,
) -> tuple[Registry[Any], str, LocalFiles]:
    """A crawled registry holding the schema under its file URI and its own `$id`, that reads
    files under `root` (default: the schema's folder) from disk and never the network; with the
    base URI its `$ref`s resolve against. Crawling once up front keeps every later lookup from
    crawling the document again."""
    file_uri = schema_file.resolve().as_uri()
    resource = dialect.specification.create_resource(document)
    own_id = resource.id()
    base = urldefrag(urljoin(file_uri, own_id)).url if own_id else file_uri
    prefixes = [file_uri.rsplit("/", 1)[0] + "/", base.rsplit("/", 1)[0] + "/"]
    retrieve = LocalFiles(schema_file.resolve().parent, prefixes, read, dialect.specification, root)
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    # The drafts' own metaschemas ship with jsonschema: a schema may refer to them by URL.
    known = [(uri, METASCHEMAS[uri]) for uri in METASCHEMAS]
    registry = registry.with_resources([*known, (file_uri, resource), (base, resource)]).crawl()
    return registry, base, retrieve


def _type_name(where: str, document: Any) -> str:
    if where:
        return unescape(where.rsplit("/", 1)[-1])
    title = document.get("title") if isinstance(document, dict) else None
    return title if isinstance(title, str) else "root"


def _without_dialect(document: Any) -> Any:
    if isinstance(document, dict) and "$schema" in document:
        return {key: value for key, value in document.items() if key != "$schema"}
    return document


def _reference(base: str, where: str) -> str:
    """The URI of a node type: a JSON pointer into the schema, or `FILE#POINTER` into a file
    beside it."""
    if "#" in where:
        file, _, inside = where.partition("#")
        return f"{urljoin(base, file)}#{quote(inside, safe=POINTER_SAFE)}"
    return f"{base}#{quote(where, safe=POINTER_SAFE)}"


def _checker(
    schema_file: Path,
    document: Any,
    places: Sequence[str],
    root: Path | None = None,
    *,
    entry: str | None = None,
) -> Any:
    """A function (node, children, path, roles) -> errors, for the type at `places` in the schema:
    the errors of the first place the node satisfies (none), else of the place with fewest.
    With `entry`, the places are schemas of objects the node is the entry `entry` of: it is
    checked inside `{entry: node}`, and the errors inside the entry are its own (the object's
    others, a key it refuses or one it lacks, are the object's, reported where it is checked).
    The node is checked by jsonschema's validator for the schema's own draft."""
    dialect = dialect_of(document)
    if dialect is None:
        declared = document.get("$schema") if isinstance(document, dict) else None
        raise StepMisused(f"the schema file {schema_file} names an unknown $schema {declared!r}")
    # jsonschema checks a subschema that names its `$schema` with that draft's own validator,
    # which would drop the override of `required` below at the top of each file: the files
    # are read without `$schema` (their draft is known already).
    registry, base = _crawled(schema_file, document, dialect, root)
    references = [_reference(base, where) for where in places]
    for where, reference in zip(places, references, strict=True):
        try:
            registry.resolver().lookup(reference)
        except Unresolvable:
            raise StepMisused(
                f"nothing at {where or '/'} in the schema file {schema_file}"
            ) from None
    top: list[Any] = [None]
    hidden: list[frozenset[str]] = [frozenset()]
    own = dialect.validator.VALIDATORS

    # The walk strips children fields from its nodes: the node itself may miss them, so the
    # keywords that count or name its properties do not hold that against it.
    def required_but_children(
        validator: Any, names: Any, instance: Any, schema: Any
    ) -> Iterator[ValidationError]:
        if instance is top[0] and isinstance(names, list):
            names = [name for name in names if name not in hidden[0]]
        yield from own["required"](validator, names, instance, schema)

    def min_properties_but_children(
        validator: Any, least: Any, instance: Any, schema: Any
    ) -> Iterator[ValidationError]:
        if not (instance is top[0] and hidden[0]):
            yield from own["minProperties"](validator, least, instance, schema)

    def dependencies_but_children(keyword: str) -> Any:
        def check(
            validator: Any, dependencies: Any, instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            if instance is top[0] and isinstance(dependencies, dict):
                dependencies = {
                    name: [n for n in need if n not in hidden[0]]
                    if isinstance(need, list)
                    else need
                    for name, need in dependencies.items()
                }
            yield from own[keyword](validator, dependencies, instance, schema)

        return check

    overrides = {"required": required_but_children, "minProperties": min_properties_but_children}
    for keyword in ("dependencies", "dependentRequired"):
        if keyword in own:
            overrides[keyword] = dependencies_but_children(keyword)
    roles: list[Roles] = [Roles(elided=False)]

    # Of a container whose elements other units check, only its own keywords are checked.
    def own_only(keyword: str, check: Any) -> Any:
        def guarded(
            validator: Any, value: Any, instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            if not roles[0].skips(keyword, value, instance):
                yield from check(validator, value, instance, schema)

        return guarded

    guarded = {keyword: own_only(keyword, check) for keyword, check in {**own, **overrides}.items()}
    checker_class = validators.extend(dialect.validator, guarded)  # type: ignore[no-untyped-call]
    checkers = [checker_class({"$ref": reference}, registry=registry) for reference in references]
    skip = 0 if entry is None else 1

    def errors_of(checker: Any, node: Any) -> list[ValidationError]:
        try:
            return sorted(
                checker.iter_errors(node),
                key=lambda e: (pointer(list(e.absolute_path)), e.message),
            )
        except Unresolvable as exc:
            raise StepMisused(
                f"a $ref in {schema_file} does not resolve ({exc}); only references inside "
                "the schema file and files beside it are followed"
            ) from None
        except re.error as exc:
            raise StepMisused(
                f"{schema_file} holds a pattern Python's re cannot read ({exc}: "
                f"{exc.pattern!r}); ECMA-262 classes such as \\p{{L}} are not supported"
            ) from None
        except RecursionError:
            raise StepMisused(
                f"{schema_file} refers to itself without end: checking a value follows its "
                "$refs (through allOf, anyOf, oneOf...) back to where they started, never "
                "going down the value"
            ) from None

    def check(
        node: Any, children: frozenset[str], path: str, others: Roles
    ) -> Iterator[dict[str, str]]:
        top[0], hidden[0], roles[0] = node, children, others
        instance = node if entry is None else {entry: node}
        best: list[ValidationError] | None = None
        fewest = (0, 0)
        for checker in checkers:
            found = [deepest(error) for error in errors_of(checker, instance)]
            refused = 0
            if entry is not None:
                # Of several objects the entry may be in, the closest is one whose own
                # keywords take the entry's key (its other errors are the object's).
                inside = [error for error in found if list(error.absolute_path)[:1] == [entry]]
                refused, found = len(found) - len(inside), inside
            if best is None or (refused, len(found)) < fewest:
                best, fewest = found, (refused, len(found))
            if fewest == (0, 0):
                break
        said: set[tuple[str, str]] = set()
        for error in sorted(best or [], key=lambda e: (pointer(list(e.absolute_path)), e.message)):
            said_here = (path + pointer(list(error.absolute_path)[skip:]), message(error))
            # Two keywords may come to one fault (`type: object` and a `oneOf` whose deepest
            # error is that type): it is said once.
            if said_here not in said:
                said.add(said_here)
                yield {"pointer": said_here[0], "message": said_here[1]}

    return check


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
