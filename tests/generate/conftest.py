"""Fixtures: a description no built-in generator claims, and distributions installed for one
test on sys.path (so their entry points load as from a real install)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meta.hookspecs import Description

# `meta_plugins` comes from the pytest plugin `meta.testing` (entry point `pytest11`); imported
# here too so that these tests do not depend on that entry point being installed.
from meta.testing import meta_plugins  # noqa: F401


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A description file that only the test generators understand (not JSON, not YAML)."""
    path = tmp_path / "sample.demo"
    path.write_text("a description in a format of our own\n")
    return path


@pytest.fixture
def describe(demo: Path) -> Description:
    return Description(path=demo, flow_dir=demo.parent)


@pytest.fixture
def install_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """`install_dist(DIST, VERSION, SOURCE)`: a distribution DIST whose module (SOURCE) is the
    entry point named after it in `meta.plugins`; returns the module's name."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(dist: str, version: str, source: str, entry: str | None = None) -> str:
        module = f"{dist.replace('-', '_')}_{len(modules)}_{tmp_path.name}".replace("-", "_")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[meta.plugins]\n{entry or dist} = {module}\n")
        modules.append(module)
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)
