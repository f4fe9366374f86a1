"""A thin adapter over the Azure SDK: Resource Manager resources (compute, network) and Blob
storage, in ARM's own JSON shapes (`{id, name, type, location, tags, properties}` dicts).

Every call goes through `azure_errors`, which turns azure-core's exceptions into cib's:
throttling (429), service errors (5xx), quota and capacity refusals and lost connections into
`TransientError` (exit 75, retried by the task), a failed authentication into `CibError`
(exit 2), the rest into `BuildError` (exit 3) with ARM's code and message. A resource that is
not there is `None` (or an empty list), never an error.

Long-running operations come in two forms: `create`, `delete` and the like block until ARM
says the operation ended (the SDK's own polling); `begin_*` returns an `Operation` that the
caller steps (`state()`) from its own bounded wait, one status request per step, so a long wait
logs each state change and tests never sleep.

Where the services are (`Endpoints`): the public cloud's unless the environment names others
(a sovereign cloud, Azure Stack, the local pipeline's fake), each setting an environment
variable that `cloudcreds` exports from the clouds secret's field of the same name:

- `AZURE_AUTHORITY_HOST`: Entra ID's authority host (azure-identity's own variable), e.g.
  `https://login.microsoftonline.us`; a host Microsoft's instance discovery does not know is
  used without it (as for Azure Stack);
- `AZURE_RESOURCE_MANAGER`: the Resource Manager endpoint, e.g.
  `https://management.usgovcloudapi.net`; tokens are asked for the SDK's scope of a cloud it
  knows, else for `<endpoint>/.default`;
- `AZURE_STORAGE_SUFFIX`: the storage endpoint suffix, e.g. `core.usgovcloudapi.net`
  (accounts at `https://<account>.blob.<suffix>`);
- `AZURE_BLOB_ENDPOINT`: the blob endpoint of any account as a template with `{account}`,
  e.g. `https://127.0.0.1:10000/{account}` for a path-style emulator (wins over the suffix);
- `AZURE_CA_BUNDLE`: a PEM file of the certificate authorities the Azure clients trust instead
  of the system's (an emulator's own CA).

Resources are named by a *kind* (`KINDS`): `virtual-machine`, `disk`, `image`, `gallery`,
`gallery-image`, `gallery-image-version`, `network-interface`, `public-ip`,
`virtual-network`, `subnet`, `security-group`; nested ones take their parents' names first
(`get("gallery-image-version", group, gallery, image, version)`). Purge and garbage
collection list and delete through the same calls (`list`, `tagged`, `delete`, `delete_id`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.polling.base_polling import BadResponse, BadStatus
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ..errors import BuildError, CibError, TransientError

# ARM error codes a later attempt may not meet: quota and capacity free up, throttling passes.
TRANSIENT_CODES = frozenset({
    "QuotaExceeded", "OperationNotAllowedQuota", "SkuNotAvailable", "AllocationFailed",
    "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest", "AllocationFailedCapacity", "TooManyRequests",
    "RetryableError", "RetryableErrorDueToAnotherOperation", "InternalServerError",
    "InternalOperationError", "InternalExecutionError", "ServiceUnavailable",
    "GatewayTimeout", "OperationPreempted", "Conflict", "AnotherOperationInProgress",
    "PublicIPCountLimitReached", "NetworkingInternalOperationError",
})
_QUOTA = re.compile(r"\bquota\b|\blimit\b.*\bexceed|\bexceed.*\blimit\b", re.IGNORECASE)
PUBLIC_RESOURCE_MANAGER = "https://management.azure.com"
PUBLIC_STORAGE_SUFFIX = "core.windows.net"
STORAGE_ACCOUNT = "[a-z0-9]{3,24}"
# The endpoint settings `Endpoints.from_environment` reads.
ENDPOINT_VARIABLES = ("AZURE_AUTHORITY_HOST", "AZURE_RESOURCE_MANAGER", "AZURE_STORAGE_SUFFIX",
                      "AZURE_BLOB_ENDPOINT", "AZURE_CA_BUNDLE")


def _https_url(name: str, value: str) -> str:
    if not re.fullmatch(r"https://[^/?#\s]+(/[^?#\s]*)?", value):
        raise CibError(f"{name}={value!r} is not an https:// URL")
    return value.rstrip("/")


def _known_arm_scopes() -> dict[str, list[str]]:
    """The token scopes of the Resource Manager endpoints the SDK knows, by endpoint."""
    from azure.core import AzureClouds
    from azure.mgmt.core.tools import get_arm_endpoints

    known: dict[str, list[str]] = {}
    for cloud in AzureClouds:
        with contextlib.suppress(ValueError):
            endpoints = get_arm_endpoints(cloud)
            known[endpoints["resource_manager"].rstrip("/").lower()] = \
                list(endpoints["credential_scopes"])
    return known


@dataclass(frozen=True)
class Endpoints:
    """Where the Azure services are: the public cloud's by default, others from the
    environment (`from_environment`, the variables of `ENDPOINT_VARIABLES`)."""

    resource_manager: str = PUBLIC_RESOURCE_MANAGER
    authority_host: str | None = None  # None: azure-identity's default
    blob_endpoint: str = f"https://{{account}}.blob.{PUBLIC_STORAGE_SUFFIX}"
    ca_bundle: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        """The endpoints the environment names (CibError for a malformed setting)."""
        environ = os.environ if environ is None else environ
        get = {name: (environ.get(name) or "").strip() for name in ENDPOINT_VARIABLES}.get
        settings: dict[str, Any] = {}
        if get("AZURE_RESOURCE_MANAGER"):
            settings["resource_manager"] = _https_url("AZURE_RESOURCE_MANAGER",
                                                      get("AZURE_RESOURCE_MANAGER"))
        if get("AZURE_AUTHORITY_HOST"):
            settings["authority_host"] = _https_url("AZURE_AUTHORITY_HOST",
                                                    get("AZURE_AUTHORITY_HOST"))
        suffix, template = get("AZURE_STORAGE_SUFFIX"), get("AZURE_BLOB_ENDPOINT")
        if suffix:
            if not re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,}(:\d+)?", suffix.lower()):
                raise CibError(f"AZURE_STORAGE_SUFFIX={suffix!r} is not a host name suffix "
                               f"(e.g. {PUBLIC_STORAGE_SUFFIX})")
            settings["blob_endpoint"] = f"https://{{account}}.blob.{suffix.lower()}"
        if template:
            if template.count("{account}") != 1 or template.replace(
                    "{account}", "").count("{") or template.count("}") != 1:
                raise CibError(f"AZURE_BLOB_ENDPOINT={template!r} must name the account once, "
                               "as {account}")
            settings["blob_endpoint"] = _https_url("AZURE_BLOB_ENDPOINT", template)
        if get("AZURE_CA_BUNDLE"):
            if not Path(get("AZURE_CA_BUNDLE")).is_file():
                raise CibError(f"AZURE_CA_BUNDLE={get('AZURE_CA_BUNDLE')}: no such file")
            settings["ca_bundle"] = get("AZURE_CA_BUNDLE")
        return cls(**settings)

    @property
    def credential_scopes(self) -> list[str]:
        """What Resource Manager's tokens are asked for."""
        return _known_arm_scopes().get(self.resource_manager.lower(),
                                       [f"{self.resource_manager}/.default"])

    def _verify(self) -> dict[str, Any]:
        return {"connection_verify": self.ca_bundle} if self.ca_bundle else {}

    def management_options(self) -> dict[str, Any]:
        """Options of the Resource Manager clients."""
        return {"base_url": self.resource_manager,
                "credential_scopes": self.credential_scopes, **self._verify()}

    def storage_options(self) -> dict[str, Any]:
        """Options of the Blob storage clients."""
        return self._verify()

    def credential_options(self) -> dict[str, Any]:
        """Options of azure-identity's credentials: the authority, without Microsoft's
        instance discovery for a host it does not know."""
        options = self._verify()
        if self.authority_host:
            from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

            options["authority"] = self.authority_host
            host = self.authority_host.split("://", 1)[1].split("/", 1)[0].lower()
            if host not in WELL_KNOWN_AUTHORITY_HOSTS:
                options["disable_instance_discovery"] = True
        return options

    def account_url(self, account: str) -> str:
        """The blob endpoint of a storage account."""
        return self.blob_endpoint.replace("{account}", account)

    def blob_url(self, account: str, container: str, name: str) -> str:
        return f"{self.account_url(account)}/{container}/{name}"

    def parse_blob_url(self, url: str) -> tuple[str, str, str] | None:
        """`(account, container, blob name)` of a blob URL of these endpoints, or None."""
        head, _, tail = self.blob_endpoint.partition("{account}")
        pattern = f"{re.escape(head)}({STORAGE_ACCOUNT}){re.escape(tail)}/([^/]+)/(.+)"
        match = re.fullmatch(pattern, url.split("?", 1)[0])
        return (match.group(1), match.group(2), match.group(3)) if match else None


@dataclass(frozen=True)
class Kind:
    """Where the SDK keeps one resource type: client, operations group, list methods."""

    client: str  # "compute" or "network"
    operations: str
    list_group: str | None  # list in a resource group (or under the parent)
    list_all: str | None = None  # list in the subscription
    type: str = ""  # the ARM resource type


KINDS = {
    "virtual-machine": Kind("compute", "virtual_machines", "list", "list_all",
                            "Microsoft.Compute/virtualMachines"),
    "disk": Kind("compute", "disks", "list_by_resource_group", "list",
                 "Microsoft.Compute/disks"),
    "image": Kind("compute", "images", "list_by_resource_group", "list",
                  "Microsoft.Compute/images"),
    "gallery": Kind("compute", "galleries", "list_by_resource_group", "list",
                    "Microsoft.Compute/galleries"),
    "gallery-image": Kind("compute", "gallery_images", "list_by_gallery", None,
                          "Microsoft.Compute/galleries/images"),
    "gallery-image-version": Kind("compute", "gallery_image_versions",
                                  "list_by_gallery_image", None,
                                  "Microsoft.Compute/galleries/images/versions"),
    "network-interface": Kind("network", "network_interfaces", "list", "list_all",
                              "Microsoft.Network/networkInterfaces"),
    "public-ip": Kind("network", "public_ip_addresses", "list", "list_all",
                      "Microsoft.Network/publicIPAddresses"),
    "virtual-network": Kind("network", "virtual_networks", "list", "list_all",
                            "Microsoft.Network/virtualNetworks"),
    "subnet": Kind("network", "subnets", "list", None,
                   "Microsoft.Network/virtualNetworks/subnets"),
    "security-group": Kind("network", "network_security_groups", "list", "list_all",
                           "Microsoft.Network/networkSecurityGroups"),
}
_BY_TYPE = {k.type.lower(): name for name, k in KINDS.items()}


def error_code(exc: HttpResponseError) -> str:
    """ARM's error code of an SDK error (`ResourceNotFound`, `OperationNotAllowed`, ...)."""
    error = getattr(exc, "error", None)
    return str(getattr(error, "code", None) or getattr(exc, "error_code", None) or "")


def error_message(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or exc.message or str(exc)
    return " ".join(str(message).split())


def is_transient(status: int | None, code: str, message: str) -> bool:
    """Whether a refusal may pass: throttling, a service error, quota or capacity."""
    if status == 429 or (status is not None and status >= 500):
        return True
    if code in TRANSIENT_CODES:
        return True
    return code == "OperationNotAllowed" and bool(_QUOTA.search(message))


@contextlib.contextmanager
def azure_errors(doing: str) -> Iterator[None]:
    """Translate azure-core exceptions raised while `doing` into cib's errors."""
    try:
        yield
    except ClientAuthenticationError as exc:
        raise CibError(f"cannot authenticate to Azure while {doing}: "
                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                       ) from None
    except HttpResponseError as exc:
        code, message = error_code(exc), error_message(exc)
        transient = is_transient(exc.status_code, code, message)
        error = TransientError if transient else BuildError
        raise error(f"Azure refused {doing}: {code or exc.status_code}: {message}") from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(f"lost the connection to Azure while {doing}: {exc}") from None
    except AzureError as exc:
        raise BuildError(f"Azure failed while {doing}: {exc}") from None


def parse_id(arm_id: str) -> tuple[str, str, tuple[str, ...]]:
    """`(kind, resource group, names)` of an ARM resource id of one of `KINDS`."""
    parts = arm_id.strip("/").split("/")
    try:
        group = parts[parts.index(next(p for p in parts if p.lower() == "resourcegroups")) + 1]
        provider = [p.lower() for p in parts].index("providers")
    except (StopIteration, ValueError, IndexError):
        raise CibError(f"not an ARM resource id: {arm_id}") from None
    rest = parts[provider + 1:]
    types, names = [rest[0], *rest[1::2]], tuple(rest[2::2])
    kind = _BY_TYPE.get("/".join(types).lower())
    if kind is None or len(names) != len(types) - 1:
        raise CibError(f"{arm_id}: not a resource cib manages")
    return kind, group, names


def power_state(instance_view: Mapping[str, Any]) -> str:
    """`running`, `stopped`, `deallocated`, ... from a VM's instance view (`unknown` when it
    has no `PowerState/` status yet)."""
    for status in instance_view.get("statuses") or ():
        code = str(status.get("code", ""))
        if code.startswith("PowerState/"):
            return code.split("/", 1)[1]
    return "unknown"


def run_command_output(result: Mapping[str, Any] | None) -> tuple[str, str]:
    """`(stdout, stderr)` of a run command's result."""
    out, err = [], []
    for status in (result or {}).get("value") or ():
        code = str(status.get("code", ""))
        (err if "/StdErr/" in code else out).append(str(status.get("message") or ""))
    return "".join(out), "".join(err)


def _as_dict(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    if hasattr(model, "as_dict"):
        return model.as_dict()
    return dict(model)


class SteppedPolling(ARMPolling):
    """ARM's polling of a long-running operation, one status request per `step()` instead of
    a loop in the poller's thread, so the caller's bounded wait drives it."""

    def run(self) -> None:
        """Nothing in the poller's thread (see `step` and `finish`)."""

    def step(self) -> str:
        if not self.finished():
            try:
                self.update_status()
            except (BadStatus, BadResponse) as err:
                raise HttpResponseError(response=self._pipeline_response.http_response,
                                        error=err) from err
        return self.status()

    def finish(self) -> None:
        """After the last step: the final GET, or ARM's error when the operation failed."""
        super().run()


class Operation:
    """A long-running ARM operation under way: `state()` asks ARM once (`InProgress`,
    `Succeeded`, `Failed`, ...); `result()` once it ended."""

    ENDED = frozenset({"Succeeded", "Failed", "Canceled"})

    def __init__(self, poller: Any, polling: SteppedPolling, doing: str):
        self.poller, self.polling, self.doing = poller, polling, doing

    def state(self) -> str:
        with azure_errors(self.doing):
            status = self.polling.step()
        if self.polling.finished():
            return "Succeeded" if status.lower() == "succeeded" else status.capitalize()
        return status

    def result(self) -> dict[str, Any]:
        """The operation's final resource or result (`{}` when none); its error raised as
        cib's."""
        with azure_errors(self.doing):
            self.polling.finish()
            return _as_dict(self.polling.resource())


class Azure:
    """One subscription's compute, network and blob storage."""

    def __init__(self, subscription: str, credential: Any, *,
                 endpoints: Endpoints | None = None, **client_options: Any):
        """`client_options` go to every SDK client (tests: `polling_interval=0`,
        `retry_total=0`); `endpoints` default to the environment's."""
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient

        self.subscription, self.credential = subscription, credential
        self.endpoints = endpoints or Endpoints.from_environment()
        self.client_options = client_options
        options = {**self.endpoints.management_options(), **client_options}
        self.compute = ComputeManagementClient(credential, subscription, **options)
        self.network = NetworkManagementClient(credential, subscription, **options)
        self._blob_services: dict[str, Any] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Azure:
        """The subscription `AZURE_SUBSCRIPTION_ID` with the service principal of
        `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`, or else the worker's
        managed or workload identity (azure-identity's DefaultAzureCredential)."""
        environ = os.environ if environ is None else environ
        endpoints = Endpoints.from_environment(environ)
        subscription = environ.get("AZURE_SUBSCRIPTION_ID")
        if not subscription:
            raise CibError("AZURE_SUBSCRIPTION_ID is not set: work on Azure needs the "
                           "subscription (and AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                           "AZURE_CLIENT_SECRET, or a managed identity)")
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        names = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
        if all(environ.get(n) for n in names):
            credential: Any = ClientSecretCredential(*(environ[n] for n in names),
                                                     **endpoints.credential_options())
        else:
            authority = {"authority": endpoints.authority_host} if endpoints.authority_host \
                else {}
            credential = DefaultAzureCredential(exclude_interactive_browser_credential=True,
                                                **authority)
        return cls(subscription, credential, endpoints=endpoints)

    def id_of(self, kind: str, group: str, *names: str) -> str:
        """The ARM id of a resource."""
        types = KINDS[kind].type.split("/")
        path = "/".join(f"{t}/{n}" for t, n in zip(types[1:], names, strict=True))
        return (f"/subscriptions/{self.subscription}/resourceGroups/{group}/providers/"
                f"{types[0]}/{path}")

    def _ops(self, kind: str) -> Any:
        spec = KINDS[kind]
        return getattr(getattr(self, spec.client), spec.operations)

    def _name(self, kind: str, names: tuple[str, ...]) -> str:
        return f"{kind} {'/'.join(names)}"

    # --- generic resources -------------------------------------------------------------------

    def get(self, kind: str, group: str, *names: str, expand: str | None = None
            ) -> dict[str, Any] | None:
        """The resource, or None when it does not exist."""
        extra = {"expand": expand} if expand else {}
        with azure_errors(f"reading {self._name(kind, names)} in {group}"):
            try:
                return _as_dict(self._ops(kind).get(group, *names, **extra))
            except ResourceNotFoundError:
                return None

    def list(self, kind: str, group: str | None = None, *parents: str) -> list[dict[str, Any]]:
        """The resources of `kind` in a resource group (under `parents` for nested kinds), or
        in the whole subscription without a group; an empty list when the group or parent
        does not exist."""
        spec, ops = KINDS[kind], self._ops(kind)
        where = f"in {group}" if group else "in the subscription"
        with azure_errors(f"listing {kind}s {where}"):
            try:
                if group is None:
                    if spec.list_all is None:
                        raise CibError(f"{kind}s are listed per resource group")
                    return [_as_dict(r) for r in getattr(ops, spec.list_all)()]
                return [_as_dict(r) for r in getattr(ops, spec.list_group)(group, *parents)]
            except ResourceNotFoundError:
                return []

    def tagged(self, kind: str, group: str | None, tags: Mapping[str, str], *parents: str
               ) -> list[dict[str, Any]]:
        """The resources of `list(kind, group, *parents)` carrying every tag of `tags`."""
        return [r for r in self.list(kind, group, *parents)
                if all((r.get("tags") or {}).get(k) == v for k, v in tags.items())]

    def create(self, kind: str, group: str, *names: str, body: Mapping[str, Any]
               ) -> dict[str, Any]:
        """Create or update a resource and wait until ARM is done; the resource."""
        with azure_errors(f"creating {self._name(kind, names)} in {group}"):
            poller = self._ops(kind).begin_create_or_update(group, *names, dict(body))
            return _as_dict(poller.result())

    def begin_create(self, kind: str, group: str, *names: str, body: Mapping[str, Any]
                     ) -> Operation:
        """Start creating (or updating) a resource; the operation to step."""
        doing = f"creating {self._name(kind, names)} in {group}"
        polling = SteppedPolling(0)
        with azure_errors(doing):
            poller = self._ops(kind).begin_create_or_update(group, *names, dict(body),
                                                            polling=polling)
        return Operation(poller, polling, doing)

    def begin_update(self, kind: str, group: str, *names: str, body: Mapping[str, Any]
                     ) -> Operation:
        """Start updating (ARM's PATCH) a resource with `body`; the operation to step."""
        doing = f"updating {self._name(kind, names)} in {group}"
        polling = SteppedPolling(0)
        with azure_errors(doing):
            poller = self._ops(kind).begin_update(group, *names, dict(body), polling=polling)
        return Operation(poller, polling, doing)

    def delete(self, kind: str, group: str, *names: str) -> bool:
        """Delete a resource and wait until it is gone; False when there was none."""
        if self.get(kind, group, *names) is None:
            return False
        with azure_errors(f"deleting {self._name(kind, names)} in {group}"):
            try:
                self._ops(kind).begin_delete(group, *names).result()
            except ResourceNotFoundError:
                return False
        return True

    def begin_delete(self, kind: str, group: str, *names: str) -> Operation:
        """Start deleting a resource; the operation to step."""
        doing = f"deleting {self._name(kind, names)} in {group}"
        polling = SteppedPolling(0)
        with azure_errors(doing):
            poller = self._ops(kind).begin_delete(group, *names, polling=polling)
        return Operation(poller, polling, doing)

    def delete_id(self, arm_id: str) -> bool:
        """Delete the resource with this ARM id (see `delete`)."""
        kind, group, names = parse_id(arm_id)
        return self.delete(kind, group, *names)

    def set_tags(self, kind: str, group: str, *names: str, tags: Mapping[str, str]
                 ) -> dict[str, Any] | None:
        """Add (or overwrite) `tags` on a resource, keeping its other tags; the resource, or
        None when it does not exist."""
        resource = self.get(kind, group, *names)
        if resource is None:
            return None
        merged = {**(resource.get("tags") or {}), **tags}
        ops = self._ops(kind)
        with azure_errors(f"tagging {self._name(kind, names)} in {group}"):
            if hasattr(ops, "update_tags"):
                return _as_dict(ops.update_tags(group, *names, {"tags": merged}))
            return _as_dict(ops.begin_update(group, *names, {"tags": merged}).result())

    # --- virtual machines --------------------------------------------------------------------

    def instance_view(self, group: str, name: str) -> dict[str, Any] | None:
        """A VM's instance view (statuses), or None when there is no such VM."""
        with azure_errors(f"reading the state of VM {name} in {group}"):
            try:
                return _as_dict(self.compute.virtual_machines.instance_view(group, name))
            except ResourceNotFoundError:
                return None

    def power_state(self, group: str, name: str) -> str:
        """`starting`, `running`, `stopping`, `stopped`, `deallocated`, ... (`missing` when
        the VM is gone)."""
        view = self.instance_view(group, name)
        return "missing" if view is None else power_state(view)

    def begin_run_command(self, group: str, name: str, command_id: str, script: list[str]
                          ) -> Operation:
        """Start a run command (`RunPowerShellScript`, `RunShellScript`) on a VM."""
        doing = f"running a command on VM {name} in {group}"
        polling = SteppedPolling(0)
        with azure_errors(doing):
            poller = self.compute.virtual_machines.begin_run_command(
                group, name, {"commandId": command_id, "script": script}, polling=polling)
        return Operation(poller, polling, doing)

    def begin_vm_action(self, action: str, group: str, name: str) -> Operation:
        """Start `deallocate`, `power_off`, `start` or `restart` on a VM."""
        doing = f"{action.replace('_', ' ')} of VM {name} in {group}"
        polling = SteppedPolling(0)
        with azure_errors(doing):
            poller = getattr(self.compute.virtual_machines, f"begin_{action}")(
                group, name, polling=polling)
        return Operation(poller, polling, doing)

    def generalize(self, group: str, name: str) -> None:
        """Mark a stopped VM generalized (it can no longer start; it can be captured)."""
        with azure_errors(f"generalizing VM {name} in {group}"):
            self.compute.virtual_machines.generalize(group, name)

    # --- blob storage ------------------------------------------------------------------------

    def blob_service(self, account: str) -> Any:
        from azure.storage.blob import BlobServiceClient

        if account not in self._blob_services:
            options = {**self.endpoints.storage_options(), **{
                k: v for k, v in self.client_options.items() if k != "polling_interval"}}
            self._blob_services[account] = BlobServiceClient(
                self.endpoints.account_url(account), credential=self.credential, **options)
        return self._blob_services[account]

    def blob_properties(self, account: str, container: str, name: str
                        ) -> dict[str, Any] | None:
        """`{"size", "metadata", "blob_type"}` of a blob, or None when there is none."""
        blob = self.blob_service(account).get_blob_client(container, name)
        url = self.endpoints.blob_url(account, container, name)
        with azure_errors(f"reading blob {url}"):
            try:
                properties = blob.get_blob_properties()
            except ResourceNotFoundError:
                return None
        return {"size": properties.size, "metadata": dict(properties.metadata or {}),
                "blob_type": str(getattr(properties.blob_type, "value",
                                         properties.blob_type))}

    def upload_page_blob(self, source: Path, account: str, container: str, name: str,
                         metadata: Mapping[str, str]) -> str:
        """Upload `source` (a fixed VHD: its size a multiple of 512) as a page blob, the form
        Azure makes disks and images from, creating the container when missing; the blob's
        URL. Empty pages are not sent."""
        with source.open("rb") as handle:
            return self.upload_page_stream(handle, source.stat().st_size, account, container,
                                           name, metadata, what=source.name)

    def upload_page_stream(self, stream: BinaryIO, size: int, account: str, container: str,
                           name: str, metadata: Mapping[str, str], what: str = "") -> str:
        """Upload `size` bytes read front to back from `stream` (a file, or a download under
        way) as a page blob, as `upload_page_blob` does; the blob's URL."""
        from azure.storage.blob import BlobType

        if size % 512:
            raise CibError(f"{what or name}: {size} bytes is not a whole number of 512-byte "
                           "pages; Azure needs a fixed-size VHD")
        url = self.endpoints.blob_url(account, container, name)
        with self._writing(account, container, name, f"uploading {url}") as blob:
            blob.upload_blob(stream, blob_type=BlobType.PAGEBLOB, length=size,
                             metadata=dict(metadata), overwrite=True, max_concurrency=4)
        return url

    @contextlib.contextmanager
    def _writing(self, account: str, container: str, name: str, doing: str) -> Iterator[Any]:
        """The client of a blob about to be written, its container created when missing;
        errors while `doing` it are cib's."""
        service = self.blob_service(account)
        with azure_errors(doing):
            with contextlib.suppress(ResourceExistsError):
                service.create_container(container)
            yield service.get_blob_client(container, name)

    def set_blob_metadata(self, account: str, container: str, name: str,
                          metadata: Mapping[str, str]) -> None:
        """Replace a blob's metadata."""
        url = self.endpoints.blob_url(account, container, name)
        with azure_errors(f"setting the metadata of {url}"):
            self.blob_service(account).get_blob_client(container, name).set_blob_metadata(
                dict(metadata))

    def delete_blob(self, account: str, container: str, name: str) -> bool:
        """Delete a blob; False when there was none."""
        url = self.endpoints.blob_url(account, container, name)
        with azure_errors(f"deleting {url}"):
            try:
                self.blob_service(account).get_blob_client(container, name).delete_blob()
            except ResourceNotFoundError:
                return False
        return True

    def readable_url(self, account: str, container: str, name: str, hours: float = 24.0
                     ) -> str:
        """The blob's URL with a read-only user delegation SAS valid for `hours`: what another
        storage account's copy needs to read a private blob with this Entra credential."""
        from datetime import UTC, datetime, timedelta

        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        start = datetime.now(UTC) - timedelta(minutes=5)
        expiry = start + timedelta(hours=hours)
        with azure_errors(f"asking {account} for a user delegation key"):
            key = self.blob_service(account).get_user_delegation_key(start, expiry)
        sas = generate_blob_sas(account, container, name, user_delegation_key=key,
                                permission=BlobSasPermissions(read=True), start=start,
                                expiry=expiry)
        return f"{self.endpoints.blob_url(account, container, name)}?{sas}"

    def begin_blob_copy(self, source_url: str, account: str, container: str, name: str,
                        metadata: Mapping[str, str]) -> BlobCopy:
        """Start a server-side copy of `source_url` into a blob of `account` (the container
        created when missing); the copy to step."""
        target = self.endpoints.blob_url(account, container, name)
        doing = f"copying {source_url.split('?', 1)[0]} to {target}"
        with self._writing(account, container, name, doing) as blob:
            blob.start_copy_from_url(source_url, metadata=dict(metadata))
        return BlobCopy(self, account, container, name)


class BlobCopy:
    """A server-side blob copy under way: `state()` asks Storage once (`pending`, `success`,
    `failed`, `aborted`, `missing`)."""

    ENDED = frozenset({"success", "failed", "aborted", "missing"})

    def __init__(self, azure: Azure, account: str, container: str, name: str):
        self.azure, self.account, self.container, self.name = azure, account, container, name
        self.description = ""

    def state(self) -> str:
        blob = self.azure.blob_service(self.account).get_blob_client(self.container,
                                                                      self.name)
        url = self.azure.endpoints.blob_url(self.account, self.container, self.name)
        with azure_errors(f"reading the copy to {url}"):
            try:
                copy = blob.get_blob_properties().copy
            except ResourceNotFoundError:
                return "missing"
        self.description = str(copy.status_description or "")
        return str(copy.status or "success")


def blob_url(account: str, container: str, name: str, endpoints: Endpoints | None = None
             ) -> str:
    """`https://<account>.blob.core.windows.net/<container>/<name>` in the public cloud; at
    the environment's blob endpoint (or `endpoints`') elsewhere."""
    return (endpoints or Endpoints.from_environment()).blob_url(account, container, name)


def parse_blob_url(url: str, endpoints: Endpoints | None = None
                   ) -> tuple[str, str, str] | None:
    """`(account, container, blob name)` of a blob URL of the environment's (or `endpoints`')
    blob endpoint, or None for another URL."""
    return (endpoints or Endpoints.from_environment()).parse_blob_url(url)
