"""`meta watch`: a folder where dropping a schema gives a flow (and, if asked, a run).

Dropping `NAME.schema.json` (with an optional `NAME.data.json` beside it) writes `NAME.flow.yaml`;
a description the generators refuse writes `NAME.error.txt` instead, and the watcher goes on.
File events come from watchdog (inotify on Linux), never from a polling loop; they are handled
one at a time on the caller's thread, so runs keep their signal handling.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from meta.errors import UserError
from meta.generate.pipeline import generate, read_description
from meta.generate.plugins import Plugins, load_plugins
from meta.local.report import write_text
from meta.local.runner import Outcome, start_run

SCHEMA_SUFFIX = ".schema.json"
DATA_SUFFIX = ".data.json"
SETTLE_SECONDS = 0.2
"""Events for one name that arrive this close together are handled once (editors write twice)."""


@dataclass(frozen=True)
class WatchEvent:
    """What the watcher did for one name, for the caller to show."""

    name: str
    flow: Path | None = None
    generator: str = ""
    error: Path | None = None
    run: Outcome | None = None


def described_name(path: Path) -> str | None:
    """The NAME of `NAME.schema.json` or `NAME.data.json`; None for any other file."""
    for suffix in (SCHEMA_SUFFIX, DATA_SUFFIX):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


class _Names(FileSystemEventHandler):
    def __init__(self, names: queue.Queue[str]) -> None:
        self._names = names

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        target = getattr(event, "dest_path", "") or event.src_path
        name = described_name(Path(str(target)))
        if name is not None:
            self._names.put(name)


class Watcher:
    def __init__(self, folder: Path, *, run: bool = False, plugins: Plugins | None = None) -> None:
        self.folder = folder.resolve()
        self.run = run
        self._plugins = plugins or load_plugins()
        self._names: queue.Queue[str] = queue.Queue()

    def handle(self, name: str) -> WatchEvent:
        """Generate (and run) the flow of one name; a refused description writes NAME.error.txt."""
        schema = self.folder / f"{name}{SCHEMA_SUFFIX}"
        data = self.folder / f"{name}{DATA_SUFFIX}"
        flow = self.folder / f"{name}.flow.yaml"
        error = self.folder / f"{name}.error.txt"
        if not schema.is_file():
            return WatchEvent(name)
        try:
            described = read_description(
                schema, data=data if data.is_file() else None, flow_dir=self.folder
            )
            generated = generate(self._plugins, described, flow_path=flow)
            write_text(flow, generated.yaml())
            error.unlink(missing_ok=True)
            outcome = self._run(name, flow) if self.run else None
        except (UserError, OSError) as exc:
            faults = exc.faults if isinstance(exc, UserError) else (f"{name}: {exc}",)
            with contextlib.suppress(OSError):
                write_text(error, "".join(f"{fault}\n" for fault in faults))
            return WatchEvent(name, error=error)
        return WatchEvent(name, flow=flow, generator=generated.generator, run=outcome)

    def _run(self, name: str, flow: Path) -> Outcome:
        """Run into a folder of its own, `runs/NAME.<time>`, and point `runs/NAME` at it: an
        earlier run stays where it ran, so its report still names its own outputs."""
        runs = self.folder / "runs"
        workdir = _free(runs / f"{name}.{time.strftime('%Y%m%d-%H%M%S')}")
        latest = runs / name
        if latest.exists() and not latest.is_symlink():
            shutil.move(latest, _free(runs / f"{name}.earlier"))
        link = runs / f".{name}.link"
        link.unlink(missing_ok=True)
        workdir.mkdir(parents=True)
        link.symlink_to(workdir.name)
        os.replace(link, latest)
        return start_run(flow, workdir, {})

    def watch(self, tell: Callable[[WatchEvent], None]) -> None:
        """Handle the names already in the folder, then every change, until interrupted."""
        observer = Observer()
        observer.schedule(_Names(self._names), str(self.folder), recursive=False)
        observer.start()
        try:
            for schema in sorted(self.folder.glob(f"*{SCHEMA_SUFFIX}")):
                self._names.put(schema.name[: -len(SCHEMA_SUFFIX)])
            while True:
                for name in self._settled():
                    event = self.handle(name)
                    tell(event)
                    if event.run is not None and event.run.state == "cancelled":
                        # Ctrl-C (or SIGTERM) during a run cancels the run; it stops us too.
                        raise KeyboardInterrupt
        finally:
            observer.stop()
            observer.join()

    def _settled(self) -> list[str]:
        """The next names to handle: block for one, then gather those that follow it closely."""
        names = [self._names.get()]
        with contextlib.suppress(queue.Empty):
            while True:
                names.append(self._names.get(timeout=SETTLE_SECONDS))
        return list(dict.fromkeys(names))


def _free(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate
