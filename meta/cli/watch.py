"""`meta watch`: a folder where dropping a schema gives a flow (and, if asked, a run).

Dropping `NAME.schema.json` (or `.schema.yaml`; with an optional `NAME.data.json` or
`.data.yaml` beside it) writes `NAME.flow.yaml`; a description the generators refuse, or one
that takes longer than the time limit, writes `NAME.error.txt` instead, and the watcher goes on.
Each description is generated in a forked worker of its own (`meta.generate.worker`), several
at once, so a slow file holds up no other. File events come from watchdog (inotify on Linux),
never from a polling loop; runs (`--run`) happen one at a time on the caller's thread, so they
keep their signal handling.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from meta.generate.plugins import Plugins, load_plugins
from meta.generate.worker import SCHEMA_SUFFIXES, described_name, generate_in_worker, pair
from meta.local.report import write_text
from meta.local.runner import Outcome, start_run

SETTLE_SECONDS = 0.2
"""Events for one name that arrive this close together are handled once (editors write twice)."""
DEFAULT_TIME_LIMIT = 60.0
"""How long one description may take to generate before its worker is stopped."""
WORKERS = 4
"""How many descriptions are generated at once."""


@dataclass(frozen=True)
class WatchEvent:
    """What the watcher did for one name, for the caller to show."""

    name: str
    flow: Path | None = None
    generator: str = ""
    error: Path | None = None
    run: Outcome | None = None


class _Names(FileSystemEventHandler):
    def __init__(self, inbox: queue.Queue[str | WatchEvent]) -> None:
        self._inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        target = getattr(event, "dest_path", "") or event.src_path
        name = described_name(Path(str(target)))
        if name is not None:
            self._inbox.put(name)


class Watcher:
    def __init__(
        self,
        folder: Path,
        *,
        run: bool = False,
        plugins: Plugins | None = None,
        time_limit: float = DEFAULT_TIME_LIMIT,
        workers: int = WORKERS,
    ) -> None:
        self.folder = folder.resolve()
        self.run = run
        self.time_limit = time_limit
        self._plugins = plugins or load_plugins()
        self._inbox: queue.Queue[str | WatchEvent] = queue.Queue()
        """Names that changed (from watchdog) and generations that ended (from workers)."""
        self._slots = threading.Semaphore(workers)
        self._busy: set[str] = set()
        self._again: set[str] = set()
        """Names that changed again while being generated: generated once more after."""

    def generate(self, name: str) -> WatchEvent:
        """Generate the flow of one name in a worker process: NAME.flow.yaml, or NAME.error.txt
        with the faults (a refusal, a generator's crash, or the time limit)."""
        schema, data = pair(self.folder, name)
        if schema is None:
            return WatchEvent(name)
        flow = self.folder / f"{name}.flow.yaml"
        error = self.folder / f"{name}.error.txt"
        attempt = generate_in_worker(
            self._plugins, schema, flow, data=data, seconds=self.time_limit
        )
        try:
            if attempt.yaml is not None:
                write_text(flow, attempt.yaml)
                error.unlink(missing_ok=True)
                return WatchEvent(name, flow=flow, generator=attempt.generator)
            write_text(error, "".join(f"{fault}\n" for fault in attempt.faults))
        except OSError as exc:
            with contextlib.suppress(OSError):
                write_text(error, f"{name}: cannot write into {self.folder}: {exc}\n")
        return WatchEvent(name, error=error)

    def watch(self, tell: Callable[[WatchEvent], None]) -> None:
        """Handle the names already in the folder, then every change, until interrupted."""
        observer = Observer()
        observer.schedule(_Names(self._inbox), str(self.folder), recursive=False)
        observer.start()
        try:
            for suffix in SCHEMA_SUFFIXES:
                for schema in sorted(self.folder.glob(f"*{suffix}")):
                    self._inbox.put(schema.name[: -len(suffix)])
            while True:
                for item in self._settled():
                    if isinstance(item, WatchEvent):
                        self._ended(item, tell)
                    else:
                        self._start(item)
        finally:
            observer.stop()
            observer.join()

    def _start(self, name: str) -> None:
        if name in self._busy:
            self._again.add(name)
            return
        self._busy.add(name)
        # A daemon thread per generation, waiting on its worker process: an interrupted
        # watcher exits at once, and multiprocessing stops the daemonic workers.
        threading.Thread(target=self._generate_in_slot, args=(name,), daemon=True).start()

    def _generate_in_slot(self, name: str) -> None:
        with self._slots:
            self._inbox.put(self.generate(name))

    def _ended(self, event: WatchEvent, tell: Callable[[WatchEvent], None]) -> None:
        self._busy.discard(event.name)
        if event.name in self._again:
            self._again.discard(event.name)
            self._start(event.name)
            return
        if self.run and event.flow is not None:
            event = replace(event, run=self._run(event.name, event.flow))
        tell(event)
        if event.run is not None and event.run.state == "cancelled":
            # Ctrl-C (or SIGTERM) during a run cancels the run; it stops us too.
            raise KeyboardInterrupt

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

    def _settled(self) -> list[str | WatchEvent]:
        """The next items: block for one, then gather those that follow it closely (a name
        once, ended generations as they come)."""
        items = [self._inbox.get()]
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._inbox.get(timeout=SETTLE_SECONDS))
        names = dict.fromkeys(item for item in items if isinstance(item, str))
        return [*(item for item in items if isinstance(item, WatchEvent)), *names]


def _free(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate
