"""Helpers for the JSON Schema generators' tests (imported by the test modules beside it):
schemas written into tmp_path and turned into flows in process (built-in generators only), and
the real `meta` CLI for the end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meta.errors import UserError
from meta.generate.explain import explain
from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import Plugins

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "schemas"
GOLDEN = Path(__file__).parent / "golden"
META = Path(sys.executable).with_name("meta")
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema(**keywords: Any) -> dict[str, Any]:
    """A draft 2020-12 schema document with these keywords."""
    return {"$schema": DRAFT, **keywords}


@dataclass
class Schemas:
    """Write schemas into `root` and run the built-in generators on them."""

    root: Path
    plugins: Plugins

    def write(self, document: Any, name: str = "doc.schema.json") -> Path:
        path = self.root / name
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path

    def flow(
        self,
        document: Any,
        *,
        data: Path | None = None,
        generator: str | None = None,
        name: str = "doc.schema.json",
    ) -> dict[str, Any]:
        """The generated (and validated) flow document."""
        description = read_description(self.write(document, name), data=data, flow_dir=self.root)
        generated = generate(
            self.plugins, description, flow_path=self.root / "doc.flow.yaml", generator=generator
        )
        return generated.document

    def faults(
        self, document: Any, *, generator: str | None = None, data: Path | None = None
    ) -> list[str]:
        """The fault lines (`FILE: /pointer: reason`) that generating from `document` raises."""
        with pytest.raises(UserError) as caught:
            self.flow(document, generator=generator, data=data)
        return [str(fault) for fault in caught.value.faults]

    def explain(self, document: Any) -> list[str]:
        """What `meta generate --explain` says it saw in `document`."""
        description = read_description(self.write(document), flow_dir=self.root)
        return explain(self.plugins, description).seen

    def scores(self, document: Any, name: str = "doc.schema.json") -> dict[str, float]:
        description = read_description(self.write(document, name), flow_dir=self.root)
        return {
            registered.generator.name: registered.generator.score(description)
            for registered in self.plugins.catalogue
        }


def run_meta(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `meta` console script, as a real process."""
    assert META.exists(), f"the `meta` console script is not installed next to {sys.executable}"
    return subprocess.run(
        [str(META), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def visit_cases(flow: dict[str, Any]) -> list[tuple[str, str]]:
    """(when, unit name) of each case of the root section's visit."""
    return [(case["when"], case["unit"]["name"]) for case in flow["spec"]["root"]["visit"]["cases"]]


def command(unit: dict[str, Any]) -> list[str]:
    run: list[str] = unit["run"]["command"]
    return run
