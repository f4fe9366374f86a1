"""The Azure side of `cib purge`: list the VMs, network interfaces, public IPs and managed disks
of the resource groups the purge covers as `Resource`s, and delete what `purge.select` chose.

Every resource of those groups is listed, with what uses it (a NIC's VM, a public IP's NICs, a
disk's VM); `purge.select` decides which are orphaned and settled. Deletions start together (one
wave at a time) and are then awaited one by one, each a bounded wait with a line per state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..clouds.azure import Azure, Operation
from ..errors import CibError
from ..images.progress import Progress
from .purge import Resource

# purge's kinds -> the adapter's
KINDS = {"vm": "virtual-machine", "nic": "network-interface", "public-ip": "public-ip",
         "disk": "disk"}
DELETE_TIMEOUT = 30 * 60.0


def _created(resource: dict[str, Any]) -> datetime | None:
    value = (resource.get("properties") or {}).get("timeCreated")
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _ref(value: Any) -> str | None:
    """The lower-case ARM id of a `{"id": ...}` reference (or of a string), or None."""
    arm_id = value.get("id") if isinstance(value, dict) else value
    return arm_id.lower() if isinstance(arm_id, str) and arm_id else None


def _nic_of(ip_configuration: str | None) -> str | None:
    """The NIC an IP configuration id (`.../networkInterfaces/<nic>/ipConfigurations/<c>`)
    belongs to."""
    if not ip_configuration or "/networkinterfaces/" not in ip_configuration:
        return None
    return ip_configuration.split("/ipconfigurations/", 1)[0]


def _resource(kind: str, item: dict[str, Any], group: str, state: str,
              used_by: Iterable[str] = ()) -> Resource:
    return Resource("azure", kind, item["id"].lower(), group, state,
                    dict(item.get("tags") or {}), _created(item),
                    tuple(sorted(set(used_by))), item.get("name", ""))


def list_group(azure: Azure, group: str) -> list[Resource]:
    """The VMs (with their power state), NICs, public IPs and managed disks of one group."""
    resources = []
    for vm in azure.list("virtual-machine", group):
        resources.append(_resource("vm", vm, group, azure.power_state(group, vm["name"])))
    ip_users: dict[str, set[str]] = {}
    for nic in azure.list("network-interface", group):
        properties = nic.get("properties") or {}
        vm = _ref(properties.get("virtualMachine"))
        for config in properties.get("ipConfigurations") or ():
            ip = _ref((config.get("properties") or {}).get("publicIPAddress"))
            if ip:
                ip_users.setdefault(ip, set()).add(nic["id"].lower())
        resources.append(_resource("nic", nic, group, "attached" if vm else "unattached",
                                   [vm] if vm else ()))
    for ip in azure.list("public-ip", group):
        properties = ip.get("properties") or {}
        users = set(ip_users.get(ip["id"].lower(), ()))
        nic = _nic_of(_ref(properties.get("ipConfiguration")))
        if nic:
            users.add(nic)
        resources.append(_resource("public-ip", ip, group,
                                   "has-address" if properties.get("ipAddress") else "no-address",
                                   users))
    for disk in azure.list("disk", group):
        owner = _ref(disk.get("managedBy"))
        state = str((disk.get("properties") or {}).get("diskState") or "")
        orphan = state == "Unattached" and not owner
        resources.append(_resource("disk", disk, group, "unattached" if orphan else
                                   state.lower() or "unknown", [owner] if owner else ()))
    return resources


class AzurePurge:
    """Lists and removes resources in resource groups (`purge.Cloud`)."""

    def __init__(self, azure: Azure, progress: Progress, *, interval: float = 15.0,
                 timeout: float = DELETE_TIMEOUT):
        self.azure, self.progress = azure, progress
        self.interval, self.timeout = interval, timeout
        self.operations: dict[str, Operation | None] = {}

    @classmethod
    def from_environment(cls, progress: Progress, **options: Any) -> AzurePurge:
        """With the subscription and credentials of the environment (`Azure.from_environment`)."""
        return cls(Azure.from_environment(), progress, **options)

    def list_resources(self, groups: Iterable[str]) -> list[Resource]:
        return [r for group in groups for r in list_group(self.azure, group)]

    def remove(self, resource: Resource) -> None:
        kind = KINDS.get(resource.kind)
        if kind is None:
            raise CibError(f"cannot remove a {resource.kind} on Azure")
        if self.azure.get(kind, resource.where, resource.name) is None:
            self.operations[resource.id] = None  # gone with what used it (deleteOption)
            return
        self.operations[resource.id] = self.azure.begin_delete(kind, resource.where,
                                                               resource.name)

    def wait_removed(self, resources: Sequence[Resource]) -> dict[str, CibError]:
        """Step each deletion to its end; ARM's error of each one that failed."""
        failures: dict[str, CibError] = {}
        for resource in resources:
            operation = self.operations.pop(resource.id, None)
            if operation is None:
                continue
            try:
                self.progress.wait(f"deletion of {resource.kind} {resource.label}",
                                   operation.state, done=Operation.ENDED,
                                   timeout=self.timeout, interval=self.interval)
                operation.result()
            except CibError as exc:
                failures[resource.id] = exc
        return failures
