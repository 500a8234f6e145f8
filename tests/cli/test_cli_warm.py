"""`meta step warm-starter`, the hidden command meta.local.warm starts (tests/local/test_warm.py
tries what it forks): given no socket to answer on, it says so and exits 2."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from meta.cli import main


def test_the_warm_starter_given_no_socket_exits_2(tmp_path: Path) -> None:
    file = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT)
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    try:
        for fd, reason in (
            (closed, "Bad file descriptor"),
            (file, "Socket operation on non-socket"),
        ):
            result = CliRunner().invoke(main, ["step", "warm-starter", f"--fd={fd}"])
            assert result.exit_code == 2
            assert f"warm-starter: --fd={fd} is no socket: {reason}" in result.output
    finally:
        os.close(file)


def test_the_warm_starter_is_not_listed_among_the_steps() -> None:
    result = CliRunner().invoke(main, ["step", "--help"])
    assert result.exit_code == 0
    assert "validate-node" in result.output
    assert "warm-starter" not in result.output
