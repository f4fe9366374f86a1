"""Who is calling: Hawk request signatures (header or `bewit` URL), temporary credentials,
`authorizedScopes`, and the anonymous scopes every caller holds, as Taskcluster's auth service
decides them (`services/auth/src/signaturevalidator.js`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import mohawk
from mohawk.base import Resource
from mohawk.exc import HawkFail
from mohawk.util import calculate_mac, parse_authorization_header, strings_match

from ..scopes import role_scopes
from ..tc import quiet_hawk_debug
from .expressions import grants

quiet_hawk_debug()

# What a public deployment grants the `anonymous` role (Taskcluster's "Anonymous Role" manual);
# every call holds these, with or without credentials.
ANONYMOUS_SCOPES: tuple[str, ...] = (
    "auth:current-scopes", "auth:expand-scopes", "auth:get-client:*", "auth:get-role:*",
    "auth:list-clients", "auth:list-roles",
    "github:get-badge:*", "github:get-repository:*", "github:latest-status:*",
    "github:list-builds",
    "hooks:get:*", "hooks:list-hooks:*", "hooks:list-last-fires:*", "hooks:status:*",
    "index:find-task:*", "index:list-namespaces:*", "index:list-tasks:*",
    "purge-cache:all-purge-requests", "purge-cache:purge-requests:*",
    "queue:get-artifact:public/*", "queue:get-provisioner:*", "queue:get-task:*",
    "queue:get-worker-type:*", "queue:get-worker:*", "queue:list-artifacts:*",
    "queue:list-dependent-tasks:*", "queue:list-provisioners", "queue:list-task-group:*",
    "queue:list-worker-types:*", "queue:list-workers:*", "queue:pending-count:*",
    "queue:status:*",
    "secrets:list-secrets", "web:read-pulse",
    "worker-manager:get-worker-pool:*", "worker-manager:get-worker:*",
    "worker-manager:list-providers", "worker-manager:list-worker-pool-errors:*",
    "worker-manager:list-worker-pools", "worker-manager:list-workers:*",
    "worker-manager:should-worker-terminate:*",
)

TIMESTAMP_SKEW_SECONDS = 15 * 60
_VALID_SCOPE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True)
class Client:
    """A client of the deployment: its id, secret access token and (expanded) scopes."""

    client_id: str
    access_token: str
    scopes: tuple[str, ...]

    @property
    def credentials(self) -> dict[str, str]:
        """`{"clientId", "accessToken"}`, as the taskcluster client takes them."""
        return {"clientId": self.client_id, "accessToken": self.access_token}


@dataclass(frozen=True)
class Caller:
    """The outcome of authentication: `auth-success`, `no-auth` or `auth-failed`."""

    status: str
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        """True when the request carried credentials that do not authenticate."""
        return self.status == "auth-failed"


class Clients:
    """The clients the deployment knows (thread-safe), and how it expands `assume:` scopes."""

    def __init__(self, expand: Callable[[Iterable[str]], list[str]] | None = None) -> None:
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self.expand: Callable[[Iterable[str]], list[str]] = expand or list

    def add(self, client: Client) -> Client:
        """Register (or replace) a client."""
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def get(self, client_id: str) -> Client | None:
        """The client with this id, if any."""
        with self._lock:
            return self._clients.get(client_id)

    def all(self) -> list[Client]:
        """Every client, in the order they were added."""
        with self._lock:
            return list(self._clients.values())


class AuthError(Exception):
    """Credentials that do not authenticate (the message says why)."""


def authenticate(clients: Clients, method: str, url: str, authorization: str | None,
                 content: bytes, content_type: str | None) -> Caller:
    """Authenticate one request. `url` is the full URL the client signed
    (`http://host:port/path?query`)."""
    try:
        if authorization:
            return _hawk_header(clients, method, url, authorization, content, content_type)
        if re.search(r"[?&]bewit=", url):
            return _bewit(clients, method, url)
    except (AuthError, HawkFail) as exc:
        return Caller("auth-failed", message=str(exc))
    return Caller("no-auth", scopes=ANONYMOUS_SCOPES)


def _hawk_header(clients: Clients, method: str, url: str, authorization: str, content: bytes,
                 content_type: str | None) -> Caller:
    attributes = parse_authorization_header(authorization)
    client_id = attributes.get("id", "")
    key, scopes = _credentials(clients, client_id, attributes.get("ext"))
    has_hash = "hash" in attributes
    mohawk.Receiver(
        lambda i: {"id": i, "key": key, "algorithm": "sha256"},
        authorization, url, method,
        content=content if has_hash else mohawk.base.EmptyValue,
        content_type=(content_type or "") if has_hash else mohawk.base.EmptyValue,
        accept_untrusted_content=not has_hash,
        seen_nonce=lambda *_: False,  # the services do not track nonces
        timestamp_skew_in_seconds=TIMESTAMP_SKEW_SECONDS)
    return Caller("auth-success", scopes=scopes, client_id=client_id)


def _bewit(clients: Clients, method: str, url: str) -> Caller:
    if method.upper() != "GET":
        raise AuthError("bewit URLs are only valid for GET requests")
    found = re.search(r"[?&]bewit=([^&]*)", url)
    assert found is not None
    raw = found.group(1)
    before, after = url[:found.start()], url[found.end():]
    if url[found.start()] == "?" and after.startswith("&"):
        after = "?" + after[1:]
    stripped = before + after
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("invalid bewit") from None
    parts = decoded.split("\\")
    if len(parts) != 4:
        raise AuthError("invalid bewit")
    client_id, expiration, mac, ext = parts
    key, scopes = _credentials(clients, client_id, ext or None)
    resource = Resource(url=stripped, method="GET",
                        credentials={"id": client_id, "key": key, "algorithm": "sha256"},
                        timestamp=expiration, nonce="", ext=ext or None)
    expected = calculate_mac("bewit", resource, None).decode("ascii")
    if not strings_match(expected, mac):
        raise AuthError("Bad mac")
    if int(expiration) < time.time():
        raise AuthError("Access expired")
    return Caller("auth-success", scopes=scopes, client_id=client_id)


def _credentials(clients: Clients, client_id: str,
                 ext: str | None) -> tuple[str, tuple[str, ...]]:
    """The key a request must be signed with and the scopes it then holds."""
    parsed = _parse_ext(ext)
    certificate = parsed.get("certificate")
    issuer_id = client_id
    if isinstance(certificate, dict) and certificate.get("issuer"):
        issuer_id = certificate["issuer"]
        if not isinstance(issuer_id, str) or issuer_id == client_id:
            raise AuthError("ext.certificate.issuer must differ from the supplied clientId")
    client = clients.get(issuer_id)
    if client is None:
        raise AuthError(f"Client ID {issuer_id} does not exist")
    client = Client(client.client_id, client.access_token,
                    tuple(clients.expand(client.scopes)))
    key, scopes = client.access_token, list(client.scopes)
    if certificate is not None:
        key, scopes = _temporary(client, client_id, certificate)
    if "authorizedScopes" in parsed:
        authorized = parsed["authorizedScopes"]
        if not isinstance(authorized, list) or not all(
                isinstance(s, str) and _VALID_SCOPE.match(s) for s in authorized):
            raise AuthError("ext.authorizedScopes must be an array of valid scopes")
        held = clients.expand([*scopes, *ANONYMOUS_SCOPES])
        if not all(grants(held, s) for s in authorized):
            raise AuthError("Supplied credentials do not satisfy authorizedScopes")
        scopes = list(authorized)
    return key, tuple(dict.fromkeys(clients.expand([*scopes, *ANONYMOUS_SCOPES])))


def _parse_ext(ext: str | None) -> dict[str, Any]:
    if not ext:
        return {}
    try:
        padded = ext + "=" * (-len(ext) % 4)
        parsed = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (binascii.Error, ValueError):
        raise AuthError("Failed to parse ext") from None
    if not isinstance(parsed, dict):
        raise AuthError("ext must be a JSON object")
    return parsed


def _temporary(issuer: Client, client_id: str,
               cert: dict[str, Any]) -> tuple[str, list[str]]:
    """Check temporary credentials signed by `issuer`; their key and scopes."""
    if not isinstance(cert, dict) or cert.get("version") != 1:
        raise AuthError("ext.certificate.version must be 1")
    seed, start, expiry, scopes = (cert.get(k) for k in ("seed", "start", "expiry", "scopes"))
    if not isinstance(seed, str) or len(seed) != 44:
        raise AuthError("ext.certificate.seed must be 44 characters")
    if not isinstance(start, int | float) or not isinstance(expiry, int | float):
        raise AuthError("ext.certificate.start and expiry must be numbers")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise AuthError("ext.certificate.scopes must be an array of valid scopes")
    now = time.time() * 1000
    if start > now + 5 * 60 * 1000:
        raise AuthError("ext.certificate.start > now")
    if expiry < now - 5 * 60 * 1000:
        raise AuthError("ext.certificate.expiry < now")
    if expiry - start > 31 * 24 * 60 * 60 * 1000:
        raise AuthError("ext.certificate cannot last longer than 31 days!")
    if issuer.client_id != client_id and not grants(
            issuer.scopes, f"auth:create-client:{client_id}"):
        raise AuthError(f"ext.certificate issuer `{issuer.client_id}` doesn't have "
                        f"`auth:create-client:{client_id}` for supplied clientId.")
    if not all(grants(issuer.scopes, s) for s in scopes):
        raise AuthError(f"ext.certificate issuer `{issuer.client_id}` doesn't satisfy all "
                        "certificate scopes")
    lines = ["version:1"]
    if cert.get("issuer"):
        lines += [f"clientId:{client_id}", f"issuer:{cert['issuer']}"]
    lines += [f"seed:{seed}", f"start:{start}", f"expiry:{expiry}", "scopes:", *scopes]
    token = issuer.access_token.encode()
    signature = base64.b64encode(
        hmac.new(token, "\n".join(lines).encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(str(cert.get("signature", "")), signature):
        raise AuthError("ext.certificate.signature is not valid")
    temporary = base64.urlsafe_b64encode(
        hmac.new(token, seed.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    return temporary, scopes


_REPO_ROLE = re.compile(r"assume:repo:([^:]+):(.+)")


def repo_role_expander(roles: dict[str, list[str]]) -> Callable[[Iterable[str]], list[str]]:
    """Expansion of `assume:repo:<host>/<org>/<repo>:<role>` scopes into the scopes the roles
    file gives `<role>` (with `{project}` the repository name), as a deployment's roles for
    the repository would; a granted `assume:repo:<repo>:<prefix>*` assumes every role of the
    file under that prefix. Other `assume:` scopes stay as they are."""

    def expand(scopes: Iterable[str]) -> list[str]:
        result = list(scopes)
        for scope in list(result):
            found = _REPO_ROLE.fullmatch(scope)
            if found is None:
                continue
            repo, role = found.groups()
            project = repo.rstrip("/").rsplit("/", 1)[-1]
            names = ([n for n in roles if n.startswith(role[:-1])] if role.endswith("*")
                     else [role])
            for name in names:
                result += role_scopes(roles, name, project=project)
        return list(dict.fromkeys(result))

    return expand
