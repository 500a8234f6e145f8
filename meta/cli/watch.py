"""`meta watch`: a folder where dropping a schema gives a flow (and, if asked, a run).

Dropping `NAME.schema.json` (or `.schema.yaml`; with an optional `NAME.data.json` or
`.data.yaml` beside it) writes `NAME.flow.yaml`; a description the generators refuse, or one
that takes longer than the time limit, writes `NAME.error.txt` instead (removing the
`NAME.flow.yaml` an earlier version made), and so does a flow whose
run cannot start (a data file it names is not there), and the watcher goes on. A name too long
for `NAME.error.txt` has its faults told in the log instead.
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

from meta.errors import UserError
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
    """NAME.error.txt, when the description was refused or its flow's run could not start."""
    faults: tuple[str, ...] = ()
    """What was wrong, when NAME.error.txt could not be written to say it."""
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
        attempt = generate_in_worker(
            self._plugins, schema, flow, data=data, seconds=self.time_limit
        )
        if attempt.yaml is None:
            # The flow of the description as it was is not the flow of this one: the error
            # file stands instead of it, not beside it.
            with contextlib.suppress(OSError):
                flow.unlink(missing_ok=True)
            return self._refused(name, [str(fault) for fault in attempt.faults])
        try:
            write_text(flow, attempt.yaml)
        except OSError as exc:
            return self._refused(name, [f"{name}: cannot write into {self.folder}: {exc}"])
        with contextlib.suppress(OSError):
            self._error_file(name).unlink(missing_ok=True)
        return WatchEvent(name, flow=flow, generator=attempt.generator)

    def _error_file(self, name: str) -> Path:
        return self.folder / f"{name}.error.txt"

    def _refused(self, name: str, faults: list[str]) -> WatchEvent:
        """NAME.error.txt with the faults; or, when it cannot be written (a name too long for
        it, a folder gone read-only), the faults to tell in the log."""
        error = self._error_file(name)
        try:
            write_text(error, "".join(f"{fault}\n" for fault in faults))
        except OSError as exc:
            unwritten = f"{name}.error.txt cannot be written in {self.folder}: {exc.strerror}"
            return WatchEvent(name, faults=(*faults, unwritten))
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
            try:
                event = replace(event, run=self._run(event.name, event.flow))
            except UserError as exc:
                refused = self._refused(event.name, [str(fault) for fault in exc.faults])
                event = replace(event, error=refused.error, faults=refused.faults)
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
        earlier = os.readlink(latest) if latest.is_symlink() else None
        link = runs / f".{name}.link"
        link.unlink(missing_ok=True)
        workdir.mkdir(parents=True)
        link.symlink_to(workdir.name)
        os.replace(link, latest)
        try:
            return start_run(flow, workdir, {})
        except UserError:
            # The run did not start (it writes nothing before its flow and inputs are valid):
            # no empty folder is left, and runs/NAME is the earlier run again.
            with contextlib.suppress(OSError):
                workdir.rmdir()
            if workdir.exists():
                raise
            if earlier is None:
                latest.unlink()
            else:
                link.symlink_to(earlier)
                os.replace(link, latest)
            raise

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
