"""`meta ui`'s server over HTTP: where it listens, that nothing changes state, that nothing
outside the runs shown can be read, and the event stream as a journal grows."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from meta.cli.ui import announce
from meta.ui.server import LocalRuns, make_app
from tests.local.runs import a_run, lock
from tests.ui.demo import write_demo


def _session(workdir: Path) -> None:
    """A run whose session is this test's own process: running for as long as the test."""
    flow = write_demo(workdir.parent / "flow", python=sys.executable)
    workdir.mkdir(parents=True)
    now = time.time()
    (workdir / "run.json").write_text(
        json.dumps({"name": "orders-demo", "flow": str(flow), "startedAt": now})
    )
    _append(workdir, {"event": "session", "at": now, "pid": os.getpid()})


def _append(workdir: Path, record: dict[str, Any]) -> None:
    with (workdir / "journal.jsonl").open("a") as journal:
        journal.write(json.dumps(record) + "\n")


def _request(
    url: str, method: str, target: str, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """One request with `target` sent as it is (no normalising of `..`), and `headers` (a
    Host among them replaces the one naming `url`)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    headers = dict(headers or {})
    try:
        connection.putrequest(method, target, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def shown(tmp_path: Path, serve: Callable[..., tuple[str, str]]) -> str:
    _session(tmp_path / "runs" / "r")
    url, _ = serve("runs")
    return url


def test_it_binds_loopback_unless_told_otherwise_and_says_so(
    serve: Callable[..., tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, line = serve()
    assert urlsplit(url).hostname == "127.0.0.1"
    assert "read-only" in line and "only this machine can reach it" in line
    # Binding elsewhere is said out loud (checked without opening this machine to the network).
    announce("http://0.0.0.0:8470/", "0.0.0.0")
    assert "other machines can reach it" in capsys.readouterr().out


def test_every_route_only_reads(shown: str) -> None:
    routes = make_app(LocalRuns([]), "127.0.0.1").router.routes()
    assert {route.method for route in routes} <= {"GET", "HEAD"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for target in ("/", "/api/runs", "/api/run?run=runs/r", "/api/events?run=runs/r"):
            status, _ = _request(shown, method, target)
            assert status == 405, (method, target)


@pytest.mark.parametrize(
    "target",
    [
        "/static/../runs/r/run.json",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fruns/r/run.json",
        "/api/run?" + urlencode({"run": "/etc"}),
        "/api/run?" + urlencode({"run": "runs/../runs/r"}),
        "/api/unit?" + urlencode({"run": "runs/r", "id": "../../../etc/passwd"}),
        "/api/units?" + urlencode({"run": "runs/r", "group": "../../etc"}),
    ],
)
def test_nothing_outside_the_runs_shown_is_served(shown: str, target: str) -> None:
    status, body = _request(shown, "GET", target)
    assert b"root:" not in body and b"startedAt" not in body
    assert status in (403, 404) or (status == 200 and json.loads(body) == {"rows": []})


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        # A site whose name was rebound to 127.0.0.1 names itself: refused.
        ("attacker.example:{port}", "http://attacker.example:{port}", 421),
        ("attacker.example:{port}", None, 421),
        ("attacker.example", None, 421),
        ("127.0.0.1:1", None, 421),
        ("localhost@attacker.example:{port}", None, 421),
        ("", None, 421),
        # This machine by name, but asked by another site's page.
        ("localhost:{port}", "http://attacker.example", 403),
        ("127.0.0.1:{port}", "null", 403),
        ("127.0.0.1:{port}", "http://localhost:{port}", 403),
        # This machine, asked by the page itself or by no page at all.
        ("localhost:{port}", None, 200),
        ("localhost", None, 200),
        ("LOCALHOST:{port}", None, 200),
        ("[::1]:{port}", None, 200),
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}", 200),
    ],
)
def test_only_requests_for_this_machine_from_its_own_page_are_answered(
    shown: str, host: str, origin: str | None, status: int
) -> None:
    port = str(urlsplit(shown).port)
    headers = {"Host": host.format(port=port)}
    if origin is not None:
        headers["Origin"] = origin.format(port=port)
    for target in ("/", "/api/runs", "/api/run?run=runs/r", "/static/app.js"):
        got, body = _request(shown, "GET", target, headers)
        assert got == status, (target, body)
        if status != 200:
            assert b"startedAt" not in body and body.startswith(b"meta ui: not served")


def test_the_address_it_is_bound_to_is_a_name_it_answers_to(
    tmp_path: Path, serve: Callable[..., tuple[str, str]]
) -> None:
    _session(tmp_path / "runs" / "r")
    url, _ = serve("runs", "--host", "127.0.0.2")
    port = urlsplit(url).port
    assert _request(url, "GET", "/api/runs", {"Host": f"127.0.0.2:{port}"})[0] == 200
    assert _request(url, "GET", "/api/runs", {"Host": f"localhost:{port}"})[0] == 200
    assert _request(url, "GET", "/api/runs", {"Host": f"attacker.example:{port}"})[0] == 421


def test_bound_to_every_address_it_answers_to_any_address_but_to_no_other_name() -> None:
    async def statuses() -> list[int]:
        # Served on loopback, as if bound to 0.0.0.0: the machine stays closed to the network.
        async with TestClient(TestServer(make_app(LocalRuns([]), "0.0.0.0"))) as client:
            port = client.port
            hosts = [f"192.0.2.7:{port}", f"[2001:db8::1]:{port}", f"attacker.example:{port}"]
            return [(await client.get("/api/runs", headers={"Host": h})).status for h in hosts]

    assert asyncio.run(statuses()) == [200, 200, 421]


def _events(url: str, run: str | None) -> Iterator[tuple[str, Any]]:
    """The events of one run's stream, or of the runs list's (`run` None)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    target = "/api/runs/events" if run is None else "/api/events?" + urlencode({"run": run})
    connection.request("GET", target)
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    try:
        event = ""
        while line := response.fp.readline():
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[len("event: ") :]
            elif text.startswith("data: "):
                yield event, json.loads(text[len("data: ") :])
    finally:
        connection.close()


def test_the_event_stream_follows_the_journal_as_it_grows(tmp_path: Path, shown: str) -> None:
    workdir = tmp_path / "runs" / "r"
    stream = _events(shown, "runs/r")
    event, summary = next(stream)
    assert event == "summary"
    assert summary["state"] == "running" and summary["units"]["running"] == 0

    fetch = "orders-demo/pipeline/fetch"
    _append(workdir, {"event": "started", "id": fetch, "attempt": 1, "at": time.time()})
    event, update = next(stream)
    assert event == "update"
    assert [(row["id"], row["state"]) for row in update["rows"]] == [(fetch, "running")]
    assert update["summary"]["groups"]["orders-demo/pipeline"]["counts"]["running"] == 1

    record = {
        "event": "finished",
        "id": fetch,
        "name": "fetch",
        "section": "orders-demo/pipeline",
        "scope": "macro",
        "state": "failed",
        "attempts": 1,
        "started_at": time.time(),
        "finished_at": time.time(),
        "exit_code": 2,
        "reason": "exited with code 2",
        "stderr_tail": "",
        "resumed": False,
    }
    # Written in two pieces: the half line waits for the rest.
    line = json.dumps(record) + "\n"
    with (workdir / "journal.jsonl").open("a") as journal:
        journal.write(line[:40])
        journal.flush()
        time.sleep(0.3)
        journal.write(line[40:])
    event, update = next(stream)
    assert [(row["id"], row["state"]) for row in update["rows"]] == [(fetch, "failed")]
    assert update["summary"]["nodes"][fetch]["failed"] == 1


def test_the_runs_list_stream_sends_the_list_again_when_a_run_appears_or_changes(
    tmp_path: Path, shown: str
) -> None:
    stream = _events(shown, None)
    event, listing = next(stream)
    assert event == "runs"
    assert [(run["run"], run["state"]) for run in listing["runs"]] == [("runs/r", "running")]

    _session(tmp_path / "runs" / "second")
    event, listing = next(stream)
    assert event == "runs"
    assert {run["run"] for run in listing["runs"]} == {"runs/r", "runs/second"}

    _append(tmp_path / "runs" / "r", {"event": "started", "id": "x/y", "attempt": 1, "at": 1.0})
    event, listing = next(stream)
    (changed,) = [run for run in listing["runs"] if run["run"] == "runs/r"]
    assert changed["units"]["running"] == 1


def test_the_runs_list_skips_an_unreadable_folder_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    a_run(runs / "a")
    a_run(runs / "private" / "b")
    lock(monkeypatch, runs / "private")
    views, faults = asyncio.run(LocalRuns([runs, runs / "private" / "b"]).listing())
    assert [view["flow"] for view in views] == ["f"]
    assert faults == [
        f"{runs / 'private'}: /: unreadable: Permission denied",
        f"{runs / 'private' / 'b'}: /: unreadable: Permission denied",
    ]
