"""HTTP plumbing: a threaded HTTP/1.1 (keep-alive) server on the loopback interface that hands
`/api/...` requests to the pipeline (after deciding their fault) and `/dev/...` requests to the
dev hooks."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Api, Reply, Request
from .apierror import ApiError
from .devhooks import DevRoutes
from .faults import Faults, Stats

_FAULT_ERRORS = {
    500: ("InternalServerError", "Internal Server Error (a fault injected by dev-taskcluster)"),
    502: ("BadGateway", "Bad Gateway (a fault injected by dev-taskcluster)"),
    503: ("ServiceUnavailable", "Service Unavailable (a fault injected by dev-taskcluster)"),
}


class DevServer(ThreadingHTTPServer):
    """The server; its handler threads are daemons, so `stop` never waits for idle
    keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True
    # A real service's load balancer accepts a burst of connections; socketserver's default
    # backlog of 5 would refuse a decision's 50 concurrent submissions as if they were faults.
    request_queue_size = 256

    api: Api
    dev: DevRoutes

    def __init__(self, address: tuple[str, int], faults: Faults, stats: Stats,
                 log: Callable[[str], None] | None = None):
        super().__init__(address, _Handler)
        self.faults, self.stats, self.log = faults, stats, log

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (killed, timed out) is no server error."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        """The port listened on (chosen by the system when 0 was asked for)."""
        return int(self.server_address[1])

    def attach(self, api: Api, dev: DevRoutes) -> None:
        """What to serve (the root URL is known only once the port is)."""
        self.api, self.dev = api, dev


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection ends after this
    # A reply leaves in one write when the handler is done (the headers and the body were two,
    # and Nagle's algorithm held the second until the client acknowledged the first: some
    # 40 ms a request on a kept-open connection); TCP_NODELAY sends each write at once.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: DevServer

    def do_GET(self) -> None:
        """Every method goes through `_handle`."""
        self._handle()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Request log lines go to the server's `log` (none when it is None)."""
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    def _handle(self) -> None:
        body = self._body()
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/dev/"):
            self._send(self.server.dev.handle(self.command, path, body, headers))
            return
        if path.startswith("/schemas/") and self.command in ("GET", "HEAD"):
            self._send(self.server.dev.schema(path))
            return
        request = Request(self.command, path, query, headers, body,
                          f"http://{self.headers.get('host', '')}{self.path}",
                          closed=self._client_gone)
        self._api(request)

    def _body(self) -> bytes:
        """The request body, by Content-Length or in chunks (`Transfer-Encoding: chunked`, as
        an upload streamed from a file is sent)."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _client_gone(self) -> bool:
        """True when the client closed its connection (readable, but nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True

    def _api(self, request: Request) -> None:
        server = self.server
        routed = server.api.route(request)
        method = routed[0].qualified if routed else "unknown"
        server.stats.request(method)
        fault = server.faults.decide()
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.kind == "drop-before":
            server.stats.fault(fault.kind)
            self._drop()
            return
        if fault.status:
            server.stats.fault(fault.kind or "")
            code, message = _FAULT_ERRORS[fault.status]
            reply = server.api.error_reply(ApiError(code, message),
                                           routed[0].name if routed else "unknown",
                                           routed[1] if routed else {})
            server.stats.response(reply.status)
            self._send(reply)
            return
        _, reply = server.api.handle(request)
        if fault.kind == "drop-after":
            server.stats.fault(fault.kind)
            self._drop()
            return
        server.stats.response(reply.status)
        self._send(reply)

    def _drop(self) -> None:
        """Close the connection without a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: Reply) -> None:
        data = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
