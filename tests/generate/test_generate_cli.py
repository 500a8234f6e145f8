"""`meta plugins` and `meta generate` with plugins installed as distributions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from meta.cli import main
from meta.flow.parse import load_flow
from meta.generate.plugins import load_plugins
from tests.generate.fakes import generator_plugin


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.delenv("META_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def invoke(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(arg) for arg in args])

    return invoke


def test_plugins_lists_each_generator_with_where_it_comes_from(
    install_dist: Callable[..., str], cli: Callable[..., Result]
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))

    result = cli("plugins")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "fake-gen\tmeta-fake 1.2.3" in lines
    for name in load_plugins(autoload=False).catalogue.names():
        assert f"{name}\tbuilt-in" in lines
    names = [line.split("\t")[0] for line in lines]
    assert names == sorted(names)


def test_plugins_without_autoload_lists_only_the_built_ins(
    install_dist: Callable[..., str], cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))
    monkeypatch.setenv("META_DISABLE_PLUGIN_AUTOLOAD", "1")

    result = cli("plugins")

    assert result.exit_code == 0, result.output
    assert "fake-gen" not in result.stdout
    built_in = load_plugins(autoload=False).catalogue.names()
    assert result.stdout.splitlines() == [f"{name}\tbuilt-in" for name in built_in]


def test_generate_writes_the_flow_of_an_installed_generator(
    install_dist: Callable[..., str], cli: Callable[..., Result], demo: Path, tmp_path: Path
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))
    output = tmp_path / "flows" / "sample.flow.yaml"

    result = cli("generate", demo, "-o", output)

    assert result.exit_code == 0, result.output
    assert "by generator 'fake-gen'" in result.stderr
    assert load_flow(output).name == "fake-gen"


def test_generate_prints_the_flow_without_an_output_file(
    install_dist: Callable[..., str], cli: Callable[..., Result], demo: Path
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))

    result = cli("generate", demo)

    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["metadata"] == {"name": "fake-gen"}


def test_generate_with_a_tie_exits_2_naming_the_candidates(
    install_dist: Callable[..., str], cli: Callable[..., Result], demo: Path
) -> None:
    install_dist("meta-one", "1.0", generator_plugin("one", 2.0))
    install_dist("meta-two", "1.0", generator_plugin("two", 2.0))

    tie = cli("generate", demo)
    chosen = cli("generate", demo, "--generator", "two")

    assert tie.exit_code == 2
    assert "generators tie at score 2: one, two; choose one with --generator" in tie.stderr
    assert chosen.exit_code == 0, chosen.output
    assert yaml.safe_load(chosen.stdout)["metadata"] == {"name": "two"}


def test_generate_with_an_unknown_generator_exits_2(
    install_dist: Callable[..., str], cli: Callable[..., Result], demo: Path
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))

    result = cli("generate", demo, "--generator", "nope")

    assert result.exit_code == 2
    assert "no generator named 'nope'" in result.stderr
    assert "fake-gen" in result.stderr


# A generator whose flow reads a file of its choosing, which no option named.
READS_ROWS = """\
    from meta import hookimpl

    class Generator:
        name = "rows"

        def score(self, description):
            return 1.0

        def generate(self, description):
            return {
                "apiVersion": "meta-orchestrator.io/v1alpha1",
                "kind": "MetaFlow",
                "metadata": {"name": "rows"},
                "spec": {
                    "inputs": {"rows": {"path": "rows.csv"}},
                    "root": {"name": "hello", "run": {"command": ["echo", "hi"]}},
                },
            }

    @hookimpl
    def meta_register_generators(registry):
        registry.register(Generator())
"""


def test_generate_never_writes_the_flow_over_a_file_it_reads(
    install_dist: Callable[..., str], cli: Callable[..., Result], demo: Path, tmp_path: Path
) -> None:
    install_dist("meta-rows", "1.0", READS_ROWS)
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")

    result = cli("generate", demo, "--generator", "rows", "-o", rows)

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"{rows}: /: the flow would replace the description or data it is made from\n"
    )
    assert rows.read_text() == "a,b\n1,2\n"


SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "schemas"


def test_explain_says_what_was_seen_and_why_each_generator_scores(
    cli: Callable[..., Result],
) -> None:
    result = cli("generate", SAMPLES / "company.schema.json", "--explain")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "a JSON Schema, draft 2020-12 (from $schema)"
    assert "node types: 4 (company, department, team, person)" in lines
    chosen = [line for line in lines if "(chosen)" in line]
    assert chosen == ["tree: 30 (chosen): a dfs walk over 3 children fields, 4 node types"]
    assert "apiVersion" not in result.stdout, "--explain prints reasons, not the flow"


def test_explain_of_a_description_no_generator_fits_exits_2_with_every_reason(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    schema = tmp_path / "s.schema.json"
    schema.write_text('{"type": "string"}')

    result = cli("generate", schema, "--explain")

    assert result.exit_code == 2
    assert "root: type string, not an object" in result.stdout.splitlines()
    assert "tree: 0: the root is not an object type" in result.stdout.splitlines()
    assert "(chosen)" not in result.stdout
