"""What the JSON Schema generators share: the flow's frame, names, the data input, the steps of
a node type (its own `x-meta.run`, or the built-in validator), and the checks of `x-meta` that
depend on the generator at work.

Flows are built with meta.builder, whose parts write their keys in a fixed order, so the same
description gives the same YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import meta.builder as mb
from meta.builder.units import SectionOptions, UnitOptions
from meta.errors import Fault, UserError, unescape
from meta.flow.checks import FINALLY, MAX_NAME_LENGTH
from meta.flow.files import display_path
from meta.flow.templates import (
    FLOW_VARIABLES,
    ITERATION_VARIABLES,
    UNIT_VARIABLES,
    TemplateProblem,
    check_template,
    is_template,
    upstream_names,
)
from meta.hookspecs import Description

from .schema_model import DEF_POINTER, Schema, child, load

API_VERSION = "meta-orchestrator.io/v1alpha1"
DATA = "data"
"""The name of the generated flow's one input: the data the description describes."""
VALIDATE_NODE = ("meta", "step", "validate-node")
ITERATING = ITERATION_VARIABLES | FLOW_VARIABLES | UNIT_VARIABLES
TOP_LEVEL = FLOW_VARIABLES | UNIT_VARIABLES

KEYWORD_SEGMENTS = frozenset(
    {"allOf", "anyOf", "oneOf", "items", "prefixItems", "properties", "patternProperties"}
    | {"additionalProperties", "$defs", "definitions", "then", "else", "if", "not"}
)
"""Pointer segments that are keywords, not names."""
EXPLICIT = 100.0
"""The score of the generator that the root's `x-meta.pattern` names."""

# Which generated patterns each root x-meta key applies to (pattern, scope, maxActive and name
# apply to all; `run` is checked where it is used).
ROOT_KEYS: dict[str, frozenset[str]] = {
    "order": frozenset({"dfs", "bfs"}),
    "gather": frozenset({"fanout"}),
    "stream": frozenset({"cycle"}),
    "chunk": frozenset({"cycle"}),
    "rounds": frozenset({"cycle"}),
    "ring": frozenset({"cycle"}),
}


def score(
    description: Description,
    patterns: Collection[str],
    implicit: float,
    understands: Callable[[Schema], bool],
) -> float:
    """A generator's score: EXPLICIT when the root's `x-meta.pattern` names one of its
    `patterns`, 0 when it names another, else `implicit` if the schema is of its kind."""
    schema = load(description)
    if schema is None:
        return 0.0
    pattern = schema.root_meta.get("pattern")
    if pattern is not None:
        return EXPLICIT if pattern in patterns else 0.0
    return implicit if understands(schema) else 0.0


def schema_of(description: Description, wanted: str = "a draft 2020-12 JSON Schema") -> Schema:
    """The description as a loaded schema, or a fault saying it is not `wanted`."""
    schema = load(description)
    if schema is None:
        raise UserError(Fault(display_path(description.path), "", f"not {wanted}"))
    return schema


def flow_slug(text: str) -> str:
    """`text` as a flow name: lower-case letters, digits and '-', at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].rstrip("-")


def unit_slug(text: str, fallback: str = "unit") -> str:
    """`text` as a unit name: letters, digits, '_', '.', '-', starting with a letter or digit,
    at most MAX_NAME_LENGTH characters, and not the name finally units' ids reserve."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower())
    slug = re.sub(r"^[^a-z0-9]+|[-_.]+$", "", slug[:MAX_NAME_LENGTH])
    if slug == FINALLY:
        return f"{slug}-{fallback}"
    return slug or fallback


def unique_names(names: Iterable[str]) -> list[str]:
    """The names, with `-2`, `-3`... added to repeats so that no two are the same."""
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}-{n}"
        seen.add(candidate)
        result.append(candidate)
    return result


def type_name(schema: Schema, where: str) -> str:
    """A node type's name: its `$defs` key, the root's title (or 'root'), its own title, or its
    last segment (with the name it is a branch or the items of, for `anyOf/0` or `items`)."""
    found = DEF_POINTER.match(where)
    if found:
        return unescape(found.group(2))
    if where == "":
        return schema.title() or "root"
    title = schema.nodes.get(where, {}).get("title")
    if isinstance(title, str) and title:
        return title
    parts = [unescape(part) for part in where.split("#")[-1].split("/")[1:]]
    last = parts[-1] if parts else "root"
    if last.isdigit() or last in ("items", "additionalProperties"):
        named = [p for p in parts[:-1] if not p.isdigit() and p not in KEYWORD_SEGMENTS]
        return f"{named[-1] if named else type_name(schema, '')}-{last}"
    return last


def flow_name(schema: Schema) -> str:
    named = schema.root_meta.get("name")
    if isinstance(named, str):
        return named
    return flow_slug(schema.title()) or flow_slug(schema.stem()) or "flow"


def data_path(schema: Schema, description: Description, suffix: str = ".data.json") -> str:
    """The data input: the file given with the description, else `<stem><suffix>` beside it."""
    data = description.data
    if data is None:
        data = description.path.parent / f"{schema.stem()}{suffix}"
    return description.relative(data)


@dataclass(frozen=True)
class Run:
    """What a generated step runs: its argv, and the image and environment when given."""

    command: list[str]
    image: str | None = None
    env: dict[str, str] | None = None

    def step(self, name: str, **options: Unpack[UnitOptions]) -> mb.Step:
        return mb.step(name, self.command, image=self.image, env=self.env, **options)


def flow_document(
    schema: Schema,
    description: Description,
    generator: str,
    root: mb.Unit,
    *,
    data_suffix: str = ".data.json",
) -> dict[str, Any]:
    """The generated flow's document (checked by the pipeline, after any transforms)."""
    return mb.flow(
        flow_name(schema),
        root,
        annotations={
            "meta-orchestrator.io/generator": generator,
            "meta-orchestrator.io/description": description.relative(description.path),
        },
        inputs={DATA: mb.file_input(data_path(schema, description, data_suffix))},
    ).to_dict(validate=False)


def frame(schema: Schema, scope: mb.Scope = "macro") -> SectionOptions:
    """The generated section's scope and maxActive (the root's x-meta may set them)."""
    meta = schema.root_meta
    options = SectionOptions(scope=meta.get("scope", scope))
    if "maxActive" in meta:
        options["max_active"] = meta["maxActive"]
    return options


def validator_run(
    description: Description, where: str | Sequence[str], extra: Sequence[str] = ()
) -> Run:
    """The run of the built-in step that checks a node against the subschema keyed `where` (or
    against any of several): a JSON pointer, or `FILE#POINTER` into another file (relative to
    the schema's folder, under `--schema-root` when one was given)."""
    places = [where] if isinstance(where, str) else list(where)
    command = [*VALIDATE_NODE, option("schema", description.relative(description.path))]
    root = description.schema_root
    if root is not None and root != description.path.parent:
        command.append(option("schema-root", description.relative(root)))
    command.extend(option("pointer", place) for place in places)
    return Run([*command, *extra])


def summary_run(type_name: str, extra: Sequence[str] = ()) -> Run:
    """The run of the built-in step that checks nothing and adds up the reports it receives
    (`--summary`): a verdict on all of them, named `type_name` in its report."""
    return Run([*VALIDATE_NODE, "--summary", option("type", type_name), *extra])


def option(name: str, value: str, *, template: bool = False) -> str:
    """`--name=value` for the validator step's command: one argument, so a value starting with
    '-' (a file `-rf.schema.json`) is never read as an option; the value reaches the step as
    written (a name holding `{{` is not rendered) unless it is a `template` of our own."""
    return f"--{name}={value if template else verbatim(value)}"


def node_path(below: str = "") -> str:
    """The template of the current node's JSON pointer in the data (followed by the pointer
    `below`), for the validator's --path, --at and --fanned-out: rendered as a JSON string,
    which the step reads so, since a key may hold what no command line can (a NUL)."""
    where = f"(path ~ {literal(below)})" if below else "path"
    return "{{ " + where + " | tojson }}"


def verbatim(text: str) -> str:
    """`text` as a template that renders to `text` itself: as it is when it holds no template
    syntax, else as a Jinja string literal."""
    return "{{ " + literal(text) + " }}" if is_template(text) else text


def literal(value: str | int) -> str:
    """`value` as a Jinja literal. Its `{` is written `\\x7b`, so a value holding `{{`, `{%` or
    `{#` makes no expression it stands in (a case's `when`) a template."""
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("{", "\\x7b")
    return "'" + escaped + "'"


def user_run(
    schema: Schema, where: str, available: frozenset[str], feeds: Feeds = None
) -> Run | None:
    """A copy of the `x-meta.run` written at `where` (None when there is none), its templates
    checked against the variables `available` where it will run (and `upstream.NAME` against
    the units that `feeds` it, where those are known)."""
    run = schema.x_meta.get(where, {}).get("run")
    if not isinstance(run, dict):
        return None
    return copy_run(schema, child(where, "x-meta", "run"), run, available, feeds)


Feeds = Collection[str] | None
"""The names of the units whose outputs flow into a unit, when known before the run (a dag
entry's dependsOn); None when only the run knows them (a tree node's children)."""


def copy_run(
    schema: Schema,
    at: str,
    run: Mapping[str, Any],
    available: frozenset[str],
    feeds: Feeds = None,
) -> Run:
    """A fresh copy of a run (command, image, env), its templates checked."""
    faults: list[Fault] = []
    command = [str(arg) for arg in run["command"]]
    texts = [(child(at, "command", i), arg) for i, arg in enumerate(command)]
    if "image" in run:
        texts.append((child(at, "image"), run["image"]))
    texts.extend((child(at, "env", name), value) for name, value in run.get("env", {}).items())
    for place, text in texts:
        faults.extend(_template_faults(schema, place, text, available, feeds))
    if faults:
        raise UserError(faults)
    env = dict(run["env"]) if "env" in run else None
    return Run(command, run.get("image"), env)


def _template_faults(
    schema: Schema, at: str, text: str, available: frozenset[str], feeds: Feeds
) -> Iterable[Fault]:
    if not is_template(text):
        return []
    try:
        check_template(text, available)
    except TemplateProblem as problem:
        return [schema.fault(at, str(problem))]
    if feeds is None:
        return []
    # As the flow layer says it of a hand-written flow, but at the schema's own place.
    known = ", ".join(sorted(feeds)) or "none"
    return [
        schema.fault(
            at,
            f"upstream.{name}: '{name}' does not feed this unit "
            f"(the units that do, its x-meta.dependsOn: {known})",
        )
        for name in sorted(upstream_names(text) - set(feeds))
    ]


def check_root_keys(schema: Schema, pattern: str, generator: str) -> None:
    """Root x-meta keys that do not apply to the pattern being generated are faults."""
    faults = []
    for key, patterns in ROOT_KEYS.items():
        value = schema.root_meta.get(key)
        if value is None or pattern in patterns or (key == "stream" and value is False):
            continue
        faults.append(
            schema.fault(
                child("", "x-meta", key),
                f"x-meta.{key} applies to {'/'.join(sorted(patterns))} flows; generator "
                f"'{generator}' makes a {pattern}",
            )
        )
    if faults:
        raise UserError(faults)


def check_runs_used(
    schema: Schema, used: Iterable[tuple[str, str]], generator: str, what: str
) -> None:
    """Every `x-meta.run` (and `dependsOn`, `entries`) the generator did not use is a fault: it
    would be silently ignored otherwise. `used` holds (subschema pointer, key) pairs; `what`
    says where this generator reads them from."""
    taken = set(used)
    faults = []
    for where, meta in schema.x_meta.items():
        for key in ("run", "dependsOn", "entries"):
            if key in meta and (where, key) not in taken:
                faults.append(
                    schema.fault(
                        child(where, "x-meta", key),
                        f"x-meta.{key} here is not used by generator '{generator}' ({what})",
                    )
                )
    if faults:
        raise UserError(faults)
