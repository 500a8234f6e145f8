"""meta.local.logtrim: a running step's log past RAM_BYTES gives its middle back to the RAM, and
keeps its size, its first and its last part; anything but a regular file is left alone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from meta.local import logtrim
from meta.local.logtrim import LogTrimmer

PART = 1 << 20


@pytest.fixture
def ram(tmp_path: Path) -> Iterator[Path]:
    """A folder on the RAM disk where the machine has one (where the logs are), else tmp."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = shm / f"logtrim-test-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def _log(path: Path, megabytes: int) -> bytes:
    """A log of `megabytes` MiB whose every MiB is filled with its own letter."""
    data = b"".join(bytes([65 + i % 26]) * PART for i in range(megabytes))
    path.write_bytes(data)
    return data


def test_a_log_past_the_bound_keeps_its_size_its_first_and_last_parts(ram: Path) -> None:
    log = ram / "1.out"
    data = _log(log, 24)
    LogTrimmer(PART).trim(str(log))
    kept = log.read_bytes()
    assert len(kept) == len(data)
    assert kept[:PART] == data[:PART] and kept[-PART:] == data[-PART:]
    assert kept[PART:-PART] == bytes(len(data) - 2 * PART), "the middle reads as a hole"
    assert os.stat(log).st_blocks * 512 <= 2 * PART + 65536


def test_a_log_within_the_bound_and_what_is_no_log_are_left_alone(ram: Path) -> None:
    small = ram / "small.out"
    data = _log(small, 4)
    target = ram / "target"
    whole = _log(target, 24)
    link = ram / "link.out"
    link.symlink_to(target)
    fifo = ram / "fifo.out"
    os.mkfifo(fifo)
    trimmer = LogTrimmer(PART)
    for path in (small, link, fifo, ram / "gone.out"):
        trimmer.trim(str(path))
    assert small.read_bytes() == data
    assert target.read_bytes() == whole


def test_running_logs_are_looked_at_until_their_step_ends(
    ram: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logtrim, "CHECK_SECONDS", 0.01)
    running, ended = ram / "running.out", ram / "ended.out"

    async def main() -> None:
        trimmer = LogTrimmer(PART)
        loop = asyncio.get_running_loop()
        trimmer.add(1, loop, str(running))
        trimmer.add(2, loop, str(ended))
        trimmer.discard(2)
        _log(running, 24)
        _log(ended, 24)
        await asyncio.sleep(0.2)
        trimmer.close()

    asyncio.run(main())
    assert os.stat(running).st_blocks * 512 <= 2 * PART + 65536
    assert os.stat(ended).st_blocks * 512 >= 24 * PART
