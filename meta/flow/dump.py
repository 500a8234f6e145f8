"""A flow document as YAML: the same bytes for the same document, keys in the order written."""

from __future__ import annotations

from typing import Any

import yaml

from meta.steps.yamldata import CORE_FLOAT, CORE_INT, FLOAT_FIRST, FLOAT_TAG, INT_FIRST, INT_TAG


class _FlowDumper(yaml.SafeDumper):
    """Quotes a string that a YAML 1.1 reader (PyYAML's own, kubectl's) or a YAML 1.2 one
    (`meta`'s) would read as a number: `"1e5"` and `"0o17"` as well as `"0755"`."""


_FlowDumper.add_implicit_resolver(INT_TAG, CORE_INT, INT_FIRST)
_FlowDumper.add_implicit_resolver(FLOAT_TAG, CORE_FLOAT, FLOAT_FIRST)


def dump_flow(document: dict[str, Any]) -> str:
    """YAML for a flow document, the same bytes for the same document."""
    return yaml.dump(
        document,
        Dumper=_FlowDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
