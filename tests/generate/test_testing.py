"""meta.testing: the `meta_plugins` fixture and the `check_generator` conformance check."""

from __future__ import annotations

import itertools
import re
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meta import hookimpl
from meta.generate.plugins import IN_CODE
from meta.hookspecs import Description, GeneratorRegistry
from meta.testing import GeneratorPlugin, PluginLoader, check_generator
from tests.generate.fakes import FixedGenerator, flow_document


@pytest.fixture
def samples(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "one.demo", tmp_path / "two.demo"]
    for path in paths:
        path.write_text(path.stem)
    return paths


def test_the_fixture_registers_a_module_an_instance_and_a_bare_generator(
    meta_plugins: PluginLoader,
) -> None:
    module = types.ModuleType("inline_plugin")

    @hookimpl
    def meta_register_generators(registry: GeneratorRegistry) -> None:
        registry.register(FixedGenerator("from-module"))

    module.meta_register_generators = meta_register_generators  # type: ignore[attr-defined]

    class Instance:
        @hookimpl
        def meta_register_generators(self, registry: GeneratorRegistry) -> None:
            registry.register(FixedGenerator("from-instance"))

    plugins = meta_plugins(module, Instance(), FixedGenerator("bare"))

    for name in ("from-module", "from-instance", "bare"):
        registered = plugins.catalogue.get(name)
        assert registered is not None, name
        assert registered.source == IN_CODE


def test_the_fixture_refuses_a_class_in_place_of_an_instance(meta_plugins: PluginLoader) -> None:
    with pytest.raises(TypeError, match="register an instance of GeneratorPlugin"):
        meta_plugins(GeneratorPlugin)


def test_a_conforming_generator_passes_and_its_flows_come_back(samples: list[Path]) -> None:
    generated = check_generator(FixedGenerator("good"), samples)

    assert [g.generator for g in generated] == ["good", "good"]
    assert [g.flow.name for g in generated] == ["good", "good"]


def test_a_generator_can_be_named_among_loaded_plugins(
    meta_plugins: PluginLoader, samples: list[Path]
) -> None:
    plugins = meta_plugins(FixedGenerator("named"))

    (generated, _) = check_generator("named", samples, plugins=plugins)

    assert generated.generator == "named"


def test_a_description_made_by_hand_is_accepted(tmp_path: Path) -> None:
    description = Description(path=tmp_path / "virtual.demo", document={"any": "thing"})

    (generated,) = check_generator(FixedGenerator("good"), [description])

    assert generated.document["metadata"] == {"name": "good"}


def test_an_invalid_flow_fails_naming_the_description(samples: list[Path]) -> None:
    document = flow_document("bad")
    document["spec"]["root"]["retries"] = "often"

    with pytest.raises(AssertionError) as caught:
        check_generator(FixedGenerator("bad", document=document), samples)

    message = str(caught.value)
    assert "one.demo: generator 'bad' gives no valid flow" in message
    assert "/spec/root/retries" in message


def test_a_generator_that_differs_between_runs_is_not_deterministic(samples: list[Path]) -> None:
    class Drifting(FixedGenerator):
        counter = itertools.count()

        def generate(self, description: Description) -> dict[str, Any]:
            return flow_document(f"run-{next(self.counter)}")

    with pytest.raises(AssertionError) as caught:
        check_generator(Drifting("drifting"), samples)

    message = str(caught.value)
    assert "one.demo: generator 'drifting' is not deterministic" in message
    assert "-  name: run-0" in message
    assert "+  name: run-1" in message


def test_a_flow_that_cannot_be_written_as_yaml_fails(samples: list[Path]) -> None:
    document = flow_document("odd")
    document["spec"]["inputs"] = {"rate": {"value": Decimal("1.5")}}

    with pytest.raises(
        AssertionError, match=re.escape("one.demo: the flow of generator 'odd' cannot be")
    ):
        check_generator(FixedGenerator("odd", document=document), samples)


def test_a_description_the_generator_does_not_understand_fails(tmp_path: Path) -> None:
    other = tmp_path / "sample.txt"
    other.write_text("not ours")

    with pytest.raises(
        AssertionError, match=re.escape("sample.txt: generator 'good' gives no valid flow")
    ):
        check_generator(FixedGenerator("good"), [other])


def test_transforms_of_the_given_plugins_apply(
    meta_plugins: PluginLoader, samples: list[Path]
) -> None:
    class Breaks:
        @hookimpl
        def meta_transform_flow(self, flow: dict[str, Any]) -> None:
            flow["spec"]["root"]["timeoutSeconds"] = 0

    generator = FixedGenerator("good")
    plugins = meta_plugins(generator, Breaks())

    with pytest.raises(AssertionError, match="/spec/root/timeoutSeconds"):
        check_generator(generator, samples, plugins=plugins)


def test_an_unknown_name_fails(meta_plugins: PluginLoader, samples: list[Path]) -> None:
    with pytest.raises(AssertionError, match="no generator named 'missing' is registered"):
        check_generator("missing", samples, plugins=meta_plugins())


def test_a_generator_missing_from_the_given_plugins_fails(
    meta_plugins: PluginLoader, samples: list[Path]
) -> None:
    plugins = meta_plugins(FixedGenerator("good"))

    with pytest.raises(AssertionError, match="not the one registered in the given plugins"):
        check_generator(FixedGenerator("good"), samples, plugins=plugins)


def test_no_samples_is_a_failure_not_a_pass() -> None:
    with pytest.raises(AssertionError, match="at least one sample"):
        check_generator(FixedGenerator("good"), [])
