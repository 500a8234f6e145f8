"""`meta ui`'s server: a read-only aiohttp app over local workdirs (or, given a source of
them, a cluster's MetaFlows: `meta.ui.cluster`).

Every route is a GET. A run is named by the key `/api/runs` lists for it (its workdir as
given), never by a path the page sends, and a unit by its id in that run's journal, so no
request can reach a file outside the runs being shown; static files are served without
following links. A request is answered only when its Host names this server (`_guard`) and
its Origin, when it has one, is the page's own: a site whose name is rebound to this machine
reaches nothing.

Live updates are server-sent events: one task per watched run tails its journal (the only
loop that waits on a timer is here, on the server) and wakes every page watching it, which
then gets the run's counts and the rows of the units that changed. A slow page is not queued
up: the ids changed since its last message are gathered and sent together. The runs list is
live the same way: while a page shows it, one task lists the runs again every
RUNS_SECONDS and sends the list to every such page when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from meta.errors import MetaError, UserError
from meta.flow.files import display_path
from meta.local.runs import find_runs, holds_run, read_run
from meta.ui.model import RunModel, UnitsModel

RUNS_SECONDS = 1.0
"""How often the runs are listed again while a page shows the list."""
HEARTBEAT_SECONDS = 15.0
"""A comment line this often, so a page that went away is noticed."""
ROWS_PER_MESSAGE = 2000
"""Changed units sent as rows in one message at most; past this the message says `more`, and
the page reloads the windows it shows."""
log = logging.getLogger(__name__)
ROWS_LIMIT = 1000
"""Rows one /api/units request returns at most."""
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""The names of this machine a request may give in its Host, whatever the server is bound to."""
# A Host header: a name or an IPv4 address, or an IPv6 one in brackets; then a port or none.
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^\[\]:@/\\]+)(?::([0-9]{1,5}))?", re.IGNORECASE)


@dataclass(eq=False)
class _Page:
    """One page watching a run: what changed since its last message."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    changed: set[str] = field(default_factory=set)


@dataclass
class _Watch:
    model: UnitsModel
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the model is read or changed: it is changed in a worker thread (reading a
    big journal takes seconds, and the loop goes on serving meanwhile)."""
    pages: set[_Page] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


@dataclass
class _Feed:
    """The runs list as the pages showing it last got it, listed again by one task while any
    page shows it."""

    listing: dict[str, Any] | None = None
    pages: set[_Page] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class RunsSource(Protocol):
    """Where the runs shown come from: local workdirs, or a namespace's MetaFlows."""

    async def listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The runs (newest first) and one line per place that could not be read."""
        ...

    async def model(self, key: str) -> UnitsModel | None:
        """The model of the run listed as `key`, or None when no run is listed so."""
        ...


class LocalRuns:
    """The runs in the folders given: a run folder, or one holding runs."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)

    async def listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        return await asyncio.to_thread(self._listing)

    def _listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        views: list[dict[str, Any]] = []
        faults: list[str] = []
        for folder in self.folders:
            try:
                found = [read_run(folder)] if holds_run(folder) else None
                if found is None:
                    found, skipped = find_runs(folder)
                    faults += [str(f) for e in skipped for f in e.faults]
            except UserError as exc:
                faults += [str(f) for f in exc.faults]
                continue
            for run in found:
                views.append(
                    {
                        "run": display_path(run.workdir),
                        "flow": run.flow,
                        "state": run.state,
                        "startedAt": run.started_at,
                        "durationSeconds": round(run.duration, 3),
                        "units": vars(run.counts),
                    }
                )
        views.sort(key=lambda view: view["startedAt"], reverse=True)
        return views, faults

    async def model(self, key: str) -> UnitsModel | None:
        # Only listed runs are reachable: a key is never taken as a path on its own.
        listed = await self.listing()
        if not any(view["run"] == key for view in listed[0]):
            return None
        return await asyncio.to_thread(RunModel, Path(key))


class RunsView:
    """The runs of a source and their models, made when a page first asks for a run."""

    def __init__(self, source: RunsSource) -> None:
        self.source = source
        self.watches: dict[str, asyncio.Task[_Watch | None]] = {}
        self.feed = _Feed()

    async def watch(self, key: str) -> _Watch | None:
        """The watch of the run listed as `key`, made once (requests that come while it is
        being made wait for it), or None when no run is listed as `key`."""
        if key not in self.watches:
            self.watches[key] = asyncio.create_task(self._make(key))
        found = await self.watches[key]
        if found is None:
            del self.watches[key]
        elif found.task is None:
            # Nobody follows it between pages: catch up now.
            async with found.lock:
                await found.model.load()
        return found

    async def _make(self, key: str) -> _Watch | None:
        model = await self.source.model(key)
        if model is None:
            return None
        watch = _Watch(model)
        async with watch.lock:
            await model.load()
        return watch


RUNS = web.AppKey("runs", RunsView)


def make_app(source: RunsSource, host: str) -> web.Application:
    """The app serving `source`, bound to `host` (the address `--host` gave)."""
    app = web.Application(middlewares=[_guard(host)])
    app[RUNS] = RunsView(source)
    static = resources.files("meta.ui") / "static"
    app.router.add_get("/", _index)
    app.router.add_get("/api/runs", _runs)
    app.router.add_get("/api/runs/events", _runs_events)
    app.router.add_get("/api/run", _with_run(_summary))
    app.router.add_get("/api/graph", _with_run(_graph))
    app.router.add_get("/api/units", _with_run(_units))
    app.router.add_get("/api/unit", _with_run(_unit))
    app.router.add_get("/api/events", _with_run(_events))
    app.router.add_static("/static", Path(str(static)), follow_symlinks=False)
    app.on_shutdown.append(_stop_watches)
    return app


def _guard(bound: str) -> Middleware:
    """Refuse a request that does not name this server in its Host (a page whose site's name
    was rebound to this machine names that site), or whose Origin is another page's.

    The names taken are the loopback ones and the bound address, with the port served or none.
    Bound to every address (0.0.0.0, ::), the server also takes any address written as one:
    only a name can be rebound. The page's own requests are same-origin GETs, which carry no
    Origin, or their own."""
    names = LOOPBACK_NAMES | {bound.lower().strip("[]")}
    try:
        everywhere = ipaddress.ip_address(bound.strip("[]")).is_unspecified
    except ValueError:
        everywhere = False

    def named(host: str, served: int) -> bool:
        matched = _HOST.fullmatch(host)
        if matched is None:
            return False
        name, port = matched[1].lower().strip("[]"), matched[2]
        if port is not None and int(port) != served:
            return False
        if name in names:
            return True
        if not everywhere:
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST, "")
        socket = request.transport.get_extra_info("sockname") if request.transport else None
        if socket is None or not named(host, int(socket[1])):
            raise web.HTTPMisdirectedRequest(
                text=f"meta ui: not served to Host {host!r}: "
                "ask for this machine by localhost, 127.0.0.1, [::1] or the address it is bound to"
            )
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            raise web.HTTPForbidden(
                text=f"meta ui: not served to a page of {origin!r}: only its own page may ask"
            )
        return await handler(request)

    return guard


async def _index(request: web.Request) -> web.FileResponse:
    page = resources.files("meta.ui") / "static" / "index.html"
    return web.FileResponse(Path(str(page)), headers={"Cache-Control": "no-cache"})


async def _runs(request: web.Request) -> web.Response:
    return web.json_response(await _listed(request.app[RUNS]))


async def _runs_events(request: web.Request) -> web.StreamResponse:
    """The runs list, sent at once and again whenever it changes."""
    view = request.app[RUNS]
    feed = view.feed
    response = await _event_stream(request)
    page = _Page()
    feed.pages.add(page)
    if feed.listing is None:
        feed.listing = await _listed(view)
    if feed.task is None:
        feed.task = asyncio.create_task(_relist(view))
    try:
        await _send(response, "runs", feed.listing)
        while True:
            if await _woken(response, page):
                await _send(response, "runs", feed.listing)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.pages.discard(page)
        if not feed.pages and feed.task is not None:
            feed.task.cancel()
            feed.task = None
            feed.listing = None
    return response


async def _listed(view: RunsView) -> dict[str, Any]:
    views, faults = await view.source.listing()
    return {"runs": views, "skipped": faults}


async def _relist(view: RunsView) -> None:
    """List the runs every RUNS_SECONDS and wake the pages showing them when they changed."""
    while True:
        await asyncio.sleep(RUNS_SECONDS)
        listing = await _listed(view)
        if listing != view.feed.listing:
            view.feed.listing = listing
            for page in view.feed.pages:
                page.wake.set()


_Handler = Callable[[web.Request, _Watch], Awaitable[web.StreamResponse]]


def _with_run(handler: _Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        key = request.query.get("run", "")
        try:
            watch = await request.app[RUNS].watch(key)
        except UserError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        if watch is None:
            raise web.HTTPNotFound(text=f"no run {key!r} is shown here")
        return await handler(request, watch)

    return wrapped


async def _summary(request: web.Request, watch: _Watch) -> web.Response:
    async with watch.lock:
        return web.json_response(watch.model.summary())


async def _graph(request: web.Request, watch: _Watch) -> web.Response:
    async with watch.lock:
        return web.json_response(watch.model.graph())


async def _units(request: web.Request, watch: _Watch) -> web.Response:
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        limit = min(ROWS_LIMIT, max(0, int(request.query.get("limit", "200"))))
    except ValueError:
        raise web.HTTPBadRequest(text="offset and limit are numbers") from None
    group = request.query.get("group", "")
    async with watch.lock:
        return web.json_response({"rows": watch.model.rows(group, offset, limit)})


async def _unit(request: web.Request, watch: _Watch) -> web.Response:
    uid = request.query.get("id", "")
    try:
        async with watch.lock:
            detail = await watch.model.detail_of(uid)
    except KeyError:
        raise web.HTTPNotFound(text=f"no unit {uid!r} in this run") from None
    return web.json_response(detail)


async def _events(request: web.Request, watch: _Watch) -> web.StreamResponse:
    response = await _event_stream(request)
    page = _Page()
    watch.pages.add(page)
    if watch.task is None:
        watch.task = asyncio.create_task(_tail(watch))
    try:
        async with watch.lock:
            summary = watch.model.summary()
        await _send(response, "summary", summary)
        while True:
            if not await _woken(response, page):
                continue
            changed, page.changed = page.changed, set()
            async with watch.lock:
                units = watch.model.units
                rows = [units[uid].row() for uid in list(changed)[:ROWS_PER_MESSAGE]]
                update = {
                    "summary": watch.model.summary(),
                    "rows": rows,
                    "more": len(changed) > ROWS_PER_MESSAGE,
                }
            await _send(response, "update", update)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watch.pages.discard(page)
        if not watch.pages and watch.task is not None:
            watch.task.cancel()
            watch.task = None
    return response


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


async def _woken(response: web.StreamResponse, page: _Page) -> bool:
    """Wait for `page` to be woken (True), or for a heartbeat's time: then send one (False)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(page.wake.wait(), HEARTBEAT_SECONDS)
    if not page.wake.is_set():
        await response.write(b": still here\n\n")
        return False
    page.wake.clear()
    return True


async def _send(response: web.StreamResponse, event: str, data: Any) -> None:
    payload = json.dumps(data, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {payload}\n\n".encode())


async def _tail(watch: _Watch) -> None:
    """Follow the run (its journal as it grows) and wake its pages when units change."""
    state = watch.model.state
    while True:
        try:
            async with watch.lock:
                changed = await watch.model.refresh()
        except MetaError as failed:
            # A read that failed (a cluster's API server away for a moment) is tried again.
            log.warning("meta ui: reading %s: %s", watch.model.flow, failed)
            changed = set()
        if changed or watch.model.state != state:
            state = watch.model.state
            for page in watch.pages:
                page.changed |= changed
                page.wake.set()
        await asyncio.sleep(watch.model.follow_seconds)


async def _stop_watches(app: web.Application) -> None:
    feed = app[RUNS].feed
    if feed.task is not None:
        feed.task.cancel()
    for page in feed.pages:
        page.wake.set()
    for made in app[RUNS].watches.values():
        if not made.done() or made.cancelled() or made.exception() is not None:
            continue
        watch = made.result()
        if watch is None:
            continue
        if watch.task is not None:
            watch.task.cancel()
        for page in watch.pages:
            page.wake.set()


async def serve(
    source: RunsSource,
    host: str,
    port: int,
    started: Callable[[str], None],
    until: Awaitable[object] | None = None,
) -> None:
    """Serve until `until` is done (or, without one, until cancelled); `started` gets the
    page's address once it is listening."""
    runner = web.AppRunner(make_app(source, host), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    started(f"http://{shown}:{bound_port}/")
    try:
        await (until if until is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()
