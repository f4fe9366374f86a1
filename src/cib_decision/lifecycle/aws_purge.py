"""The AWS side of `cib purge`: list the builders' resources of one region as `Resource`s and
remove them (terminate, delete).

Listing asks EC2 only for what carries the builders' tag (`cib:builder=true`), and for what
uses those resources: the instances of a key pair, the instances and standalone network
interfaces of a security group. `purge.select` checks the tag again; nothing else is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..clouds.aws import EC2, tags_of
from ..errors import CibError
from ..images.aws_machine import Timeouts
from ..images.progress import Progress
from .purge import BUILDER_TAG, Resource

LIVE_INSTANCE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
OURS = [{"Name": f"tag:{BUILDER_TAG}", "Values": ["true"]}]


def _instances(ec2: EC2, filters: list[dict[str, Any]], doing: str) -> list[dict[str, Any]]:
    states = {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}
    return [i for r in ec2.listing("describe_instances", "Reservations", doing,
                              Filters=[*filters, states]) for i in r["Instances"]]


def _created(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def list_resources(ec2: EC2) -> list[Resource]:
    """The builders' instances, volumes, key pairs and security groups in `ec2`'s region,
    each with what uses it."""
    region = ec2.region
    resources = []
    for instance in _instances(ec2, OURS, f"listing builder instances in {region}"):
        resources.append(Resource(
            "amazon", "instance", instance["InstanceId"], region, instance["State"]["Name"],
            tags_of(instance), _created(instance.get("LaunchTime"))))
    for volume in ec2.listing("describe_volumes", "Volumes",
                         f"listing builder volumes in {region}", Filters=OURS):
        users = tuple(a["InstanceId"] for a in volume.get("Attachments") or ()
                      if a.get("InstanceId"))
        resources.append(Resource(
            "amazon", "volume", volume["VolumeId"], region, volume["State"], tags_of(volume),
            _created(volume.get("CreateTime")), users))
    for key_pair in ec2.key_pairs(OURS):
        name = key_pair["KeyName"]
        users = tuple(i["InstanceId"] for i in _instances(
            ec2, [{"Name": "key-name", "Values": [name]}], f"looking up the users of {name}"))
        resources.append(Resource(
            "amazon", "key-pair", name, region, "in-use" if users else "unused",
            tags_of(key_pair), _created(key_pair.get("CreateTime")), users))
    for group in ec2.listing("describe_security_groups", "SecurityGroups",
                        f"listing builder security groups in {region}", Filters=OURS):
        users = _security_group_users(ec2, group["GroupId"])
        resources.append(Resource(
            "amazon", "security-group", group["GroupId"], region,
            "in-use" if users else "unused", tags_of(group), None, users))
    return resources


def _security_group_users(ec2: EC2, group_id: str) -> tuple[str, ...]:
    """The live instances in the group and the network interfaces in it that no instance
    holds (an instance's own interfaces go with it)."""
    doing = f"looking up the users of {group_id}"
    instances = [i["InstanceId"] for i in _instances(
        ec2, [{"Name": "instance.group-id", "Values": [group_id]}], doing)]
    interfaces = [n["NetworkInterfaceId"] for n in ec2.listing(
        "describe_network_interfaces", "NetworkInterfaces", doing,
        Filters=[{"Name": "group-id", "Values": [group_id]}])
        if not (n.get("Attachment") or {}).get("InstanceId")]
    return tuple(sorted(set(instances))) + tuple(sorted(interfaces))


class AwsPurge:
    """Removes builder resources in one region (`purge.Cloud`)."""

    def __init__(self, ec2: EC2, progress: Progress, timeouts: Timeouts | None = None):
        self.ec2, self.progress = ec2, progress
        self.timeouts = timeouts or Timeouts()

    def remove(self, resource: Resource) -> None:
        ec2 = self.ec2
        if resource.kind == "instance":
            ec2.terminate_instance(resource.id)
        elif resource.kind == "volume":
            if ec2.volume_exists(resource.id):  # gone with its instance (DeleteOnTermination)
                ec2.delete_volume(resource.id)
        elif resource.kind == "security-group":
            ec2.delete_security_group(resource.id)
        elif resource.kind == "key-pair":
            ec2.delete_key_pair(resource.id)
        else:
            raise CibError(f"cannot remove a {resource.kind} on AWS")

    def wait_removed(self, resources: Sequence[Resource]) -> dict[str, CibError]:
        """Wait for terminated instances to be gone (what they used is free only then); the
        other deletions are done when their call returns."""
        failures: dict[str, CibError] = {}
        for resource in resources:
            if resource.kind != "instance":
                continue
            try:
                self.progress.wait(
                    f"instance {resource.id} to terminate",
                    lambda r=resource: self.ec2.instance_state(r.id),
                    done={"terminated", "missing"}, timeout=self.timeouts.terminate,
                    interval=self.timeouts.interval)
            except CibError as exc:
                failures[resource.id] = exc
        return failures
