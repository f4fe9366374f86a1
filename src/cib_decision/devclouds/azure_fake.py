"""A stateful fake of Azure Resource Manager, Blob storage and the Entra ID token endpoint,
for tests and the local pipeline: in process through `responses` (`AzureFake.running()`), or
on a local HTTPS port for other processes (`devclouds.azure_server.AzureServer`).

The real SDK clients (azure-identity, azure-mgmt-compute, azure-mgmt-network,
azure-storage-blob) talk to it unchanged: azure-core's default transport is `requests`, which
`responses` intercepts in process; across processes they are pointed at the server by the
endpoint settings of `clouds.azure.Endpoints`. What it serves, in the real services' shapes:

- **ARM** (`arm`, by default `https://management.azure.com`): resources kept by their ARM id
  (case-insensitive, as ARM is), each `{id, name, type, location, tags, properties:
  {provisioningState, ...}}`. PUT creates or updates, GET reads, PATCH merges
  `tags`/`properties`, DELETE removes; lists by subscription, by resource group and of a
  parent's children answer `{value, nextLink}` pages of `page_size`. Writes are long-running
  operations: 201/202 with `Azure-AsyncOperation` and `Location` headers (and `Retry-After:
  0`, or `retry_after`); the status URL says `InProgress` `lro_polls` times (per
  kind: `polls`), then `Succeeded`, or `Failed` with an `error` object. The change a write
  makes lands when its operation completes, as on ARM (a deleted VM is there until then).
- Resource types: virtual machines (power states in `instanceView`, actions `runCommand`,
  `generalize`, `deallocate`, `powerOff`, `start`), disks (`managedBy`, `diskState`), managed
  images, galleries / gallery images / gallery image versions (`publishingProfile.targetRegions`,
  `replicationStatus` with `$expand=ReplicationStatus`), network interfaces (`virtualMachine`),
  public IP addresses (`ipAddress` once attached to a VM), virtual networks with their subnets,
  network security groups. ARM's rules the build depends on are enforced: a resource group must
  exist (404 `ResourceGroupNotFound`), references must resolve (400 `InvalidResourceReference`),
  an attached disk, a NIC in use by a VM or an IP in use by a NIC cannot be deleted, a running VM
  cannot be generalized, an image needs a generalized VM (409 `OperationNotAllowed`).
- **Blob storage** (`blob_endpoint`, a template with `{account}`: by default
  `https://{account}.blob.core.windows.net`, path-style `https://127.0.0.1:<port>/{account}`
  on the server): containers, page blobs (create, put page, with `If-None-Match`/`If-Match`
  conditions), block blobs (single put, put block, put block list), get properties (HEAD),
  download, metadata, delete; user delegation keys (`POST /?restype=service&comp=
  userdelegationkey`, Entra bearer tokens only) and Copy Blob (`x-ms-copy-source`: `pending`
  for `copy_polls` property reads, then `copy_outcome`, with the `x-ms-copy-*` headers); a
  source in another account must carry a read SAS (`sig`, `sp` with `r`), else 403
  `CannotVerifyCopySource`. Errors in Storage's XML shape with `x-ms-error-code`.
- **Entra ID** (`handle`, on the server only): `POST /<tenant>/oauth2/v2.0/token` (client
  credentials of `principals`; an unknown tenant, client or secret is refused as Entra refuses
  it), `GET /<tenant>/v2.0/.well-known/openid-configuration` and `GET
  /common/discovery/instance`, what MSAL asks before its first token. With `check_tokens` (the
  server sets it), ARM accepts only bearer tokens issued here for its own audience (`<arm>`)
  and Storage only those for `https://storage.azure.com` (401 otherwise, as they do).

Test hooks:

- `fail(kind, ...)`: the next `times` calls whose kind matches (`fnmatch`, e.g.
  `"PUT Microsoft.Compute/virtualMachines"`, `"POST */runCommand"`, `"GET *"`) answer an ARM
  error (`status`, `code`, `message`, optional `Retry-After`); with `during="operation"` the call
  is accepted and its long-running operation ends `Failed` with that error instead.
- `on_run_command(vm, body)`: what a VM's run command does (default: the script runs to its end;
  a script that stops the computer leaves the VM `stopped`); see `RunCommandOutcome`.
- `replication_failures`: regions whose replica of a gallery image version ends `Failed` in
  its `replicationStatus` (the version itself succeeds, as on ARM).
- set-up: `add_group`, `add_storage_account`, `add_fleet` (the groups and accounts of a
  config's Azure targets), `put` (a resource as it is), `put_blob`.
- inspection: `resources(type)`, `resource(id)`, `calls` / `calls_of(kind)`, `blob(...)`,
  `tokens` (issued bearer tokens and their audiences).
- `StaticToken`: the credential in-process tests give the SDK clients (no token endpoint).

In process, start `moto` (if a test uses it) *before* this fake: both patch `requests`, and
the one started last sees requests first; moto passes unknown URLs on to the real network.
`responses` is imported only by `running()`: the server does not need it.

The SDK's api-version is accepted whatever it is, checked in one place (`check_api_version`).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree

from azure.core.credentials import AccessToken

from .transcript import transcript

if TYPE_CHECKING:
    import responses

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
ARM = "https://management.azure.com"
BLOB_ENDPOINT = "https://{account}.blob.core.windows.net"
STORAGE_AUDIENCE = "https://storage.azure.com"
# The service principal the fake knows unless told others (`principals`).
TENANT = "00000000-0000-4000-8000-00000000000a"
CLIENT_ID = "00000000-0000-4000-8000-00000000000c"
CLIENT_SECRET = "dev-client-secret"
_LOGIN = re.compile(r"/(?:(?P<tenant>[^/]+)/(?:oauth2/v2\.0/(?P<endpoint>token|authorize)|"
                    r"v2\.0/\.well-known/(?P<metadata>openid-configuration))|"
                    r"common/discovery/(?P<discovery>instance))")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_DEFAULT_API_VERSION = "2026-04-01"

# Resource types the fake serves (lower case); children are spelled `parent/child`.
TYPES = {
    "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
    "microsoft.compute/disks": "Microsoft.Compute/disks",
    "microsoft.compute/images": "Microsoft.Compute/images",
    "microsoft.compute/galleries": "Microsoft.Compute/galleries",
    "microsoft.compute/galleries/images": "Microsoft.Compute/galleries/images",
    "microsoft.compute/galleries/images/versions": "Microsoft.Compute/galleries/images/versions",
    "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
    "microsoft.network/publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
    "microsoft.network/virtualnetworks/subnets": "Microsoft.Network/virtualNetworks/subnets",
    "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
}
VM_ACTIONS = {"runcommand", "generalize", "deallocate", "poweroff", "start", "restart"}


@dataclass
class Request:
    """A request as the handlers read it (`responses` hands them a `PreparedRequest`, which
    has the same attributes); `headers` must be case-insensitive."""

    method: str
    url: str
    headers: Any
    body: bytes | None


class StaticToken:
    """A `TokenCredential` that always hands out the same bearer token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", 4102444800)  # 2100-01-01


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    url: str
    kind: str  # "PUT Microsoft.Compute/virtualMachines", "POST .../runCommand", "GET operation"
    api_version: str | None
    body: Any
    status: int = 0


@dataclass
class Fault:
    kind: str
    status: int
    code: str
    message: str
    times: int
    retry_after: int | None
    during: str  # "request" or "operation"


@dataclass
class RunCommandOutcome:
    """What a run command did: its output and the VM's power state afterwards (None: as it
    was)."""

    stdout: str = ""
    stderr: str = ""
    power: str | None = None


@dataclass
class Operation:
    """A long-running operation: `InProgress` for `polls` status reads, then done."""

    id: str
    kind: str
    polls: int
    complete: Callable[[], Any]  # applies the change; returns the result (runCommand output)
    error: dict[str, str] | None = None
    location: str = "westus"
    on_failure: Callable[[], None] | None = None
    status: str = "InProgress"
    result: Any = None
    started: str = field(default_factory=lambda: _now())


@dataclass
class Blob:
    kind: str  # "PageBlob" or "BlockBlob"
    content: bytearray
    metadata: dict[str, str]
    etag: str
    created: datetime
    copy: dict[str, Any] | None = None  # id, source, status, polls (of a Copy Blob)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def arm_error(status: int, code: str, message: str,
              retry_after: int | None = None) -> tuple[int, dict[str, str], str]:
    """An ARM error response: `{"error": {"code", "message"}}`."""
    headers = {"Content-Type": "application/json", "x-ms-request-id": str(uuid.uuid4())}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return status, headers, json.dumps({"error": {"code": code, "message": message}})


def check_api_version(query: dict[str, list[str]]) -> str | None:
    """The request's `api-version` when it is well formed (any the SDK sends), else None."""
    values = query.get("api-version") or []
    return values[0] if values and _API_VERSION.fullmatch(values[0]) else None


class ArmFailure(Exception):
    """Raised inside a handler to answer with an ARM error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Parsed:
    """A management URL taken apart."""

    subscription: str
    group: str | None
    type: str | None  # the full type in lower case, e.g. microsoft.compute/galleries/images
    names: list[str]  # names along the type chain; one fewer than its parts: a collection
    action: str | None
    operation: str | None  # the id of an operation status / result URL
    result: bool = False  # operationResults (Location) rather than operations


def parse_path(path: str) -> Parsed:
    """Split `/subscriptions/s/resourceGroups/g/providers/NS/t1/n1/t2/n2[/action]`."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ArmFailure(400, "InvalidRequestUri", f"not an ARM path: {path}")
    subscription, rest = parts[1], parts[2:]
    group = None
    if len(rest) >= 2 and rest[0].lower() == "resourcegroups":
        group, rest = rest[1], rest[2:]
    if len(rest) < 2 or rest[0].lower() != "providers":
        raise ArmFailure(400, "InvalidRequestUri", f"no provider in {path}")
    namespace, rest = rest[1], rest[2:]
    if (len(rest) == 4 and rest[0].lower() == "locations"
            and rest[2].lower() in ("operations", "operationresults")):
        return Parsed(subscription, group, None, [], None, rest[3],
                      rest[2].lower() == "operationresults")
    types, names = [], []
    for index, part in enumerate(rest):
        (types if index % 2 == 0 else names).append(part)
    action = None
    if len(types) > len(names) + 0 and len(types) >= 2 and \
            f"{namespace}/{'/'.join(types[:-1])}".lower() in TYPES and \
            f"{namespace}/{'/'.join(types)}".lower() not in TYPES:
        action = types.pop().lower()
    full = f"{namespace}/{'/'.join(types)}".lower()
    if full not in TYPES:
        raise ArmFailure(400, "InvalidResourceType",
                         f"The resource type '{'/'.join(types)}' could not be found in the "
                         f"namespace '{namespace}'")
    return Parsed(subscription, group, full, names, action, None)


def resource_id(subscription: str, group: str, full_type: str, names: list[str]) -> str:
    """The ARM id of a resource of `full_type` (lower-case key of TYPES) with `names`."""
    spelled = TYPES[full_type].split("/")
    namespace, types = spelled[0], spelled[1:]
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}/{path}"


def parse_id(arm_id: str) -> Parsed:
    """`parse_path` of a resource id (not a collection)."""
    parsed = parse_path(arm_id)
    if parsed.type is None or parsed.action or \
            len(parsed.names) != len(TYPES[parsed.type].split("/")) - 1:
        raise ArmFailure(400, "LinkedInvalidPropertyId", f"Property id '{arm_id}' is invalid")
    return parsed


class AzureFake:
    """The fake ARM and Blob endpoints; create with `AzureFake.running()` (a context)."""

    def __init__(self, mock: responses.RequestsMock | None = None, *,
                 subscription: str = SUBSCRIPTION, lro_polls: int = 1, page_size: int = 2,
                 arm: str = ARM, blob_endpoint: str = BLOB_ENDPOINT,
                 check_tokens: bool = False):
        self.mock, self.subscription = mock, subscription
        self.arm, self.blob_endpoint = arm.rstrip("/"), blob_endpoint.rstrip("/")
        # Entra ID: the service principals (tenant, client id) -> secret, and the bearer
        # tokens issued -> their audience; ARM and Storage check them when `check_tokens`.
        self.principals: dict[tuple[str, str], str] = {(TENANT, CLIENT_ID): CLIENT_SECRET}
        self.tokens: dict[str, str] = {}
        self.check_tokens = check_tokens
        self.lro_polls, self.page_size = lro_polls, page_size
        # When to ask again about an operation under way. azure-core waits its polling
        # interval for a `Retry-After` of 0 and reads only whole seconds there: the server
        # says `Retry-After-Ms` instead.
        self.retry_after: dict[str, str] = {"Retry-After": "0"}
        self.polls: dict[str, int] = {}  # kind pattern -> InProgress reads for its operations
        self.groups: dict[str, str] = {}  # lower-case name -> location
        self.store: dict[str, dict[str, Any]] = {}  # lower-case id -> resource
        self.operations: dict[str, Operation] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.containers: dict[tuple[str, str], dict[str, Blob]] = {}
        self.uncommitted: dict[tuple[str, str, str], dict[str, bytes]] = {}
        # smoke tests the default run command reports failed, by name (`transcript`)
        self.failing_tests: set[str] = set()
        self.on_run_command: Callable[[dict[str, Any], dict[str, Any]], RunCommandOutcome] = \
            lambda vm, command: default_run_command(vm, command, self.failing_tests)
        self.copy_polls, self.copy_outcome = 1, "success"  # Copy Blob: pending reads, result
        self.replication_failures: set[str] = set()  # regions a gallery version fails in
        self._lock = threading.RLock()
        self._serial = itertools.count(1)

    @classmethod
    @contextlib.contextmanager
    def running(cls, **options: Any) -> Iterator[AzureFake]:
        """Serve the fake in this process (through `responses`) for the duration of the
        `with` block."""
        import responses

        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            fake = cls(mock, **options)
            fake.install()
            yield fake

    def install(self) -> None:
        assert self.mock is not None
        blob = re.compile(re.escape(self.blob_endpoint).replace(
            re.escape("{account}"), "[a-z0-9]+") + "(/|$)")
        for method in ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"):
            self.mock.add_callback(method, re.compile(re.escape(self.arm) + "/"), self._arm)
            self.mock.add_callback(method, blob, self._blob)

    def handle(self, request: Any) -> tuple[int, dict[str, str], str | bytes]:
        """Answer a request to any of the services (the server's entry point): Entra ID's
        endpoints, ARM (paths under `/subscriptions` and `/providers`), else Blob storage."""
        path = urlsplit(request.url).path
        if _LOGIN.fullmatch(path):
            return self._login(request)
        if request.url.startswith(self.arm + "/") and \
                path[len(urlsplit(self.arm).path):].split("/")[1].lower() in (
                    "subscriptions", "providers"):
            return self._arm(request)
        if self.blob_address(request.url) is not None:
            return self._blob(request)
        return 404, {"Content-Type": "text/plain"}, f"no service at {path}\n"

    def blob_address(self, url: str) -> tuple[str, str] | None:
        """`(account, "container/blob")` of a Blob storage URL (query left out), or None."""
        head, _, tail = self.blob_endpoint.partition("{account}")
        bare = url.split("?", 1)[0]
        if not bare.startswith(head):
            return None
        account, _, rest = bare[len(head):].partition(tail + "/" if tail else "/")
        if not re.fullmatch(r"[a-z0-9]{3,24}", account):
            return None
        return account, unquote(rest)

    def blob_url(self, account: str, container: str, name: str) -> str:
        """The URL of a blob as this fake serves it."""
        return f"{self.blob_endpoint.format(account=account)}/{container}/{quote(name)}"

    # --- set-up and inspection ---------------------------------------------------------------

    def add_group(self, name: str, location: str) -> str:
        """Create a resource group; its id."""
        self.groups[name.lower()] = location
        return f"/subscriptions/{self.subscription}/resourceGroups/{name}"

    def add_storage_account(self, account: str, *containers: str) -> None:
        """A storage account with `containers` (blob storage answers only for known ones)."""
        for container in containers or ("vhds",):
            self.containers.setdefault((account, container), {})

    def add_fleet(self, fleet: Any) -> list[str]:
        """What a subscription set up for a fleet (`config.Fleet`) holds before any build:
        the resource group of every Azure target, in the target's region, and its storage
        account (`storage`) with a `disk-images` container; the groups' names."""
        from ..config import normalise_region

        groups = []
        for key in fleet.keys.values():
            for target in key.targets:
                if target.platform != "azure" or not target.group:
                    continue
                self.add_group(target.group, normalise_region(target.region))
                groups.append(target.group)
                if target.storage:
                    self.add_storage_account(target.storage, "disk-images")
        return sorted(set(groups))

    def put_blob(self, account: str, container: str, name: str, content: bytes,
                 metadata: dict[str, str] | None = None, kind: str = "PageBlob") -> str:
        """Store a blob as it is (its account and container made when missing); its URL."""
        self.add_storage_account(account, container)
        self.containers[(account, container)][name] = Blob(
            kind, bytearray(content), dict(metadata or {}), _etag(), datetime.now(UTC))
        return self.blob_url(account, container, name)

    def put(self, full_type: str, group: str, names: list[str], location: str,
            properties: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
            **extra: Any) -> dict[str, Any]:
        """Put a resource into the store as it is (no operation, no checks); the resource."""
        full_type = full_type.lower()
        arm_id = resource_id(self.subscription, group, full_type, names)
        resource = {"id": arm_id, "name": names[-1], "type": TYPES[full_type],
                    "location": location, "tags": dict(tags or {}),
                    "properties": {"provisioningState": "Succeeded", **(properties or {})},
                    **extra}
        self.store[arm_id.lower()] = resource
        return resource

    def resource(self, arm_id: str) -> dict[str, Any] | None:
        """The stored resource with this id (any casing), or None."""
        return self.store.get(arm_id.lower())

    def resources(self, type_pattern: str = "*", group: str | None = None
                  ) -> list[dict[str, Any]]:
        """Stored resources whose type matches `type_pattern` (fnmatch, case-insensitive),
        optionally in one resource group, by id."""
        found = []
        for key, resource in sorted(self.store.items()):
            if not fnmatch.fnmatch(resource["type"].lower(), type_pattern.lower()):
                continue
            if group and f"/resourcegroups/{group.lower()}/" not in key:
                continue
            found.append(resource)
        return found

    def calls_of(self, kind_pattern: str) -> list[Call]:
        """The calls whose kind matches `kind_pattern` (fnmatch)."""
        return [c for c in self.calls if fnmatch.fnmatch(c.kind, kind_pattern)]

    def blob(self, account: str, container: str, name: str) -> Blob | None:
        return self.containers.get((account, container), {}).get(name)

    def fail(self, kind: str, *, status: int = 500, code: str = "InternalServerError",
             message: str = "An internal server error occurred.", times: int = 1,
             retry_after: int | None = None, during: str = "request") -> None:
        """Make the next `times` calls of `kind` (fnmatch) fail with an ARM error, or (with
        `during="operation"`) their long-running operations end Failed with it."""
        self.faults.append(Fault(kind, status, code, message, times, retry_after, during))

    def quota_exceeded(self, kind: str = "PUT Microsoft.Compute/virtualMachines",
                       family: str = "standardDSv2Family") -> None:
        """The next `kind` call is refused as ARM refuses one over the cores quota."""
        self.fail(kind, status=409, code="OperationNotAllowed",
                  message=f"Operation could not be completed as it results in exceeding "
                          f"approved {family} Cores quota. Additional details - Deployment "
                          f"Model: Resource Manager, Location: centralus, Current Limit: 10, "
                          f"Current Usage: 10, Additional Required: 2, (Minimum) New Limit "
                          f"Required: 12.")

    def set_power(self, vm_id: str, state: str) -> None:
        """Put a VM in a power state (`running`, `stopped`, `deallocated`, ...)."""
        vm = self._get(vm_id)
        vm["_power"] = state

    def _fault(self, kind: str, during: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.during == during and fnmatch.fnmatch(kind, fault.kind):
                fault.times -= 1
                return fault
        return None

    # --- Entra ID ------------------------------------------------------------------------------

    def _login(self, request: Any) -> tuple[int, dict[str, str], str]:
        """The token endpoint (client credentials), the tenant's OpenID configuration and
        instance discovery, as Entra ID answers them."""
        with self._lock:
            split = urlsplit(request.url)
            match = _LOGIN.fullmatch(split.path)
            assert match is not None
            origin = f"{split.scheme}://{split.netloc}"
            what = match["endpoint"] or match["metadata"] or "instance-discovery"
            call = Call(request.method, request.url, f"{request.method} {what}", None, None)
            self.calls.append(call)
            answer = self._login_answer(request, match, origin)
            call.status = answer[0]
            return answer

    def _login_answer(self, request: Any, match: re.Match[str], origin: str
                      ) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        if match["discovery"]:
            authorize = urlsplit(query.get("authorization_endpoint", ""))
            tenant = authorize.path.strip("/").split("/")[0] or "common"
            host = urlsplit(origin).netloc
            return self._json(200, {
                "tenant_discovery_endpoint":
                    f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1", "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}]})
        tenant = match["tenant"]
        if tenant not in {t for t, _ in self.principals}:
            return entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. "
                               "Check to make sure you have the correct tenant ID and are "
                               "signing into the correct cloud.")
        if match["metadata"]:
            base = f"{origin}/{tenant}"
            return self._json(200, {
                "issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": None, "cloud_instance_name": urlsplit(origin).netloc})
        if match["endpoint"] != "token" or request.method != "POST":
            return entra_error(400, "invalid_request", 900561, "The endpoint only accepts "
                               "POST requests of the client credentials grant.")
        form = {k: v[0] for k, v in parse_qs(_body_bytes(request).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return entra_error(400, "unsupported_grant_type", 70003, "The app requested an "
                               "unsupported grant type.")
        client = form.get("client_id", "")
        secret = self.principals.get((tenant, client))
        if secret is None:
            return entra_error(400, "unauthorized_client", 700016, f"Application with "
                               f"identifier '{client}' was not found in the directory "
                               f"'{tenant}'.")
        if form.get("client_secret") != secret:
            return entra_error(401, "invalid_client", 7000215, "Invalid client secret "
                               f"provided. Ensure the secret being sent in the request is the "
                               f"client secret value, not the client secret ID, for a secret "
                               f"added to app '{client}'.")
        scopes = [s for s in form.get("scope", "").split() if s.endswith("/.default")]
        if len(scopes) != 1:
            return entra_error(400, "invalid_scope", 1002012, f"The provided value for scope "
                               f"{form.get('scope', '')} is not valid. Client credential flows "
                               "must have a scope value with /.default suffixed to the "
                               "resource identifier (application ID URI).")
        audience = scopes[0][:-len("/.default")].rstrip("/")
        token = access_token(tenant, client, audience)
        self.tokens[token] = audience
        return self._json(200, {"token_type": "Bearer", "expires_in": 3599,
                                "ext_expires_in": 3599, "access_token": token})

    def _bearer_audience(self, request: Any) -> str | None:
        """The audience of the request's bearer token; "" for one not issued here, None
        without one."""
        header = request.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            return None
        return self.tokens.get(header[len("Bearer "):], "")

    def _authorize(self, request: Any, audience: str) -> None:
        """With `check_tokens`, refuse a request to ARM without a token of ARM's audience."""
        if not self.check_tokens:
            return
        found = self._bearer_audience(request)
        if found is None:
            raise ArmFailure(401, "AuthenticationFailed", "Authentication failed. The "
                             "'Authorization' header is missing.")
        if not found:
            raise ArmFailure(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if found != audience.rstrip("/"):
            raise ArmFailure(401, "InvalidAuthenticationTokenAudience", "The access token has "
                             f"been obtained for wrong audience or resource '{found}'. It "
                             "should exactly match with one of the allowed audiences "
                             f"'{audience}'.")

    # --- ARM -----------------------------------------------------------------------------------

    def _arm(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self._lock:
            split = urlsplit(request.url)
            query = parse_qs(split.query)
            body = None
            if request.body:
                raw = request.body.decode() if isinstance(request.body, bytes) else request.body
                body = json.loads(raw) if raw.strip() else None
            call = Call(request.method, request.url, "?", check_api_version(query), body)
            self.calls.append(call)
            try:
                parsed = parse_path(split.path[len(urlsplit(self.arm).path):])
                call.kind = kind_of(request.method, parsed)
                self._authorize(request, self.arm)
                if call.api_version is None:
                    raise ArmFailure(400, "MissingApiVersionParameter",
                                     "The api-version query parameter (?api-version=) is "
                                     "required for all requests.")
                fault = self._fault(call.kind, "request")
                if fault:
                    answer = arm_error(fault.status, fault.code, fault.message,
                                       fault.retry_after)
                else:
                    answer = self._dispatch(request.method, parsed, query, body, call.kind)
            except ArmFailure as failure:
                answer = arm_error(failure.status, failure.code, failure.message)
            call.status = answer[0]
            return answer

    def _dispatch(self, method: str, parsed: Parsed, query: dict[str, list[str]], body: Any,
                  kind: str) -> tuple[int, dict[str, str], str]:
        if parsed.operation is not None:
            return self._operation_status(parsed)
        assert parsed.type is not None
        depth = len(TYPES[parsed.type].split("/")) - 1
        if parsed.group is not None and parsed.group.lower() not in self.groups:
            raise ArmFailure(404, "ResourceGroupNotFound",
                             f"Resource group '{parsed.group}' could not be found.")
        if parsed.action:
            return self._action(method, parsed, query, body, kind)
        if len(parsed.names) == depth - 1:
            if method != "GET":
                raise ArmFailure(405, "MethodNotAllowed", f"{method} on a collection")
            return self._list(parsed, query)
        if parsed.group is None:
            raise ArmFailure(400, "InvalidRequestUri", "a resource needs its resource group")
        arm_id = resource_id(parsed.subscription, parsed.group, parsed.type, parsed.names)
        if method == "GET":
            return self._json(200, self._view(self._get(arm_id), query))
        if method == "PUT":
            return self._put(parsed, arm_id, body or {}, kind)
        if method == "PATCH":
            return self._patch(arm_id, body or {}, kind)
        if method == "DELETE":
            return self._delete(parsed, arm_id, kind)
        raise ArmFailure(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _get(self, arm_id: str) -> dict[str, Any]:
        resource = self.store.get(arm_id.lower())
        if resource is None:
            parsed = parse_id(arm_id)
            raise ArmFailure(404, "ResourceNotFound",
                             f"The Resource '{TYPES[parsed.type or ''].split('/', 1)[1]}/"
                             f"{'/'.join(parsed.names)}' under resource group "
                             f"'{parsed.group}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix")
        return resource

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], str]:
        return status, {"Content-Type": "application/json",
                        "x-ms-request-id": str(uuid.uuid4()), **(headers or {})}, \
            json.dumps(body) if body is not None else ""

    def _view(self, resource: dict[str, Any], query: dict[str, list[str]] | None = None
              ) -> dict[str, Any]:
        """A resource as ARM shows it (derived, read-only fields filled in)."""
        view = {k: json.loads(json.dumps(v)) for k, v in resource.items()
                if not k.startswith("_")}
        expand = ",".join((query or {}).get("$expand", [])).lower()
        kind = resource["type"].lower()
        if kind == "microsoft.compute/virtualmachines" and "instanceview" in expand:
            view["properties"]["instanceView"] = self._instance_view(resource)
        if kind == "microsoft.network/virtualnetworks":
            view["properties"]["subnets"] = [self._view(s) for s in self.resources(
                "Microsoft.Network/virtualNetworks/subnets") if s["id"].lower().startswith(
                resource["id"].lower() + "/")]
        if kind == "microsoft.compute/galleries/images/versions" and "replicationstatus" in expand:
            regions = (resource["properties"].get("publishingProfile") or {}).get(
                "targetRegions") or [{"name": resource["location"]}]
            done = resource["properties"]["provisioningState"] == "Succeeded"
            summary = [{"region": r["name"], "state": "Completed" if done else "Replicating",
                        "progress": 100 if done else 50} for r in regions]
            for entry in summary:
                if done and normal_location(entry["region"]) in self.replication_failures:
                    entry.update(state="Failed", progress=0, details="Replication failed: "
                                 "the storage account of the region is not available.")
            states = {e["state"] for e in summary}
            view["properties"]["replicationStatus"] = {
                "aggregatedState": "Failed" if "Failed" in states else
                "Completed" if done else "InProgress", "summary": summary}
        return view

    def _instance_view(self, vm: dict[str, Any]) -> dict[str, Any]:
        power = vm.get("_power", "running")
        statuses = [{"code": f"ProvisioningState/{vm['properties']['provisioningState'].lower()}",
                     "level": "Info", "displayStatus": "Provisioning "
                     + vm["properties"]["provisioningState"].lower(), "time": _now()}]
        if vm.get("_generalized"):
            statuses.append({"code": "OSState/generalized", "level": "Info",
                             "displayStatus": "VM generalized"})
        statuses.append({"code": f"PowerState/{power}", "level": "Info",
                         "displayStatus": f"VM {power}"})
        return {"computerName": vm["name"][:15], "osName": "fake", "statuses": statuses,
                "vmAgent": {"vmAgentVersion": "2.7.41491.1102",
                            "statuses": [{"code": "ProvisioningState/succeeded",
                                          "level": "Info", "displayStatus": "Ready"}]}}

    def _list(self, parsed: Parsed, query: dict[str, list[str]]
              ) -> tuple[int, dict[str, str], str]:
        assert parsed.type is not None
        prefix = f"/subscriptions/{parsed.subscription}".lower()
        if parsed.group:
            prefix += f"/resourcegroups/{parsed.group.lower()}/"
        if parsed.names:
            parent_type = parsed.type.rsplit("/", 1)[0]
            parent = resource_id(parsed.subscription, parsed.group or "", parent_type,
                                 parsed.names)
            self._get(parent)
            prefix = parent.lower() + "/"
        items = [self._view(r) for key, r in sorted(self.store.items())
                 if key.startswith(prefix) and r["type"].lower() == TYPES[parsed.type].lower()]
        start = int((query.get("$skiptoken") or ["0"])[0])
        page = {"value": items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            version = (query.get("api-version") or [_DEFAULT_API_VERSION])[0]
            path = urlsplit(self.calls[-1].url).path
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.arm))
            page["nextLink"] = (f"{origin}{path}?api-version={version}"
                                f"&$skiptoken={start + self.page_size}")
        return self._json(200, page)

    # --- writes as long-running operations -----------------------------------------------------

    def _begin(self, kind: str, location: str, complete: Callable[[], Any]) -> Operation:
        polls = next((n for pattern, n in self.polls.items()
                      if fnmatch.fnmatch(kind, pattern)), self.lro_polls)
        operation = Operation(str(uuid.uuid4()), kind, polls, complete, location=location)
        fault = self._fault(kind, "operation")
        if fault:
            operation.error = {"code": fault.code, "message": fault.message}
        self.operations[operation.id] = operation
        return operation

    def _operation_headers(self, operation: Operation, namespace: str) -> dict[str, str]:
        base = (f"{self.arm}/subscriptions/{self.subscription}/providers/{namespace}/locations/"
                f"{operation.location}")
        version = self.calls[-1].api_version or _DEFAULT_API_VERSION
        return {"Azure-AsyncOperation": f"{base}/operations/{operation.id}?api-version={version}",
                "Location": f"{base}/operationResults/{operation.id}?api-version={version}",
                **self.retry_after}

    def _advance(self, operation: Operation) -> None:
        if operation.status != "InProgress":
            return
        if operation.polls > 0:
            operation.polls -= 1
            return
        if operation.error:
            operation.status = "Failed"
            if operation.on_failure:
                operation.on_failure()
            return
        try:
            operation.result = operation.complete()
            operation.status = "Succeeded"
        except ArmFailure as failure:
            operation.status = "Failed"
            operation.error = {"code": failure.code, "message": failure.message}

    def _operation_status(self, parsed: Parsed) -> tuple[int, dict[str, str], str]:
        operation = self.operations.get(parsed.operation or "")
        if operation is None:
            raise ArmFailure(404, "NotFound", f"operation {parsed.operation} not found")
        if not parsed.result:
            self._advance(operation)
            body: dict[str, Any] = {"name": operation.id, "status": operation.status,
                                    "startTime": operation.started}
            if operation.status != "InProgress":
                body["endTime"] = _now()
            if operation.error and operation.status == "Failed":
                body["error"] = operation.error
            if operation.status == "Succeeded" and operation.result is not None:
                body["properties"] = {"output": operation.result}
            under_way = operation.status == "InProgress"
            return self._json(200, body, dict(self.retry_after) if under_way else None)
        if operation.status == "InProgress":
            self._advance(operation)
        if operation.status == "InProgress":
            return self._json(202, None, {**self.retry_after,
                                          "Location": self.calls[-1].url})
        if operation.status == "Failed":
            error = operation.error or {}
            return arm_error(400, error.get("code", "Failed"), error.get("message", ""))
        if operation.result is None:
            return self._json(204, None)
        return self._json(200, operation.result)

    def _put(self, parsed: Parsed, arm_id: str, body: dict[str, Any], kind: str
             ) -> tuple[int, dict[str, str], str]:
        assert parsed.type is not None
        existing = self.store.get(arm_id.lower())
        if existing is not None and existing["properties"].get("provisioningState") in (
                "Creating", "Updating", "Deleting"):
            raise ArmFailure(409, "Conflict", f"Resource {arm_id} is busy: its last operation "
                             "has not finished")
        location = body.get("location")
        top = len(parsed.names) == 1 or parsed.type.startswith("microsoft.compute/galleries")
        if parsed.type == "microsoft.network/virtualnetworks/subnets":
            self._get(arm_id.rsplit("/subnets/", 1)[0])
            location = None
        elif top and not location:
            raise ArmFailure(400, "LocationRequired", "The location property is required for "
                             "this definition.")
        if len(parsed.names) > 1 and parsed.type != "microsoft.network/virtualnetworks/subnets":
            parent_id = arm_id.rsplit("/", 2)[0]
            if parent_id.lower() not in self.store:
                raise ArmFailure(404, "ParentResourceNotFound",
                                 f"Can not perform requested operation on nested resource. "
                                 f"Parent resource '{parent_id.rsplit('/', 1)[1]}' not found.")
        properties = json.loads(json.dumps(body.get("properties") or {}))
        resource: dict[str, Any] = {
            "id": arm_id, "name": parsed.names[-1], "type": TYPES[parsed.type],
            "location": normal_location(location or "") if location else None,
            "tags": dict(body.get("tags") or {}), "properties": properties}
        if resource["location"] is None:
            del resource["location"]
        for extra in ("sku", "zones", "identity", "plan"):
            if extra in body:
                resource[extra] = body[extra]
        check = CHECKS.get(parsed.type)
        if check:
            check(self, resource, existing)
        state = "Updating" if existing else "Creating"
        properties["provisioningState"] = state
        if existing:
            for key, value in existing.items():
                if key.startswith("_"):
                    resource[key] = value
        self.store[arm_id.lower()] = resource
        created = CREATED.get(parsed.type)

        def complete() -> None:
            resource["properties"]["provisioningState"] = "Succeeded"
            if created and not existing:
                created(self, resource)

        operation = self._begin(kind, resource.get("location", "westus"), complete)
        operation.on_failure = lambda: resource["properties"].update(
            provisioningState="Failed")
        namespace = TYPES[parsed.type].split("/", 1)[0]
        return self._json(200 if existing else 201, self._view(resource),
                          self._operation_headers(operation, namespace))

    def _patch(self, arm_id: str, body: dict[str, Any], kind: str
               ) -> tuple[int, dict[str, str], str]:
        resource = self._get(arm_id)
        if resource["properties"].get("provisioningState") in ("Creating", "Updating",
                                                                "Deleting"):
            raise ArmFailure(409, "Conflict", f"Resource {arm_id} is busy: its last operation "
                             "has not finished")
        if "tags" in body:
            resource["tags"] = dict(body["tags"] or {})
        for key, value in (body.get("properties") or {}).items():
            resource["properties"][key] = value
        updating = bool(body.get("properties"))  # under way until its operation completes
        if updating:
            resource["properties"]["provisioningState"] = "Updating"

        def complete() -> None:
            if updating:
                resource["properties"]["provisioningState"] = "Succeeded"

        operation = self._begin(kind, resource.get("location", "westus"), complete)
        if updating:
            operation.on_failure = lambda: resource["properties"].update(
                provisioningState="Failed")
        namespace = resource["type"].split("/", 1)[0]
        return self._json(200, self._view(resource),
                          self._operation_headers(operation, namespace))

    def _delete(self, parsed: Parsed, arm_id: str, kind: str
                ) -> tuple[int, dict[str, str], str]:
        resource = self.store.get(arm_id.lower())
        if resource is None:
            return self._json(204, None)
        check = DELETE_CHECKS.get(parsed.type or "")
        if check:
            check(self, resource)
        children = [k for k in self.store if k.startswith(arm_id.lower() + "/")]
        if children and parsed.type != "microsoft.network/virtualnetworks":
            raise ArmFailure(409, "CannotDeleteResource", f"{resource['name']} has nested "
                             "resources; delete them first")

        def complete() -> None:
            self.store.pop(arm_id.lower(), None)
            for child in children:
                self.store.pop(child, None)
            deleted = DELETED.get(parsed.type or "")
            if deleted:
                deleted(self, resource)

        operation = self._begin(kind, resource.get("location", "westus"), complete)
        namespace = resource["type"].split("/", 1)[0]
        return self._json(202, None, self._operation_headers(operation, namespace))

    def _action(self, method: str, parsed: Parsed, query: dict[str, list[str]], body: Any,
                kind: str) -> tuple[int, dict[str, str], str]:
        assert parsed.type is not None and parsed.group is not None
        arm_id = resource_id(parsed.subscription, parsed.group, parsed.type, parsed.names)
        resource = self._get(arm_id)
        if parsed.type != "microsoft.compute/virtualmachines":
            raise ArmFailure(400, "InvalidResourceType", f"no action {parsed.action}")
        if parsed.action == "instanceview" and method == "GET":
            return self._json(200, self._instance_view(resource))
        if method != "POST" or parsed.action not in VM_ACTIONS:
            raise ArmFailure(404, "NotFound", f"no such action {parsed.action}")
        if parsed.action == "generalize":
            if resource.get("_power", "running") not in ("stopped", "deallocated"):
                raise ArmFailure(409, "OperationNotAllowed",
                                 f"Operation 'generalize' is not allowed on VM "
                                 f"'{resource['name']}' since the VM is running. Please stop "
                                 "the VM and retry.")
            resource["_generalized"] = True
            return self._json(200, None)
        if resource.get("_generalized") and parsed.action in ("runcommand", "start"):
            raise ArmFailure(409, "OperationNotAllowed",
                             f"Operation '{parsed.action}' is not allowed on VM "
                             f"'{resource['name']}' since the VM is generalized.")
        if parsed.action == "runcommand":
            if resource.get("_power", "running") != "running":
                raise ArmFailure(409, "Conflict", f"Run command on VM '{resource['name']}' "
                                 "needs it running")
            command = dict(body or {})

            def run() -> dict[str, Any]:
                outcome = self.on_run_command(resource, command)
                if outcome.power:
                    resource["_power"] = outcome.power
                return {"value": [
                    {"code": "ComponentStatus/StdOut/succeeded", "level": "Info",
                     "displayStatus": "Provisioning succeeded", "message": outcome.stdout},
                    {"code": "ComponentStatus/StdErr/succeeded", "level": "Info",
                     "displayStatus": "Provisioning succeeded", "message": outcome.stderr}]}

            operation = self._begin(kind, resource["location"], run)
        else:
            transitions = {"deallocate": ("deallocating", "deallocated"),
                           "poweroff": ("stopping", "stopped"),
                           "start": ("starting", "running"),
                           "restart": ("starting", "running")}
            during, after = transitions[parsed.action or ""]
            resource["_power"] = during
            operation = self._begin(kind, resource["location"],
                                    lambda: resource.update(_power=after) and None)
        return self._json(202, None, self._operation_headers(operation, "Microsoft.Compute"))

    # --- Blob storage --------------------------------------------------------------------------

    def _blob(self, request: Any) -> tuple[int, dict[str, str], str | bytes]:
        with self._lock:
            split = urlsplit(request.url)
            account, path = self.blob_address(request.url) or ("", "")
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            container, _, name = path.partition("/")
            operation = query.get("comp") or query.get("restype") or ""
            kind = f"{request.method} blob{'/' + operation if operation else ''}"
            call = Call(request.method, request.url, kind,
                        request.headers.get("x-ms-version"), None)
            self.calls.append(call)
            fault = self._fault(kind, "request")
            refusal = self._storage_refusal(request, query, method=request.method)
            if refusal:
                answer = refusal
            elif fault:
                answer = storage_error(fault.status, fault.code, fault.message)
            elif not call.api_version:
                answer = storage_error(400, "MissingRequiredHeader",
                                       "An HTTP header that's mandatory for this request is "
                                       "not specified: x-ms-version")
            else:
                answer = self._blob_dispatch(request, account, container, name, query)
            call.status = answer[0]
            return answer

    def _storage_refusal(self, request: Any, query: dict[str, str], method: str
                         ) -> tuple[int, dict[str, str], str] | None:
        """With `check_tokens`, Storage's refusal of a request that is neither signed by a
        SAS nor carries a token issued for Storage; None when it may go on."""
        if not self.check_tokens or "sig" in query:
            return None
        found = self._bearer_audience(request)
        if found is None:
            return storage_error(401, "NoAuthenticationInformation", "Server failed to "
                                 "authenticate the request. Please refer to the information "
                                 "in the www-authenticate header.", head=method == "HEAD")
        if found != STORAGE_AUDIENCE:
            return storage_error(401, "InvalidAuthenticationInfo", "Server failed to "
                                 "authenticate the request. Audience validation failed: "
                                 f"{found or 'a token not issued by Entra ID'}.",
                                 head=method == "HEAD")
        return None

    def _blob_dispatch(self, request: Any, account: str, container: str, name: str,
                       query: dict[str, str]) -> tuple[int, dict[str, str], str | bytes]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        method = request.method
        if not container and query.get("comp") == "userdelegationkey" and method == "POST":
            return self._delegation_key(request, headers)
        if not name:
            if query.get("restype") == "container" and method == "PUT":
                if (account, container) in self.containers:
                    return storage_error(409, "ContainerAlreadyExists",
                                         "The specified container already exists.")
                self.containers[(account, container)] = {}
                return 201, self._blob_headers(), ""
            return storage_error(400, "UnsupportedHttpVerb", f"{method} on a container")
        blobs = self.containers.get((account, container))
        if blobs is None:
            return storage_error(404, "ContainerNotFound",
                                 "The specified container does not exist.",
                                 head=method == "HEAD")
        blob = blobs.get(name)
        comp = query.get("comp")
        if method == "PUT" and comp is None:
            if headers.get("if-none-match") == "*" and blob is not None:
                return storage_error(409, "BlobAlreadyExists",
                                     "The specified blob already exists.")
            if "x-ms-copy-source" in headers:
                return self._copy(account, blobs, name, headers)
            kind = headers.get("x-ms-blob-type", "BlockBlob")
            if kind == "PageBlob":
                size = int(headers.get("x-ms-blob-content-length", "0"))
                if size % 512:
                    return storage_error(400, "InvalidHeaderValue", "page blob size must be a "
                                         "multiple of 512")
                content = bytearray(size)
            else:
                content = bytearray(_body_bytes(request))
            metadata = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                        if k.startswith("x-ms-meta-")}
            blobs[name] = Blob(kind, content, metadata, _etag(), datetime.now(UTC))
            return 201, self._blob_headers(blobs[name]), ""
        staged = self.uncommitted.setdefault((account, container, name), {})
        if method == "PUT" and comp == "block":
            staged[query["blockid"]] = _body_bytes(request)
            return 201, self._blob_headers(), ""
        if method == "PUT" and comp == "blocklist":
            ids = [e.text or "" for e in ElementTree.fromstring(_body_bytes(request))]
            if any(i not in staged for i in ids):
                return storage_error(400, "InvalidBlockList", "The specified block list is "
                                     "invalid.")
            metadata = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                        if k.startswith("x-ms-meta-")}
            blobs[name] = Blob("BlockBlob", bytearray(b"".join(staged[i] for i in ids)),
                               metadata, _etag(), datetime.now(UTC))
            staged.clear()
            return 201, self._blob_headers(blobs[name]), ""
        if blob is None:
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.",
                                 head=method == "HEAD")
        if "if-match" in headers and headers["if-match"] not in (blob.etag, "*"):
            return storage_error(412, "ConditionNotMet", "The condition specified using HTTP "
                                 "conditional header(s) is not met.")
        if method == "PUT" and comp == "page":
            if blob.kind != "PageBlob":
                return storage_error(409, "InvalidBlobType", "not a page blob")
            start, end = _range(headers.get("x-ms-range") or headers.get("range") or "")
            data = _body_bytes(request)
            if (start % 512 or (end + 1) % 512 or end >= len(blob.content)
                    or len(data) != end - start + 1):
                return storage_error(416, "InvalidPageRange", "The page range specified is "
                                     "invalid.")
            if headers.get("x-ms-page-write", "update") == "clear":
                blob.content[start:end + 1] = bytes(end - start + 1)
            else:
                blob.content[start:end + 1] = data
            blob.etag = _etag()
            return 201, {**self._blob_headers(blob), "x-ms-blob-sequence-number": "0"}, ""
        if method == "PUT" and comp == "metadata":
            blob.metadata = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                             if k.startswith("x-ms-meta-")}
            blob.etag = _etag()
            return 200, self._blob_headers(blob), ""
        if method == "HEAD":
            if blob.copy and blob.copy["status"] == "pending":
                if blob.copy["polls"] > 0:
                    blob.copy["polls"] -= 1
                else:
                    blob.copy.update(status=self.copy_outcome, completed=datetime.now(UTC))
            return 200, self._blob_headers(blob, properties=True), ""
        if method == "GET" and comp is None:
            return 200, self._blob_headers(blob, properties=True), bytes(blob.content)
        if method == "DELETE":
            del blobs[name]
            return 202, self._blob_headers(), ""
        return storage_error(400, "UnsupportedQueryParameter", f"comp={comp}")

    def _blob_headers(self, blob: Blob | None = None, properties: bool = False
                      ) -> dict[str, str]:
        headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": "2026-02-06",
                   "Date": format_datetime(datetime.now(UTC), usegmt=True)}
        if blob is not None:
            headers["ETag"] = blob.etag
            headers["Last-Modified"] = format_datetime(datetime.now(UTC), usegmt=True)
            headers["x-ms-request-server-encrypted"] = "true"
        if blob is not None and properties:
            headers.update({"Content-Length": str(len(blob.content)),
                            "Content-Type": "application/octet-stream",
                            "x-ms-blob-type": blob.kind,
                            "x-ms-creation-time": format_datetime(blob.created, usegmt=True),
                            **{f"x-ms-meta-{k}": v for k, v in blob.metadata.items()}})
            if blob.copy:
                size = len(blob.content)
                done = size if blob.copy["status"] == "success" else 0
                headers.update({"x-ms-copy-id": blob.copy["id"],
                                "x-ms-copy-source": blob.copy["source"],
                                "x-ms-copy-status": blob.copy["status"],
                                "x-ms-copy-progress": f"{done}/{size}"})
                if blob.copy.get("completed"):
                    headers["x-ms-copy-completion-time"] = format_datetime(
                        blob.copy["completed"], usegmt=True)
                if blob.copy["status"] == "failed":
                    headers["x-ms-copy-status-description"] = \
                        "500 InternalError Copy failed when reading the source."
        return headers

    def _delegation_key(self, request: Any, headers: dict[str, str]
                        ) -> tuple[int, dict[str, str], str]:
        """A user delegation key: only for an Entra (bearer token) caller."""
        if not headers.get("authorization", "").startswith("Bearer "):
            return storage_error(403, "AuthenticationFailed", "Only authentication via Entra "
                                 "ID can request a user delegation key.")
        info = ElementTree.fromstring(_body_bytes(request))
        value = base64.b64encode(uuid.uuid4().bytes * 2).decode()
        body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey>"
                f"<SignedOid>{uuid.uuid4()}</SignedOid><SignedTid>{uuid.uuid4()}</SignedTid>"
                f"<SignedStart>{info.findtext('Start')}</SignedStart>"
                f"<SignedExpiry>{info.findtext('Expiry')}</SignedExpiry>"
                "<SignedService>b</SignedService><SignedVersion>2026-02-06</SignedVersion>"
                f"<Value>{value}</Value></UserDelegationKey>")
        return 200, {**self._blob_headers(), "Content-Type": "application/xml"}, body

    def _copy(self, account: str, blobs: dict[str, Blob], name: str, headers: dict[str, str]
              ) -> tuple[int, dict[str, str], str]:
        """Copy Blob: the content is taken now, the copy reads `pending` `copy_polls` times."""
        source_url = headers["x-ms-copy-source"]
        address = self.blob_address(source_url)
        split = urlsplit(source_url)
        source_account, path = address or ("", "")
        container, _, source_name = path.partition("/")
        sas = {k: v[0] for k, v in parse_qs(split.query).items()}
        source = self.blob(source_account, container, source_name) if address else None
        if address and source_account != account and ("sig" not in sas or
                                                      "r" not in sas.get("sp", "")):
            return storage_error(403, "CannotVerifyCopySource", "Server failed to authenticate "
                                 "the request. Please refer to the information in the "
                                 "www-authenticate header.")
        if source is None:
            return storage_error(404, "CannotVerifyCopySource", "The specified blob does not "
                                 "exist.")
        metadata = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                    if k.startswith("x-ms-meta-")} or dict(source.metadata)
        copy = {"id": str(uuid.uuid4()), "source": source_url.split("?", 1)[0],
                "status": "pending", "polls": self.copy_polls}
        blobs[name] = Blob(source.kind, bytearray(source.content), metadata, _etag(),
                           datetime.now(UTC), copy)
        return 202, {**self._blob_headers(blobs[name]), "x-ms-copy-id": copy["id"],
                     "x-ms-copy-status": "pending"}, ""


# --- ARM's rules, per resource type ------------------------------------------------------------


def normal_location(location: str) -> str:
    return re.sub(r"\s+", "", location).lower()


def kind_of(method: str, parsed: Parsed) -> str:
    """`"PUT Microsoft.Compute/virtualMachines"`, `"POST Microsoft.Compute/virtualMachines/
    runCommand"`, `"GET operation"`: what faults and `calls_of` match on."""
    if parsed.operation is not None:
        return "GET operation"
    spelled = TYPES[parsed.type or ""]
    if parsed.action:
        action = {"runcommand": "runCommand", "poweroff": "powerOff",
                  "instanceview": "instanceView"}.get(parsed.action, parsed.action)
        return f"{method} {spelled}/{action}"
    depth = len(spelled.split("/")) - 1
    return f"{method} {spelled}" + (" (list)" if len(parsed.names) < depth else "")


def _reference(fake: AzureFake, arm_id: str | None, what: str) -> dict[str, Any]:
    if not arm_id:
        raise ArmFailure(400, "InvalidParameter", f"{what} is required")
    try:
        parse_id(arm_id)
    except ArmFailure:
        raise ArmFailure(400, "LinkedInvalidPropertyId",
                         f"Property id '{arm_id}' at path '{what}' is invalid.") from None
    resource = fake.store.get(arm_id.lower())
    if resource is None:
        raise ArmFailure(400, "InvalidResourceReference",
                         f"Resource {arm_id} referenced by {what} was not found.")
    return resource


def _check_vm(fake: AzureFake, vm: dict[str, Any], existing: dict[str, Any] | None) -> None:
    props = vm["properties"]
    if not (props.get("hardwareProfile") or {}).get("vmSize"):
        raise ArmFailure(400, "InvalidParameter", "hardwareProfile.vmSize is required")
    storage = props.get("storageProfile") or {}
    reference = storage.get("imageReference") or {}
    if reference.get("id"):
        image = _reference(fake, reference["id"], "storageProfile.imageReference.id")
        if image["properties"].get("provisioningState") != "Succeeded":
            raise ArmFailure(409, "OperationNotAllowed", f"image {image['name']} is not ready")
    elif (storage.get("osDisk") or {}).get("createOption", "").lower() != "attach" and \
            not all(reference.get(k) for k in ("publisher", "offer", "sku")):
        raise ArmFailure(400, "InvalidParameter", "storageProfile.imageReference needs an id or "
                         "publisher, offer and sku")
    nics = (props.get("networkProfile") or {}).get("networkInterfaces") or []
    if not nics:
        raise ArmFailure(400, "InvalidParameter", "networkProfile.networkInterfaces is required")
    for nic in nics:
        found = _reference(fake, nic.get("id"), "networkProfile.networkInterfaces.id")
        owner = (found["properties"].get("virtualMachine") or {}).get("id")
        if owner and owner.lower() != vm["id"].lower():
            raise ArmFailure(400, "NicInUse", f"Network interface {found['id']} is used by "
                             f"existing VM {owner}.")
    if existing is None:
        props["vmId"] = str(uuid.uuid4())
        props["timeCreated"] = _now()
        vm["_power"] = "starting"


def _vm_created(fake: AzureFake, vm: dict[str, Any]) -> None:
    """Once a VM exists: its managed disks, its NICs and their public IPs are attached."""
    props = vm["properties"]
    storage = props.setdefault("storageProfile", {})
    group = vm["id"].split("/")[4]
    disks = [("os", storage.setdefault("osDisk", {}))]
    disks += [(f"lun{d.get('lun', i)}", d) for i, d in enumerate(storage.get("dataDisks") or [])]
    for label, disk in disks:
        name = disk.get("name") or f"{vm['name']}_{label}_{uuid.uuid4().hex[:16]}"
        disk["name"] = name
        created = fake.put("Microsoft.Compute/disks", group, [name], vm["location"], {
            "diskSizeGB": disk.get("diskSizeGB", 127), "diskState": "Attached",
            "creationData": {"createOption": disk.get("createOption", "Empty")},
            "osType": props.get("osProfile", {}).get("windowsConfiguration") and "Windows"},
            managedBy=vm["id"])
        disk.setdefault("managedDisk", {})["id"] = created["id"]
        disk.setdefault("deleteOption", "Detach")
    for nic in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
        found = fake.store[nic["id"].lower()]
        found["properties"]["virtualMachine"] = {"id": vm["id"]}
        for config in found["properties"].get("ipConfigurations") or []:
            ip_id = ((config.get("properties") or {}).get("publicIPAddress") or {}).get("id")
            if ip_id and ip_id.lower() in fake.store:
                ip = fake.store[ip_id.lower()]
                ip["properties"]["ipAddress"] = f"203.0.113.{next(fake._serial) % 250 + 1}"
    vm["_power"] = "running"


def _vm_deleted(fake: AzureFake, vm: dict[str, Any]) -> None:
    """A deleted VM's disks and NICs are deleted (`deleteOption: Delete`) or detached."""
    storage = vm["properties"].get("storageProfile") or {}
    for disk in [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]:
        disk_id = (disk.get("managedDisk") or {}).get("id", "").lower()
        found = fake.store.get(disk_id)
        if found is None:
            continue
        if disk.get("deleteOption") == "Delete":
            del fake.store[disk_id]
        else:
            found.pop("managedBy", None)
            found["properties"]["diskState"] = "Unattached"
    for nic in (vm["properties"].get("networkProfile") or {}).get("networkInterfaces") or []:
        found = fake.store.get(nic["id"].lower())
        if found is None:
            continue
        if (nic.get("properties") or {}).get("deleteOption") == "Delete":
            del fake.store[nic["id"].lower()]
        else:
            found["properties"].pop("virtualMachine", None)


def _check_subnet(fake: AzureFake, subnet: dict[str, Any],
                  existing: dict[str, Any] | None) -> None:
    group = (subnet["properties"].get("networkSecurityGroup") or {}).get("id")
    if group:
        _reference(fake, group, "networkSecurityGroup.id")
    if not subnet["properties"].get("addressPrefix") and \
            not subnet["properties"].get("addressPrefixes"):
        raise ArmFailure(400, "InvalidRequestFormat", "a subnet needs an addressPrefix")


def _vnet_created(fake: AzureFake, vnet: dict[str, Any]) -> None:
    """A virtual network's inline subnets become its child resources."""
    group = vnet["id"].split("/")[4]
    for subnet in vnet["properties"].pop("subnets", None) or []:
        child = fake.put("Microsoft.Network/virtualNetworks/subnets", group,
                         [vnet["name"], subnet["name"]], vnet["location"],
                         subnet.get("properties") or {})
        del child["location"], child["tags"]


def _check_nic(fake: AzureFake, nic: dict[str, Any], existing: dict[str, Any] | None) -> None:
    configs = nic["properties"].get("ipConfigurations") or []
    if not configs:
        raise ArmFailure(400, "InvalidRequestFormat", "ipConfigurations is required")
    for index, config in enumerate(configs):
        props = config.setdefault("properties", {})
        _reference(fake, (props.get("subnet") or {}).get("id"),
                   f"ipConfigurations[{index}].subnet.id")
        ip = (props.get("publicIPAddress") or {}).get("id")
        if ip:
            _reference(fake, ip, f"ipConfigurations[{index}].publicIPAddress.id")
        config.setdefault("id", f"{nic['id']}/ipConfigurations/{config.get('name', 'ipconfig')}")
        props.setdefault("privateIPAddress", f"10.0.0.{next(fake._serial) % 250 + 4}")
    group = (nic["properties"].get("networkSecurityGroup") or {}).get("id")
    if group:
        _reference(fake, group, "networkSecurityGroup.id")
    if existing and existing["properties"].get("virtualMachine"):
        nic["properties"]["virtualMachine"] = existing["properties"]["virtualMachine"]


def _check_nic_delete(fake: AzureFake, nic: dict[str, Any]) -> None:
    owner = (nic["properties"].get("virtualMachine") or {}).get("id")
    if owner and owner.lower() in fake.store:
        raise ArmFailure(400, "NicInUse", f"Network Interface {nic['id']} is used by existing "
                         f"resource {owner}. In order to delete the network interface, it "
                         "must be dissociated from the resource.")


def _check_ip_delete(fake: AzureFake, ip: dict[str, Any]) -> None:
    for nic in fake.resources("Microsoft.Network/networkInterfaces"):
        for config in nic["properties"].get("ipConfigurations") or []:
            used = ((config.get("properties") or {}).get("publicIPAddress") or {}).get("id", "")
            if used.lower() == ip["id"].lower():
                raise ArmFailure(400, "PublicIPAddressCannotBeDeleted",
                                 f"Public IP address {ip['id']} can not be deleted since it "
                                 f"is still allocated to resource {config['id']}.")


def _check_disk_delete(fake: AzureFake, disk: dict[str, Any]) -> None:
    owner = disk.get("managedBy")
    if owner and owner.lower() in fake.store:
        raise ArmFailure(409, "OperationNotAllowed", f"Disk {disk['name']} is attached to VM "
                         f"{owner}.")


def _check_disk(fake: AzureFake, disk: dict[str, Any], existing: dict[str, Any] | None) -> None:
    creation = disk["properties"].get("creationData") or {}
    if creation.get("createOption", "").lower() == "import":
        _require_blob(fake, creation.get("sourceUri", ""))
    disk["properties"].setdefault("diskState", "Unattached")
    if existing and existing.get("managedBy"):
        disk["managedBy"] = existing["managedBy"]
        disk["properties"]["diskState"] = existing["properties"].get("diskState")


def _require_blob(fake: AzureFake, uri: str) -> None:
    account, path = fake.blob_address(uri) or ("", "")
    container, _, name = path.partition("/")
    if not account or fake.blob(account, container, name) is None:
        raise ArmFailure(400, "InvalidParameter", f"The blob {uri} does not exist or cannot "
                         "be read.")


def _check_image(fake: AzureFake, image: dict[str, Any], existing: dict[str, Any] | None
                 ) -> None:
    props = image["properties"]
    source = (props.get("sourceVirtualMachine") or {}).get("id")
    if source:
        _generalized(fake, source, "sourceVirtualMachine.id")
        return
    os_disk = (props.get("storageProfile") or {}).get("osDisk") or {}
    if os_disk.get("blobUri"):
        _require_blob(fake, os_disk["blobUri"])
    elif (os_disk.get("managedDisk") or {}).get("id"):
        _reference(fake, os_disk["managedDisk"]["id"], "storageProfile.osDisk.managedDisk.id")
    else:
        raise ArmFailure(400, "InvalidParameter", "an image needs sourceVirtualMachine or "
                         "storageProfile.osDisk")


def _generalized(fake: AzureFake, vm_id: str, what: str) -> None:
    vm = _reference(fake, vm_id, what)
    if not vm.get("_generalized"):
        raise ArmFailure(409, "OperationNotAllowed",
                         f"The operation requires the VM '{vm['name']}' to be generalized.")


def _check_gallery_version(fake: AzureFake, version: dict[str, Any],
                           existing: dict[str, Any] | None) -> None:
    name = version["name"]
    if not re.fullmatch(r"\d+\.\d+\.\d+", name) or any(int(p) > 2**31 - 1
                                                        for p in name.split(".")):
        raise ArmFailure(400, "InvalidParameter", f"Gallery image version name '{name}' must "
                         "be Major.Minor.Patch, each a 32-bit integer.")
    source = ((version["properties"].get("storageProfile") or {}).get("source") or {})
    source_id = source.get("virtualMachineId") or source.get("id")
    if not source_id:
        raise ArmFailure(400, "InvalidParameter", "storageProfile.source is required")
    if "/virtualmachines/" in source_id.lower():
        _generalized(fake, source_id, "storageProfile.source.virtualMachineId")
    else:
        source = _reference(fake, source_id, "storageProfile.source.id")
        if existing is None and normal_location(source.get("location", "")) != \
                version["location"]:
            raise ArmFailure(400, "InvalidParameter", f"The source {source_id} is in "
                             f"{source.get('location')}; a gallery image version must be "
                             f"created in the source's region, not {version['location']}.")
    profile = version["properties"].setdefault("publishingProfile", {})
    regions = profile.setdefault("targetRegions", [{"name": version["location"]}])
    if version["location"] not in {normal_location(r.get("name", "")) for r in regions}:
        raise ArmFailure(400, "InvalidParameter", "publishingProfile.targetRegions must "
                         f"include the gallery image version's own region "
                         f"{version['location']}.")
    for region in regions:
        region.setdefault("regionalReplicaCount", 1)
    profile.setdefault("publishedDate", _now())


CHECKS: dict[str, Callable[[AzureFake, dict[str, Any], dict[str, Any] | None], None]] = {
    "microsoft.compute/virtualmachines": _check_vm,
    "microsoft.compute/disks": _check_disk,
    "microsoft.compute/images": _check_image,
    "microsoft.compute/galleries/images/versions": _check_gallery_version,
    "microsoft.network/networkinterfaces": _check_nic,
    "microsoft.network/virtualnetworks/subnets": _check_subnet,
}
CREATED: dict[str, Callable[[AzureFake, dict[str, Any]], None]] = {
    "microsoft.compute/virtualmachines": _vm_created,
    "microsoft.network/virtualnetworks": _vnet_created,
}
DELETE_CHECKS: dict[str, Callable[[AzureFake, dict[str, Any]], None]] = {
    "microsoft.network/networkinterfaces": _check_nic_delete,
    "microsoft.network/publicipaddresses": _check_ip_delete,
    "microsoft.compute/disks": _check_disk_delete,
}
DELETED: dict[str, Callable[[AzureFake, dict[str, Any]], None]] = {
    "microsoft.compute/virtualmachines": _vm_deleted,
}


def default_run_command(vm: dict[str, Any], command: dict[str, Any],
                        failing_tests: Collection[str] = ()) -> RunCommandOutcome:
    """A script runs to its end, writing what cib's scripts write when they pass
    (`devclouds.transcript`; the smoke tests in `failing_tests` fail); a script whose last
    line is `Stop-Computer`/`poweroff`, or with an execution that stops the machine itself (a
    provisioner ending in sysprep), leaves the VM stopped."""
    script = "\n".join(command.get("script") or [])
    stops = re.search(r"^\s*(Stop-Computer\b|poweroff\b|shutdown\b|# execution .+ \(stops the "
                      r"machine: )", script, re.MULTILINE | re.IGNORECASE)
    return RunCommandOutcome(stdout=transcript(script, failing_tests) or "script ran\n",
                             power="stopped" if stops else None)


# --- Entra ID and Storage helpers -------------------------------------------------------------


def entra_error(status: int, error: str, code: int, description: str
                ) -> tuple[int, dict[str, str], str]:
    """An Entra ID error response (`error`, `error_description` with its AADSTS code)."""
    trace = str(uuid.uuid4())
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps({
        "error": error, "error_description": f"AADSTS{code}: {description} Trace ID: {trace}",
        "error_codes": [code], "timestamp": _now().replace("T", " ").rstrip("Z"),
        "trace_id": trace, "correlation_id": str(uuid.uuid4())})


def access_token(tenant: str, client: str, audience: str) -> str:
    """A bearer token shaped like Entra's (a JWT, unsigned here) for `audience`."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(datetime.now(UTC).timestamp())
    claims = {"aud": audience, "tid": tenant, "appid": client, "iat": now, "nbf": now,
              "exp": now + 3599, "jti": uuid.uuid4().hex}
    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.fake"


# --- Storage helpers -------------------------------------------------------------------------


def storage_error(status: int, code: str, message: str, head: bool = False
                  ) -> tuple[int, dict[str, str], str]:
    """A Blob storage error: XML body (none for HEAD) and `x-ms-error-code`."""
    headers = {"x-ms-error-code": code, "x-ms-request-id": str(uuid.uuid4()),
               "x-ms-version": "2026-02-06", "Content-Type": "application/xml"}
    if head:
        return status, headers, ""
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}\nRequestId:{headers['x-ms-request-id']}</Message></Error>")
    return status, headers, body


def _body_bytes(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "read"):
        return body.read()
    return b"".join(body)


def _range(header: str) -> tuple[int, int]:
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", header.strip())
    if not match:
        return -1, -1
    return int(match.group(1)), int(match.group(2))


def _etag() -> str:
    return f'"0x8DC{uuid.uuid4().hex[:12].upper()}"'


def blob_url(account: str, container: str, name: str) -> str:
    """A blob's URL in the public cloud's form (see `AzureFake.blob_url`)."""
    return f"https://{account}.blob.core.windows.net/{container}/{quote(name)}"


def encode_block_id(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
