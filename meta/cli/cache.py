"""`meta cache ls` and `meta cache clear`: the cache runs share for units that say `cache:`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from meta.cachedir import CacheDir, Entry, default_cache_dir
from meta.cli.common import OUTPUT, cache_dir_option, duration, user_errors
from meta.local.runs import parse_age


def _directory(cache_dir: Path | None) -> CacheDir:
    return CacheDir(str(cache_dir or default_cache_dir()))


@click.group(name="cache")
def cache_group() -> None:
    """The cache runs share: units that say `cache:` reuse an entry whose key matches."""


@cache_group.command(name="ls")
@cache_dir_option
@OUTPUT
@user_errors
def ls(cache_dir: Path | None, fmt: str) -> None:
    """List the entries: key, the unit and run that made it, size, age (newest first)."""
    directory = _directory(cache_dir)
    entries = sorted(directory.entries(), key=lambda e: e.created_at, reverse=True)
    if fmt == "json":
        click.echo(json.dumps([_view(entry) for entry in entries], indent=2))
        return
    if not entries:
        click.echo(f"no entries in {directory.root}")
        return
    now = time.time()
    header = ("KEY", "UNIT", "RUN", "SIZE", "AGE")
    rows = [
        (e.key[:12], e.unit, e.run, _size(e.size), duration(max(0.0, now - e.created_at)))
        for e in entries
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@cache_group.command(name="clear")
@click.option(
    "--older-than",
    "age",
    default=None,
    metavar="AGE",
    help="Remove only entries made longer ago than this (30m, 12h, 7d, 2w) [default: all].",
)
@cache_dir_option
@OUTPUT
@user_errors
def clear(age: str | None, cache_dir: Path | None, fmt: str) -> None:
    """Remove cache entries (a run using one keeps its own copy or link of the outputs)."""
    try:
        seconds = None if age is None else parse_age(age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    removed = _directory(cache_dir).clear(seconds)
    if fmt == "json":
        click.echo(json.dumps({"removed": [_view(entry) for entry in removed]}, indent=2))
        return
    for entry in removed:
        click.echo(f"removed {entry.key[:12]} ({entry.unit}, from {entry.run})")
    if not removed:
        click.echo("nothing to remove")


def _view(entry: Entry) -> dict[str, object]:
    return {
        "key": entry.key,
        "unit": entry.unit,
        "run": entry.run,
        "bytes": entry.size,
        "files": entry.manifest.files if entry.manifest is not None else 0,
        "createdAt": entry.created_at,
        "ageSeconds": round(max(0.0, time.time() - entry.created_at), 3),
    }


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "TiB":
            break
    return f"{scaled:.1f} {unit}"
