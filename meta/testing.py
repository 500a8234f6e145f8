"""What a plugin author needs to test a generator.

- `meta_plugins`, a pytest fixture (this module is a pytest plugin, entry point `pytest11`
  `meta`): ``meta_plugins(plugin, ...)`` registers plugins inline (a module, an instance of a
  class with hook implementations, or a bare generator) and returns the loaded `Plugins`.
- `check_generator`, the conformance check: it runs a generator over sample descriptions and
  asserts that every flow validates, reads back from its YAML, and is deterministic.

Only tests import this module.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from meta.errors import FlowInvalid, UserError
from meta.flow.dump import dump_flow
from meta.flow.files import display_path
from meta.flow.parse import flow_from_document
from meta.generate.pipeline import Generated, generate, read_description
from meta.generate.plugins import Plugins, load_plugins
from meta.hookspecs import Description, Generator, GeneratorRegistry, hookimpl

__all__ = ["GeneratorPlugin", "PluginLoader", "check_generator", "meta_plugins"]


class GeneratorPlugin:
    """A plugin that registers the given generators: the shortest way to plug one in."""

    def __init__(self, *generators: Generator) -> None:
        self.generators = generators

    @hookimpl
    def meta_register_generators(self, registry: GeneratorRegistry) -> None:
        for generator in self.generators:
            registry.register(generator)

    def __repr__(self) -> str:
        names = ", ".join(generator.name for generator in self.generators)
        return f"GeneratorPlugin({names})"


class PluginLoader:
    """What the `meta_plugins` fixture gives: call it with plugins to get them loaded."""

    def __call__(self, *plugins: object, autoload: bool = False) -> Plugins:
        """The built-in generators plus `plugins`, registered in code in the order given.

        A plugin is a module or an instance carrying `meta.hookimpl` functions; a generator
        (an object with `name`, `score` and `generate`, and no `meta_*` attribute) is wrapped
        in a `GeneratorPlugin`. With `autoload=True` the installed distributions' entry points
        load too (unless META_DISABLE_PLUGIN_AUTOLOAD=1).
        """
        return load_plugins(extra=[as_plugin(plugin) for plugin in plugins], autoload=autoload)


def as_plugin(plugin: object) -> object:
    """`plugin` ready for the plugin manager: bare generators are wrapped."""
    if isinstance(plugin, type):
        raise TypeError(f"register an instance of {plugin.__name__}, not the class itself")
    if isinstance(plugin, ModuleType) or any(attr.startswith("meta_") for attr in dir(plugin)):
        return plugin
    if isinstance(plugin, Generator):
        return GeneratorPlugin(plugin)
    return plugin


@pytest.fixture
def meta_plugins() -> PluginLoader:
    """Register plugins inline: ``plugins = meta_plugins(MyPlugin(), other_module)``."""
    return PluginLoader()


def check_generator(
    generator: str | Generator,
    descriptions: Sequence[Path | Description],
    *,
    plugins: Plugins | None = None,
) -> list[Generated]:
    """Assert that `generator` turns each description into a valid, deterministic flow.

    For each description (a file, or a `Description` made by hand) the generator must accept it
    (score above 0), and the flow, after every `meta_transform_flow`, must validate; its YAML
    must read back into a valid flow; and a second generation must give byte-identical YAML.
    A failure is an `AssertionError` naming the description.

    `generator` is a generator object or the name of a registered one. Without `plugins`, a
    name is looked up among the installed plugins, and an object is registered alone next to
    the built-in generators. Returns the generated flows, in the order of `descriptions`.
    """
    if not descriptions:
        raise AssertionError("check_generator needs at least one sample description")
    loaded, name = _resolve(generator, plugins)
    results: list[Generated] = []
    for item in descriptions:
        label = display_path(item if isinstance(item, Path) else item.path)
        first = _generate(loaded, item, name, label)
        text = _yaml(first, name, label)
        again = _yaml(_generate(loaded, item, name, label), name, label)
        if again != text:
            diff = "".join(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    again.splitlines(keepends=True),
                    "first generation",
                    "second generation",
                )
            )
            raise AssertionError(
                f"{label}: generator '{name}' is not deterministic; two generations differ:\n{diff}"
            )
        try:
            flow_from_document(yaml.safe_load(text), first.flow.source)
        except FlowInvalid as exc:
            raise AssertionError(
                f"{label}: the YAML of generator '{name}' does not read back into a valid "
                f"flow:\n{exc}"
            ) from exc
        results.append(first)
    return results


def _resolve(generator: str | Generator, plugins: Plugins | None) -> tuple[Plugins, str]:
    if isinstance(generator, str):
        loaded = plugins if plugins is not None else load_plugins()
        if loaded.catalogue.get(generator) is None:
            known = ", ".join(loaded.catalogue.names()) or "none"
            raise AssertionError(f"no generator named '{generator}' is registered (known: {known})")
        return loaded, generator
    if plugins is None:
        return load_plugins(extra=[GeneratorPlugin(generator)], autoload=False), generator.name
    registered = plugins.catalogue.get(generator.name)
    if registered is None or registered.generator is not generator:
        raise AssertionError(
            f"generator '{generator.name}' is not the one registered in the given plugins; "
            "register it there (meta_plugins(generator)) or leave `plugins` out"
        )
    return plugins, generator.name


def _generate(plugins: Plugins, item: Path | Description, name: str, label: str) -> Generated:
    try:
        if isinstance(item, Path):
            description = read_description(item)
        else:
            description = dataclasses.replace(item, document=copy.deepcopy(item.document))
        flow_path = description.flow_dir / f"{description.path.stem}.flow.yaml"
        return generate(plugins, description, flow_path=flow_path, generator=name)
    except UserError as exc:
        raise AssertionError(f"{label}: generator '{name}' gives no valid flow:\n{exc}") from exc
    except Exception as exc:
        exc.add_note(f"(while generator '{name}' generated a flow for {label})")
        raise


def _yaml(generated: Generated, name: str, label: str) -> str:
    try:
        return dump_flow(generated.document)
    except yaml.YAMLError as exc:
        raise AssertionError(
            f"{label}: the flow of generator '{name}' cannot be written as YAML "
            f"(use plain dicts, lists, strings, numbers and booleans): {exc}"
        ) from exc
