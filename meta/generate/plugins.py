"""The plugin manager: built-in generators and outside plugins, found the same way.

Every plugin is a module named by an entry point in the group `meta.plugins`. The built-in
generators are entry points of meta-orchestrator itself, so they always load;
`META_DISABLE_PLUGIN_AUTOLOAD=1` skips the entry points of every other distribution.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
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
        if entry.dist is None or _is_built_in(entry):
            source = BUILT_IN
        else:
            source = Source("distribution", entry.dist.name, entry.dist.version)
        _register(manager, entry.load, entry.name, source)
        sources[entry.name] = source
    for plugin in extra:
        name = _register(manager, _given(plugin), None, IN_CODE)
        if name is not None:
            sources[name] = IN_CODE
    return Plugins(manager, sources)


def _register(
    manager: pluggy.PluginManager, load: Callable[[], object], name: str | None, source: Source
) -> str | None:
    """Load and register one plugin, and check its hooks against the specs at once, so a fault
    (a misspelt hook, an argument no hook has, a module that fails to import) names the plugin
    it is in, in one line, rather than a traceback."""
    try:
        registered = manager.register(load(), name=name)
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        shown = name or getattr(exc.plugin, "__name__", type(exc.plugin).__name__)
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise UserError(Fault(f"plugin {shown} ({source})", "", reason)) from exc
    except Exception as exc:  # the plugin's own import failed: its fault, said in one line
        reason = f"cannot be loaded: {type(exc).__name__}: {exc}".splitlines()[0]
        raise UserError(Fault(f"plugin {name} ({source})", "", reason)) from exc
    return registered


def _given(plugin: object) -> Callable[[], object]:
    return lambda: plugin


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
