"""The Azure fake (`devclouds.azure_fake`) on a local HTTPS port, for the Azure SDK of other
processes: `cib image machine`, `cib image tag`, `cib purge` ... run as tasks of the local
pipeline, configured only by the clouds secret (`AzureServer.secret()`).

One port serves every service, told apart by path:

- Entra ID: `POST /<tenant>/oauth2/v2.0/token`, `GET /<tenant>/v2.0/.well-known/
  openid-configuration`, `GET /common/discovery/instance` (the authority host);
- Resource Manager: `/subscriptions/...` and `/providers/...` (the ARM endpoint);
- Blob storage of any account, path-style as Azurite serves it: `/<account>/<container>/<blob>`
  (the blob endpoint `https://127.0.0.1:<port>/{account}`).

azure-core sends bearer tokens only over https, so the server speaks TLS with a certificate
for `127.0.0.1` and `localhost` signed by a CA made at start (`ca_file`, PEM), which clients
trust through the `azure_ca_bundle` setting (the SDK's `connection_verify`). The fake checks
tokens: ARM and Storage accept only tokens its token endpoint issued, for their audience.

    with AzureServer() as server:
        server.fake.add_group("rg-central-us-win10", "centralus")
        dev_taskcluster.set_secret("project/cib/level-3/clouds", server.secret())
        ...  # run `cib` commands as tasks; inspect server.fake afterwards
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import sys
import tempfile
import traceback
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from requests.structures import CaseInsensitiveDict

from ..bounds import int_argument
from ..devtc.serving import ServerThread
from .azure_fake import AzureFake, Request

HOST = "127.0.0.1"
# When the SDK asks again about a long-running operation under way (azure-core reads a
# Retry-After of 0 as "your polling interval", 30 s by default)
RETRY_AFTER_MS = "20"


class AzureServer:
    """`fake` served at `url` (`https://127.0.0.1:<port>`) from `start()` to `stop()` (or as
    a context manager), one thread per connection. The fake's `arm` and `blob_endpoint` are
    set to the server's, its `check_tokens` turned on and its operations' `retry_after` made
    short; its first principal is the one `secret()` gives out. The default fake ends every
    long-running operation at its first status read (`lro_polls=0`), so a task's waits see
    the final state on their first poll and never sleep, whatever its `--poll-interval`."""

    def __init__(self, fake: AzureFake | None = None, *, port: int = 0,
                 directory: Path | None = None, log: bool = False):
        self.fake = fake or AzureFake(lro_polls=0)
        self.port, self.log = port, log
        self._directory, self._own_directory = directory, directory is None
        self._serving: ServerThread | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> AzureServer:
        """Make the CA and the server's certificate, bind the port and serve in a thread."""
        if self._serving is not None:
            return self
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="cib-azure-"))
        self._directory.mkdir(parents=True, exist_ok=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*write_certificates(self._directory))
        server = _Server((HOST, self.port), context, self)
        self.port = server.server_address[1]
        self.fake.arm = self.url
        self.fake.blob_endpoint = f"{self.url}/{{account}}"
        self.fake.check_tokens = True
        self.fake.retry_after = {"Retry-After-Ms": RETRY_AFTER_MS}
        self._serving = ServerThread(server, name=f"azure-server-{self.port}",
                                     poll_interval=0.05, join_timeout=10).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (connections under way are dropped)."""
        if self._serving is None:
            return
        self._serving.stop()
        self._serving = None
        if self._own_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> AzureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients need ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`https://127.0.0.1:<port>`: the authority host, the ARM endpoint and the root of
        the path-style blob endpoints."""
        return f"https://{HOST}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients must trust, once started."""
        if self._directory is None:
            raise RuntimeError("the Azure server is not started")
        return self._directory / "ca.pem"

    def secret(self) -> dict[str, str]:
        """The Azure fields of the clouds secret (`cloudcreds`) that point a task here: the
        fake's service principal and subscription, and the endpoint settings."""
        (tenant, client), secret = next(iter(self.fake.principals.items()))
        return {"azure_tenant_id": tenant, "azure_client_id": client,
                "azure_client_secret": secret,
                "azure_subscription_id": self.fake.subscription,
                "azure_authority_host": self.url, "azure_resource_manager": self.url,
                "azure_blob_endpoint": self.fake.blob_endpoint,
                "azure_ca_bundle": str(self.ca_file)}

    def environ(self) -> dict[str, str]:
        """The same as environment variables (`AZURE_TENANT_ID`, ...), for a process outside
        a task."""
        return {name.upper(): value for name, value in self.secret().items()}


# --- HTTPS ---------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext,
                 owner: AzureServer):
        super().__init__(address, _Handler)
        self.context, self.owner = context, owner

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake in the connection's own thread, then the requests."""
        request.settimeout(60)
        # answers go out whole (below); without Nagle's wait for the client's delayed ACK
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # an answer's headers and body in one write (flushed per request)
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        owner = self.server.owner
        request = Request(self.command, f"{owner.url}{self.path}",
                          CaseInsensitiveDict(self.headers.items()), self._body())
        try:
            status, headers, payload = owner.fake.handle(request)
        except Exception:  # a bug of the fake: say so to the client and on stderr
            traceback.print_exc()
            status, headers, payload = 500, {"Content-Type": "application/json"}, \
                '{"error": {"code": "InternalServerError", "message": "the fake failed"}}'
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.send_response_only(status)
        sent = {k.lower() for k in headers}
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "date" not in sent:
            self.send_header("Date", format_datetime(dt.datetime.now(dt.UTC), usegmt=True))
        if self.command == "HEAD":
            self.send_header("Content-Length", headers.get("Content-Length", str(len(data))))
        elif status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.log:
            super().log_message(format, *args)


def write_certificates(directory: Path, days: int = 30) -> tuple[Path, Path]:
    """A CA (`ca.pem`) and a certificate for `127.0.0.1` and `localhost` it signed, written
    to `directory`; `(server certificate chain, server key)`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cib dev Azure CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    chain, key_file = directory / "server.pem", directory / "server.key"
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (`python -m cib_decision.devclouds.azure_server`), with the
    resource groups and storage accounts of a config's Azure targets; print the clouds
    secret's Azure part (JSON) that points tasks here."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cib_decision.devclouds.azure_server",
                                     description=main.__doc__)
    parser.add_argument("--port", type=int_argument(0, 65535), default=0,
                        help="default: a free one")
    parser.add_argument("--config-dir", help="make the groups of this config's Azure targets")
    parser.add_argument("--directory", type=Path, help="where the CA is written (default: a "
                        "temporary directory, removed at exit)")
    parser.add_argument("--log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    from .serving import serve_until_interrupted

    with AzureServer(port=args.port, directory=args.directory, log=args.log) as server:
        return serve_until_interrupted(server, args.config_dir)


if __name__ == "__main__":
    sys.exit(main())
