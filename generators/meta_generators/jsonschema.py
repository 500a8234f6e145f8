"""The plugin module of the built-in JSON Schema generators (entry point `jsonschema`).

Four generators read draft 2020-12 JSON Schemas (see docs/x-meta.md):

- `tree`: node types that refer to node types -> a dfs/bfs walk, one visit case per type;
- `dag`: `$defs` with `x-meta.dependsOn` -> a dag;
- `collection`: a top-level array -> a fanout (and a gather when asked);
- `stream`: `x-meta.stream: true` -> a cycle over chunks of a JSON-lines file;
- `document`: a top node holding entries keyed by name (or nothing to walk) -> a dag of the
  top node's walk (or check) and a fanout (or dag) per map of entries.

Scores: the generator that the root's `x-meta.pattern` names gets 100 (and the others 0);
otherwise stream 40 > dag 31 > document 30.5 (with entries) > tree 30 > collection 10 >
document 5 (nothing else fits), and 0 for what a generator does not understand, so they never
tie.
"""

from __future__ import annotations

from meta.hookspecs import GeneratorRegistry, hookimpl

from .collection import CollectionGenerator
from .dag import DagGenerator
from .document import DocumentGenerator
from .stream import StreamGenerator
from .tree import TreeGenerator


@hookimpl
def meta_register_generators(registry: GeneratorRegistry) -> None:
    """The JSON Schema generators: tree, dag, collection, stream, document."""
    registry.register(TreeGenerator())
    registry.register(DagGenerator())
    registry.register(CollectionGenerator())
    registry.register(StreamGenerator())
    registry.register(DocumentGenerator())
