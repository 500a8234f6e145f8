"""Issue 13, item 3: the quarterback keeps a section's result with the local runtime's rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meta.kube.quarterback.main import keep_result
from meta.trees import OutputRefused


def test_a_link_out_of_a_steps_outputs_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.symlink("/etc", out / "etc")
    with pytest.raises(OutputRefused, match="'etc' links outside META_OUTPUT"):
        keep_result({}, str(out), str(tmp_path / "kept"))


def test_outputs_replaced_by_a_link_are_refused(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "out")
    with pytest.raises(OutputRefused, match="replaced by a link"):
        keep_result({}, str(tmp_path / "out"), str(tmp_path / "kept"))


def test_a_combined_result_is_kept_part_by_part(tmp_path: Path) -> None:
    a, b, combined = tmp_path / "a", tmp_path / "b", tmp_path / "combined"
    for folder in (a, b, combined):
        folder.mkdir()
    (a / "x").write_text("x")
    os.symlink(a, combined / "first")
    os.symlink(b, combined / "second")
    parts = {str(combined): [("first", str(a)), ("second", str(b)), ("none", str(tmp_path / "n"))]}
    keep_result(parts, str(combined), str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "first" / "x").read_text() == "x"
    assert (tmp_path / "kept" / "second").is_dir() and (tmp_path / "kept" / "none").is_dir()
