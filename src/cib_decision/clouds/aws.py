"""A thin adapter over boto3: S3 objects, EC2 images, instances and their resources.

Every call goes through `aws_errors`, which turns botocore's exceptions into cib's: transient
ones (quota, capacity, throttling, service errors, lost connections) into `TransientError`
(exit 75, retried by the task), the rest into `BuildError` (exit 3) with AWS's own message.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..errors import BuildError, CibError, TransientError

# Error codes a later attempt may not meet: quotas and capacity free up, throttling passes.
TRANSIENT_CODES = frozenset({
    "InstanceLimitExceeded", "VcpuLimitExceeded", "ResourceLimitExceeded",
    "MaxSpotInstanceCountExceeded", "VolumeLimitExceeded", "SnapshotLimitExceeded",
    "AddressLimitExceeded", "ResourceCountExceeded", "AMIQuotaExceeded",
    "ImportSnapshotLimitExceeded",
    "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "SlowDown",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
})


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (`InstanceLimitExceeded`, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Translate botocore exceptions raised while `doing` into cib's errors."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        error = TransientError if code in TRANSIENT_CODES else BuildError
        raise error(f"AWS refused {doing}: {code}: {message}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise CibError(f"AWS: {exc} while {doing} (credentials: the AWS_* variables, a "
                       "profile or the worker's role; region: AWS_DEFAULT_REGION)") from None
    except BotoConnectionError as exc:
        raise TransientError(f"lost the connection to AWS while {doing}: {exc}") from None
    except BotoCoreError as exc:
        raise BuildError(f"AWS failed while {doing}: {exc}") from None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ObjectStream:
    """An S3 object read front to back without a local copy (`read(n)`), its `size` known
    before the first byte; a read that loses the connection is a `TransientError`."""

    def __init__(self, body: Any, size: int, what: str):
        self.body, self.size, self.what = body, size, what

    def read(self, size: int = -1) -> bytes:
        try:
            return self.body.read(None if size < 0 else size)
        except (ResponseStreamingError, ReadTimeoutError, BotoConnectionError) as exc:
            raise TransientError(f"lost the connection to S3 while reading {self.what}: "
                                 f"{exc}") from None

    def close(self) -> None:
        self.body.close()


class S3:
    """The S3 objects of image builds."""

    def __init__(self, session: boto3.session.Session | None = None):
        self.session = session or boto3.session.Session()
        self.client = self.session.client("s3")

    def download(self, bucket: str, key: str, destination: Path) -> None:
        """Download `s3://bucket/key` to `destination`."""
        with aws_errors(f"downloading s3://{bucket}/{key}"):
            self.client.download_file(bucket, key, str(destination))

    def open(self, bucket: str, key: str) -> ObjectStream:
        """Start streaming `s3://bucket/key` (close it when done)."""
        what = f"s3://{bucket}/{key}"
        with aws_errors(f"downloading {what}"):
            answer = self.client.get_object(Bucket=bucket, Key=key)
        return ObjectStream(answer["Body"], int(answer["ContentLength"]), what)

    def bucket_region(self, bucket: str) -> str:
        """The region `bucket` lives in (S3 says None for us-east-1)."""
        with aws_errors(f"locating bucket {bucket}"):
            answer = self.client.get_bucket_location(Bucket=bucket)
        return answer.get("LocationConstraint") or "us-east-1"

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                with aws_errors(f"reading s3://{bucket}/{key}"):
                    raise
        return None

    def upload(self, source: Path, bucket: str, key: str, metadata: dict[str, str]) -> None:
        """Upload `source` to `s3://bucket/key` with `metadata` (multipart when large)."""
        with aws_errors(f"uploading s3://{bucket}/{key}"):
            self.client.upload_file(str(source), bucket, key,
                                    ExtraArgs={"Metadata": metadata})


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """`{name: value}` as EC2's `[{"Key": name, "Value": value}]`, sorted by name."""
    return [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]


def tag_specs(tags: dict[str, str], *resource_types: str) -> list[dict[str, Any]]:
    """EC2 `TagSpecifications` applying `tags` to each resource type."""
    return [{"ResourceType": kind, "Tags": tag_list(tags)} for kind in resource_types]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    """The tags of a described EC2 resource as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def snapshots_of(image: dict[str, Any]) -> list[str]:
    """The EBS snapshot ids of a described image."""
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings") or ()
            if m.get("Ebs", {}).get("SnapshotId")]


class EC2:
    """EC2 in one region: images, import tasks, builder instances and their resources."""

    def __init__(self, region: str, session: boto3.session.Session | None = None):
        self.region = region
        self.session = session or boto3.session.Session()
        self.client = self.session.client("ec2", region_name=region)

    def in_region(self, region: str) -> EC2:
        """The same account in another region."""
        return EC2(region, self.session)

    # images
    def find_images(self, owner: str, name_pattern: str) -> list[dict[str, Any]]:
        """Available images of `owner` (an account id, `self` or `amazon`) whose name matches
        `name_pattern` (`*` wildcards)."""
        with aws_errors(f"looking up images {name_pattern!r} of {owner} in {self.region}"):
            return self.client.describe_images(
                Owners=[owner], Filters=[{"Name": "name", "Values": [name_pattern]},
                                         {"Name": "state", "Values": ["available"]}])["Images"]

    def images_tagged(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        """This account's images carrying every tag of `tags`."""
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
        with aws_errors(f"looking up images by tag in {self.region}"):
            return self.client.describe_images(Owners=["self"], Filters=filters)["Images"]

    def image(self, image_id: str) -> dict[str, Any] | None:
        """The image `image_id`, or None when it does not exist."""
        try:
            images = self.client.describe_images(ImageIds=[image_id])["Images"]
        except ClientError as exc:
            if error_code(exc).startswith("InvalidAMIID"):
                return None
            with aws_errors(f"describing image {image_id}"):
                raise
        return images[0] if images else None

    def image_state(self, image_id: str) -> str:
        """`pending`, `available`, `failed`, ... (`missing` when it is gone)."""
        image = self.image(image_id)
        return image["State"] if image else "missing"

    def create_image(self, instance_id: str, name: str, description: str,
                     tags: dict[str, str]) -> str:
        """An image of the stopped instance, tagged; the image id. (Its snapshots exist once
        the image is available: tag them with `image_snapshots` then.)"""
        with aws_errors(f"creating image {name} from {instance_id}"):
            return self.client.create_image(
                InstanceId=instance_id, Name=name, Description=description,
                TagSpecifications=tag_specs(tags, "image"))["ImageId"]

    def image_snapshots(self, image_id: str) -> list[str]:
        """The EBS snapshots an image is made of."""
        return snapshots_of(self.image(image_id) or {})

    def tag_image(self, image_id: str, tags: dict[str, str]) -> list[str] | None:
        """Add (or overwrite) `tags` on an image and its EBS snapshots, in one call; the
        snapshots' ids, or None when there is no such image in this region."""
        image = self.image(image_id)
        if image is None:
            return None
        snapshots = snapshots_of(image)
        self.tag([image_id, *snapshots], tags)
        return snapshots

    def copy_image(self, source_id: str, source_region: str, name: str, description: str
                   ) -> str:
        """Copy `source_id` from `source_region` into this region; the copy's id."""
        with aws_errors(f"copying image {source_id} to {self.region}"):
            return self.client.copy_image(SourceImageId=source_id, SourceRegion=source_region,
                                          Name=name, Description=description)["ImageId"]

    def tag(self, resource_ids: list[str], tags: dict[str, str]) -> None:
        """Add (or overwrite) `tags` on resources."""
        with aws_errors(f"tagging {', '.join(resource_ids)}"):
            self.client.create_tags(Resources=resource_ids, Tags=tag_list(tags))

    # import
    def import_snapshot(self, bucket: str, key: str, disk_format: str, description: str,
                        tags: dict[str, str]) -> str:
        """Start importing `s3://bucket/key` as an EBS snapshot; the import task id."""
        with aws_errors(f"importing s3://{bucket}/{key} as a snapshot"):
            return self.client.import_snapshot(
                Description=description,
                DiskContainer={"Description": description, "Format": disk_format.upper(),
                               "UserBucket": {"S3Bucket": bucket, "S3Key": key}},
                TagSpecifications=tag_specs(tags, "import-snapshot-task"))["ImportTaskId"]

    def import_snapshot_task(self, task_id: str) -> dict[str, Any]:
        """The `SnapshotTaskDetail` of an import task (`Status`, `StatusMessage`,
        `SnapshotId`)."""
        with aws_errors(f"reading import task {task_id}"):
            tasks = self.client.describe_import_snapshot_tasks(
                ImportTaskIds=[task_id])["ImportSnapshotTasks"]
        return tasks[0]["SnapshotTaskDetail"] if tasks else {"Status": "missing"}

    def register_image(self, name: str, snapshot_id: str, description: str,
                       tags: dict[str, str], boot_mode: str = "uefi-preferred") -> str:
        """An HVM image booting from `snapshot_id`; the image id."""
        with aws_errors(f"registering image {name}"):
            return self.client.register_image(
                Name=name, Description=description, Architecture="x86_64",
                RootDeviceName="/dev/sda1", VirtualizationType="hvm", EnaSupport=True,
                BootMode=boot_mode,
                BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                      "Ebs": {"SnapshotId": snapshot_id,
                                              "DeleteOnTermination": True,
                                              "VolumeType": "gp3"}}],
                TagSpecifications=tag_specs(tags, "image"))["ImageId"]

    # builder resources
    def create_key_pair(self, name: str, tags: dict[str, str]) -> str:
        with aws_errors(f"creating key pair {name}"):
            return self.client.create_key_pair(
                KeyName=name, TagSpecifications=tag_specs(tags, "key-pair"))["KeyName"]

    def delete_key_pair(self, name: str) -> None:
        with aws_errors(f"deleting key pair {name}"):
            self.client.delete_key_pair(KeyName=name)

    def create_security_group(self, name: str, description: str, tags: dict[str, str]) -> str:
        """A security group in the default VPC with no inbound rules (the bootstrap only
        reaches out); its id."""
        with aws_errors(f"creating security group {name}"):
            vpcs = self.client.describe_vpcs(
                Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
            extra = {"VpcId": vpcs[0]["VpcId"]} if vpcs else {}
            return self.client.create_security_group(
                GroupName=name, Description=description,
                TagSpecifications=tag_specs(tags, "security-group"), **extra)["GroupId"]

    def delete_security_group(self, group_id: str) -> None:
        with aws_errors(f"deleting security group {group_id}"):
            self.client.delete_security_group(GroupId=group_id)

    def run_instance(self, **arguments: Any) -> str:
        """Launch one instance (`run_instances` arguments); its id."""
        with aws_errors(f"launching a builder instance in {self.region}"):
            answer = self.client.run_instances(MinCount=1, MaxCount=1, **arguments)
        return answer["Instances"][0]["InstanceId"]

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        try:
            reservations = self.client.describe_instances(
                InstanceIds=[instance_id])["Reservations"]
        except ClientError as exc:
            if error_code(exc) == "InvalidInstanceID.NotFound":
                return None
            with aws_errors(f"describing instance {instance_id}"):
                raise
        instances = [i for r in reservations for i in r["Instances"]]
        return instances[0] if instances else None

    def instance_state(self, instance_id: str) -> str:
        """`pending`, `running`, `stopping`, `stopped`, ... (`missing` when it is gone)."""
        instance = self.instance(instance_id)
        return instance["State"]["Name"] if instance else "missing"

    def console_output(self, instance_id: str) -> str:
        """The instance's console output (its newest, where the instance type keeps it, else
        what EC2 last posted); empty when EC2 has none yet."""
        try:
            answer = self.client.get_console_output(InstanceId=instance_id, Latest=True)
        except ClientError as exc:
            if error_code(exc) != "UnsupportedOperation":  # Latest: Nitro instances only
                with aws_errors(f"reading the console output of {instance_id}"):
                    raise
            with aws_errors(f"reading the console output of {instance_id}"):
                answer = self.client.get_console_output(InstanceId=instance_id)
        return answer.get("Output") or ""  # botocore decodes the base64

    def instance_volumes(self, instance_id: str) -> list[str]:
        instance = self.instance(instance_id) or {}
        return [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings") or ()
                if "Ebs" in m]

    def terminate_instance(self, instance_id: str) -> None:
        with aws_errors(f"terminating instance {instance_id}"):
            self.client.terminate_instances(InstanceIds=[instance_id])

    def volume_exists(self, volume_id: str) -> bool:
        try:
            return bool(self.client.describe_volumes(VolumeIds=[volume_id])["Volumes"])
        except ClientError as exc:
            if error_code(exc) == "InvalidVolume.NotFound":
                return False
            with aws_errors(f"describing volume {volume_id}"):
                raise
        return False

    def delete_volume(self, volume_id: str) -> None:
        with aws_errors(f"deleting volume {volume_id}"):
            self.client.delete_volume(VolumeId=volume_id)

    # listings and deletions of the life cycle (purge, gc)
    def listing(self, operation: str, key: str, doing: str, **arguments: Any
                ) -> Iterator[dict[str, Any]]:
        """Every item under `key` of every page of `operation` (a `describe_*` call with a
        paginator), raising cib's errors (aws_errors) for `doing`."""
        with aws_errors(doing):
            for page in self.client.get_paginator(operation).paginate(**arguments):
                yield from page.get(key) or ()

    def key_pairs(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The key pairs `filters` selects (the call has no pages)."""
        with aws_errors(f"listing key pairs in {self.region}"):
            return self.client.describe_key_pairs(Filters=filters)["KeyPairs"]

    def deregister_image(self, image_id: str) -> bool:
        """Deregister `image_id`; False when it was gone already."""
        return self._delete_unless_gone(
            lambda: self.client.deregister_image(ImageId=image_id),
            f"deregistering {image_id} in {self.region}",
            ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"))

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete `snapshot_id`; False when it was gone already."""
        return self._delete_unless_gone(
            lambda: self.client.delete_snapshot(SnapshotId=snapshot_id),
            f"deleting snapshot {snapshot_id} in {self.region}", ("InvalidSnapshot.NotFound",))

    def _delete_unless_gone(self, call: Any, doing: str, gone: tuple[str, ...]) -> bool:
        with aws_errors(doing):
            try:
                call()
            except ClientError as exc:
                if error_code(exc) in gone:
                    return False
                raise
        return True
