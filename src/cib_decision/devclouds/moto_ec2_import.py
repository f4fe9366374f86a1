"""moto has no EC2 `ImportSnapshot`: this adds it (and `DescribeImportSnapshotTasks`) through
moto's own extension points, not by replacing boto3. `RegisterImage` also applies its
`TagSpecifications`, which moto ignores.

- an `EC2Response` subclass implements the two actions the way moto implements the others
  (`_get_param`, `ActionResult`, serialised by moto from botocore's own service model, so the
  client sees the real response shapes);
- `moto.ec2.urls.url_paths`, moto's table of EC2 request handlers, is pointed at it for the
  duration of a test (`install`, a context manager; in process with `mock_aws`, or around a
  moto server started inside it: `devclouds.aws.MotoServer`, which installs a subclass);
- the import reads the disk image from moto's S3 backend (a missing object is the real
  `InvalidParameter` error) and makes a real snapshot in moto's EC2 backend, which
  `RegisterImage` and the rest then use. The task reports `active` (`pending`, then
  `converting`) on the first two describes and `completed` after, like a slow real import
  (`ImportingEC2Response.stage`, which a subclass may answer otherwise).

Moved from tests/ so that the local pipeline's moto server (`devclouds.aws`) has them too.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.ec2 import urls as ec2_urls
from moto.ec2.responses import EC2Response
from moto.s3.models import s3_backends

TASKS: dict[str, dict[str, Any]] = {}
CONSOLES: dict[str, str] = {}  # instance id -> its console output


def set_console_output(instance_id: str, text: str) -> None:
    """What `GetConsoleOutput` answers for the instance from now on."""
    CONSOLES[instance_id] = text
STAGES = (("active", "pending"), ("active", "converting"))


class InvalidParameter(ServiceException):
    code = "InvalidParameter"


class ImportingEC2Response(EC2Response):
    """moto's EC2 responses plus the snapshot import actions."""

    def import_snapshot(self) -> ActionResult:
        container = self._get_param("DiskContainer") or {}
        bucket = (container.get("UserBucket") or {}).get("S3Bucket")
        key = (container.get("UserBucket") or {}).get("S3Key")
        s3 = s3_backends[self.current_account]["aws"]
        try:
            size = s3.get_object(bucket, key).size
        except Exception:  # moto raises its S3 errors; EC2 reports them as a bad parameter
            raise InvalidParameter(f"The given S3 object s3://{bucket}/{key} is not "
                                   "accessible.") from None
        volume = self.ec2_backend.create_volume(size=max(1, size >> 30),
                                                zone_name=f"{self.region}a")
        snapshot = self.ec2_backend.create_snapshot(volume.id, "imported")
        task_id = f"import-snap-{secrets.token_hex(8)}"
        TASKS[task_id] = {"region": self.region, "polls": 0, "snapshot": snapshot.id,
                          "started": time.monotonic(),
                          "format": container.get("Format"), "size": size,
                          "bucket": bucket, "key": key,
                          "description": self._get_param("Description", "")}
        return ActionResult({"ImportTaskId": task_id, "Description": TASKS[task_id][
            "description"], "SnapshotTaskDetail": self._detail(TASKS[task_id], advance=False)})

    def describe_import_snapshot_tasks(self) -> ActionResult:
        ids = self._get_param("ImportTaskIds") or [
            i for i, t in TASKS.items() if t["region"] == self.region]
        found = []
        for task_id in ids:
            task = TASKS.get(task_id)
            if task is None or task["region"] != self.region:
                raise InvalidParameter(f"The import task {task_id} does not exist.")
            found.append({"ImportTaskId": task_id, "Description": task["description"],
                          "SnapshotTaskDetail": self._detail(task, advance=True)})
        return ActionResult({"ImportSnapshotTasks": found})

    def register_image(self) -> ActionResult:
        """moto's RegisterImage, plus the `TagSpecifications` the real API applies."""
        result = super().register_image()
        tags = {t["Key"]: t["Value"] for spec in self._get_param("TagSpecifications", [])
                if spec.get("ResourceType") == "image" for t in spec.get("Tags", [])}
        if tags:
            self.ec2_backend.create_tags([result.result["ImageId"]], tags)
        return result

    def get_console_output(self) -> ActionResult:
        """An instance's console output: what `CONSOLES` holds for it (the stand-in for what
        its bootstrap wrote, `set_console_output`), else moto's sample."""
        instance_id = self._get_param("InstanceId")
        if instance_id not in CONSOLES:
            return super().get_console_output()
        instance = self.ec2_backend.get_instance(instance_id)
        return ActionResult({"InstanceId": instance.id, "Timestamp": utcnow(),
                             "Output": Base64EncodedString.from_raw_string(
                                 CONSOLES[instance_id])})

    def stage(self, task: dict[str, Any]) -> tuple[str, str] | None:
        """`(status, message)` of an import still running, None once it has completed: the
        `STAGES` one describe after another."""
        return STAGES[task["polls"]] if task["polls"] < len(STAGES) else None

    def _detail(self, task: dict[str, Any], *, advance: bool) -> dict[str, Any]:
        detail = {"DiskImageSize": float(task["size"]), "Format": task["format"],
                  "UserBucket": {"S3Bucket": task["bucket"], "S3Key": task["key"]}}
        stage = self.stage(task)
        if stage is not None:
            status, message = stage
            detail.update(Status=status, StatusMessage=message, Progress="10")
        else:
            detail.update(Status="completed", SnapshotId=task["snapshot"])
        if advance:
            task["polls"] += 1
        return detail


@contextlib.contextmanager
def install(response: type[ImportingEC2Response] = ImportingEC2Response) -> Iterator[None]:
    """Route EC2 requests through `response` (an `ImportingEC2Response`) while the context is
    open."""
    previous = dict(ec2_urls.url_paths)
    ec2_urls.url_paths.update({path: response.dispatch for path in previous})
    try:
        yield
    finally:
        ec2_urls.url_paths.clear()
        ec2_urls.url_paths.update(previous)
        TASKS.clear()
        CONSOLES.clear()
