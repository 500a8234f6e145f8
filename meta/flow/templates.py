"""Sandboxed Jinja2 templates and `when` expressions: compiled once, checked before anything runs.

Every string field of a step, a visit, a gather or a ring member may be a template. Rendering
happens in an immutable sandbox with strict undefined, so a template can neither reach Python
internals nor silently render a missing variable as an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from meta.errors import MetaError

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# Jinja2 (and meta.flow.sandbox, built on it) is imported by the functions that compile or
# render: a flow without templates never needs it, and it takes tens of milliseconds to import.

ITERATION_VARIABLES = frozenset({"node", "item", "chunk", "index", "depth", "path", "round"})
FLOW_VARIABLES = frozenset({"inputs", "flow"})
UNIT_VARIABLES = frozenset({"upstream"})
"""Defined for every unit: `upstream.NAME.state` and `.result` of the units that feed it."""
ALL_VARIABLES = ITERATION_VARIABLES | FLOW_VARIABLES | UNIT_VARIABLES
FALSE_WORDS = frozenset({"", "false", "no", "0", "none", "null"})
"""Texts a condition takes as false (case and surrounding blanks aside); any other text is true."""
_ONE_EXPRESSION = re.compile(r"\s*\{\{-?(.*?)-?\}\}\s*", re.DOTALL)


class TemplateProblem(MetaError):
    """A template that cannot be compiled or rendered; callers locate it and raise a user error
    (`TemplateFault`, `FlowInvalid`) naming the file and the JSON pointer."""


@cache
def environment() -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined

    from meta.flow.sandbox import BoundedSandbox

    env = BoundedSandbox(undefined=StrictUndefined, autoescape=False)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    # Jinja's helpers for pages (lorem ipsum, cycler, joiner, namespace) render as Python
    # objects in a command; `range` and `dict` stay.
    for helper in ("lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(helper, None)
    return env


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def check_template(text: str, available: Iterable[str], *, expression: bool = False) -> None:
    """Fail on syntax errors, on variables not available here, and on reaching for internals."""
    from jinja2 import TemplateSyntaxError, nodes

    source = "{{ (" + text + ") }}" if expression else text
    try:
        tree = environment().parse(source)
        # Compiled here too (and kept): Jinja folds constants while compiling, and the bounds
        # must hold for that as for any render.
        _compiled_expression(text) if expression else _compiled(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}") from exc
    known = frozenset(available)
    free = _free_variables(tree)
    for name in sorted(free):
        if name in ALL_VARIABLES and name not in known:
            raise TemplateProblem(
                f"template variable '{name}' is not defined here "
                f"(defined here: {', '.join(sorted(known))})"
            )
        if name not in known:
            raise TemplateProblem(
                f"undefined template variable '{name}' (defined here: {', '.join(sorted(known))})"
            )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Filter):
            attribute = _constant(node.args[0]) if node.name == "attr" and node.args else None
        else:
            attribute = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)  # type: ignore[attr-defined]
        if isinstance(attribute, str) and attribute.startswith("_"):
            raise TemplateProblem(
                f"template reaches for the internal attribute '{attribute}', "
                "which the sandbox forbids"
            )
    if not free:
        # A template of constants renders the same at run time: its faults are found now.
        evaluate(text, {}) if expression else render(text, {})


def _free_variables(tree: nodes.Template) -> set[str]:
    from jinja2 import meta as jinja_meta

    return set(jinja_meta.find_undeclared_variables(tree))


def _constant(node: nodes.Node) -> Any:
    from jinja2 import nodes

    return node.value if isinstance(node, nodes.Const) else None


@cache
def _compiled(source: str) -> Any:
    return environment().from_string(source)


@cache
def _compiled_expression(source: str) -> Any:
    return environment().compile_expression(source, undefined_to_none=False)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render one template string; a constant string is returned as it is."""
    if not is_template(source):
        return source
    from jinja2.exceptions import SecurityError, UndefinedError

    from meta.flow.budget import MAX_RENDERED, TemplateTooCostly, bounded_text, start_render

    plain = _plain(source)
    if plain is not None:
        text = _render_plain(plain, context)
        if text is not None and len(text) <= MAX_RENDERED:
            return text

    start_render()
    try:
        template = _compiled(source)
        return bounded_text(template.root_render_func(template.new_context(dict(context))))
    except TemplateTooCostly as exc:
        raise TemplateProblem(f"the sandbox refused: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateProblem(f"undefined template variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateProblem(f"the sandbox refused: {exc}") from exc
    except Exception as exc:
        raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}") from exc


Plain = tuple[str | tuple[str, ...], ...]
"""A template of text and `{{ name.key.key }}` parts only: each text as it is, each lookup as
the variable's name and its keys."""
_PLAIN_VALUES = (str, int, float)
"""Values that render as `str()` renders them (Jinja outputs `str(value)` without autoescape)."""
_MAX_PLAIN_PARTS = 64


@cache
def _plain(source: str) -> Plain | None:
    """`source` as a Plain template, or None when it holds anything else (filters, calls,
    items, blocks...)."""
    from jinja2 import TemplateSyntaxError, nodes

    try:
        tree = environment().parse(source)
    except TemplateSyntaxError:
        return None
    parts: list[str | tuple[str, ...]] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
                continue
            keys: list[str] = []
            while isinstance(node, nodes.Getattr):
                keys.append(node.attr)
                node = node.node
            if not isinstance(node, nodes.Name) or not keys:
                return None
            if any(key.startswith("_") for key in keys):
                return None  # the sandbox refuses it
            parts.append((node.name, *reversed(keys)))
    return tuple(parts) if len(parts) <= _MAX_PLAIN_PARTS else None


def _render_plain(plain: Plain, context: Mapping[str, Any]) -> str | None:
    """What Jinja renders for a Plain template, without Jinja: the lookups of `name.key` in
    plain dicts of the data (the render of most steps' names and commands); None when the
    template needs Jinja here (a missing key, a value of another type: Jinja renders it, or
    says what is wrong)."""
    texts = []
    for part in plain:
        if isinstance(part, str):
            texts.append(part)
            continue
        value = context.get(part[0])
        for key in part[1:]:
            if type(value) is not dict or key not in value:
                return None
            value = value[key]
        if type(value) not in _PLAIN_VALUES:
            return None
        try:
            texts.append(str(value))
        except ValueError:
            return None  # an int too long to print: Jinja says so
    return "".join(texts)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a `when` expression in the sandbox."""
    from jinja2 import Undefined
    from jinja2.exceptions import SecurityError, UndefinedError

    from meta.flow.budget import TemplateTooCostly, start_render

    start_render()
    try:
        value = _compiled_expression(expression)(**context)
        if isinstance(value, Undefined):
            str(value)  # a bare missing (or forbidden) attribute: make it raise here, not later
        return value
    except TemplateTooCostly as exc:
        raise TemplateProblem(f"the sandbox refused: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateProblem(f"undefined template variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateProblem(f"the sandbox refused: {exc}") from exc
    except Exception as exc:
        raise TemplateProblem(f"expression failed: {type(exc).__name__}: {exc}") from exc


def upstream_names(text: str, *, condition: bool = False) -> set[str]:
    """The unit names a template (or a condition) reads as `upstream.NAME` or
    `upstream['NAME']`; an unreadable template reads none (its syntax is faulted elsewhere)."""
    from jinja2 import TemplateSyntaxError, nodes

    expression = condition and not is_template(text)
    source = "{{ (" + text + ") }}" if expression else text
    try:
        tree = environment().parse(source)
    except TemplateSyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node  # type: ignore[attr-defined]
        if not (isinstance(target, nodes.Name) and target.name == "upstream"):
            continue
        if isinstance(node, nodes.Getattr):
            # `upstream.items` is the mapping's method, as templates resolve it, never a unit.
            name = None if node.attr in _MAPPING_ATTRIBUTES else node.attr
        else:
            name = _constant(node.arg)  # type: ignore[attr-defined]
        if isinstance(name, str):
            names.add(name)
    return names


_MAPPING_ATTRIBUTES = frozenset(dir(dict))


def check_condition(text: str, available: Iterable[str]) -> None:
    """Check a condition (`when`) as `holds` reads it: a template, or an expression."""
    if is_template(text):
        check_template(text, available)
    else:
        check_template(text, available, expression=True)


def holds(condition: str, context: Mapping[str, Any]) -> bool:
    """Whether a condition is true. A condition is one `{{ expression }}` (its value), any
    other template (its rendered text) or, without `{{ }}`, an expression. A value is taken by
    Python truth, but a text by its words: `false`, `no`, `0`, `none`, `null` and the empty
    text are false, in any case, so a result or a rendering that says "false" is false."""
    expression = _single_expression(condition)
    if expression is not None:
        value = evaluate(expression, context)
    elif is_template(condition):
        value = render(condition, context)
    else:
        value = evaluate(condition, context)
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    if isinstance(value, Iterator):
        from meta.flow.sandbox import ITERATOR_WRITTEN

        # It would always be true, whatever it would give.
        raise TemplateProblem(f"the condition is {ITERATOR_WRITTEN}")
    return bool(value)


@cache
def _single_expression(text: str) -> str | None:
    """The expression of a template that is exactly one `{{ ... }}`, or None."""
    match = _ONE_EXPRESSION.fullmatch(text)
    if match is None:
        return None
    from jinja2 import TemplateSyntaxError, nodes

    try:
        tree = environment().parse(text.strip())
    except TemplateSyntaxError:
        return None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    if isinstance(body[0].nodes[0], nodes.TemplateData):
        return None
    return match.group(1)
