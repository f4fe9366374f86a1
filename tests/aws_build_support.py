"""Machine-image builds on AWS for the tests (test helper): moto's AWS with a build task's
environment (`aws`), Amazon's Windows base images in moto, the builder's bootstrap played
through boto3, a build of the small test fleet and what a build left behind."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami

from cib_decision.clouds.aws import EC2
from cib_decision.devclouds import moto_ec2_import
from cib_decision.devclouds.transcript import transcript
from cib_decision.images.aws_machine import AwsBuild, Timeouts, build_machine_image
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress

from .imagefleet import COMMIT, TASK_ID, write_fleet

ACCOUNT = "123456789012"
AMAZON = "801119661308"


def image_task_env(monkeypatch) -> None:
    """The environment an image task runs in: moto's credentials, its task id and revision."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "TASK_ID": TASK_ID,
                        "CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(monkeypatch):
    image_task_env(monkeypatch)
    monkeypatch.delenv("CIB_DISK_IMAGE_TASK_ID", raising=False)
    with mock_aws(), moto_ec2_import.install():
        yield


def publish_base_images(region="us-east-1"):
    """Amazon's Windows base images, put into moto's EC2 backend as moto loads its own."""
    backend = ec2_backends[ACCOUNT][region]
    ids = {}
    for ami_id, name, created in (
            ("ami-0aaaaaaaaaaaaaaa1", "Windows_Server-2022-English-Full-Base-2026.09.10",
             datetime(2026, 9, 10, tzinfo=UTC)),
            ("ami-0aaaaaaaaaaaaaaa2", "Windows_Server-2022-English-Full-Base-2026.11.12",
             datetime(2026, 11, 12, tzinfo=UTC)),
            ("ami-0aaaaaaaaaaaaaaa3", "Windows_Server-2019-English-Full-Base-2026.11.20",
             datetime(2026, 11, 20, tzinfo=UTC))):
        backend.amis[ami_id] = Ami(backend, ami_id=ami_id, name=name, owner_id=AMAZON,
                                   owner_alias="amazon", creation_date=created,
                                   platform="windows", region_name=region)
        ids[name] = ami_id
    return ids


class Bootstrap:
    """Plays the builder's bootstrap: stops the instance through boto3 after `after` polls,
    or never (`after=None`), leaving `console` as its console output (default: what the
    script writes when every execution passes, `devclouds.transcript`). Also the clock of
    the build's waits."""

    def __init__(self, after: int | None = 2, console: str | None = None):
        self.after, self.now, self.instance, self.polls = after, 0.0, None, 0
        self.ec2, self.console = None, console

    def launched(self, ec2: EC2, instance: str) -> None:
        self.instance, self.ec2 = instance, ec2

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.instance and self.after is not None:
            self.polls += 1
            if self.polls == self.after:
                client = boto3.client("ec2", region_name=self.ec2.region)
                data = client.describe_instance_attribute(
                    InstanceId=self.instance, Attribute="userData")["UserData"]["Value"]
                moto_ec2_import.set_console_output(self.instance, transcript(
                    base64.b64decode(data).decode()) if self.console is None else self.console)
                client.stop_instances(InstanceIds=[self.instance])


def build(tmp_path, key="based-test", target="amazon/us-east-1", *, bootstrap=None,
          overwrite=False, keep=False, disk_record=None, timeouts=None, **fleet):
    config = write_fleet(tmp_path, **fleet)
    bootstrap = bootstrap or Bootstrap()
    log = io.StringIO()
    ctx = load_context(key, config, artifacts=tmp_path / "artifacts", keep_resources=keep,
                       progress=Progress(log, clock=bootstrap.clock, sleep=bootstrap.sleep))
    ctx.now = lambda: datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    chosen = ctx.target(target)
    record = None
    try:
        record = build_machine_image(ctx, AwsBuild(
            ec2=EC2(chosen.region), target=chosen, overwrite=overwrite,
            disk_record=disk_record, on_launch=bootstrap.launched,
            timeouts=timeouts or Timeouts(interval=30)))
    finally:
        build.log = log.getvalue()
    return record, ctx


def leftovers(region="us-east-1"):
    ec2 = boto3.client("ec2", region_name=region)
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                 if i["State"]["Name"] != "terminated"]
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"]
              if g["GroupName"].startswith("cib-")]
    keys = ec2.describe_key_pairs()["KeyPairs"]
    volumes = [v for v in ec2.describe_volumes()["Volumes"] if v["State"] != "deleted"
               and any(t["Key"] == "cib:builder" for t in v.get("Tags") or ())]
    return {"instances": instances, "groups": groups, "keys": keys, "volumes": volumes}
