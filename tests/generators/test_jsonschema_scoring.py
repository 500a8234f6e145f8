"""Which generator a JSON Schema goes to: an explicit x-meta.pattern decides; otherwise
stream > dag > tree > collection; what none understands scores 0 everywhere; ties are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meta.errors import UserError
from meta.generate.pipeline import choose, read_description
from meta.generate.plugins import load_plugins
from meta.hookspecs import Description, GeneratorRegistry, hookimpl
from tests.generators.helpers import SAMPLES, Schemas, run_meta, schema

TREE = schema(
    type="object",
    required=["name"],
    properties={"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
)
ARRAY = schema(type="array", items={"type": "object"})
DAG = schema(
    type="object",
    **{
        "$defs": {
            "load": {"x-meta": {"run": {"command": ["load"]}}},
            "report": {"x-meta": {"dependsOn": ["load"], "run": {"command": ["report"]}}},
        }
    },
)
STREAM = schema(type="object", **{"x-meta": {"stream": True}})


def with_meta(document: dict[str, Any], **x_meta: Any) -> dict[str, Any]:
    return {**document, "x-meta": {**document.get("x-meta", {}), **x_meta}}


def winner(scores: dict[str, float]) -> str:
    best = max(scores.values())
    top = [name for name, score in scores.items() if score == best]
    assert len(top) == 1, f"a tie: {scores}"
    assert best > 0
    return top[0]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (TREE, "tree"),
        (DAG, "dag"),
        (ARRAY, "collection"),
        (STREAM, "stream"),
        # Several generators understand these; the order decides.
        (with_meta(TREE, stream=True), "stream"),
        (with_meta(ARRAY, stream=True), "stream"),
        ({**TREE, "$defs": DAG["$defs"]}, "dag"),
        (schema(type="array", items={"$ref": "#/$defs/load"}, **{"$defs": DAG["$defs"]}), "dag"),
    ],
)
def test_ordinary_schemas_go_to_one_generator_without_a_tie(
    schemas: Schemas, document: dict[str, Any], expected: str
) -> None:
    assert winner(schemas.scores(document)) == expected


@pytest.mark.parametrize(
    ("document", "pattern", "expected"),
    [
        (with_meta(TREE, stream=True), "dfs", "tree"),
        (TREE, "bfs", "tree"),
        (with_meta(STREAM), "fanout", "collection"),
        (TREE, "dag", "dag"),
        (ARRAY, "cycle", "stream"),
    ],
)
def test_an_explicit_pattern_picks_its_generator_decisively(
    schemas: Schemas, document: dict[str, Any], pattern: str, expected: str
) -> None:
    scores = schemas.scores(with_meta(document, pattern=pattern))
    assert scores[expected] == 100.0
    assert [name for name, score in scores.items() if score > 0] == [expected]


@pytest.mark.parametrize("document", [schema(type="string"), schema(type=["integer", "null"])])
def test_a_schema_none_understands_scores_0_everywhere(
    schemas: Schemas, document: dict[str, Any]
) -> None:
    assert set(schemas.scores(document).values()) == {0.0}


@pytest.mark.parametrize(
    "document",
    [
        schema(type="object", properties={"a": {"type": "integer"}}),
        schema(type="object", properties={"a": {"type": "array", "items": {"type": "object"}}}),
        schema(type="object", **{"$defs": {"x": {"type": "object"}}}),
    ],
)
def test_an_object_with_nothing_to_walk_is_left_to_the_document_generator(
    schemas: Schemas, document: dict[str, Any]
) -> None:
    scores = schemas.scores(document)
    assert {name: score for name, score in scores.items() if score > 0} == {"document": 5.0}


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.schema.json")), ids=lambda p: p.name)
def test_no_sample_ties(sample: Path) -> None:
    plugins = load_plugins(autoload=False)
    description = read_description(sample)
    scores = {r.generator.name: r.generator.score(description) for r in plugins.catalogue}
    winner(scores)


def test_no_generator_matches_exits_2(tmp_path: Path) -> None:
    (tmp_path / "word.schema.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"}'
    )
    result = run_meta("generate", "word.schema.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "word.schema.json: /: no generator understands this description (generators: "
    )
    assert "tree" in result.stderr and "collection" in result.stderr


def test_naming_a_generator_that_does_not_understand_exits_2(tmp_path: Path) -> None:
    (tmp_path / "org.schema.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",'
        ' "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}'
    )
    result = run_meta("generate", "org.schema.json", "--generator", "stream", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "org.schema.json: /: generator 'stream' does not understand this description: "
        "the root has no x-meta.stream: true\n"
    )
    chosen = run_meta("generate", "org.schema.json", "--generator", "tree", cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "pattern: dfs" in chosen.stdout


class Same:
    """A generator that claims every description with the same score as its twin."""

    def __init__(self, name: str) -> None:
        self.name = name

    def score(self, description: Description) -> float:
        return 1000.0

    def generate(self, description: Description) -> dict[str, Any]:
        raise AssertionError("a tie must not generate")


class TwinPlugin:
    @hookimpl
    def meta_register_generators(self, registry: GeneratorRegistry) -> None:
        registry.register(Same("twin-a"))
        registry.register(Same("twin-b"))


def test_a_tie_is_an_error_naming_the_candidates(schemas: Schemas) -> None:
    plugins = load_plugins(extra=[TwinPlugin()], autoload=False)
    description = read_description(schemas.write(TREE), flow_dir=schemas.root)
    with pytest.raises(UserError) as caught:
        choose(plugins, description)
    assert [str(f) for f in caught.value.faults] == [
        "doc.schema.json: /: generators tie at score 1000: twin-a, twin-b; "
        "choose one with --generator"
    ]
    assert choose(plugins, description, "tree").generator.name == "tree"
