"""The plugin manager: built-in generators and outside plugins, found the same way.

Every plugin is a module named by an entry point in the group `meta.plugins`. The built-in
generators are entry points of meta-orchestrator itself, so they always load;
`META_DISABLE_PLUGIN_AUTOLOAD=1` skips the entry points of every other distribution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pluggy

from meta import hookspecs
from meta.errors import Fault, UserError
from meta.hookspecs import ENTRY_POINT_GROUP, PROJECT, Generator

DISTRIBUTION = "meta-orchestrator"
AUTOLOAD_OFF = "META_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Source:
    """Where a plugin comes from: built in, an installed distribution, or registered in code."""

    kind: str
    distribution: str = ""
    version: str = ""

    def __str__(self) -> str:
        if self.kind == "distribution":
            return f"{self.distribution} {self.version}"
        return self.kind


BUILT_IN = Source("built-in")
IN_CODE = Source("registered in code")


@dataclass(frozen=True)
class Registered:
    generator: Generator
    source: Source


class GeneratorCatalogue:
    """The registry handed to `meta_register_generators`; it remembers each generator's source."""

    def __init__(self) -> None:
        self._generators: dict[str, Registered] = {}
        self.source = IN_CODE

    def register(self, generator: Generator) -> None:
        if not isinstance(generator, Generator):
            raise TypeError(f"{generator!r} is not a generator (needs name, score, generate)")
        if generator.name in self._generators:
            first = self._generators[generator.name].source
            raise UserError(
                Fault(
                    str(self.source),
                    "",
                    f"generator name '{generator.name}' is taken already (by {first})",
                )
            )
        self._generators[generator.name] = Registered(generator, self.source)

    def __iter__(self) -> Iterator[Registered]:
        return iter(sorted(self._generators.values(), key=lambda r: r.generator.name))

    def get(self, name: str) -> Registered | None:
        return self._generators.get(name)

    def names(self) -> list[str]:
        return sorted(self._generators)


class Plugins:
    """A plugin manager with its catalogue of generators, built by `load_plugins`."""

    def __init__(self, manager: pluggy.PluginManager, sources: dict[str, Source]) -> None:
        self.manager = manager
        self.sources = sources
        self.catalogue = GeneratorCatalogue()
        for impl in manager.hook.meta_register_generators.get_hookimpls():
            self.catalogue.source = sources.get(impl.plugin_name, IN_CODE)
            impl.function(registry=self.catalogue)
        self.catalogue.source = IN_CODE


def load_plugins(extra: Iterable[object] = (), *, autoload: bool | None = None) -> Plugins:
    """Build the plugin manager: built-ins, entry points (unless switched off), then `extra`."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_OFF, "") not in ("1", "true", "yes")
    sources: dict[str, Source] = {}
    for entry in _entry_points(autoload):
        if manager.has_plugin(entry.name):
            continue
        manager.register(entry.load(), name=entry.name)
        if entry.dist is None or _is_built_in(entry):
            sources[entry.name] = BUILT_IN
        else:
            sources[entry.name] = Source("distribution", entry.dist.name, entry.dist.version)
    for plugin in extra:
        name = manager.register(plugin)
        if name is not None:
            sources[name] = IN_CODE
    manager.check_pending()
    return Plugins(manager, sources)


def _entry_points(autoload: bool) -> list[EntryPoint]:
    found = [
        entry
        for entry in entry_points(group=ENTRY_POINT_GROUP)
        if autoload or (entry.dist is not None and _is_built_in(entry))
    ]
    return sorted(found, key=lambda e: (not _is_built_in(e), _dist_name(e), e.name))


def _dist_name(entry: EntryPoint) -> str:
    return _normalise(entry.dist.name) if entry.dist is not None else ""


def _is_built_in(entry: EntryPoint) -> bool:
    return _dist_name(entry) == _normalise(DISTRIBUTION)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
