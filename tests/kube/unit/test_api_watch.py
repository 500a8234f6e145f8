"""`ClientApi.watch_pods` over HTTP, against a server that plays the API server's pod list and
watch: listed in pages, watched from the list's version, resumed from the last version seen
(bookmarks included) when a watch ends, listed again when that version has expired (410)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from meta.kube.api import LISTED, LISTING, ClientApi
from tests.kube.unit.served import client_of

SELECTOR = "meta-orchestrator.io/flow"
ASKED: list[dict[str, str]] = []


def pod(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team", "resourceVersion": version}}


class PodsEndpoint(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert url.path == "/api/v1/namespaces/team/pods"
        assert query["labelSelector"] == SELECTOR
        ASKED.append(query)
        lists = sum(1 for q in ASKED if "watch" not in q and "continue" not in q)
        if "watch" not in query:
            if lists == 1 and "continue" not in query:
                self._json({"metadata": {"continue": "c1"}, "items": [pod("p1", "5")]})
            elif lists == 1:
                self._json({"metadata": {"resourceVersion": "10"}, "items": [pod("p2", "6")]})
            else:
                self._json({"metadata": {"resourceVersion": "30"}, "items": [pod("p3", "11")]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        version = query["resourceVersion"]
        if version == "10":
            self._event("ADDED", pod("p3", "11"))
            self._event("BOOKMARK", {"metadata": {"resourceVersion": "12"}})
        elif version == "12":
            self._event("MODIFIED", pod("p3", "13"))
            self._event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})
        elif version == "30":
            self._event("DELETED", pod("p1", "31"))
        self.wfile.write(b"0\r\n\r\n")

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        # Split across two chunks: a line is whole only once its newline has come.
        data = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        for part in (data[:7], data[7:]):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ClientApi]:
    ASKED.clear()
    with client_of(PodsEndpoint) as real:
        yield real


def test_pods_are_listed_in_pages_then_watched_resumed_and_listed_again_when_expired(
    api: ClientApi,
) -> None:
    async def go() -> list[tuple[str | None, str, str]]:
        seen: list[tuple[str | None, str, str]] = []
        async for kind, found in api.watch_pods("team", SELECTOR):
            meta = found["metadata"]
            if kind in (LISTING, LISTED):
                seen.append((kind, meta["namespace"], ""))
                continue
            seen.append((kind, meta["name"], meta["resourceVersion"]))
            if kind == "DELETED":
                break
        return seen

    seen = asyncio.run(asyncio.wait_for(go(), 20))
    assert seen == [
        (LISTING, "team", ""),
        (None, "p1", "5"),
        (None, "p2", "6"),
        (LISTED, "team", ""),
        ("ADDED", "p3", "11"),
        ("MODIFIED", "p3", "13"),
        (LISTING, "team", ""),
        (None, "p3", "11"),
        (LISTED, "team", ""),
        ("DELETED", "p1", "31"),
    ]
    asked = [(q.get("watch"), q.get("resourceVersion"), q.get("continue")) for q in ASKED]
    assert asked == [
        (None, None, None),
        (None, None, "c1"),
        ("true", "10", None),
        ("true", "12", None),  # from the bookmark
        (None, None, None),  # 410: listed again
        ("true", "30", None),
    ]
    assert all(q["limit"] == "500" for q in ASKED if "watch" not in q)
    assert api.calls.writes == 0
