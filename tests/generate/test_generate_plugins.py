"""load_plugins: built-ins, entry points of other distributions, the autoload switch, and the
checks that make a wrong plugin fail loudly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meta import hookimpl
from meta.errors import UserError
from meta.generate.plugins import BUILT_IN, IN_CODE, Source, load_plugins
from meta.hookspecs import GeneratorRegistry
from meta.testing import PluginLoader
from tests.generate.fakes import FixedGenerator, generator_plugin


def test_built_in_generators_load_from_meta_orchestrators_own_entry_point() -> None:
    plugins = load_plugins(autoload=False)

    module = plugins.manager.get_plugin("jsonschema")
    assert module is not None and module.__name__ == "meta_generators.jsonschema"
    assert plugins.sources["jsonschema"] == BUILT_IN
    for registered in plugins.catalogue:
        assert registered.source == BUILT_IN, registered.generator.name


def test_an_installed_distribution_is_a_plugin_with_its_name_and_version(
    install_dist: Callable[..., str],
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))

    plugins = load_plugins(autoload=True)

    registered = plugins.catalogue.get("fake-gen")
    assert registered is not None
    assert registered.source == Source("distribution", "meta-fake", "1.2.3")
    assert str(registered.source) == "meta-fake 1.2.3"
    assert plugins.sources["meta-fake"] == registered.source


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_disabling_autoload_skips_other_distributions_but_keeps_built_ins(
    install_dist: Callable[..., str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))
    monkeypatch.setenv("META_DISABLE_PLUGIN_AUTOLOAD", value)

    plugins = load_plugins()

    assert plugins.catalogue.get("fake-gen") is None
    assert plugins.manager.get_plugin("meta-fake") is None
    assert plugins.sources["jsonschema"] == BUILT_IN


def test_autoload_is_on_unless_the_variable_says_otherwise(
    install_dist: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("fake-gen"))
    monkeypatch.setenv("META_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert load_plugins().catalogue.get("fake-gen") is not None
    monkeypatch.delenv("META_DISABLE_PLUGIN_AUTOLOAD")
    assert load_plugins().catalogue.get("fake-gen") is not None
    assert load_plugins(autoload=False).catalogue.get("fake-gen") is None


def test_plugins_registered_in_code_say_so(meta_plugins: PluginLoader) -> None:
    plugins = meta_plugins(FixedGenerator("inline"))

    registered = plugins.catalogue.get("inline")
    assert registered is not None
    assert registered.source == IN_CODE
    assert str(registered.source) == "registered in code"


def test_a_misspelt_hook_fails_at_load() -> None:
    class Misspelt:
        @hookimpl
        def meta_register_generator(self, registry: GeneratorRegistry) -> None:
            raise AssertionError("never called")

    with pytest.raises(UserError, match="meta_register_generator") as raised:
        load_plugins(extra=[Misspelt()], autoload=False)
    (fault,) = raised.value.faults
    assert fault.file.startswith("plugin ") and fault.file.endswith("(registered in code)")
    assert "\n" not in str(fault)


def test_a_misspelt_hook_in_an_installed_distribution_fails_at_load(
    install_dist: Callable[..., str],
) -> None:
    install_dist(
        "meta-typo",
        "0.1",
        """\
        from meta import hookimpl

        @hookimpl
        def meta_transform_flows(flow, description, generator):
            return None
        """,
    )
    with pytest.raises(UserError, match="unknown hook 'meta_transform_flows'") as raised:
        load_plugins(autoload=True)
    (fault,) = raised.value.faults
    assert fault.file.startswith("plugin ") and fault.file.endswith("(meta-typo 0.1)")


def test_a_plugin_whose_module_fails_to_import_is_one_line_naming_it(
    install_dist: Callable[..., str],
) -> None:
    install_dist("meta-broken", "0.2", "raise RuntimeError('no such thing')\n")
    with pytest.raises(UserError) as raised:
        load_plugins(autoload=True)
    (fault,) = raised.value.faults
    assert fault.file.endswith("(meta-broken 0.2)")
    assert fault.reason == "cannot be loaded: RuntimeError: no such thing"


def test_a_hook_with_an_unknown_argument_fails_at_load() -> None:
    class WrongArgument:
        @hookimpl
        def meta_register_generators(self, catalogue: Any) -> None:
            raise AssertionError("never called")

    with pytest.raises(UserError, match="catalogue"):
        load_plugins(extra=[WrongArgument()], autoload=False)


def test_two_generators_of_one_name_are_an_error_naming_both_sources(
    install_dist: Callable[..., str], meta_plugins: PluginLoader
) -> None:
    install_dist("meta-fake", "1.2.3", generator_plugin("twin"))

    with pytest.raises(UserError) as caught:
        meta_plugins(FixedGenerator("twin"), autoload=True)

    (fault,) = caught.value.faults
    assert fault.file == "registered in code"
    assert fault.reason == "generator name 'twin' is taken already (by meta-fake 1.2.3)"


def test_two_generators_of_one_name_in_code_are_an_error(meta_plugins: PluginLoader) -> None:
    with pytest.raises(UserError, match="generator name 'twin' is taken already"):
        meta_plugins(FixedGenerator("twin"), FixedGenerator("twin"))


def test_registering_something_that_is_no_generator_is_a_type_error() -> None:
    class NotAGenerator:
        name = "half"

    class Plugin:
        @hookimpl
        def meta_register_generators(self, registry: GeneratorRegistry) -> None:
            registry.register(NotAGenerator())  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="is not a generator"):
        load_plugins(extra=[Plugin()], autoload=False)
