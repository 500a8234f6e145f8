"""Reading a step's result, and a result the framework kept, whatever a step wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta.engine.results import MAX_RESULT_DEPTH, ResultRefused, read_kept, read_result


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
