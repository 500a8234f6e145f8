"""`meta cache ls` and `meta cache clear`: the cache runs share for units that say `cache:`;
locally a folder (`--cache-dir`), in a cluster (`-n NS --store-claim PVC`) the store's `.cache`,
read by a short-lived pod (`meta.kube.cachepod`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from meta.cachedir import CacheDir, Entry, default_cache_dir
from meta.cli.common import OUTPUT, cache_dir_option, duration, user_errors
from meta.cli.kube import KUBECONFIG
from meta.kube.types import DEFAULT_IMAGE, RUN_AS_USER
from meta.local.runs import parse_age


def _directory(cache_dir: Path | None) -> CacheDir:
    return CacheDir(str(cache_dir or default_cache_dir()))


def cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where the cache is when it is a cluster's: the store's claim, and how the pod that
    reads it is made (as `meta operator` makes its pods)."""
    options = [
        click.option(
            "-n", "--namespace", default=None, metavar="NS",
            help="The cluster's cache (the store's), read by a pod in this namespace "
            "[default: the local cache].",
        ),
        KUBECONFIG,
        click.option("--store-claim", metavar="PVC", help="The claim of the store (with -n)."),
        click.option("--image", default=DEFAULT_IMAGE, show_default=True,
                     help="The framework image the pod runs (with -n)."),
        click.option("--image-pull-policy", default="IfNotPresent", show_default=True,
                     type=click.Choice(["Always", "IfNotPresent", "Never"])),
        click.option("--node-selector", "node_selectors", multiple=True, metavar="KEY=VALUE",
                     help="Schedule the pod only on nodes with this label (repeatable)."),
        click.option("--toleration", "tolerations", multiple=True,
                     metavar="KEY[=VALUE]:EFFECT", help="Add this toleration to the pod."),
        click.option("--run-as-user", type=click.IntRange(min=0), default=RUN_AS_USER,
                     show_default=True, metavar="UID"),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _in_cluster(cluster: dict[str, Any], args: list[str]) -> Any:
    """What `meta cache ARGS -o json` says in the cluster; None when no -n was given."""
    namespace = cluster.pop("namespace")
    if namespace is None:
        return None
    from meta.cli.kube import kube_api, placement
    from meta.kube.cachepod import run_cache_command
    from meta.kube.types import PodSettings

    if not cluster["store_claim"]:
        raise click.UsageError("-n reads the store's cache: give --store-claim PVC too")
    selectors, tolerations = placement(cluster["node_selectors"], cluster["tolerations"])
    settings = PodSettings(
        default_image=cluster["image"],
        image_pull_policy=cluster["image_pull_policy"],
        store_claim=cluster["store_claim"],
        node_selector=selectors,
        tolerations=tolerations,
        run_as_user=cluster["run_as_user"],
    )
    api = kube_api(cluster["kubeconfig"])
    try:
        return asyncio.run(run_cache_command(api, namespace, settings, args))
    finally:
        api.close()


@click.group(name="cache")
def cache_group() -> None:
    """The cache runs share: units that say `cache:` reuse an entry whose key matches."""


@cache_group.command(name="ls")
@cache_dir_option
@cluster_options
@OUTPUT
@user_errors
def ls(cache_dir: Path | None, fmt: str, **cluster: Any) -> None:
    """List the entries: key, the unit and run that made it, size, age (newest first)."""
    namespace = cluster["namespace"]
    views = _in_cluster(cluster, ["ls"])
    if views is None:
        directory = _directory(cache_dir)
        entries = sorted(directory.entries(), key=lambda e: e.created_at, reverse=True)
        views = [_view(entry) for entry in entries]
        where = directory.root
    else:
        where = f"the store's cache (namespace {namespace}, claim {cluster['store_claim']})"
    if fmt == "json":
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo(f"no entries in {where}")
        return
    header = ("KEY", "UNIT", "RUN", "SIZE", "AGE")
    rows = [
        (v["key"][:12], v["unit"], v["run"], _size(v["bytes"]), duration(v["ageSeconds"]))
        for v in views
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
@cluster_options
@OUTPUT
@user_errors
def clear(age: str | None, cache_dir: Path | None, fmt: str, **cluster: Any) -> None:
    """Remove cache entries (a run using one keeps its own copy or link of the outputs)."""
    try:
        seconds = None if age is None else parse_age(age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    answer = _in_cluster(cluster, ["clear", *(["--older-than", age] if age else [])])
    if answer is None:
        removed = [_view(entry) for entry in _directory(cache_dir).clear(seconds)]
    else:
        removed = list(answer["removed"])
    if fmt == "json":
        click.echo(json.dumps({"removed": removed}, indent=2))
        return
    for entry in removed:
        click.echo(f"removed {entry['key'][:12]} ({entry['unit']}, from {entry['run']})")
    if not removed:
        click.echo("nothing to remove")


def _view(entry: Entry) -> dict[str, Any]:
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
