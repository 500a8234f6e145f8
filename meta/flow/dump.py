"""A flow document as YAML: the same bytes for the same document, keys in the order written."""

from __future__ import annotations

from typing import Any

import yaml


def dump_flow(document: dict[str, Any]) -> str:
    """YAML for a flow document, the same bytes for the same document."""
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
