"""Limits and JSON-only values for YAML documents, checked on the composed nodes before any value
is built.

YAML can say much more than JSON, and a few bytes of it can say a great deal: aliases expand
(a "billion laughs" of 610 bytes is a tree of a billion nodes), anchors can refer to themselves,
and values can be dates, bytes, sets, `.nan` or integers of any length, none of which a step's
`META_INPUT` (JSON) can carry. Every document is checked here on its node graph, where an alias
is one shared node: counting what it expands to costs one visit per distinct node. A fault
names the JSON pointer of the first value at fault, and quotes nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from meta.errors import pointer

MAX_NODES = 1_000_000
"""The most values a document may hold with every alias expanded."""
MAX_DEPTH = 256
"""The deepest a document may nest (mappings and sequences)."""
MAX_INT_DIGITS = 19
"""Integers longer than this are out of any 64-bit range."""

_TAG = "tag:yaml.org,2002:"
_NOT_JSON = {
    _TAG + "timestamp": "a date or time is not a JSON value (quote it to make it a string)",
    _TAG + "binary": "binary data (!!binary) is not a JSON value",
    _TAG + "set": "a set (!!set) is not a JSON value",
    _TAG + "omap": "an ordered map (!!omap) is not a JSON value",
    _TAG + "pairs": "a list of pairs (!!pairs) is not a JSON value",
}
_NON_FINITE = frozenset({".nan", ".inf", "+.inf", "-.inf"})
MERGE_TAG = _TAG + "merge"
"""The tag of a merge key, `<<`."""
_KEY_TAGS = frozenset({_TAG + "str", MERGE_TAG})


@dataclass(frozen=True)
class NodeFault:
    """Where in the document (a JSON pointer) and what is wrong."""

    where: str
    reason: str


def node_fault(root: yaml.Node, *, text_keys: bool = False) -> NodeFault | None:
    """The first value of a composed document that is over a limit or is not JSON, if any.
    With `text_keys` a key may be any plain value: its loader reads every key as the text
    written (`200:` of an OpenAPI document is the key "200")."""
    sizes: dict[int, int] = {}
    # An explicit stack: a document nested past the interpreter's recursion limit is a fault,
    # not a crash. Each entry: node, its path, whether its children were visited.
    stack: list[tuple[yaml.Node, tuple[str | int, ...], bool]] = [(root, (), False)]
    open_nodes: set[int] = set()
    while stack:
        node, path, visited = stack.pop()
        if visited:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[id(node)] > MAX_NODES:
                return NodeFault(
                    pointer(path),
                    f"the document expands to more than {MAX_NODES:,} values "
                    "(aliases count as often as they are used)",
                )
            continue
        if id(node) in sizes:
            continue  # an alias of a node already counted
        if id(node) in open_nodes:
            return NodeFault(pointer(path), "an anchor refers to itself (an endless value)")
        if len(path) > MAX_DEPTH:
            return NodeFault(pointer(path), f"nested more than {MAX_DEPTH} levels deep")
        problem = _scalar_problem(node)
        if problem is not None:
            return NodeFault(pointer(path), problem)
        open_nodes.add(id(node))
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.tag not in _KEY_TAGS and not (
                    text_keys and isinstance(key, yaml.ScalarNode)
                ):
                    return NodeFault(pointer(path), "a key that is not a string is not JSON")
                name = key.value if isinstance(key, yaml.ScalarNode) else "<<"
                stack.append((value, (*path, name), False))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index), False))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _scalar_problem(node: yaml.Node) -> str | None:
    if node.tag in _NOT_JSON:
        return _NOT_JSON[node.tag]
    if not isinstance(node, yaml.ScalarNode):
        return None
    text = str(node.value).lower().replace("_", "")
    if node.tag == _TAG + "float" and text in _NON_FINITE:
        return "not a finite number (.nan and .inf are not JSON)"
    if node.tag == _TAG + "float" and _overflows(text):
        return "a number out of range"
    if node.tag == _TAG + "int" and len(text.lstrip("+-")) > MAX_INT_DIGITS:
        return f"an integer of more than {MAX_INT_DIGITS} digits"
    return None


def _overflows(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False  # an explicit `!!float` of other text: the loader refuses it
    return value in (float("inf"), float("-inf"))
