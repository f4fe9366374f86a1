"""The Google fake (`devclouds.google_fake`) on a local HTTP port, for google-cloud-compute and
google-auth in other processes: `cib image machine`, `cib image tag`, ... run as tasks of the
local pipeline, configured only by the clouds secret (`GoogleServer.secret()`).

One port serves Compute (`/compute/v1/...`), Cloud Storage (`/storage/v1/...`,
`/upload/storage/v1/...`) and the OAuth token endpoint (`/token`). The secret's service-account
key is a real one (an RSA key made at start) whose `token_uri` is the server's: google-auth signs
its JWT and trades it for a token as it does with Google, and the fake checks that Compute and
Storage calls carry a token it issued.

    with GoogleServer() as server:
        server.fake.add_image("ubuntu-os-cloud", "ubuntu-2404-noble-v20261201",
                              family="ubuntu-2404-lts-amd64")
        dev_taskcluster.set_secret("project/cib/level-3/clouds", server.secret())
        ...  # run `cib` commands as tasks; inspect server.fake afterwards
"""

from __future__ import annotations

import json
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..bounds import int_argument
from ..devtc.serving import ServerThread
from .google_fake import GoogleFake

HOST = "127.0.0.1"
CLIENT_EMAIL = "cib-builder@example-cib-images.iam.gserviceaccount.com"


class GoogleServer:
    """`fake` served at `url` (`http://127.0.0.1:<port>`) from `start()` to `stop()` (or as a
    context manager), one thread per connection. The fake's `url` is set to the server's and
    its `check_tokens` turned on. The default fake ends every operation at its first read
    (`operation_polls=0`) and stops a builder at its first read after boot (`run_polls=0`), so
    a task's waits never sleep."""

    def __init__(self, fake: GoogleFake | None = None, *, port: int = 0, log: bool = False):
        self.fake = fake or GoogleFake(operation_polls=0, run_polls=0)
        self.port, self.log = port, log
        self._serving: ServerThread | None = None
        self._key: str | None = None

    def start(self) -> GoogleServer:
        """Bind the port and serve in a thread."""
        if self._serving is not None:
            return self
        server = _Server((HOST, self.port), self)
        self.port = server.server_address[1]
        self.fake.url = self.url
        self.fake.check_tokens = True
        self._serving = ServerThread(server, name=f"google-server-{self.port}",
                                     poll_interval=0.05, join_timeout=10).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def __enter__(self) -> GoogleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`: the Compute, Storage and token endpoint."""
        return f"http://{HOST}:{self.port}"

    def service_account_key(self) -> str:
        """A service-account key file's JSON (an RSA key made once per server) whose token
        endpoint is this server's."""
        if self._key is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
            self.fake.service_accounts[CLIENT_EMAIL] = private.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            self._key = json.dumps({
                "type": "service_account", "project_id": "example-cib-images",
                "private_key_id": "0" * 40, "private_key": pem, "client_email": CLIENT_EMAIL,
                "client_id": "100000000000000000001", "token_uri": f"{self.url}/token"})
        return self._key

    def secret(self) -> dict[str, str]:
        """The Google fields of the clouds secret (`cloudcreds`) that point a task here."""
        return {"google_service_account_key": self.service_account_key(),
                "google_compute_endpoint": self.url, "google_storage_endpoint": self.url}

    def environ(self) -> dict[str, str]:
        """The same as environment variables, for a process outside a task."""
        return {name.upper(): value for name, value in self.secret().items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: GoogleServer):
        super().__init__(address, _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status, headers, payload = self.server.owner.fake.handle(
                self.command, self.path, dict(self.headers.items()), body)
        except Exception:  # a bug of the fake: say so to the client and on stderr
            traceback.print_exc()
            status, headers, payload = 500, {"Content-Type": "application/json"}, json.dumps(
                {"error": {"code": 500, "message": "the fake failed", "status": "INTERNAL",
                           "errors": [{"reason": "backendError"}]}}).encode()
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.log:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (`python -m cib_decision.devclouds.google_server`), with the
    base images of a config's keys; print the clouds secret's Google part (JSON) that points
    tasks here."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cib_decision.devclouds.google_server",
                                     description=main.__doc__)
    parser.add_argument("--port", type=int_argument(0, 65535), default=0,
                        help="default: a free one")
    parser.add_argument("--config-dir", help="make the base images of this config's keys "
                        "(image.base.google)")
    parser.add_argument("--log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    from .serving import serve_until_interrupted

    with GoogleServer(port=args.port, log=args.log) as server:
        return serve_until_interrupted(server, args.config_dir)


if __name__ == "__main__":
    sys.exit(main())
