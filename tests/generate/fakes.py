"""Stand-ins for plugins: generators that understand `.demo` files, and plugin module sources."""

from __future__ import annotations

import copy
from typing import Any

from meta.hookspecs import Description


def flow_document(name: str = "generated") -> dict[str, Any]:
    """A small valid flow."""
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {"root": {"name": "hello", "run": {"command": ["echo", "hello"]}}},
    }


class FixedGenerator:
    """A generator that gives every `.demo` description the same score and flow."""

    def __init__(self, name: str, score: float = 1.0, document: dict[str, Any] | None = None):
        self.name = name
        self._score = score
        self._document = document if document is not None else flow_document(name)

    def score(self, description: Description) -> float:
        return self._score if description.path.suffix == ".demo" else 0.0

    def generate(self, description: Description) -> dict[str, Any]:
        return copy.deepcopy(self._document)


GENERATOR_PLUGIN = """\
    import copy
    from meta import hookimpl

    class Generator:
        name = {name!r}

        def score(self, description):
            return {score!r} if description.path.suffix == ".demo" else 0.0

        def generate(self, description):
            return {{
                "apiVersion": "meta-orchestrator.io/v1alpha1",
                "kind": "MetaFlow",
                "metadata": {{"name": {name!r}}},
                "spec": {{"root": {{"name": "hello", "run": {{"command": ["echo", "hi"]}}}}}},
            }}

    @hookimpl
    def meta_register_generators(registry):
        registry.register(Generator())
"""


def generator_plugin(name: str, score: float = 1.0) -> str:
    """The source of a plugin module registering one generator `name`."""
    return GENERATOR_PLUGIN.format(name=name, score=score)
