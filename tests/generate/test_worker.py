"""Generating in a worker process with a time limit (for `meta watch`), and the pairing of a
folder's files by name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from meta.generate.worker import described_name, generate_in_worker, pair
from meta.hookspecs import Description
from meta.testing import PluginLoader
from tests.generate.fakes import FixedGenerator


class SlowGenerator(FixedGenerator):
    def generate(self, description: Description) -> dict[str, Any]:
        time.sleep(60)
        return super().generate(description)


class BrokenGenerator(FixedGenerator):
    def generate(self, description: Description) -> dict[str, Any]:
        raise KeyError("oops")


def test_a_description_is_generated_in_a_worker(meta_plugins: PluginLoader, demo: Path) -> None:
    plugins = meta_plugins(FixedGenerator("fixed"))
    attempt = generate_in_worker(plugins, demo, demo.parent / "x.flow.yaml", seconds=30)
    assert attempt.faults == ()
    assert attempt.generator == "fixed"
    assert attempt.yaml is not None and "name: fixed" in attempt.yaml


def test_a_stuck_generator_is_stopped_at_the_time_limit(
    meta_plugins: PluginLoader, demo: Path
) -> None:
    plugins = meta_plugins(SlowGenerator("slow"))
    started = time.monotonic()
    attempt = generate_in_worker(plugins, demo, demo.parent / "x.flow.yaml", seconds=1)
    assert time.monotonic() - started < 10
    assert attempt.yaml is None
    assert attempt.faults == (
        f"{demo}: /: generating took longer than 1 s: stopped (other files are not held up)",
    )


def test_a_generator_that_crashes_is_a_fault_not_a_traceback(
    meta_plugins: PluginLoader, demo: Path
) -> None:
    plugins = meta_plugins(BrokenGenerator("broken"))
    attempt = generate_in_worker(plugins, demo, demo.parent / "x.flow.yaml", seconds=30)
    assert attempt.faults == (f"{demo}: /: the generator failed: KeyError('oops')",)


def test_yaml_descriptions_and_data_pair_by_name(tmp_path: Path) -> None:
    (tmp_path / "ci.schema.yaml").write_text("type: object\n")
    (tmp_path / "ci.data.yml").write_text("a: 1\n")
    assert described_name(tmp_path / "ci.data.yml") == "ci"
    assert described_name(tmp_path / "ci.flow.yaml") is None
    assert pair(tmp_path, "ci") == (tmp_path / "ci.schema.yaml", tmp_path / "ci.data.yml")
    assert pair(tmp_path, "other") == (None, None)
