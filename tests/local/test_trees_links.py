"""Hard-linked copies and measures of folders put together (meta.trees, for the cache)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from meta.trees import copy_tree, link_tree, measure_parts, measure_tree


def outputs(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.bin").write_bytes(b"\0" * 70000 + b"b")
    return folder


def test_link_tree_links_files_and_measures_as_a_copy(tmp_path: Path) -> None:
    source = outputs(tmp_path / "source")
    linked = link_tree(str(source), str(tmp_path / "linked"))
    assert linked == copy_tree(str(source), str(tmp_path / "copied"))
    assert (tmp_path / "linked" / "sub" / "b.bin").stat().st_ino == (
        source / "sub" / "b.bin"
    ).stat().st_ino


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no second file system at hand")
def test_link_tree_copies_across_file_systems(tmp_path: Path) -> None:
    source = outputs(tmp_path / "source")
    if os.stat("/dev/shm").st_dev == source.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system here")
    target = Path("/dev/shm") / f"meta-test-links-{os.getpid()}"
    try:
        assert link_tree(str(source), str(target)) == measure_tree(str(source))
        assert (target / "a.txt").read_text() == "alpha"
        assert (target / "a.txt").stat().st_ino != (source / "a.txt").stat().st_ino
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_measure_parts_is_the_measure_of_the_parts_put_together(tmp_path: Path) -> None:
    one = outputs(tmp_path / "one")
    two = tmp_path / "two"
    two.mkdir()
    (two / "c").write_text("c")
    parts = [("x", str(one)), ("y/z", str(two)), ("empty", str(tmp_path / "wrote-nothing"))]
    together = tmp_path / "together"
    for inside, folder in parts:
        if Path(folder).is_dir():
            copy_tree(folder, str(together / inside))
        else:
            (together / inside).mkdir(parents=True)
    assert measure_parts(parts) == measure_tree(str(together))
    assert measure_parts([("", str(one))]) == measure_tree(str(one))
    assert measure_parts([("", str(tmp_path / "wrote-nothing"))]) is None
