"""docs/python.md and samples/dag-fanout: the Python flow shown is the sample's, it makes exactly
the document of the YAML beside it, and the reference names every function of meta.builder."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import yaml

import meta.builder as mb

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "python.md"
SAMPLE = REPO / "samples" / "dag-fanout"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def sample_flow() -> mb.Flow:
    made = runpy.run_path(str(SAMPLE / "dag-fanout.flow.py"))["flow"]
    assert isinstance(made, mb.Flow)
    return made


def test_the_python_sample_makes_the_document_of_the_yaml_sample() -> None:
    written = yaml.safe_load((SAMPLE / "dag-fanout.flow.yaml").read_text(encoding="utf-8"))
    assert sample_flow().to_dict() == written


def test_the_flows_shown_side_by_side_are_the_samples() -> None:
    python = blocks("python")[0]
    assert python in (SAMPLE / "dag-fanout.flow.py").read_text(encoding="utf-8")
    shown = yaml.safe_load(blocks("yaml")[0])
    assert shown == yaml.safe_load((SAMPLE / "dag-fanout.flow.yaml").read_text(encoding="utf-8"))
    assert shown == sample_flow().to_dict()


def test_the_reference_names_every_function() -> None:
    text = DOC.read_text(encoding="utf-8")
    functions = [name for name in mb.__all__ if name[0].islower()]
    missing = [name for name in functions if f"`{name}(" not in text]
    assert missing == []
