"""YAML read as the JSON it stands for: flows, data files and schemas, within the limits of
meta.steps.yamlnodes (`load_checked`, the one reader of every YAML document: the flow layer's
and the validator step's).

Apart from meta.steps.validate_node, which uses it too, so that reading a flow does not import
jsonschema.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from meta.steps.yamlnodes import MERGE_TAG, node_fault

MAX_YAML_CHARACTERS = 16 << 20
"""The largest YAML document read (a flow, a description): YAML costs far more than its size."""
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"

CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
"""An integer as YAML 1.2's core schema writes it: decimal (`0755` is 755), `0o` octal, `0x`
hex; no `_`, no `0b`, no sexagesimal `22:22` (YAML 1.1's, which PyYAML follows)."""
CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
"""A float as YAML 1.2's core schema writes it: `1e300` too (YAML 1.1 wants `1.0e+300`)."""
CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
"""A boolean as YAML 1.2's core schema writes it: `yes`, `no`, `on` and `off` are strings (YAML
1.1 reads them as booleans, so a key `on:` of a CI workflow would be `true`)."""
INT_FIRST = list("-+0123456789")
FLOAT_FIRST = list("-+.0123456789")


def _without(
    table: dict[Any, list[tuple[str, Any]]], tags: tuple[str, ...]
) -> dict[Any, list[tuple[str, Any]]]:
    """A copy of a resolver table (lists too, so adding to it leaves `table` as it was) without
    the resolvers of `tags`."""
    return {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in tags]
        for first, resolvers in table.items()
    }


def _core_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if CORE_INT.match(text) is None:  # an explicit `!!int` of other text
        raise yaml.constructor.ConstructorError(
            None, None, "not an integer (YAML 1.2: decimal, 0o octal or 0x hex)", node.start_mark
        )
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)


def _core_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if CORE_FLOAT.match(text) is None:  # an explicit `!!float` of other text
        raise yaml.constructor.ConstructorError(
            None, None, "not a number (YAML 1.2: digits, a point, an exponent)", node.start_mark
        )
    if text.lstrip("+-").lower() in (".inf", ".nan"):
        return float(text.lower().replace(".", ""))  # Python's `inf` and `nan`
    return float(text)


class UniqueKeysLoader(yaml.SafeLoader):
    """Safe YAML in which a mapping naming one key twice is an error: YAML says keys are
    unique, and PyYAML would otherwise keep the last value without a word. Numbers and
    booleans are YAML 1.2's core schema's: `22:22` and `1_000` are strings, `0755` is 755,
    `1e300` a float, only true and false are booleans (`yes`, `on` are strings), in a flow as
    in its data."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, Any]]] = _without(
        yaml.SafeLoader.yaml_implicit_resolvers, (INT_TAG, FLOAT_TAG, BOOL_TAG)
    )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _one_merge(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # `<<: *base`: its keys are merged, and the mapping's own win
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping itself refuses it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def _one_merge(node: yaml.MappingNode) -> None:
    """A mapping merges once (`<<: [*a, *b]` merges several): a second `<<` is a key written
    twice, which would otherwise be dropped without a word."""
    merges = [key_node for key_node, _ in node.value if key_node.tag == MERGE_TAG]
    if len(merges) > 1:
        raise yaml.constructor.ConstructorError(
            None, None, "the key '<<' appears twice", merges[1].start_mark
        )


# The integer resolver first: `[-+]?[0-9]+` would be a float too.
UniqueKeysLoader.add_implicit_resolver(INT_TAG, CORE_INT, INT_FIRST)
UniqueKeysLoader.add_implicit_resolver(FLOAT_TAG, CORE_FLOAT, FLOAT_FIRST)
UniqueKeysLoader.add_implicit_resolver(BOOL_TAG, CORE_BOOL, list("tTfF"))
UniqueKeysLoader.add_constructor(INT_TAG, _core_int)
UniqueKeysLoader.add_constructor(FLOAT_TAG, _core_float)


class JsonYamlLoader(UniqueKeysLoader):
    """YAML read as the JSON it stands for (data, schemas): a key is the text written (`200:` of
    an OpenAPI document is the key "200"), and dates stay strings, as a JSON Schema expects
    them. A tool's own local tag (`!reference`) is read as the value it tags; tags that build
    Python objects stay refused."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, Any]]] = _without(
        UniqueKeysLoader.yaml_implicit_resolvers, ("tag:yaml.org,2002:timestamp",)
    )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Written twice is a fault among the mapping's own keys; a key merged in (`<<: *base`)
        # is one its own may override, as YAML's merge says.
        _one_merge(node)
        own = {id(key_node) for key_node, _ in node.value if key_node.tag != MERGE_TAG}
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        written: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            key = str(key_node.value)
            if id(key_node) in own:
                if key in written:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice", key_node.start_mark
                    )
                written.add(key)
            mapping[key] = self.construct_object(value_node, deep=True)
        return mapping


def _untagged(loader: JsonYamlLoader, suffix: str, node: yaml.Node) -> Any:
    # A tool's own tag (GitLab's `!reference [...]`) reads as the value written after it.
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return [loader.construct_object(item, deep=True) for item in node.value]
    return loader.construct_scalar(node)  # type: ignore[arg-type]


JsonYamlLoader.add_multi_constructor("!", _untagged)


def is_yaml(path: Path, text: str) -> bool:
    """Whether a data file is YAML: by its suffix, and for a suffix that says neither (a
    CITATION.cff), when it does not start as JSON does."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    if suffix in (".json", ".ipynb", ".jsonl", ".ndjson"):
        return False
    return not text.lstrip().startswith(("{", "["))


class YamlRefused(ValueError):
    """A YAML document that is not read: where (a JSON pointer; "" when the fault is in its
    text) and why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where or '/'}: {reason}")
        self.where = where
        self.reason = reason


_WITH_LIBYAML: dict[type[yaml.SafeLoader], type[yaml.SafeLoader]] = {}


def _parsed_by_libyaml(loader_class: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`loader_class` with libyaml's parser, where PyYAML was built with it: the same nodes,
    resolved and built by the same Python code, parsed 10-20 times sooner (a 190 KB document:
    0.32 s -> 0.02 s). A validator step reads its data file at every node."""
    if not yaml.__with_libyaml__:
        return loader_class
    made = _WITH_LIBYAML.get(loader_class)
    if made is None:
        from yaml._yaml import CParser

        def __init__(self: Any, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        made = type(loader_class.__name__, (CParser, loader_class), {"__init__": __init__})
        _WITH_LIBYAML[loader_class] = made
    return made


def load_checked(text: str, loader_class: type[yaml.SafeLoader], *, text_keys: bool) -> Any:
    """The value of a YAML document, read with `loader_class` once its node graph is within the
    limits of meta.steps.yamlnodes (before any value is built: an alias bomb costs one visit per
    distinct node); raises YamlRefused. `text_keys`: any plain key is read as its text."""
    if len(text) > MAX_YAML_CHARACTERS:
        raise YamlRefused("", f"a YAML document of more than {MAX_YAML_CHARACTERS:,} characters")
    try:
        # PyYAML's reader refuses the characters YAML does not allow (control characters, even
        # in a comment) at once, before any parsing, saying where.
        yaml.reader.Reader(text)
    except yaml.reader.ReaderError as exc:
        raise YamlRefused("", _unreadable(text, exc)) from None
    loader = _parsed_by_libyaml(loader_class)(text)
    try:
        node = loader.get_single_node()
        refused = node_fault(node, text_keys=text_keys) if node is not None else None
        if refused is not None:
            raise YamlRefused(refused.where, refused.reason)
        return loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise YamlRefused("", "nested too deeply to be read") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if problem == "exceeded maximum nesting depth":
            problem = "nested too deeply to be read (libyaml reads 1,000 levels)"
        raise YamlRefused("", f"invalid YAML: {where}{problem}") from None
    finally:
        loader.dispose()


def _unreadable(text: str, exc: yaml.reader.ReaderError) -> str:
    """Where a character YAML does not allow is, and which, without quoting it."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - text.rfind("\n", 0, exc.position)
    code = exc.character
    what = "control character" if unicodedata.category(chr(code)) == "Cc" else "character"
    return f"invalid YAML: line {line}, column {column}: {what} U+{code:04X} is not allowed"


def load_yaml_data(text: str) -> Any:
    """YAML text as JSON data (see JsonYamlLoader), checked as every document is; raises
    YamlRefused."""
    return load_checked(text, JsonYamlLoader, text_keys=True)
