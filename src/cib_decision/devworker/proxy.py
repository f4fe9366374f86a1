"""taskcluster-proxy for one task (`tools/taskcluster-proxy`): a loopback HTTP server that
forwards `/api/<service>/<version>/...` (and the short `/<service>/<version>/...`) to the
deployment, signed with Hawk as the task's temporary credentials restricted to the task's
scopes plus `queue:create-artifact:<taskId>/<runId>`; `PUT /credentials` takes the credentials
of a reclaim. (`POST /bewit`, signed URLs, is not served: no task of ours asks for one.)"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import mohawk
import requests

_HOP_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "authorization",
                "accept-encoding"}


class TaskclusterProxy:
    """Serve on 127.0.0.1 (a free port) until `stop`; `url` is `TASKCLUSTER_PROXY_URL`."""

    def __init__(self, root_url: str, credentials: dict[str, Any], scopes: list[str]):
        self.root_url = root_url.rstrip("/")
        self.scopes = list(scopes)
        self._lock = threading.Lock()
        self.credentials = dict(credentials)
        self._session = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="taskcluster-proxy")

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> TaskclusterProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def update(self, credentials: dict[str, Any]) -> None:
        """New credentials (after a reclaim)."""
        with self._lock:
            self.credentials = dict(credentials)

    def target(self, path: str) -> str | None:
        """The deployment URL a proxied path stands for, or None."""
        found = re.fullmatch(r"/(?:api/)?([a-z][a-z-]*)/(v[0-9]+)(/.*)?", path.split("?")[0])
        if not found:
            return None
        query = path[len(path.split("?")[0]):]
        return f"{self.root_url}/api/{found.group(1)}/{found.group(2)}{found.group(3) or ''}" \
               f"{query}"

    def authorization(self, method: str, url: str, body: bytes, content_type: str) -> str:
        """The Hawk header for one request, with the restricted scopes in `ext`."""
        with self._lock:
            credentials = dict(self.credentials)
        ext: dict[str, Any] = {"authorizedScopes": self.scopes}
        if credentials.get("certificate"):
            certificate = credentials["certificate"]
            ext["certificate"] = json.loads(certificate) if isinstance(certificate, str) \
                else certificate
        sender = mohawk.Sender(
            {"id": credentials["clientId"], "key": credentials["accessToken"],
             "algorithm": "sha256"}, url, method, content=body or b"",
            content_type=content_type or "", always_hash_content=False,
            ext=base64.b64encode(json.dumps(ext).encode()).decode())
        return sender.request_header

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> tuple[int, dict[str, str], bytes]:
        """Send one request on to the deployment; its status, headers and body."""
        url = self.target(path)
        if url is None:
            return 404, {"content-type": "text/plain"}, b"taskcluster-proxy: unknown route\n"
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
        forwarded["Authorization"] = self.authorization(method, url, body,
                                                        headers.get("content-type", ""))
        response = self._session.request(method, url, data=body or None, headers=forwarded,
                                         allow_redirects=False, timeout=300)
        out = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "content-encoding")}
        out["x-taskcluster-endpoint"] = url
        return response.status_code, out, response.content


def _handler(proxy: TaskclusterProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path
            if path == "/credentials":
                status, headers, data = self._credentials(body)
            else:
                status, headers, data = proxy.forward(
                    self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _credentials(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            if self.command != "PUT":
                return 405, {}, b""
            try:
                proxy.update(json.loads(body))
            except ValueError:
                return 400, {}, b"bad credentials\n"
            return 200, {}, b""

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    return Handler
