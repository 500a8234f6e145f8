"""`meta step validate-node`: check one data node against its type in a JSON Schema, and write a
per-node report. The built-in step of the JSON Schema generators, for types without `x-meta.run`.

    meta step validate-node --schema FILE --pointer /$defs/Team [--children a,b] [--path P]
                            [--type NAME] [--each [--offset N]] [--data FILE --at P]
                            [--no-subtree]
    meta step validate-node --summary

The node is META_INPUT (or, with --data, the value at --at in that file). --children names the
fields a tree walk strips from its nodes: the node's type may require them, and that is not held
against it. With --each, the node is a list and every element is checked (--offset numbers the
first). It writes META_OUTPUT/report.json:

    {"unit", "type", "path", "valid", "errors": [{"pointer", "message"}],
     "subtree": {"nodes", "invalid"}}

`subtree` counts this node (or these elements) and, unless --no-subtree, adds the `subtree` of
every META_UPSTREAM/*/report.json (post-order tree walks: the children's reports). --summary
checks nothing and only adds up the upstream reports (a gather). Pointers in `errors` are JSON
pointers into the data: --path (or --at) followed by the place inside the node.

Exit 0 whether the node is valid or not (the report says); 2 when the step itself is misused
(no such schema file or pointer, no META_INPUT or META_OUTPUT).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from meta.errors import lookup, pointer, unescape

REPORT = "report.json"
POINTER_SAFE = "/~!$&'()*+,;=:@"
"""Characters a JSON pointer keeps as they are when it becomes a URI fragment."""


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
    except StepMisused as exc:
        print(f"validate-node: {exc}", file=sys.stderr)
        return 2
    count = len(report["errors"])
    state = "valid" if report["valid"] else f"invalid ({count} error{'s' if count != 1 else ''})"
    print(f"{report['type']} {report['path'] or '/'}: {state}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meta step validate-node",
        description="Check a data node against its type in a JSON Schema; write report.json.",
    )
    parser.add_argument("--schema", type=Path, help="the JSON Schema file")
    parser.add_argument("--pointer", default="", help="the node type's JSON pointer in it")
    parser.add_argument("--type", dest="type_name", help="the type's name in the report")
    parser.add_argument("--children", default="", help="comma-separated children fields")
    parser.add_argument("--path", default="", help="the node's JSON pointer in the data")
    parser.add_argument("--each", action="store_true", help="the node is a list: check each")
    parser.add_argument("--offset", type=int, default=0, help="the index of the first element")
    parser.add_argument("--data", type=Path, help="read the node from this JSON file")
    parser.add_argument("--at", default="", help="the node's JSON pointer in --data")
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
    document = _read(args.schema, "schema")
    check = _checker(args.schema, document, args.pointer)
    if args.data is not None:
        path = args.at
        node = _at(_read(args.data, "data"), args.at, args.data)
    else:
        path = args.path
        node = _read(Path(_environ("META_INPUT")), "META_INPUT")
    children = frozenset(name for name in args.children.split(",") if name)
    errors: list[dict[str, str]] = []
    nodes = invalid = 0
    if node is _ABSENT:
        pass  # an optional part of the data that is not there: nothing to check
    elif args.each:
        if not isinstance(node, list):
            raise StepMisused(f"--each needs a list, got {type(node).__name__}")
        for i, element in enumerate(node):
            found = list(check(element, children, f"{path}/{args.offset + i}"))
            errors.extend(found)
            nodes += 1
            invalid += bool(found)
    else:
        errors = list(check(node, children, path))
        nodes, invalid = 1, int(bool(errors))
    return {
        "unit": unit,
        "type": args.type_name or _type_name(args.pointer, document),
        "path": path,
        "valid": not errors,
        "errors": errors,
        "subtree": {"nodes": nodes + below["nodes"], "invalid": invalid + below["invalid"]},
    }


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
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise StepMisused(f"the {what} file {path} does not parse: {exc}") from None


_ABSENT = object()


def _at(document: Any, where: str, file: Path) -> Any:
    try:
        return lookup(document, where)
    except LookupError:
        return _ABSENT


def _refuse(uri: str) -> Resource[Any]:
    raise LookupError(f"{uri}: only references inside the schema file are resolved")


def _type_name(where: str, document: Any) -> str:
    if where:
        return unescape(where.rsplit("/", 1)[-1])
    title = document.get("title") if isinstance(document, dict) else None
    return title if isinstance(title, str) else "root"


def _checker(schema_file: Path, document: Any, where: str) -> Any:
    """A function (node, children, path) -> errors, for the type at `where` in the schema."""
    base = schema_file.resolve().as_uri()
    if isinstance(document, dict) and isinstance(document.get("$id"), str):
        base = urljoin(base, document["$id"])
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resource(  # type: ignore[call-arg]
        base, DRAFT202012.create_resource(document)
    )
    reference = f"{base.split('#')[0]}#{quote(where, safe=POINTER_SAFE)}"
    try:
        registry.resolver().lookup(reference)
    except Unresolvable:
        raise StepMisused(f"nothing at {where or '/'} in the schema file {schema_file}") from None
    top: list[Any] = [None]
    hidden: list[frozenset[str]] = [frozenset()]
    required = Draft202012Validator.VALIDATORS["required"]

    def required_but_children(
        validator: Any, names: Any, instance: Any, schema: Any
    ) -> Iterator[ValidationError]:
        # The walk strips children fields from its nodes: the node itself may miss them.
        if instance is top[0] and isinstance(names, list):
            names = [name for name in names if name not in hidden[0]]
        yield from required(validator, names, instance, schema)

    checker_class = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"required": required_but_children}
    )
    checker = checker_class({"$ref": reference}, registry=registry)

    def check(node: Any, children: frozenset[str], path: str) -> Iterator[dict[str, str]]:
        top[0], hidden[0] = node, children
        try:
            found = sorted(
                checker.iter_errors(node),
                key=lambda e: (pointer(list(e.absolute_path)), e.message),
            )
        except Unresolvable as exc:
            raise StepMisused(
                f"a $ref in {schema_file} does not resolve ({exc}); only references inside "
                "the schema file are followed"
            ) from None
        for error in found:
            yield {"pointer": path + pointer(list(error.absolute_path)), "message": error.message}

    return check


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
