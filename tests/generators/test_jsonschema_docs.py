"""docs/x-meta.md keeps up with the code: every x-meta key is documented, and the flows it shows
are the golden files, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from meta_generators.schema_model import x_meta_schema

from tests.generators.helpers import GOLDEN, REPO

DOC = REPO / "docs" / "x-meta.md"


def test_every_x_meta_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    vocabulary = x_meta_schema()["$defs"]
    keys = set(vocabulary["root"]["properties"]) | set(vocabulary["node"]["properties"])
    missing = sorted(key for key in keys if f"| `{key}` |" not in text)
    assert missing == []


@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.flow.yaml")), ids=lambda p: p.name)
def test_the_flows_shown_are_the_golden_files(golden: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert golden.read_text(encoding="utf-8") in blocks
