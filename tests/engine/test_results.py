"""Reading a step's result, and a result the framework kept, whatever a step wrote."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from meta.engine.results import (
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    NotRegularFile,
    ResultRefused,
    read_kept,
    read_result,
)


def test_a_result_nests_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text("[" * MAX_RESULT_DEPTH + "]" * MAX_RESULT_DEPTH)
    value = read_result(str(path))
    for _ in range(MAX_RESULT_DEPTH - 1):
        (value,) = value
    assert value == []


@pytest.mark.parametrize("depth", [MAX_RESULT_DEPTH + 1, 30_000])
def test_a_result_nested_deeper_is_refused_with_a_reason(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"a": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(ResultRefused, match="is nested too deeply"):
        read_result(str(path))


def test_a_kept_result_nested_too_deeply_to_read_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "kept.json"
    path.write_text("[" * 30_000 + "]" * 30_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_kept(str(path))


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: os.mkfifo(path), "a FIFO"),
        (lambda path: os.symlink("/dev/zero", path), "a symbolic link"),
        (lambda path: os.symlink("/etc/hostname", path), "a symbolic link"),
        (lambda path: os.mkdir(path), "a folder"),
        (lambda path: socket.socket(socket.AF_UNIX).bind(str(path)), "a socket"),
    ],
)
def test_a_result_that_is_not_a_file_is_refused_at_once(
    tmp_path: Path, make: Callable[[Path], None], kind: str
) -> None:
    """A FIFO would block the reader for good; a link stands for a file the step did not
    write."""
    path = tmp_path / "result.json"
    make(path)
    with pytest.raises(ResultRefused) as refused:
        read_result(str(path))
    assert str(refused.value) == f"its result ($META_RESULT) is {kind}, not a file"
    with pytest.raises(NotRegularFile):
        read_kept(str(path))


def test_a_result_too_large_says_its_size(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(" " * (MAX_RESULT_BYTES + 10))
    with pytest.raises(ResultRefused, match=f"is {MAX_RESULT_BYTES + 10} bytes"):
        read_result(str(path))
