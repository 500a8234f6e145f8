"""`meta cache ls` and `meta cache clear`: what a cache holds, and removing old entries."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from meta.cachedir import CacheDir
from tests.cli.conftest import Result

DAY = 86400.0


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def made(tmp_path: Path, cache: CacheDir, name: str, data: bytes, age: float) -> str:
    """An entry of one unit's outputs (a file `out` holding `data`), made `age` seconds ago."""
    folder = tmp_path / "outputs" / name
    folder.mkdir(parents=True)
    (folder / "out").write_bytes(data)
    entry = cache.put(key(name), [("", str(folder))], f"flow/main/{name}", f"runs/{name}-run")
    body_path = Path(entry.path) / "entry.json"
    body = json.loads(body_path.read_text())
    body["createdAt"] = time.time() - age
    body_path.write_text(json.dumps(body))
    return entry.key


def test_ls_shows_key_unit_run_size_and_age_newest_first(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    made(tmp_path, cache, "old", b"x" * 3000, 10 * DAY)
    made(tmp_path, cache, "new", b"y" * 10, 3600)
    shown = meta("cache", "ls", "--cache-dir", tmp_path / "cache")
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["KEY", "UNIT", "RUN", "SIZE", "AGE"]
    assert lines[1].split()[:5] == [key("new")[:12], "flow/main/new", "runs/new-run", "10", "B"]
    assert lines[2].split()[:5] == [key("old")[:12], "flow/main/old", "runs/old-run", "2.9", "KiB"]
    assert lines[1].split()[-1] == "1h00m" and lines[2].split()[-1] == "10d00h"

    listed = json.loads(meta("cache", "ls", "--cache-dir", tmp_path / "cache", "-o", "json").stdout)
    assert [(e["unit"], e["bytes"], e["files"]) for e in listed] == [
        ("flow/main/new", 10, 1),
        ("flow/main/old", 3000, 1),
    ]
    assert listed[0]["key"] == key("new") and listed[0]["run"] == "runs/new-run"
    assert 9.9 * DAY < listed[1]["ageSeconds"] < 10.1 * DAY


def test_an_empty_or_missing_cache_says_so(meta: Callable[..., Result], tmp_path: Path) -> None:
    shown = meta("cache", "ls", "--cache-dir", tmp_path / "none")
    assert (shown.code, shown.stdout.strip()) == (0, f"no entries in {tmp_path / 'none'}")
    assert (
        json.loads(meta("cache", "ls", "--cache-dir", tmp_path / "none", "-o", "json").stdout) == []
    )


def test_clear_older_than_removes_only_old_entries(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    old = made(tmp_path, cache, "old", b"x", 8 * DAY)
    new = made(tmp_path, cache, "new", b"y", 3600)
    cleared = meta("cache", "clear", "--older-than", "7d", "--cache-dir", tmp_path / "cache")
    assert cleared.code == 0, cleared.stderr
    assert cleared.stdout.splitlines() == [f"removed {old[:12]} (flow/main/old, from runs/old-run)"]
    assert [entry.key for entry in cache.entries()] == [new]
    again = meta("cache", "clear", "--older-than", "7d", "--cache-dir", tmp_path / "cache")
    assert again.stdout.strip() == "nothing to remove"


def test_clear_without_an_age_removes_everything_json_lists_it(
    meta: Callable[..., Result], tmp_path: Path
) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    made(tmp_path, cache, "a", b"1", 5)
    made(tmp_path, cache, "b", b"2", 5)
    os.makedirs(tmp_path / "cache" / "tmp" / "half-made")
    cleared = meta("cache", "clear", "--cache-dir", tmp_path / "cache", "-o", "json")
    assert cleared.code == 0, cleared.stderr
    removed = json.loads(cleared.stdout)["removed"]
    assert sorted(entry["unit"] for entry in removed) == ["flow/main/a", "flow/main/b"]
    assert list(cache.entries()) == []
    assert not (tmp_path / "cache" / "tmp" / "half-made").exists(), "leftovers of a dead writer go"


def test_a_bad_age_is_one_line_and_exit_2(meta: Callable[..., Result], tmp_path: Path) -> None:
    cleared = meta("cache", "clear", "--older-than", "soon", "--cache-dir", tmp_path)
    assert cleared.code == 2
    assert "expected a number and a unit" in cleared.stderr


def test_the_clusters_cache_needs_the_stores_claim(meta: Callable[..., Result]) -> None:
    shown = meta("cache", "ls", "-n", "team")
    assert shown.code == 2
    assert "--store-claim" in shown.stderr
