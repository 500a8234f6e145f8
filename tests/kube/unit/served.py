"""A `ClientApi` talking HTTP to a local server that plays a part of the API server: what the
official client really sends and how it reads the answers, with no cluster."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes import client

from meta.kube.api import ClientApi


@contextlib.contextmanager
def client_of(handler: type[BaseHTTPRequestHandler]) -> Iterator[ClientApi]:
    """A `ClientApi` of a server answering with `handler`, for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    real = ClientApi(client.ApiClient(configuration))
    try:
        yield real
    finally:
        real.close()
        server.shutdown()
