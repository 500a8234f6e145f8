"""Where subschemas sit in a JSON Schema, in every draft from 04 to 2020-12."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Keywords whose values are subschemas, by shape. `items` is one schema or (drafts 04 to
# 2019-09) a list of them; `dependencies` (drafts 04 to 07) maps names to a schema or to a list
# of property names, and only the schemas are subschemas.
ONE_SCHEMA = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
LIST_OF_SCHEMAS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
MAP_OF_SCHEMAS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "dependencies", "patternProperties", "properties"}
)
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
"""Keywords that name another schema; the static target stands for the dynamic one."""
DEF_POINTER = re.compile(r"^/(\$defs|definitions)/([^/]+)$")
"""The pointer of a top-level `$defs` (or `definitions`) entry."""


def subschemas(node: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """(path below `node`, subschema) of the subschemas directly inside `node`, in order."""
    for key, value in node.items():
        if key in ONE_SCHEMA and isinstance(value, dict):
            yield (key,), value
        elif key in LIST_OF_SCHEMAS and isinstance(value, list):
            for i, sub in enumerate(value):
                if isinstance(sub, dict):
                    yield (key, i), sub
        elif key in MAP_OF_SCHEMAS and isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, dict):
                    yield (key, name), sub
