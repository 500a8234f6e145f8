"""The stream generator: a root with `x-meta.stream: true` describes a JSON-lines stream of
records; it becomes a `cycle` whose chunks of records go round a ring of units.

The record type is the root schema itself, or its `items` when the root is an array. The ring is
`x-meta.ring` (a member without `run` is the built-in validator, checking every record of its
chunk), by default one unit: the record type's `x-meta.run`, else the validator.
"""

from __future__ import annotations

from typing import Any

import meta.builder as mb
from meta.errors import Fault, UserError
from meta.hookspecs import Description

from . import flows, seen
from .schema_model import DEF_POINTER, Schema, child, is_array_type

PATTERN = "cycle"
SCORE = 40.0
CHUNK = 100


class StreamGenerator:
    """`x-meta.stream: true` -> a cycle over chunks of a JSON-lines file."""

    name = "stream"

    def score(self, description: Description) -> float:
        return flows.score(description, (PATTERN,), SCORE, lambda schema: _decline(schema) is None)

    def explain(self, description: Description) -> tuple[list[str], str]:
        return seen.explain(
            description, (PATTERN,), _decline, lambda _: "a cycle over chunks of JSON lines"
        )

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description)
        flows.check_root_keys(schema, PATTERN, self.name)
        meta = schema.root_meta
        chunk = meta.get("chunk", CHUNK)
        places = _record_places(schema)
        record = places[-1]
        offset = flows.option("offset", f"{{{{ index * {chunk} }}}}", template=True)
        validator_extra = ["--each", offset, "--no-subtree"]
        used: set[tuple[str, str]] = set()
        ring: list[mb.Step] = []
        if "ring" in meta:
            faults: list[Fault] = []
            seen: set[str] = set()
            for i, member in enumerate(meta["ring"]):
                at = child("", "x-meta", "ring", i)
                if member["name"] in seen:
                    faults.append(
                        schema.fault(
                            child(at, "name"), f"ring member name '{member['name']}' is repeated"
                        )
                    )
                seen.add(member["name"])
                if "run" in member:
                    run = flows.copy_run(schema, child(at, "run"), member["run"], flows.ITERATING)
                else:
                    run = flows.validator_run(description, record, validator_extra)
                ring.append(run.step(member["name"]))
            if faults:
                raise UserError(faults)
        else:
            run = None
            for where in places:
                run = flows.user_run(schema, where, flows.ITERATING)
                if run is not None:
                    used.add((where, "run"))
                    break
            if run is None:
                ring.append(
                    flows.validator_run(description, record, validator_extra).step("validate")
                )
            else:
                ring.append(run.step(_record_name(schema, record)))
        flows.check_runs_used(
            schema, used, self.name, "it runs x-meta.ring, else the record type's run"
        )
        if meta.get("maxActive", 1) > len(ring):
            raise schema.error(
                child("", "x-meta", "maxActive"),
                f"a cycle runs at most one unit per ring member: maxActive must be <= {len(ring)}",
            )
        section: mb.Section = mb.cycle(
            "stream",
            *ring,
            over=flows.DATA,
            chunk=chunk,
            rounds=meta.get("rounds"),
            **flows.frame(schema, scope="micro"),
        )
        if "ring" not in meta and not used:
            # Only the validator's reports, one per chunk: one verdict on every record.
            verdict = flows.summary_run("stream").step("verdict")
            section = mb.sequence("check", section, verdict)
        return flows.flow_document(
            schema, description, self.name, section, data_suffix=".data.jsonl"
        )


def _decline(schema: Schema) -> str | None:
    if schema.root_meta.get("stream") is True:
        return None
    return "the root has no x-meta.stream: true"


def _record_places(schema: Schema) -> list[str]:
    """Where the record type is written, outermost first: the root (or what its $ref names),
    or, for an array root, its items (and what they name). The last is the record's schema."""
    root = schema.deref("")
    if root is None:
        return [""]
    places = list(dict.fromkeys(("", root)))
    items = child(root, "items")
    if is_array_type(schema.at(root)) and items in schema.nodes:
        places = [items]
        element = schema.deref(items)
        if element is not None and element != items:
            places.append(element)
    return places


def _record_name(schema: Schema, record: str) -> str:
    if record == "" or DEF_POINTER.match(record):
        return flows.unit_slug(flows.type_name(schema, record), "record")
    return "record"
