"""The cache directory alone: entries whole or absent, what they give back, writers at once."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meta.cachedir import CacheDir, default_cache_dir

KEY = hashlib.sha256(b"unit").hexdigest()


def folder(tmp_path: Path, text: str) -> Path:
    made = tmp_path / f"out-{text}"
    made.mkdir()
    (made / "value").write_text(text)
    return made


def test_an_entry_gives_back_its_outputs_and_what_else_it_kept(tmp_path: Path) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    assert cache.find(KEY) is None
    made = cache.put(KEY, [("", str(folder(tmp_path, "v")))], "f/u", "runs/one", {"result": [1]})
    found = cache.find(KEY)
    assert found == made and found is not None
    assert (found.unit, found.run, dict(found.extra)) == ("f/u", "runs/one", {"result": [1]})
    target = tmp_path / "restored" / "outputs"
    assert cache.restore(found, str(target)) == found.manifest
    assert (target / "value").read_text() == "v"
    assert Path(found.outputs, "value").stat().st_mode & 0o222 == 0, "entries are read-only"


def test_a_unit_that_wrote_nothing_is_an_entry_without_outputs(tmp_path: Path) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    made = cache.put(KEY, [("", str(tmp_path / "none"))], "f/u", "runs/one")
    assert made.manifest is None and cache.find(KEY) == made
    target = tmp_path / "restored"
    target.mkdir()
    (target / "left-by-a-failed-attempt").write_text("x")
    assert cache.restore(made, str(target)) is None
    assert not target.exists(), "nothing where a unit that wrote nothing would have nothing"


def test_writers_of_one_key_at_once_leave_one_entry_the_first(tmp_path: Path) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    sources = [folder(tmp_path, str(n)) for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda s: cache.put(KEY, [("", str(s))], "f/u", s.name), sources))
    assert len({entry.run for entry in made}) == 1, "every writer got the one entry there is"
    assert [entry.key for entry in cache.entries()] == [KEY]
    assert os.listdir(tmp_path / "cache" / "tmp") == []


def test_a_corrupt_entry_is_a_miss_and_the_next_writer_replaces_it(tmp_path: Path) -> None:
    cache = CacheDir(str(tmp_path / "cache"))
    made = cache.put(KEY, [("", str(folder(tmp_path, "v")))], "f/u", "runs/one")
    os.unlink(Path(made.outputs, "value"))
    assert cache.find(KEY) is None, "outputs unlike the manifest"
    again = cache.put(KEY, [("", str(folder(tmp_path, "w")))], "f/u", "runs/two")
    assert cache.find(KEY) == again and again.run == "runs/two"


def test_the_default_folder_follows_meta_cache_dir_and_xdg() -> None:
    assert default_cache_dir({"META_CACHE_DIR": "/c"}) == "/c/outputs"
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/meta-orchestrator/outputs"


def test_a_users_own_cache_is_private_and_takes_no_entry_another_user_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    cache = CacheDir(str(root))
    made = cache.put(KEY, [("", str(folder(tmp_path, "v")))], "f/u", "runs/one")
    for part in ("entries", "entries/" + KEY[:2], "tmp", "locks"):
        assert (root / part).stat().st_mode & 0o022 == 0, f"{part}: only its user may add"
    assert cache.find(KEY) == made
    # Seen by another user, the entry is someone else's: a miss, never their outputs.
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(made.path).st_uid + 1)
    assert cache.find(KEY) is None
    assert list(cache.entries()) == []


def test_a_shared_cache_is_open_to_every_user_and_takes_their_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    cache = CacheDir(str(root), shared=True)
    made = cache.put(KEY, [("", str(folder(tmp_path, "v")))], "f/u", "runs/one")
    for part in ("entries", "entries/" + KEY[:2], "tmp", "locks"):
        assert (root / part).stat().st_mode & 0o1777 == 0o1777, part
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(made.path).st_uid + 1)
    assert cache.find(KEY) == made
