"""A thin adapter over google-cloud-compute (its REST transport) and the Cloud Storage JSON API:
Compute Engine images, instances, disks and operations, in Compute's own JSON shapes
(camelCase dicts: `{name, selfLink, status, labels, labelFingerprint, ...}`).

Every call goes through `google_errors`, which turns google-api-core's and google-auth's
exceptions into cib's: throttling (429, `rateLimitExceeded`), quota (`quotaExceeded`, whatever
its status), capacity (`ZONE_RESOURCE_POOL_EXHAUSTED`), service errors (5xx) and lost
connections into `TransientError` (exit 75, retried by the task); a refused permission (403)
into `CibError` (exit 2) naming the permission Google says is missing; bad credentials (401,
a key that cannot be used) into `CibError`; the rest into `BuildError` (exit 3) with Google's
reason and message. A resource that is not there (404) is `None` (or absent from a listing),
never an error. The library's own retries are turned off (`retry=None`): the task's retry on
exit 75 is the retry, and a test's planned 503 is seen at once.

Writes answer an `Operation`; `operation_state` reads it once (`PENDING`, `RUNNING`, `DONE`)
and raises the operation's error when it is done with one, so a caller steps it from its own
bounded wait (`Progress.wait`) and tests never sleep. Listings read every page.

Where the services are and who calls them (`Endpoints.from_environment`, variables that
`cloudcreds` exports from the clouds secret's fields of the same name):

- `GOOGLE_SERVICE_ACCOUNT_KEY`: a service-account key file's JSON; without it, Application
  Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, the worker's attached service
  account through the metadata server);
- `GOOGLE_COMPUTE_ENDPOINT`: the Compute API root, e.g. the local pipeline's fake
  `http://127.0.0.1:<port>` (default `https://compute.googleapis.com`);
- `GOOGLE_STORAGE_ENDPOINT`: the Cloud Storage API root (default
  `https://storage.googleapis.com`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from ..errors import BuildError, CibError, TransientError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
PUBLIC_COMPUTE = "https://compute.googleapis.com"
PUBLIC_STORAGE = "https://storage.googleapis.com"
ENDPOINT_VARIABLES = ("GOOGLE_COMPUTE_ENDPOINT", "GOOGLE_STORAGE_ENDPOINT")
# Reasons a later attempt may not meet: quota frees up, throttling passes, capacity returns.
TRANSIENT_REASONS = frozenset({
    "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "backendError",
    "internalError", "resourceExhausted", "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_NOT_READY",
    "RESOURCE_OPERATION_RATE_EXCEEDED", "QUOTA_EXCEEDED", "INTERNAL_ERROR", "BACKEND_ERROR",
    "RATE_LIMIT_EXCEEDED", "resourceNotReady",
})
_PERMISSION = re.compile(r"[Rr]equired '([a-z]+\.[A-Za-z]+\.[A-Za-z]+)' permission")
OPERATION_DONE = "DONE"


@dataclass(frozen=True)
class Operation:
    """A Compute operation under way: its project, where it is (`global`, `zones/<z>`,
    `regions/<r>`), its name and what it works on."""

    project: str
    scope: str
    name: str
    target: str = ""


@dataclass(frozen=True)
class Endpoints:
    """Where the Compute and Storage APIs are (Google's unless the environment says)."""

    compute: str = PUBLIC_COMPUTE
    storage: str = PUBLIC_STORAGE

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        """The endpoints the environment names (CibError for one that is not a URL)."""
        environ = os.environ if environ is None else environ
        settings = {}
        for variable, field in zip(ENDPOINT_VARIABLES, ("compute", "storage"), strict=True):
            value = (environ.get(variable) or "").strip()
            if value:
                if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
                    raise CibError(f"{variable}={value!r} is not an http(s):// URL")
                settings[field] = value.rstrip("/")
        return cls(**settings)


def credentials_from_environment(environ: Mapping[str, str] | None = None) -> Any:
    """google-auth credentials: the service-account key in `GOOGLE_SERVICE_ACCOUNT_KEY`, else
    Application Default Credentials; CibError when neither can be used."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import service_account

    environ = os.environ if environ is None else environ
    key = (environ.get("GOOGLE_SERVICE_ACCOUNT_KEY") or "").strip()
    if key:
        try:
            info = json.loads(key)
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, KeyError, TypeError) as exc:
            raise CibError(f"GOOGLE_SERVICE_ACCOUNT_KEY is not a service-account key: "
                           f"{exc}") from None
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        raise CibError(f"no Google credentials: {exc} (the clouds secret's "
                       "google_service_account_key, GOOGLE_APPLICATION_CREDENTIALS, or the "
                       "worker's service account)") from None
    return credentials


def error_reasons(exc: Any) -> list[str]:
    """The `reason`s of a Google API error (`errors[].reason`, ErrorInfo's)."""
    reasons = [str(e.get("reason")) for e in getattr(exc, "errors", None) or ()
               if isinstance(e, dict) and e.get("reason")]
    if getattr(exc, "reason", None):
        reasons.append(str(exc.reason))
    return reasons


def classify(status: int | None, reasons: list[str], message: str, doing: str) -> CibError:
    """cib's error for a Google answer (pure): status, reasons and message -> the exception."""
    reason = reasons[0] if reasons else ""
    text = f"Google refused {doing}: {status or ''} {reason}: {message}".replace("  ", " ")
    if (status in (429, 500, 502, 503, 504)
            or any(r in TRANSIENT_REASONS for r in reasons)
            or ("quota" in message.lower() and "exceeded" in message.lower())):
        return TransientError(text)
    if status == 403:
        missing = _PERMISSION.search(message)
        need = f" (the credentials lack the permission {missing.group(1)})" if missing else ""
        return CibError(text + need)
    if status == 401:
        return CibError(text + " (check the Google credentials: the clouds secret's "
                        "google_service_account_key)")
    return BuildError(text)


@contextlib.contextmanager
def google_errors(doing: str) -> Iterator[None]:
    """Translate the Google libraries' exceptions raised while `doing` into cib's."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        yield
    except api.GoogleAPICallError as exc:
        raise classify(exc.code, error_reasons(exc), exc.message or str(exc), doing) from None
    except api.RetryError as exc:
        raise TransientError(f"Google did not answer {doing}: {exc}") from None
    except auth.TransportError as exc:
        raise TransientError(f"lost the connection to Google's token endpoint while "
                             f"{doing}: {exc}") from None
    except auth.RefreshError as exc:
        raise CibError(f"Google refused the credentials while {doing}: {exc}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"lost the connection to Google while {doing}: {exc}") from None


def as_dict(message: Any) -> dict[str, Any]:
    """A Compute message in its JSON shape (camelCase keys, enums by name, only the fields
    it has)."""
    return json.loads(type(message).to_json(message, use_integers_for_enums=False,
                                            always_print_fields_with_no_presence=False))


# --- labels: Google's tags ------------------------------------------------------------------
# Compute labels allow lowercase letters, digits, `_` and `-` only, at most 63 characters, and a
# key starts with a letter. cib's tags map to them (docs/images.md, "Google labels"):
# a key `cib:<name>` -> `cib-<name>`, `Name` -> `name`, any other key lowercased with every
# other character as `-` (`k` first when it does not start with a letter); a value lowercased
# with every other character as `-` (as pools/rendering.py labels a Google pool's workers), cut
# at 63 characters: a SHA-256 digest (64 hex digits)
# keeps its first 63 (252 bits), a Taskcluster task id is lowercased (the image's description
# keeps it as it is).

LABEL_LIMIT = 63


def label_key(name: str) -> str:
    """The label key of a cib tag name (pure)."""
    if name.startswith("cib:"):
        name = "cib-" + name[4:]
    key = re.sub(r"[^a-z0-9_-]", "-", name.lower())
    if not key[:1].isalpha():
        key = "k" + key
    return key[:LABEL_LIMIT]


def label_value(value: str) -> str:
    """The label value of a cib tag value (pure)."""
    return re.sub(r"[^a-z0-9_-]", "-", str(value).lower())[:LABEL_LIMIT]


def labels_of(tags: Mapping[str, str]) -> dict[str, str]:
    """cib's tags as Compute labels (pure); two tags that map to one key keep the last."""
    return {label_key(k): label_value(v) for k, v in tags.items()}


def zone_region(zone: str) -> str:
    """The region of a zone (`us-central1-a` -> `us-central1`)."""
    return zone.rsplit("-", 1)[0]


def object_url(endpoints: Endpoints, bucket: str, name: str) -> str:
    """The object's URL as Compute's `rawDisk.source` takes it."""
    return f"{PUBLIC_STORAGE}/{bucket}/{quote(name)}" if endpoints.storage == PUBLIC_STORAGE \
        else f"{endpoints.storage}/storage/{bucket}/{quote(name)}"


class Google:
    """Compute Engine and Cloud Storage with one set of credentials."""

    def __init__(self, credentials: Any = None, endpoints: Endpoints | None = None,
                 timeout: float = 120.0):
        self.endpoints = endpoints or Endpoints()
        self.credentials = credentials
        self.timeout = timeout
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Google:
        """Credentials and endpoints from the environment (see the module)."""
        return cls(credentials_from_environment(environ), Endpoints.from_environment(environ))

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            from google.api_core.client_options import ClientOptions
            from google.cloud import compute_v1

            options = ClientOptions(api_endpoint=self.endpoints.compute)
            self._clients[name] = getattr(compute_v1, name)(
                credentials=self.credentials, transport="rest", client_options=options)
        return self._clients[name]

    def _call(self, doing: str, client: str, method: str, **request: Any) -> Any:
        with google_errors(doing):
            return getattr(self._client(client), method)(request=request, retry=None,
                                                         timeout=self.timeout)

    def _get(self, doing: str, client: str, method: str, **request: Any
             ) -> dict[str, Any] | None:
        from google.api_core import exceptions as api

        with google_errors(doing):
            try:
                return as_dict(getattr(self._client(client), method)(
                    request=request, retry=None, timeout=self.timeout))
            except api.NotFound:
                return None

    def _list(self, doing: str, client: str, **request: Any) -> list[dict[str, Any]]:
        with google_errors(doing):
            pager = self._client(client).list(request=request, retry=None,
                                              timeout=self.timeout)
            return [as_dict(item) for item in pager]  # every page

    def _operation(self, doing: str, client: str, method: str, where: tuple[str, str],
                   **request: Any) -> Operation:
        answer = self._call(doing, client, f"{method}_unary", **request)
        return Operation(where[0], where[1], answer.name, answer.target_link)

    # operations

    def operation(self, operation: Operation) -> dict[str, Any]:
        """The operation as Compute says it is now."""
        doing = f"reading operation {operation.name}"
        if operation.scope == "global":
            found = self._get(doing, "GlobalOperationsClient", "get",
                              project=operation.project, operation=operation.name)
        elif operation.scope.startswith("zones/"):
            found = self._get(doing, "ZoneOperationsClient", "get", project=operation.project,
                              zone=operation.scope[6:], operation=operation.name)
        else:
            found = self._get(doing, "RegionOperationsClient", "get",
                              project=operation.project, region=operation.scope[8:],
                              operation=operation.name)
        if found is None:
            raise BuildError(f"operation {operation.name} of {operation.target} is gone")
        return found

    def operation_state(self, operation: Operation, doing: str = "") -> str:
        """`PENDING`, `RUNNING` or `DONE`; the operation's error (mapped as a call's) when it
        is done with one."""
        found = self.operation(operation)
        status = str(found.get("status", ""))
        if status == OPERATION_DONE and found.get("error"):
            errors = found["error"].get("errors") or [{}]
            raise classify(int(found.get("httpErrorStatusCode") or 0) or None,
                           [str(e.get("code", "")) for e in errors],
                           "; ".join(str(e.get("message", "")) for e in errors),
                           doing or f"operation {operation.name} on {operation.target}")
        return status

    # images

    def image(self, project: str, name: str) -> dict[str, Any] | None:
        """The image, or None when there is none of that name."""
        return self._get(f"reading image {name} of {project}", "ImagesClient", "get",
                         project=project, image=name)

    def image_from_family(self, project: str, family: str) -> dict[str, Any] | None:
        """The newest image of a family that is not deprecated, or None."""
        return self._get(f"reading image family {family} of {project}", "ImagesClient",
                         "get_from_family", project=project, family=family)

    def images(self, project: str, filter: str = "") -> list[dict[str, Any]]:
        """The project's images (matching Compute's list `filter`), every page."""
        request: dict[str, Any] = {"project": project}
        if filter:
            request["filter"] = filter
        return self._list(f"listing the images of {project}", "ImagesClient", **request)

    def images_labelled(self, project: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The project's images carrying every label of `labels`."""
        expression = " AND ".join(f'(labels.{k} = "{v}")' for k, v in sorted(labels.items()))
        found = self.images(project, expression)
        return [i for i in found
                if all((i.get("labels") or {}).get(k) == v for k, v in labels.items())]

    def insert_image(self, project: str, body: dict[str, Any], *, force: bool = False
                     ) -> Operation:
        """Start creating an image from `body` (Compute's JSON: `name`, `sourceDisk` or
        `rawDisk.source`, `family`, `labels`, `storageLocations`, ...)."""
        from google.cloud import compute_v1

        image = compute_v1.Image.from_json(json.dumps(body), ignore_unknown_fields=True)
        request: dict[str, Any] = {"project": project, "image_resource": image}
        if force:
            request["force_create"] = True
        return self._operation(f"creating image {body.get('name')} in {project}",
                               "ImagesClient", "insert", (project, "global"), **request)

    def set_image_labels(self, project: str, name: str, labels: Mapping[str, str],
                         fingerprint: str) -> Operation:
        """Start replacing the image's labels (Compute refuses a stale `fingerprint`)."""
        from google.cloud import compute_v1

        return self._operation(
            f"labelling image {name} of {project}", "ImagesClient", "set_labels",
            (project, "global"), project=project, resource=name,
            global_set_labels_request_resource=compute_v1.GlobalSetLabelsRequest(
                labels=dict(labels), label_fingerprint=fingerprint))

    def deprecate_image(self, project: str, name: str, state: str,
                        replacement: str | None = None) -> Operation:
        """Start setting the image's deprecation `state` (`DEPRECATED`, `OBSOLETE`,
        `DELETED`, `ACTIVE`)."""
        from google.cloud import compute_v1

        status = compute_v1.DeprecationStatus(state=state)
        if replacement:
            status.replacement = replacement
        return self._operation(f"deprecating image {name} of {project}", "ImagesClient",
                               "deprecate", (project, "global"), project=project, image=name,
                               deprecation_status_resource=status)

    def delete_image(self, project: str, name: str) -> Operation | None:
        """Start deleting the image; None when there is none of that name."""
        from google.api_core import exceptions as api

        with google_errors(f"deleting image {name} of {project}"):
            try:
                answer = self._client("ImagesClient").delete_unary(
                    request={"project": project, "image": name}, retry=None,
                    timeout=self.timeout)
            except api.NotFound:
                return None
        return Operation(project, "global", answer.name, answer.target_link)

    # instances

    def insert_instance(self, project: str, zone: str, body: dict[str, Any]) -> Operation:
        """Start creating an instance from `body` (Compute's JSON)."""
        from google.cloud import compute_v1

        instance = compute_v1.Instance.from_json(json.dumps(body), ignore_unknown_fields=True)
        return self._operation(f"creating instance {body.get('name')} in {zone}",
                               "InstancesClient", "insert", (project, f"zones/{zone}"),
                               project=project, zone=zone, instance_resource=instance)

    def instance(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        """The instance, or None when there is none of that name."""
        return self._get(f"reading instance {name} in {zone}", "InstancesClient", "get",
                         project=project, zone=zone, instance=name)

    def instance_status(self, project: str, zone: str, name: str) -> str:
        """`PROVISIONING`, `STAGING`, `RUNNING`, `STOPPING`, `TERMINATED`, ... (`missing`
        when it is gone)."""
        found = self.instance(project, zone, name)
        return str(found.get("status", "")) if found else "missing"

    def instances(self, project: str, zone: str, filter: str = "") -> list[dict[str, Any]]:
        """The zone's instances (matching `filter`), every page."""
        request: dict[str, Any] = {"project": project, "zone": zone}
        if filter:
            request["filter"] = filter
        return self._list(f"listing the instances of {project} in {zone}", "InstancesClient",
                          **request)

    def serial_output(self, project: str, zone: str, name: str, start: int = 0
                      ) -> tuple[str, int]:
        """The instance's serial port 1 output from byte `start`, and where the next read
        starts."""
        answer = self._call(f"reading the serial port of {name}", "InstancesClient",
                            "get_serial_port_output", project=project, zone=zone,
                            instance=name, port=1, start=start)
        return answer.contents, int(answer.next_ or 0)

    def stop_instance(self, project: str, zone: str, name: str) -> Operation:
        """Start stopping the instance."""
        return self._operation(f"stopping instance {name}", "InstancesClient", "stop",
                               (project, f"zones/{zone}"), project=project, zone=zone,
                               instance=name)

    def delete_instance(self, project: str, zone: str, name: str) -> Operation | None:
        """Start deleting the instance; None when there is none of that name."""
        from google.api_core import exceptions as api

        with google_errors(f"deleting instance {name} in {zone}"):
            try:
                answer = self._client("InstancesClient").delete_unary(
                    request={"project": project, "zone": zone, "instance": name},
                    retry=None, timeout=self.timeout)
            except api.NotFound:
                return None
        return Operation(project, f"zones/{zone}", answer.name, answer.target_link)

    # disks

    def disk(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        """The disk, or None."""
        return self._get(f"reading disk {name} in {zone}", "DisksClient", "get",
                         project=project, zone=zone, disk=name)

    def disks(self, project: str, zone: str, filter: str = "") -> list[dict[str, Any]]:
        """The zone's disks (matching `filter`), every page."""
        request: dict[str, Any] = {"project": project, "zone": zone}
        if filter:
            request["filter"] = filter
        return self._list(f"listing the disks of {project} in {zone}", "DisksClient",
                          **request)

    def delete_disk(self, project: str, zone: str, name: str) -> Operation | None:
        """Start deleting the disk; None when there is none of that name."""
        from google.api_core import exceptions as api

        with google_errors(f"deleting disk {name} in {zone}"):
            try:
                answer = self._client("DisksClient").delete_unary(
                    request={"project": project, "zone": zone, "disk": name}, retry=None,
                    timeout=self.timeout)
            except api.NotFound:
                return None
        return Operation(project, f"zones/{zone}", answer.name, answer.target_link)

    # Cloud Storage (the JSON API through google-auth's authorized session)

    def _session(self) -> Any:
        from google.auth.transport.requests import AuthorizedSession

        if "storage" not in self._clients:
            if self.credentials is None:
                import requests

                self._clients["storage"] = requests.Session()
            else:
                self._clients["storage"] = AuthorizedSession(self.credentials)
        return self._clients["storage"]

    def object_exists(self, bucket: str, name: str) -> bool:
        """Whether `gs://bucket/name` exists."""
        url = f"{self.endpoints.storage}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        with google_errors(f"reading gs://{bucket}/{name}"):
            answer = self._session().get(url, timeout=self.timeout)
        if answer.status_code == 404:
            return False
        _raise_for(answer, f"reading gs://{bucket}/{name}")
        return True

    def upload_object(self, bucket: str, name: str, data: IO[bytes] | bytes,
                      content_type: str = "application/gzip") -> str:
        """Upload `data` (bytes or a file read front to back) as `gs://bucket/name` in one
        request; the URL Compute's `rawDisk.source` takes."""
        url = f"{self.endpoints.storage}/upload/storage/v1/b/{bucket}/o"
        with google_errors(f"uploading gs://{bucket}/{name}"):
            answer = self._session().post(url, params={"uploadType": "media", "name": name},
                                          data=data, headers={"Content-Type": content_type},
                                          timeout=max(self.timeout, 3600))
        _raise_for(answer, f"uploading gs://{bucket}/{name}")
        return object_url(self.endpoints, bucket, name)


def _raise_for(answer: Any, doing: str) -> None:
    """A Storage answer that is an error, as cib's error."""
    if answer.status_code < 400:
        return
    try:
        error = answer.json().get("error") or {}
    except ValueError:
        error = {}
    reasons = [str(e.get("reason")) for e in error.get("errors") or () if e.get("reason")]
    raise classify(answer.status_code, reasons, str(error.get("message") or answer.text[:200]),
                   doing)
