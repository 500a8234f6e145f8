"""meta.flow.templates: checking before running, and the sandbox at render time."""

from __future__ import annotations

from typing import Any

import pytest

from meta.flow.templates import (
    ALL_VARIABLES,
    FLOW_VARIABLES,
    ITERATION_VARIABLES,
    UNIT_VARIABLES,
    TemplateProblem,
    check_template,
    evaluate,
    holds,
    is_template,
    render,
)

NODE = {"id": 7, "kind": "team", "name": "core", "_secret": 1, "tags": ["a", "b"]}
CONTEXT: dict[str, Any] = {
    "node": NODE,
    "item": NODE,
    "index": 3,
    "depth": 2,
    "path": "/kids/3",
    "inputs": {"tree": "/abs/tree.json", "n": 5},
    "flow": {"name": "f", "file": "/abs/f.yaml", "dir": "/abs"},
}


def test_variable_sets() -> None:
    assert {"inputs", "flow"} == FLOW_VARIABLES
    assert {"node", "item", "chunk", "index", "depth", "path", "round"} == ITERATION_VARIABLES
    assert {"upstream"} == UNIT_VARIABLES
    assert ALL_VARIABLES == FLOW_VARIABLES | ITERATION_VARIABLES | UNIT_VARIABLES


@pytest.mark.parametrize(
    ("text", "expected"),
    [("plain", False), ("{{ x }}", True), ("{% if x %}y{% endif %}", True), ("{# c #}", True)],
)
def test_is_template(text: str, expected: bool) -> None:
    assert is_template(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "{{ node.name }}-{{ index }}",
        "{{ inputs.tree }}",
        "{{ flow.dir }}/{{ path }}",
        "{% for t in node.tags %}{{ t }}{% endfor %}",
        "{% set n = node.id + 1 %}{{ n }}",
        "{{ node | tojson }}",
        "{% for i in range(depth) %}.{% endfor %}",
    ],
)
def test_check_accepts_ordinary_templates(text: str) -> None:
    check_template(text, ALL_VARIABLES)


def test_check_names_an_undefined_variable() -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template("{{ node.id }} {{ bogus }}", ALL_VARIABLES)
    assert "undefined template variable 'bogus'" in str(caught.value)


def test_check_names_an_iteration_variable_used_outside_an_iteration() -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template("{{ inputs.tree }} {{ node.id }}", FLOW_VARIABLES)
    assert str(caught.value) == (
        "template variable 'node' is not defined here (defined here: flow, inputs)"
    )


def test_check_reports_syntax_errors() -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template("{{ node.id ", ALL_VARIABLES)
    assert str(caught.value).startswith("template syntax error: ")


@pytest.mark.parametrize(
    ("text", "attribute"),
    [
        ("{{ node.__class__ }}", "__class__"),
        ("{{ ''.__class__.__mro__ }}", "__"),
        ("{{ node['__class__'] }}", "__class__"),
        ("{{ node._secret }}", "_secret"),
        ("{{ node|attr('__class__') }}", "__class__"),
        ("{% set x = node %}{{ x.__dict__ }}", "__dict__"),
        ("{{ range.__globals__ }}", "__globals__"),
    ],
)
def test_check_rejects_reaching_for_internals(text: str, attribute: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template(text, ALL_VARIABLES)
    assert f"internal attribute '{attribute}" in str(caught.value)
    assert "sandbox forbids" in str(caught.value)


def test_check_expressions() -> None:
    check_template("node.kind == 'team' and depth > 1", ALL_VARIABLES, expression=True)
    with pytest.raises(TemplateProblem, match="'depht'"):
        check_template("depht > 1", ALL_VARIABLES, expression=True)
    with pytest.raises(TemplateProblem, match="internal attribute '__class__'"):
        check_template("node.__class__", ALL_VARIABLES, expression=True)
    with pytest.raises(TemplateProblem, match="syntax error"):
        check_template("node.kind ==", ALL_VARIABLES, expression=True)


def test_render() -> None:
    assert render("plain {text", {}) == "plain {text"
    assert render("{{ node.name }}-{{ index }}", CONTEXT) == "core-3"
    assert render("{{ inputs.tree }} {{ inputs.n * 2 }}", CONTEXT) == "/abs/tree.json 10"
    assert render("{{ node.tags | join(',') }}", CONTEXT) == "a,b"


@pytest.mark.parametrize(
    "text",
    [
        "t-{{ node.id }}",
        "{{node.name}}-{{ index }}-{{ path }}\n",
        "{{- node.name -}} x",
        "{{ node.tags }} {{ inputs.n }} {{ flow.dir }}",
        "{{ data.values }} {{ data.get }}-{{ data.keys }}",  # keys named like dict's methods
        "{{ data.flag }} {{ data.none }} {{ data.real }}",
        "{{ data.nested.deep }}",
    ],
)
def test_lookups_render_as_jinja_renders_them(text: str) -> None:
    # Templates of text and `{{ name.key }}` lookups render without Jinja (they are most
    # steps' names and commands); the text must be Jinja's, whatever the values.
    from meta.flow.templates import _compiled

    data = {"flag": True, "none": None, "real": 2.5, "nested": {"deep": [1, {"a": "b"}]}}
    data |= {"values": 3, "get": 4, "keys": "k"}
    context = {**CONTEXT, "data": data}
    assert render(text, context) == "".join(_compiled(text).generate(context))


def test_a_key_of_the_data_wins_over_a_method_of_its_type() -> None:
    from meta.flow.templates import _compiled, _plain

    item = {"id": 1, "items": ["a", "b"], "values": 3, "get": 4, "keys": "k"}
    context = {**CONTEXT, "item": item, "inputs": {"items": [1, 2], "keys": "k"}}
    # Rendered without Jinja (lookups of plain values) and by Jinja, alike.
    plain = "{{ item.values }} {{ item.get }} {{ item.keys }} {{ inputs.keys }}"
    assert _plain(plain) is not None
    assert render(plain, context) == "3 4 k k"
    assert "".join(_compiled(plain).generate(context)) == "3 4 k k"
    assert render("{{ item.items }} {{ inputs.items }}", context) == '["a", "b"] [1, 2]'
    assert render("{{ item.items | length }}-{{ item.get + 1 }}", context) == "2-5"
    assert evaluate("item.items == ['a', 'b'] and item.values == 3", context) is True
    # Methods of a mapping without such a key, and of other values, are still there.
    assert render("{% for k, v in flow.items() %}{{ k }}{% endfor %}", context) == "namefiledir"
    assert render("{{ item.keys.upper() }}", context) == "K"


def test_a_method_written_as_a_value_is_a_fault() -> None:
    # Its text holds a memory address: a command would differ in every run.
    with pytest.raises(TemplateProblem, match="writes the function or method 'items'"):
        render("{{ node.items }}", CONTEXT)
    with pytest.raises(TemplateProblem, match="writes the function or method 'upper'"):
        render("x-{{ node.name.upper }}", CONTEXT)


def test_data_is_written_as_json_not_as_python_repr() -> None:
    # A command that gets an item, a result or a flag reads it back as JSON: what the data was
    # written in, whatever language the step is in; the keys stay in the data's order.
    context = {**CONTEXT, "item": {"b": [1, None, True], "a": "é"}, "none": None, "no": False}
    item = '{"b": [1, null, true], "a": "é"}'
    assert render("{{ item }}", context) == item
    assert render("x={{ item }}", context) == f"x={item}"
    assert render("{{ 'x=' ~ item }}", context) == f"x={item}"
    assert (
        render("{{ none }} {{ no }} {{ item.b }} {{ item.a }}", context)
        == "null false [1, null, true] é"
    )
    assert render("{{ [1.5, (2, 3)] }}", context) == "[1.5, [2, 3]]"


@pytest.mark.parametrize(
    "text",
    ["{{ node.tags | map('upper') }}", "x-{{ node.tags | select }}", "{{ node.tags | reverse }}"],
)
def test_an_iterator_written_as_a_value_is_a_fault(text: str) -> None:
    # Its text would hold a memory address; `| list` gives the values.
    with pytest.raises(TemplateProblem, match=r"an iterator .* add \| list"):
        render(text, CONTEXT)
    assert render(text.replace(" }}", " | list }}"), CONTEXT).endswith("]")


def test_a_condition_that_is_an_iterator_is_a_fault_not_always_true() -> None:
    with pytest.raises(TemplateProblem, match=r"an iterator .* add \| list"):
        holds("{{ node.tags | select('equalto', 'zz') }}", CONTEXT)
    assert holds("{{ node.tags | select('equalto', 'zz') | list }}", CONTEXT) is False


def test_join_and_string_make_data_text_as_a_written_value_is_made() -> None:
    context = {**CONTEXT, "item": {"a": [True], "b": None}}
    assert render("{{ [1, none, false, item] | join(' ') }}", context) == (
        '1 null false {"a": [true], "b": null}'
    )
    assert render("{{ item | string }}", context) == '{"a": [true], "b": null}'
    assert render("{{ [item, item] | join(',', attribute='b') }}", context) == "null,null"


def test_the_views_of_a_mapping_are_written_as_json_lists() -> None:
    context = {**CONTEXT, "item": {"a": [True], "b": None}}
    assert render("{{ item.keys() }} {{ item.values() }}", context) == '["a", "b"] [[true], null]'
    assert render("{{ item.items() }}", context) == '[["a", [true]], ["b", null]]'


def test_render_tojson_sorts_keys() -> None:
    assert render("{{ {'b': 1, 'a': 2} | tojson }}", {}) == '{"a": 2, "b": 1}'


def test_render_is_strict_about_undefined_names_and_fields() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render("{{ node.missing }}", CONTEXT)
    assert "undefined template variable" in str(caught.value)
    assert "'missing'" in str(caught.value)
    with pytest.raises(TemplateProblem, match="'nothing' is undefined"):
        render("{{ nothing }}", CONTEXT)
    with pytest.raises(TemplateProblem):
        render("{% if node.missing %}x{% endif %}", CONTEXT)
    with pytest.raises(TemplateProblem, match="'nothing' is undefined"):
        render("t-{{ nothing.id }}", CONTEXT)
    with pytest.raises(TemplateProblem, match="has no attribute 'id'"):
        render("t-{{ node.tags.id }}", CONTEXT)
    with pytest.raises(TemplateProblem, match="template failed: ValueError"):
        render("t-{{ node.id }}", {"node": {"id": 10**5000}})


@pytest.mark.parametrize(
    "text",
    [
        "{{ node.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ node|attr('__class__') }}",
        "{{ range.__globals__ }}",
        "{{ node.pop('id') }}",  # the sandbox is immutable: no mutating the data
        "{{ node.tags.append(1) }}",
    ],
)
def test_the_sandbox_refuses_at_render_time_too(text: str) -> None:
    node = {"id": 1, "tags": []}
    with pytest.raises(TemplateProblem) as caught:
        render(text, {"node": node})
    assert "sandbox refused" in str(caught.value)
    assert node == {"id": 1, "tags": []}


def test_render_wraps_other_failures() -> None:
    with pytest.raises(TemplateProblem, match="template failed: ZeroDivisionError"):
        render("{{ 1 // 0 }}", {})


def test_evaluate() -> None:
    assert evaluate("node.kind == 'team'", CONTEXT) is True
    assert evaluate("node.kind == 'person'", CONTEXT) is False
    assert evaluate("depth > 1 and path.startswith('/kids')", CONTEXT) is True
    assert evaluate("node.tags", CONTEXT) == ["a", "b"]
    assert evaluate("'name' in node", CONTEXT) is True


@pytest.mark.parametrize("expression", ["node.missing", "node.kind == nothing", "nothing"])
def test_evaluate_undefined_raises_a_template_problem(expression: str) -> None:
    with pytest.raises(TemplateProblem, match="undefined template variable"):
        evaluate(expression, CONTEXT)


@pytest.mark.parametrize(
    "expression", ["node.__class__", "node|attr('__class__')", "''.__class__.__mro__"]
)
def test_evaluate_refuses_internals(expression: str) -> None:
    with pytest.raises(TemplateProblem, match="sandbox refused"):
        evaluate(expression, CONTEXT)


def test_evaluate_wraps_other_failures() -> None:
    with pytest.raises(TemplateProblem, match="expression failed: ZeroDivisionError"):
        evaluate("index // 0", CONTEXT)


@pytest.mark.parametrize("helper", ["lipsum", "cycler", "joiner", "namespace"])
def test_jinjas_page_helpers_are_not_there_to_print_python_objects(helper: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template("{{ " + helper + " }}", ALL_VARIABLES)
    assert f"undefined template variable '{helper}'" in str(caught.value)
