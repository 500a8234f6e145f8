"""meta_transform_flow: the documented order, and what a transform's return value means."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meta import hookimpl
from meta.errors import FlowInvalid
from meta.generate.pipeline import generate
from meta.hookspecs import Description
from meta.testing import PluginLoader
from tests.generate.fakes import FixedGenerator


class Recorder:
    """A transform that appends its tag to metadata.labels.order (so the order shows)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def _record(self, flow: dict[str, Any]) -> None:
        labels = flow["metadata"].setdefault("labels", {})
        labels["order"] = ",".join(filter(None, [labels.get("order", ""), self.tag]))


class Plain(Recorder):
    @hookimpl
    def meta_transform_flow(self, flow: dict[str, Any]) -> None:
        self._record(flow)


class First(Recorder):
    @hookimpl(tryfirst=True)
    def meta_transform_flow(self, flow: dict[str, Any]) -> None:
        self._record(flow)


class Last(Recorder):
    @hookimpl(trylast=True)
    def meta_transform_flow(self, flow: dict[str, Any]) -> None:
        self._record(flow)


def order(document: dict[str, Any]) -> list[str]:
    return str(document["metadata"]["labels"]["order"]).split(",")


def test_transforms_run_tryfirst_then_in_registration_order_then_trylast(
    meta_plugins: PluginLoader, describe: Description, tmp_path: Path
) -> None:
    plugins = meta_plugins(
        FixedGenerator("gen"),
        Last("last-1"),
        Plain("plain-1"),
        First("first-1"),
        Last("last-2"),
        Plain("plain-2"),
        First("first-2"),
    )

    generated = generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert order(generated.document) == [
        "first-1",
        "first-2",
        "plain-1",
        "plain-2",
        "last-1",
        "last-2",
    ]


def test_entry_points_transform_in_distribution_order_before_plugins_in_code(
    install_dist: Callable[..., str],
    meta_plugins: PluginLoader,
    describe: Description,
    tmp_path: Path,
) -> None:
    source = """\
        from meta import hookimpl

        @hookimpl
        def meta_transform_flow(flow):
            labels = flow["metadata"].setdefault("labels", {{}})
            labels["order"] = ",".join(filter(None, [labels.get("order", ""), {tag!r}]))
        """
    install_dist("meta-zeta", "1.0", source.format(tag="zeta"))
    install_dist("meta-alpha", "1.0", source.format(tag="alpha"))

    plugins = meta_plugins(FixedGenerator("gen"), Plain("in-code"), autoload=True)
    generated = generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert order(generated.document) == ["alpha", "zeta", "in-code"]


def test_returning_none_keeps_the_edits_made_in_place(
    meta_plugins: PluginLoader, describe: Description, tmp_path: Path
) -> None:
    class HousePolicy:
        @hookimpl
        def meta_transform_flow(self, flow: dict[str, Any]) -> None:
            flow["spec"]["defaults"] = {"retries": 2, "timeoutSeconds": 60}

    plugins = meta_plugins(FixedGenerator("gen"), HousePolicy())
    generated = generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert generated.document["spec"]["defaults"] == {"retries": 2, "timeoutSeconds": 60}
    assert generated.flow.defaults.retries == 2
    assert generated.flow.defaults.timeout_seconds == 60


def test_a_returned_document_replaces_the_flow_for_the_next_transform(
    meta_plugins: PluginLoader, describe: Description, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []

    class Renames:
        @hookimpl(tryfirst=True)
        def meta_transform_flow(self, flow: dict[str, Any]) -> dict[str, Any]:
            return {**flow, "metadata": {"name": "renamed"}}

    class Watches:
        @hookimpl
        def meta_transform_flow(self, flow: dict[str, Any]) -> None:
            seen.append(flow)

    plugins = meta_plugins(FixedGenerator("gen"), Renames(), Watches())
    generated = generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert seen[0]["metadata"] == {"name": "renamed"}
    assert generated.flow.name == "renamed"


def test_a_transform_is_told_the_description_and_the_generator(
    meta_plugins: PluginLoader, describe: Description, tmp_path: Path
) -> None:
    calls: list[tuple[Path, str]] = []

    class Curious:
        @hookimpl
        def meta_transform_flow(self, description: Description, generator: str) -> None:
            calls.append((description.path, generator))

    plugins = meta_plugins(FixedGenerator("gen"), FixedGenerator("other", 0.5), Curious())
    generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert calls == [(describe.path, "gen")]


def test_a_transform_that_breaks_the_flow_fails_validation(
    meta_plugins: PluginLoader, describe: Description, tmp_path: Path
) -> None:
    class Breaks:
        @hookimpl
        def meta_transform_flow(self, flow: dict[str, Any]) -> None:
            flow["spec"]["root"]["retries"] = -1

    plugins = meta_plugins(FixedGenerator("gen"), Breaks())

    with pytest.raises(FlowInvalid) as caught:
        generate(plugins, describe, flow_path=tmp_path / "out.flow.yaml")

    assert any(fault.pointer == "/spec/root/retries" for fault in caught.value.faults)
