"""The sandbox refuses, before making it, any value past its bound, however it would be made:
an operator, a filter, a string's method, a block's text or the text of a value."""

from __future__ import annotations

import pytest

from meta.flow.templates import TemplateProblem, evaluate, render

BIG = "('x' * 1000000)"

GROWING = [
    # Each makes a few million characters (or items) from a million: none is rendered, all
    # are refused before they are made.
    f"{{{{ {BIG} | replace('x', 'xx') | length }}}}",
    f"{{{{ {BIG}.replace('x', 'xx') | length }}}}",
    f"{{{{ range(3) | join({BIG}) | length }}}}",
    f"{{{{ range(3) | map('string') | join({BIG}) | length }}}}",
    f"{{{{ [{BIG}, {BIG}] | join | length }}}}",
    f"{{{{ [{{'a': {BIG}}}, {{'a': {BIG}}}] | join(attribute='a') | length }}}}",
    f"{{{{ {BIG}.join(['a', 'b', 'c']) | length }}}}",
    "{{ ('a\\n' * 500000) | indent(4) | length }}",
    "{{ ('a\\n' * 500000) | indent('    ') | length }}",
    "{{ ('a ' * 500000) | wordwrap(1, wrapstring='----') | length }}",
    f"{{{{ '%s%s' | format({BIG}, {BIG}) | length }}}}",
    f"{{{{ ('%s%s' % ({BIG}, {BIG})) | length }}}}",
    f"{{{{ '{{0}}{{0}}'.format({BIG}) | length }}}}",
    "{{ ('%999999s' * 3) | format(1, 2, 3) | length }}",
    "{{ ('\\t' * 1000000).expandtabs(8) | length }}",
    "{{ ('x' * 1000).translate({120: 'y' * 10000}) | length }}",
    "{{ [[0] * 1000000, [0] * 1000000] | sum(start=[]) | length }}",
    f"{{{{ ({BIG} ~ {BIG}) | length }}}}",
    f"{{% set s %}}{{% for i in range(3) %}}{{{{ {BIG} }}}}{{% endfor %}}{{% endset %}}"
    "{{ s | length }}",
    f"{{% macro m() %}}{{{{ {BIG} }}}}{{{{ {BIG} }}}}{{% endmacro %}}{{{{ m() | length }}}}",
    "{{ ([('x' * 1000)] * 10000) | string | length }}",
    "{{ ([('x' * 1000)] * 10000) | tojson | length }}",
    "{{ range(1000) | list | tojson(10000) | length }}",
    "{{ [[[[[[[[[[[1]]]]]]]]]]] | tojson(100000) | length }}",
    "{{ {}.fromkeys(range(2000), 'x' * 1000).values() | string | length }}",
    # Written whole: a view of a mapping (only written, it is not one expression).
    "x{{ {}.fromkeys(range(2000), 'x' * 1000).values() }}",
    "{{ ('{0:{1}}' * 3).format('x', 999999) | length }}",
    "{{ ('%*s' * 3) | format(999999, 'x', 999999, 'x', 999999, 'x') | length }}",
    # Each value is within the bound, but together they are not.
    "{{ range(20) | map('center', 1000000) | list | length }}",
]


@pytest.mark.parametrize("text", GROWING)
def test_the_sandbox_refuses_what_would_pass_its_bound(text: str) -> None:
    with pytest.raises(TemplateProblem, match=r"the sandbox refused: .* than "):
        render(text, {})


@pytest.mark.parametrize("text", [t for t in GROWING if t.startswith("{{ ") and "{%" not in t])
def test_so_does_a_when_expression(text: str) -> None:
    # An expression is compiled by another path of Jinja's (`compile_expression`).
    with pytest.raises(TemplateProblem, match="the sandbox refused"):
        evaluate(text.removeprefix("{{ ").removesuffix(" }}"), {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 'a-b-a' | replace('a', 'cc') }}", "cc-b-cc"),
        ("{{ 'a-b-a'.replace('a', 'cc', 1) }}", "cc-b-a"),
        ("{{ [1, 'x', none, true] | join(', ') }}", "1, x, null, true"),
        ("{{ [{'a': 1}, {'a': 2}] | join('/', attribute='a') }}", "1/2"),
        ("{{ '-'.join(['a', 'b']) }}", "a-b"),
        ("{{ 'a\\nb' | indent(2, first=true) }}", "  a\n  b"),
        ("{{ 'aa bb cc' | wordwrap(5, wrapstring='|') }}", "aa bb|cc"),
        ("{{ '%s=%03d' | format('n', 7) }}", "n=007"),
        ("{{ '%(a)s' % {'a': 1} }}", "1"),
        ("{{ '{}+{x}'.format(1, x=2) }}", "1+2"),
        ("{{ '{a}'.format_map({'a': 3}) }}", "3"),
        ("{{ 'a\\tb'.expandtabs(4) }}", "a   b"),
        ("{{ [[1], [2, 3]] | sum(start=[]) }}", "[1, 2, 3]"),
        ("{{ [(1,), (2,)] | sum(start=()) }}", "[1, 2]"),
        ("{{ [1, 2, 3] | sum }}", "6"),
        ("{{ 'a' ~ 1 ~ none ~ [2] }}", "a1null[2]"),
        ("{% set s %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ s }}", "012"),
        ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{{ m(2) }}", "<1><2>"),
        ("{{ {'b': [1]} | tojson }}", '{"b": [1]}'),
        ("{{ {'b': [1]} | tojson(1) }}", '{\n "b": [\n  1\n ]\n}'),
        ("{{ range(3) | map('string') | list }}", '["0", "1", "2"]'),
        ("{{ range(90000) }}", "range(0, 90000)"),
        ("{{ {'a': 1}.values() }}", "[1]"),
        ("{{ '{} {} {}'.format(400000, 1, 2) }}", "400000 1 2"),
        ("{{ '{0:>{1}}'.format('a', 3) }}", "  a"),
    ],
)
def test_what_stays_within_the_bound_renders(text: str, expected: str) -> None:
    assert render(text, {}) == expected
