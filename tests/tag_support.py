"""`cib image tag` as the tag task runs it, for the tests (test helper): moto's AWS and a task's
environment (`env`), tasks in the local Taskcluster (`dev_taskcluster`), the test fleet whose
machine images are each built in their own task, the tag task and the command."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import slugid
import yaml
from moto import mock_aws

import taskcluster
from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.clouds.aws import EC2
from cib_decision.devclouds import moto_ec2_import
from cib_decision.devtc.testing import new_task
from cib_decision.images.aws_machine import AwsBuild, Timeouts, build_machine_image
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress

from .aws_build_support import Bootstrap
from .imagefleet import COMMIT, write_fleet

DISK_SHA256 = "cd" * 32


@pytest.fixture
def env(dev_taskcluster, monkeypatch):
    """moto's AWS and the environment of a task with the branch:main role's credentials."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "CIB_HEAD_REV": COMMIT,
                        "CIB_ENVIRONMENT": "staging", "TASK_ID": slugid.nice(),
                        **dev_taskcluster.environ("branch:main")}.items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_PROXY_URL", "CIB_DISK_IMAGE_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws(), moto_ec2_import.install():
        yield monkeypatch


def create_task(dev, dependencies=(), env=None, created=None, kind="machine-image") -> str:
    """A task of `kind` as the decision creates it (with `payload.env` when given); its id."""
    task_id = slugid.nice()
    when = created or datetime.now(UTC)
    taskcluster.Queue(dev.options()).createTask(task_id, new_task(
        taskQueueId="cib-3/images", created=taskcluster.stringDate(when),
        deadline=taskcluster.stringDate(when + timedelta(hours=2)),
        dependencies=list(dependencies), payload={"env": env or {}}, tags={"kind": kind}))
    return task_id


class Fleet:
    """The test fleet and its builds: each machine image is built in its own task."""

    def __init__(self, tmp_path: Path, dev, copied_by: tuple[str, ...] | None = None,
                 **fleet):
        self.tmp_path, self.dev = tmp_path, dev
        self.config = write_fleet(tmp_path, **fleet)
        if copied_by is not None:  # only these regions' targets copy their images
            for path in self.config.glob("*.yaml"):
                content = yaml.safe_load(path.read_text())
                for target in content["target"]:
                    if target["region"] not in copied_by:
                        target.pop("copies", None)
                path.write_text(yaml.safe_dump(content))
        self.disk_task: str | None = None

    def disk_image(self, key: str = "linux-test") -> manifest.DiskImageRecord:
        """The disk-image task of `key`, done, its record served; the record."""
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="disk-images")
        s3.put_object(Bucket="disk-images", Key=f"{key}-disk.raw", Body=b"\0" * 4096)
        self.disk_task = create_task(self.dev)
        ctx = load_context(key, self.config, artifacts=self.tmp_path / "disk")
        record = manifest.disk_image_record(
            key, platform="amazon", region="us-east-1",
            location=f"s3://disk-images/{key}-disk.raw", image_format="raw", size=4096,
            sha256=DISK_SHA256, disk_digest=ctx.digests.disk, config_commit=COMMIT,
            build_task_id=self.disk_task, created=datetime(2026, 11, 21, tzinfo=UTC))
        self.dev.resolve_task(self.disk_task, artifacts={
            manifest.DISK_IMAGE_ARTIFACT: record.to_json()})
        return record

    def machine_image(self, key: str, target: str,
                      disk: manifest.DiskImageRecord | None = None) -> str:
        """Build the target's AMI in a machine-image task and serve its record; the task."""
        env = {"CIB_DISK_IMAGE_TASK_ID": self.disk_task} if disk else {}
        task = create_task(self.dev, [self.disk_task] if disk else [], env)
        bootstrap = Bootstrap()
        ctx = load_context(key, self.config, artifacts=self.tmp_path / task,
                           progress=Progress(io.StringIO(), clock=bootstrap.clock,
                                             sleep=bootstrap.sleep))
        ctx.task_id, ctx.now = task, lambda: datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        chosen = ctx.target(target)
        record = build_machine_image(ctx, AwsBuild(
            ec2=EC2(chosen.region), target=chosen, disk_record=disk,
            on_launch=bootstrap.launched, timeouts=Timeouts(interval=30)))
        self.dev.resolve_task(task, artifacts={
            manifest.MACHINE_IMAGE_ARTIFACT: record.to_json()})
        return task

    def failed_build(self) -> str:
        task = create_task(self.dev)
        self.dev.resolve_task(task, state="failed")
        return task


def tag_task(env, dev, dependencies, created: datetime | None = None) -> str:
    """The tag task (created now, or at `created`), as the task the command runs in."""
    task = create_task(dev, dependencies, created=created, kind="tag")
    env.setenv("TASK_ID", task)
    return task


def cib(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_tag(capsys, fleet: Fleet, key: str = "linux-test") -> tuple[int, str, str]:
    return cib(capsys, "image", "tag", "--key", key, "--config-dir", str(fleet.config),
               "--artifacts", str(fleet.tmp_path / "artifacts"))


def record_of(fleet: Fleet) -> dict:
    return json.loads((fleet.tmp_path / "artifacts" / "release.json").read_text())
