"""The collection generator: a top-level array becomes a `fanout` over the data's elements, one
visit per element (the element type's `x-meta.run`, else the built-in validator), and, when the
root's `x-meta.gather` asks, one gathering unit after them all.
"""

from __future__ import annotations

from typing import Any

import meta.builder as mb
from meta.hookspecs import Description

from . import flows, seen
from .schema_model import DEF_POINTER, Schema, child, is_array_type

PATTERN = "fanout"
SCORE = 10.0


class CollectionGenerator:
    """A top-level array -> fanout (+ gather)."""

    name = "collection"

    def score(self, description: Description) -> float:
        return flows.score(description, (PATTERN,), SCORE, lambda schema: _decline(schema) is None)

    def explain(self, description: Description) -> tuple[list[str], str]:
        return seen.explain(
            description, (PATTERN,), _decline, lambda _: "a fanout over the items of the array"
        )

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description)
        flows.check_root_keys(schema, PATTERN, self.name)
        root = schema.deref("")
        if root is None or not is_array_type(schema.at(root)):
            raise schema.error("", "a collection needs an array at the root (type: array)")
        items = child(root, "items")
        if items not in schema.nodes:
            raise schema.error(root, "a collection needs items: the schema of each element")
        element = schema.deref(items) or items
        used: set[tuple[str, str]] = set()
        run = None
        for where in dict.fromkeys((items, element)):
            run = flows.user_run(schema, where, flows.ITERATING)
            if run is not None:
                used.add((where, "run"))
                break
        is_def = DEF_POINTER.match(element) is not None
        name = flows.unit_slug(flows.type_name(schema, element), "item") if is_def else "item"
        validating = run is None
        if run is None:
            extra = [flows.option("path", flows.node_path(), template=True), "--no-subtree"]
            if not is_def:
                extra.insert(0, flows.option("type", "item"))
            run = flows.validator_run(description, element, extra)
        flows.check_runs_used(schema, used, self.name, "it runs the elements' type")
        gather: mb.Step | None = None
        asked = schema.root_meta.get("gather")
        if asked is True or (asked is None and validating):
            # The array's own keywords (its type, length, uniqueness) are checked once, here: a
            # flow checking the elements gets it unasked, or it would call valid an array too
            # short, or an object where the array should be (`gather: false` declines it).
            whole = [
                flows.option("data", "{{ inputs.data }}", template=True),
                flows.option("at", ""),
                flows.option("fanned-out", ""),
            ]
            gather = flows.validator_run(description, "", whole).step("summary")
        elif isinstance(asked, dict):
            at = child("", "x-meta", "gather", "run")
            gather = flows.copy_run(schema, at, asked["run"], flows.TOP_LEVEL).step("gather")
        section = mb.fanout(
            "each", over=flows.DATA, visit=run.step(name), gather=gather, **flows.frame(schema)
        )
        return flows.flow_document(schema, description, self.name, section)


def _decline(schema: Schema) -> str | None:
    root = schema.deref("")
    if root is not None and is_array_type(schema.at(root)):
        return None
    return "the root is not an array (type: array)"
