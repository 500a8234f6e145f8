"""Fixtures for the JSON Schema generators' tests (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta.generate.plugins import Plugins, load_plugins
from tests.generators.helpers import Schemas


@pytest.fixture
def builtins() -> Plugins:
    """The built-in generators only (no outside distribution's plugins)."""
    return load_plugins(autoload=False)


@pytest.fixture
def schemas(tmp_path: Path, builtins: Plugins, monkeypatch: pytest.MonkeyPatch) -> Schemas:
    """Schemas in tmp_path, which is the working directory (files display relative to it)."""
    monkeypatch.chdir(tmp_path)
    return Schemas(tmp_path, builtins)
