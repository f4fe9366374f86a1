"""A stateful fake of the Compute Engine REST API (v1), the few Cloud Storage JSON API calls a
disk import needs, and the OAuth token endpoint of service-account keys, for tests and the
local pipeline. It is served over plain HTTP by `devclouds.google_server.GoogleServer`;
google-cloud-compute's REST transport talks to it unchanged when its `api_endpoint` is the
server's URL (`clouds.google.Endpoints`).

What it serves, in Compute's own JSON shapes (`kind`, `id`, `name`, `selfLink`,
`creationTimestamp`, ...):

- **images** (`/compute/v1/projects/<p>/global/images`): insert from a `sourceDisk` (the disk
  must not be in use by a running instance unless `forceCreate`), a `sourceImage`, or a
  `rawDisk.source` (`gs://b/o` or `https://storage.googleapis.com/b/o`, an object that must
  exist); get, list (`filter`, `maxResults`, `pageToken` -> `nextPageToken`), `family/<f>`
  (getFromFamily: the newest READY image of the family not deprecated), setLabels (the
  `labelFingerprint` must be the current one: 412 `conditionNotMet` otherwise), deprecate,
  delete. An image is `PENDING` until its insert operation is done, then `READY`.
- **instances** (`/zones/<z>/instances`): insert (boot disk from `initializeParams`, created
  as a disk of the instance's name; metadata items; a machine type Compute does not have, such
  as `n2-enormous`, is refused with 400 `invalid`), get, list, delete (auto-delete disks go
  with it), stop, start, `serialPort` (getSerialPortOutput with `start`/`next`). When its
  insert is done the instance "runs" its `startup-script` (or `windows-startup-script-ps1`)
  metadata item: the lines cib's script writes when it passes (`devclouds.transcript`,
  `failing_tests`) go to the serial port prefixed as Google's guest agent prefixes them
  (`google_metadata_script_runner[...]: startup-script: `); a script that powers the machine
  off (its last line `poweroff`/`shutdown`/`Stop-Computer`, or an execution that stops the
  machine) leaves the instance `TERMINATED` after `run_polls` reads of it (`on_startup`
  replaces this).
- **disks** (`/zones/<z>/disks`): get, list, delete (400 `resourceInUseByAnotherResource`
  while an instance uses it).
- **operations** (`/global|zones/<z>|regions/<r>/operations/<name>`, get and `wait`): every
  write answers an operation `PENDING`; each read of it moves it on (`RUNNING` for
  `operation_polls` reads, then `DONE`; `wait` finishes it at once). The change a write makes
  lands when its operation is done, as on Compute; a failed one is `DONE` with
  `error.errors[]` and `httpErrorStatusCode`.
- **Cloud Storage** (`/upload/storage/v1/b/<b>/o?uploadType=media&name=<o>`, `/storage/v1/b/
  <b>/o/<o>`): objects uploaded whole and their metadata (buckets need not be made first).
- **OAuth** (`POST /token`): a service-account key's JWT-bearer grant answers an access token;
  with `check_tokens`, Compute and Storage answer 401 to requests without one it issued.

Errors are Google's: `{"error": {"code", "message", "errors": [{"message", "domain",
"reason"}], "status"}}` (404 `notFound`, 400 `invalid`, 409 `alreadyExists`, ...).

Test hooks: `fail(method, ...)` makes the next `times` calls whose method matches (`fnmatch` on
Compute's method names, e.g. `"images.insert"`, `"instances.*"`, `"*"`) answer an error
(`status`, `reason`, e.g. 429 `rateLimitExceeded`, 403 `quotaExceeded`, 503
`backendError`), or with `during="operation"` accept the call and end its operation with that
error. Set-up: `add_image` (a base image, e.g. a public family's), `add_fleet` (the base images
of a config's keys), `put_object`. Inspection:
`images`, `instances`, `disks`, `objects`, `calls` (method names in order), `serial`.
"""

from __future__ import annotations

import base64
import fnmatch
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .transcript import transcript

COMPUTE = "https://compute.googleapis.com/compute/v1"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
SCRIPT_KEYS = ("startup-script", "windows-startup-script-ps1")
SCRIPT_RUNNER = "google_metadata_script_runner[{pid}]: startup-script: "
_STOPS = re.compile(r"^\s*(Stop-Computer\b|poweroff\b|shutdown\b|# execution .+ \(stops the "
                    r"machine: )", re.MULTILINE | re.IGNORECASE)
# Compute's machine types by family and shape (`n2-standard-4`, `e2-micro`, `custom-4-8192`)
MACHINE_TYPE = re.compile(r"(?:[acegmnt]\d[a-z]?-(?:standard|highmem|highcpu|highgpu|ultragpu|"
                          r"megamem|ultramem|micro|small|medium)(?:-\d+g?)?|"
                          r"(?:[a-z]\d[a-z]?-)?custom-\d+-\d+)")
_COMPUTE_PATH = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/(?:(?P<scope>global)|zones/(?P<zone>[^/]+)|"
    r"regions/(?P<region>[^/]+))/(?P<collection>images|instances|disks|operations)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<leaf>[^/]+))?(?:/(?P<verb>[^/]+))?)?$")


class GoogleApiError(Exception):
    """An error the fake answers (`status`, `reason`, `message`)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        """Google's error body."""
        return {"error": {"code": self.status, "message": self.message,
                          "errors": [{"message": self.message, "domain": "global",
                                      "reason": self.reason}],
                          "status": STATUS_NAMES.get(self.status, "UNKNOWN")}}


@dataclass
class Failure:
    """A planned error (`GoogleFake.fail`)."""

    method: str
    status: int
    reason: str
    message: str
    times: int
    during: str  # "call" or "operation"


@dataclass
class StartupOutcome:
    """What an instance's startup script did: its serial port output and whether it powered
    the machine off."""

    serial: str
    stops: bool


@dataclass
class _Operation:
    body: dict[str, Any]
    polls_left: int
    apply: Callable[[], None] | None
    error: GoogleApiError | None = None


def now() -> str:
    """A timestamp as Compute writes them (RFC 3339 with an offset)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class GoogleFake:
    """The state of the fake Compute Engine and Cloud Storage (see the module)."""

    url: str = "http://127.0.0.1"
    operation_polls: int = 1
    run_polls: int = 1
    page_size: int = 500
    check_tokens: bool = False
    failing_tests: set[str] = field(default_factory=set)
    on_startup: Callable[[dict[str, Any], str], StartupOutcome] | None = None
    images: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    instances: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    disks: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    serial: dict[tuple[str, str, str], str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    # service accounts whose self-signed JWTs are accepted as bearer tokens: email -> public
    # key (PEM); google-cloud-compute signs its own tokens (`always_use_jwt_access`)
    service_accounts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1000000000000000001)
        self._operations: dict[tuple[str, str], _Operation] = {}
        self._failures: list[Failure] = []
        self._runs: dict[tuple[str, str, str], int] = {}

    # --- set-up and inspection ----------------------------------------------------------------

    def fail(self, method: str, *, status: int = 503, reason: str = "backendError",
             message: str | None = None, times: int = 1, during: str = "call") -> None:
        """The next `times` calls of `method` (fnmatch) answer this error, or (`during=
        "operation"`) end their operation with it."""
        if during not in ("call", "operation"):
            raise ValueError(f"during must be call or operation, not {during!r}")
        self._failures.append(Failure(method, status, reason,
                                      message or f"the fake refused {method}: {reason}",
                                      times, during))

    def add_image(self, project: str, name: str, *, family: str | None = None,
                  labels: dict[str, str] | None = None, status: str = "READY",
                  deprecated: str | None = None, created: str | None = None) -> dict[str, Any]:
        """An image as it is (e.g. a public family's base image)."""
        with self._lock:
            image = self._image_body(project, {"name": name, "family": family,
                                               "labels": labels or {}})
            image["status"] = status
            if created:
                image["creationTimestamp"] = created
            if deprecated:
                image["deprecated"] = {"state": deprecated}
            self.images[(project, name)] = image
            return image

    def add_fleet(self, fleet: Any) -> list[str]:
        """What Google holds for a fleet (`config.Fleet`) before any build: a stand-in image
        for every key's `image.base.google` (its `image`, or one in its `family`); their
        paths (`projects/<p>/global/images/<name>`)."""
        made = []
        for key in fleet.keys.values():
            base = (key.image.get("base") or {}).get("google")
            if not base:
                continue
            name = base.get("image") or f"{base.get('family') or 'base'}-v20261201"
            if (base["project"], name) not in self.images:
                self.add_image(base["project"], name, family=base.get("family"))
            made.append(f"projects/{base['project']}/global/images/{name}")
        return sorted(set(made))

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        """A Cloud Storage object as it is."""
        with self._lock:
            self.objects[(bucket, name)] = data

    def project_images(self, project: str) -> list[dict[str, Any]]:
        """The images of `project`, in creation order."""
        return [i for (p, _), i in self.images.items() if p == project]

    def link(self, path: str) -> str:
        """The self link of a resource path (`projects/p/global/images/i`)."""
        return f"{self.url}/compute/v1/{path}"

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request: `(status, headers, body)`."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        with self._lock:
            try:
                if method == "POST" and path == "/token":
                    return self._token(body)
                if self.check_tokens:
                    self._authorize(headers)
                if path.startswith(("/upload/storage/", "/storage/")):
                    return _json(200, self._storage(method, path, query, body))
                return _json(200, self._compute(method, path, query, body))
            except GoogleApiError as error:
                return _json(error.status, error.body())

    def _token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or \
                not form.get("assertion"):
            return _json(400, {"error": "invalid_grant",
                               "error_description": "a JWT-bearer assertion is required"})
        token = f"ya29.fake-{uuid.uuid4().hex}"
        self.tokens.add(token)
        return _json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _authorize(self, headers: dict[str, str]) -> None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = value[7:] if value.startswith("Bearer ") else ""
        if token not in self.tokens and not self._self_signed(token):
            raise GoogleApiError(401, "authError", "Request had invalid authentication "
                                 "credentials. Expected OAuth 2 access token.")

    def _self_signed(self, token: str) -> bool:
        """A JWT one of `service_accounts` signed, not expired."""
        from google.auth import exceptions, jwt

        if token.count(".") != 2:
            return False
        try:
            claims = jwt.decode(token, verify=False)
            key = self.service_accounts.get(str(claims.get("iss")))
            return key is not None and bool(jwt.decode(token, certs=key, verify=True,
                                                       audience=None))
        except (ValueError, exceptions.GoogleAuthError):
            return False

    def _planned(self, name: str) -> Failure | None:
        for failure in self._failures:
            if failure.times > 0 and fnmatch.fnmatchcase(name, failure.method):
                failure.times -= 1
                if failure.during == "call":
                    raise GoogleApiError(failure.status, failure.reason, failure.message)
                return failure
        return None

    # --- Cloud Storage ------------------------------------------------------------------------

    def _storage(self, method: str, path: str, query: dict[str, str], body: bytes
                 ) -> dict[str, Any]:
        upload = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path)
        if upload and method == "POST":
            self.calls.append("objects.insert")
            self._planned("objects.insert")
            name = query.get("name") or ""
            if not name:
                raise GoogleApiError(400, "required", "Required parameter: name")
            self.objects[(upload.group(1), name)] = body
            return self._object(upload.group(1), name)
        get = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
        if get and method == "GET":
            self.calls.append("objects.get")
            self._planned("objects.get")
            if (get.group(1), get.group(2)) not in self.objects:
                raise GoogleApiError(404, "notFound",
                                     f"No such object: {get.group(1)}/{get.group(2)}")
            return self._object(get.group(1), get.group(2))
        raise GoogleApiError(404, "notFound", f"no such Storage call: {method} {path}")

    def _object(self, bucket: str, name: str) -> dict[str, Any]:
        data = self.objects[(bucket, name)]
        return {"kind": "storage#object", "bucket": bucket, "name": name,
                "size": str(len(data)), "id": f"{bucket}/{name}",
                "selfLink": f"{self.url}/storage/v1/b/{bucket}/o/{name}"}

    # --- Compute ------------------------------------------------------------------------------

    def _compute(self, method: str, path: str, query: dict[str, str], body: bytes
                 ) -> dict[str, Any]:
        match = _COMPUTE_PATH.match(path)
        if not match:
            raise GoogleApiError(404, "notFound", f"The requested URL {path} was not found.")
        m = match.groupdict()
        project, collection = m["project"], m["collection"]
        scope = m["zone"] or m["region"] or "global"
        name, leaf, verb = m["name"], m["leaf"], m["verb"]
        payload = json.loads(body or b"{}")
        if collection == "operations":
            call = f"{'zone' if m['zone'] else 'region' if m['region'] else 'global'}" \
                   f"Operations.{'wait' if leaf == 'wait' else 'get'}"
            self.calls.append(call)
            self._planned(call)
            return self._operation(project, scope, name, wait=leaf == "wait")
        action = self._action(collection, method, name, leaf, verb)
        self.calls.append(action)
        failure = self._planned(action)
        handler = getattr(self, "_" + action.replace(".", "_"))
        if action == "images.getFromFamily":
            return handler(project, scope, name, query, payload, family=leaf)
        result = handler(project, scope, name, query, payload)
        if isinstance(result, _Operation):
            if failure is not None:
                result.apply = None
                result.error = GoogleApiError(failure.status, failure.reason, failure.message)
            self._operations[(project, result.body["name"])] = result
            return dict(result.body)
        return result

    @staticmethod
    def _action(collection: str, method: str, name: str | None, leaf: str | None,
                verb: str | None) -> str:
        if collection == "images" and name == "family" and leaf:
            return "images.getFromFamily"
        if leaf and method == "POST":
            return f"{collection}.{leaf}"
        if leaf == "serialPort":
            return "instances.getSerialPortOutput"
        if name is None:
            return f"{collection}.{'insert' if method == 'POST' else 'list'}"
        return f"{collection}.{ {'GET': 'get', 'DELETE': 'delete'}.get(method, method)}"

    def _start(self, project: str, scope: str, kind: str, target: str,
               apply: Callable[[], None] | None) -> _Operation:
        number = next(self._ids)
        name = f"operation-{number}-{uuid.uuid4().hex[:12]}"
        where = ("global" if scope == "global" else
                 f"zones/{scope}" if re.search(r"-[a-z]$", scope) else f"regions/{scope}")
        body = {"kind": "compute#operation", "id": str(number), "name": name,
                "operationType": kind, "targetLink": target, "status": "PENDING",
                "progress": 0, "insertTime": now(), "user": "cib@example.iam",
                "selfLink": self.link(f"projects/{project}/{where}/operations/{name}")}
        if where != "global":
            body["zone" if where.startswith("zones/") else "region"] = self.link(
                f"projects/{project}/{where}")
        return _Operation(body, self.operation_polls, apply)

    def _operation(self, project: str, scope: str, name: str | None, *, wait: bool
                   ) -> dict[str, Any]:
        operation = self._operations.get((project, name or ""))
        if operation is None:
            raise GoogleApiError(404, "notFound", f"The resource 'projects/{project}/"
                                 f"operations/{name}' was not found")
        body = operation.body
        if body["status"] != "DONE":
            if wait or operation.polls_left <= 0:
                self._finish(operation)
            else:
                operation.polls_left -= 1
                body.update(status="RUNNING", progress=50, startTime=now())
        return dict(body)

    def _finish(self, operation: _Operation) -> None:
        body = operation.body
        error = operation.error
        if error is None and operation.apply is not None:
            try:
                operation.apply()
            except GoogleApiError as failed:
                error = failed
        body.update(status="DONE", progress=100, endTime=now())
        if error is not None:
            code = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", error.reason).upper()
            body["error"] = {"errors": [{"code": code, "message":
                                         error.message}]}
            body["httpErrorStatusCode"] = error.status
            body["httpErrorMessage"] = STATUS_NAMES.get(error.status, "ERROR")

    # images

    def _image_body(self, project: str, payload: dict[str, Any]) -> dict[str, Any]:
        name = payload.get("name") or ""
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'resource.name': "
                                 f"'{name}'. Must be a match of regex "
                                 "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        check_labels(payload.get("labels") or {})
        labels = dict(payload.get("labels") or {})
        image = {"kind": "compute#image", "id": str(next(self._ids)),
                 "creationTimestamp": now(), "name": name, "status": "PENDING",
                 "selfLink": self.link(f"projects/{project}/global/images/{name}"),
                 "labels": labels, "labelFingerprint": _fingerprint(labels),
                 "archiveSizeBytes": "1073741824", "diskSizeGb": "10"}
        for copied in ("description", "family", "storageLocations", "guestOsFeatures",
                       "sourceDisk", "sourceImage", "rawDisk", "licenses"):
            if payload.get(copied):
                image[copied] = payload[copied]
        if payload.get("rawDisk"):
            image["sourceType"] = "RAW"
        return image

    def _images_insert(self, project: str, scope: str, name: str | None,
                       query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        image = self._image_body(project, payload)
        if (project, image["name"]) in self.images:
            raise GoogleApiError(409, "alreadyExists", f"The resource 'projects/{project}/"
                                 f"global/images/{image['name']}' already exists")
        sources = [s for s in ("sourceDisk", "sourceImage", "rawDisk") if payload.get(s)]
        if len(sources) != 1:
            raise GoogleApiError(400, "invalid", "Exactly one of sourceDisk, sourceImage, "
                                 "rawDisk.source (or others) must be given")
        if payload.get("sourceDisk"):
            disk = self._disk_at(payload["sourceDisk"])
            users = [u for u in disk.get("users") or ()
                     if self._instance_status(u) not in ("TERMINATED", None)]
            if users and query.get("forceCreate") != "true":
                raise GoogleApiError(400, "resourceInUseByAnotherResource",
                                     f"The disk resource '{disk['selfLink']}' is already "
                                     f"being used by '{users[0]}'")
            image["sourceDiskId"] = disk["id"]
        elif payload.get("sourceImage"):
            self._image_at(payload["sourceImage"])
        else:
            source = (payload["rawDisk"] or {}).get("source", "")
            bucket_object = storage_object(source)
            if bucket_object is None or bucket_object not in self.objects:
                raise GoogleApiError(400, "invalid", f"Invalid value for field 'resource."
                                     f"rawDisk.source': '{source}'. The object does not "
                                     "exist or is not readable")
        self.images[(project, image["name"])] = image

        def ready() -> None:
            image["status"] = "READY"

        return self._start(project, "global", "insert", image["selfLink"], ready)

    def _image(self, project: str, name: str | None) -> dict[str, Any]:
        image = self.images.get((project, name or ""))
        if image is None:
            raise GoogleApiError(404, "notFound", f"The resource 'projects/{project}/global/"
                                 f"images/{name}' was not found")
        return image

    def _image_at(self, link: str) -> dict[str, Any]:
        match = re.search(r"projects/([^/]+)/global/images/(?:family/)?([^/]+)$", link)
        if not match:
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'sourceImage': "
                                 f"'{link}'")
        if "/family/" in link:
            return self._images_getFromFamily(match.group(1), "global", "family", {},
                                              {}, family=match.group(2))
        return self._image(match.group(1), match.group(2))

    def _images_get(self, project: str, scope: str, name: str | None, query: dict[str, str],
                    payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self._image(project, name))

    def _images_getFromFamily(self, project: str, scope: str, name: str | None,
                              query: dict[str, str], payload: dict[str, Any],
                              family: str | None = None) -> dict[str, Any]:
        candidates = [i for i in self.project_images(project)
                      if i.get("family") == family and i["status"] == "READY"
                      and (i.get("deprecated") or {}).get("state", "ACTIVE") == "ACTIVE"]
        if not candidates:
            raise GoogleApiError(404, "notFound", f"The resource 'projects/{project}/global/"
                                 f"images/family/{family}' was not found")
        return dict(max(candidates, key=lambda i: (i["creationTimestamp"], int(i["id"]))))

    def _images_list(self, project: str, scope: str, name: str | None, query: dict[str, str],
                     payload: dict[str, Any]) -> dict[str, Any]:
        return self._page(f"projects/{project}/global/images", "compute#imageList",
                          self.project_images(project), query)

    def _images_setLabels(self, project: str, scope: str, name: str | None,
                          query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        image = self._image(project, name)
        if payload.get("labelFingerprint") != image["labelFingerprint"]:
            raise GoogleApiError(412, "conditionNotMet", "Labels fingerprint either invalid "
                                 "or resource labels have changed")
        labels = dict(payload.get("labels") or {})
        check_labels(labels)

        def apply() -> None:
            image["labels"] = labels
            image["labelFingerprint"] = _fingerprint(labels)

        return self._start(project, "global", "setLabels", image["selfLink"], apply)

    def _images_deprecate(self, project: str, scope: str, name: str | None,
                          query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        image = self._image(project, name)
        state = payload.get("state") or "ACTIVE"
        if state not in ("ACTIVE", "DEPRECATED", "OBSOLETE", "DELETED"):
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'state': '{state}'")

        def apply() -> None:
            if state == "ACTIVE":
                image.pop("deprecated", None)
            else:
                image["deprecated"] = {k: v for k, v in payload.items() if v}

        return self._start(project, "global", "deprecate", image["selfLink"], apply)

    def _images_delete(self, project: str, scope: str, name: str | None,
                       query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        image = self._image(project, name)
        return self._start(project, "global", "delete", image["selfLink"],
                           lambda: self.images.pop((project, image["name"]), None))

    # instances

    def _instance(self, project: str, zone: str, name: str | None) -> dict[str, Any]:
        instance = self.instances.get((project, zone, name or ""))
        if instance is None:
            raise GoogleApiError(404, "notFound", f"The resource 'projects/{project}/zones/"
                                 f"{zone}/instances/{name}' was not found")
        return instance

    def _instance_status(self, link: str) -> str | None:
        match = re.search(r"projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$", link)
        instance = self.instances.get(match.groups()) if match else None
        return instance["status"] if instance else None

    def _instances_insert(self, project: str, zone: str, name: str | None,
                          query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        name = payload.get("name") or ""
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'resource.name': "
                                 f"'{name}'")
        if (project, zone, name) in self.instances:
            raise GoogleApiError(409, "alreadyExists", f"The resource 'projects/{project}/"
                                 f"zones/{zone}/instances/{name}' already exists")
        check_labels(payload.get("labels") or {})
        machine_type = str(payload.get("machineType") or "").rsplit("/", 1)[-1]
        if machine_type and not MACHINE_TYPE.fullmatch(machine_type):  # (none: tests' own)
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'resource."
                                 f"machineType': '{payload.get('machineType')}'. Machine type "
                                 f"with name '{machine_type}' does not exist in zone "
                                 f"'{zone}'.")
        link = self.link(f"projects/{project}/zones/{zone}/instances/{name}")
        disks, new_disks = [], []
        for index, spec in enumerate(payload.get("disks") or ()):
            params = spec.get("initializeParams")
            if params:
                disk_name = params.get("diskName") or (name if index == 0 else
                                                       f"{name}-{index}")
                source = params.get("sourceImage")
                if source:
                    self._image_at(source)
                disk = {"kind": "compute#disk", "id": str(next(self._ids)), "name": disk_name,
                        "creationTimestamp": now(), "sizeGb": str(params.get("diskSizeGb")
                                                                  or 10),
                        "zone": self.link(f"projects/{project}/zones/{zone}"),
                        "status": "READY", "sourceImage": source or "",
                        "type": params.get("diskType") or "pd-standard",
                        "labels": dict(params.get("labels") or {}),
                        "selfLink": self.link(f"projects/{project}/zones/{zone}/disks/"
                                              f"{disk_name}"), "users": [link]}
                if (project, zone, disk_name) in self.disks:
                    raise GoogleApiError(409, "alreadyExists", f"The resource 'projects/"
                                         f"{project}/zones/{zone}/disks/{disk_name}' already "
                                         "exists")
                new_disks.append(disk)
                source_link = disk["selfLink"]
            else:
                source_link = spec.get("source") or ""
                self._disk_at(source_link)
            disks.append({"kind": "compute#attachedDisk", "index": index,
                          "boot": bool(spec.get("boot", index == 0)),
                          "autoDelete": bool(spec.get("autoDelete", False)),
                          "deviceName": spec.get("deviceName") or f"persistent-disk-{index}",
                          "source": source_link, "type": "PERSISTENT", "mode": "READ_WRITE"})
        if not disks:
            raise GoogleApiError(400, "required", "Invalid value for field 'resource.disks': "
                                 "''. No boot disk specified")
        items = list((payload.get("metadata") or {}).get("items") or ())
        instance = {"kind": "compute#instance", "id": str(next(self._ids)), "name": name,
                    "creationTimestamp": now(), "status": "PROVISIONING",
                    "machineType": payload.get("machineType") or "",
                    "zone": self.link(f"projects/{project}/zones/{zone}"),
                    "disks": disks, "labels": dict(payload.get("labels") or {}),
                    "labelFingerprint": _fingerprint(payload.get("labels") or {}),
                    "metadata": {"kind": "compute#metadata", "items": items,
                                 "fingerprint": _fingerprint({"items": items})},
                    "networkInterfaces": payload.get("networkInterfaces") or [],
                    "scheduling": payload.get("scheduling") or {},
                    "description": payload.get("description") or "", "selfLink": link}
        key = (project, zone, name)

        def boot() -> None:
            for disk in new_disks:
                self.disks[(project, zone, disk["name"])] = disk
            self.instances[key] = instance
            instance["status"] = "RUNNING"
            script = next((i.get("value") or "" for i in items
                           if i.get("key") in SCRIPT_KEYS), "")
            outcome = (self.on_startup or self.default_startup)(instance, script)
            self.serial[key] = self.serial.get(key, "") + outcome.serial
            if outcome.stops:
                self._runs[key] = self.run_polls

        return self._start(project, zone, "insert", link, boot)

    def default_startup(self, instance: dict[str, Any], script: str) -> StartupOutcome:
        """The startup script runs to its end, writing what cib's scripts write when they
        pass (`failing_tests` fail), each line as the guest agent logs it; one that powers
        the machine off stops the instance."""
        prefix = SCRIPT_RUNNER.format(pid=700 + int(instance["id"]) % 200)
        lines = (transcript(script, self.failing_tests) or "script ran\n").splitlines()
        text = "".join(f"{prefix}{line}\n" for line in lines)
        header = f"Booting {instance['name']}\n"
        return StartupOutcome(serial=header + text, stops=bool(_STOPS.search(script)))

    def _running(self, key: tuple[str, str, str]) -> None:
        """A read of an instance whose script powers it off moves that on."""
        left = self._runs.get(key)
        if left is None:
            return
        if left <= 0:
            del self._runs[key]
            self.instances[key]["status"] = "TERMINATED"
        else:
            self._runs[key] = left - 1

    def _instances_get(self, project: str, zone: str, name: str | None, query: dict[str, str],
                       payload: dict[str, Any]) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        self._running((project, zone, instance["name"]))
        return dict(instance)

    def _instances_list(self, project: str, zone: str, name: str | None,
                        query: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
        items = [i for (p, z, _), i in self.instances.items() if (p, z) == (project, zone)]
        return self._page(f"projects/{project}/zones/{zone}/instances",
                          "compute#instanceList", items, query)

    def _instances_getSerialPortOutput(self, project: str, zone: str,
                                       name: str | None, query: dict[str, str],
                                       payload: dict[str, Any]) -> dict[str, Any]:
        instance = self._instance(project, zone, name)
        text = self.serial.get((project, zone, instance["name"]), "")
        data = text.encode()
        start = int(query.get("start") or 0)
        return {"kind": "compute#serialPortOutput", "contents": data[start:].decode(
            errors="replace"), "start": str(start), "next": str(len(data)),
                "selfLink": f"{instance['selfLink']}/serialPort"}

    def _instances_stop(self, project: str, zone: str, name: str | None,
                        query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        instance = self._instance(project, zone, name)
        key = (project, zone, instance["name"])

        def stop() -> None:
            self._runs.pop(key, None)
            instance["status"] = "TERMINATED"

        return self._start(project, zone, "stop", instance["selfLink"], stop)

    def _instances_start(self, project: str, zone: str, name: str | None,
                         query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        instance = self._instance(project, zone, name)
        return self._start(project, zone, "start", instance["selfLink"],
                           lambda: instance.update(status="RUNNING"))

    def _instances_delete(self, project: str, zone: str, name: str | None,
                          query: dict[str, str], payload: dict[str, Any]) -> _Operation:
        instance = self._instance(project, zone, name)
        key = (project, zone, instance["name"])

        def delete() -> None:
            self.instances.pop(key, None)
            self._runs.pop(key, None)
            for attached in instance["disks"]:
                disk_key = _disk_key(attached["source"])
                disk = self.disks.get(disk_key) if disk_key else None
                if disk is None:
                    continue
                disk["users"] = [u for u in disk.get("users") or ()
                                 if u != instance["selfLink"]]
                if attached.get("autoDelete"):
                    self.disks.pop(disk_key, None)

        instance["status"] = "STOPPING"
        return self._start(project, zone, "delete", instance["selfLink"], delete)

    # disks

    def _disk_at(self, link: str) -> dict[str, Any]:
        key = _disk_key(link)
        disk = self.disks.get(key) if key else None
        if disk is None:
            raise GoogleApiError(404, "notFound", f"The resource '{link}' was not found")
        return disk

    def _disks_get(self, project: str, zone: str, name: str | None, query: dict[str, str],
                   payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self._disk_at(f"projects/{project}/zones/{zone}/disks/{name}"))

    def _disks_list(self, project: str, zone: str, name: str | None, query: dict[str, str],
                    payload: dict[str, Any]) -> dict[str, Any]:
        items = [d for (p, z, _), d in self.disks.items() if (p, z) == (project, zone)]
        return self._page(f"projects/{project}/zones/{zone}/disks", "compute#diskList",
                          items, query)

    def _disks_delete(self, project: str, zone: str, name: str | None, query: dict[str, str],
                      payload: dict[str, Any]) -> _Operation:
        disk = self._disk_at(f"projects/{project}/zones/{zone}/disks/{name}")
        if disk.get("users"):
            raise GoogleApiError(400, "resourceInUseByAnotherResource",
                                 f"The disk resource '{disk['selfLink']}' is already being "
                                 f"used by '{disk['users'][0]}'")
        return self._start(project, zone, "delete", disk["selfLink"],
                           lambda: self.disks.pop((project, zone, disk["name"]), None))

    # listings

    def _page(self, path: str, kind: str, items: list[dict[str, Any]],
              query: dict[str, str]) -> dict[str, Any]:
        matching = [i for i in items if matches_filter(i, query.get("filter") or "")]
        size = min(int(query.get("maxResults") or self.page_size), self.page_size)
        try:
            offset = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) \
                if query.get("pageToken") else 0
        except (ValueError, UnicodeDecodeError):
            raise GoogleApiError(400, "invalid", "Invalid value for pageToken") from None
        answer: dict[str, Any] = {"kind": kind, "id": path, "selfLink": self.link(path),
                                  "items": [dict(i) for i in matching[offset:offset + size]]}
        if offset + size < len(matching):
            answer["nextPageToken"] = base64.urlsafe_b64encode(
                str(offset + size).encode()).decode()
        if not answer["items"]:
            del answer["items"]
        return answer


# --- pure helpers -------------------------------------------------------------------------------

LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def check_labels(labels: dict[str, Any]) -> None:
    """Compute's label rules (400 `invalid` naming the first label that breaks them)."""
    if len(labels) > 64:
        raise GoogleApiError(400, "invalid", "Too many labels: at most 64")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(str(key)) or not LABEL_VALUE.fullmatch(str(value)):
            raise GoogleApiError(400, "invalid", f"Invalid value for field 'labels': "
                                 f"'{key}={value}'. Label keys and values can only contain "
                                 "lowercase letters, numeric characters, underscores and "
                                 "dashes, at most 63 characters")


def _fingerprint(labels: Any) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).digest()[:8]
    return base64.b64encode(digest).decode()


def _disk_key(link: str) -> tuple[str, str, str] | None:
    match = re.search(r"projects/([^/]+)/zones/([^/]+)/disks/([^/]+)$", link)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def storage_object(source: str) -> tuple[str, str] | None:
    """`(bucket, object)` of `gs://b/o` or `https://storage.googleapis.com/b/o`."""
    match = re.fullmatch(r"(?:gs://|https?://(?:storage\.googleapis\.com|[^/]+/storage)/)"
                         r"([^/]+)/(.+)", source)
    return (match.group(1), unquote(match.group(2))) if match else None


_TERM = re.compile(r"\(?\s*([a-zA-Z][\w.-]*)\s*(=|!=|eq|ne|:)\s*(\"[^\"]*\"|[^\s)]+)\s*\)?")


def matches_filter(item: dict[str, Any], expression: str) -> bool:
    """Whether `item` passes a list `filter` of terms joined by AND (or spaces): `field =
    value`, `field != value`, `field:*` (present) on `name`, `status`, `family` or
    `labels.<key>`; values may be quoted."""
    expression = re.sub(r"\bAND\b", " ", expression or "")
    for term in _TERM.finditer(expression):
        path, operator, value = term.group(1), term.group(2), term.group(3).strip('"')
        current: Any = item
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if operator == ":":
            ok = current is not None if value == "*" else value in str(current or "")
        elif operator in ("=", "eq"):
            ok = current is not None and str(current) == value
        else:
            ok = current is None or str(current) != value
        if not ok:
            return False
    return True


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, \
        json.dumps(body).encode()
