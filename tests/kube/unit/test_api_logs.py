"""`ClientApi.read_log` over HTTP, against a server that plays the API server's pod log endpoint:
a whole log at once, and a followed one that arrives chunk by chunk while the container writes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest

from meta.kube.api import ClientApi
from tests.kube.unit.served import client_of

RELEASE = threading.Event()
"""The followed log's second chunk is written once the test has read the first."""


class LogEndpoint(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        assert url.path == "/api/v1/namespaces/team/pods/p-1/log"
        assert query["container"] == ["step"]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if query.get("follow") != ["true"]:
            body = b"all of it\n"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk("first ")
        RELEASE.wait(10)
        self._chunk("second é\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ClientApi]:
    with client_of(LogEndpoint) as real:
        yield real


def test_a_log_at_once_and_a_followed_one_as_it_is_written(api: ClientApi) -> None:
    async def read() -> tuple[list[str], list[str]]:
        whole = [text async for text in api.read_log("team", "p-1", "step")]
        followed: list[str] = []
        async for text in api.read_log("team", "p-1", "step", follow=True):
            followed.append(text)
            # The first chunk is here before the server has written the second.
            RELEASE.set()
        return whole, followed

    whole, followed = asyncio.run(read())
    assert whole == ["all of it\n"]
    assert followed[0] == "first " and "".join(followed) == "first second é\n"
