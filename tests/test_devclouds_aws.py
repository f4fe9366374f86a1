"""The local pipeline's AWS (`devclouds.aws`): moto in server mode, seeded for the bundled fleet,
and the image tasks run against it as a worker runs them: each a separate process
(`python -m cib_decision ...`) in its own checkout, with only a task's environment (`TASK_ID`,
the task's Taskcluster credentials, the `payload.env` the graph gives it). AWS credentials and
the endpoint reach them only through the clouds secret of the local Taskcluster; dependencies'
artifacts through its queue, as the tasks' dev hook resolution stores them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slugid

import cib_decision
import taskcluster
from cib_decision import cloudcreds, manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.devclouds.aws import (
    AMAZON_ACCOUNT,
    STAND_IN_CONVERT_COMMAND,
    MotoServer,
    pin_sources,
    seed_base_images,
    seed_fleet,
)
from cib_decision.devtc.testing import new_task
from cib_decision.errors import BuildError, CibError
from cib_decision.images.context import load_context
from cib_decision.images.disk import DiskBuild, disk_source, fetch_mirrored
from cib_decision.images.progress import Progress

from .conftest import CONFIG_DIR
from .imagefleet import write_fleet

COMMIT = "c1b0c1b0c1b0c1b0c1b0c1b0c1b0c1b0c1b0c1b0"
CLOUDS_SECRET = "project/cib/level-3/clouds"
REGION = "us-east-1"
SOURCE = str(Path(cib_decision.__file__).resolve().parents[1])


@pytest.fixture
def aws():
    """The local AWS (its disk sources are made with qemu-img)."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils; .ci/run installs it)")
    with MotoServer() as server:
        yield server


class Pipeline:
    """The bundled fleet, its source checksums pinned to the stand-ins, and its tasks run as
    a worker would: `run` creates the task, claims it for its credentials, runs the command
    in a checkout of its own and resolves the task with the artifacts the command wrote."""

    def __init__(self, tmp_path: Path, dev, aws: MotoServer):
        self.tmp_path, self.dev, self.aws = tmp_path, dev, aws
        self.config = tmp_path / "config"
        shutil.copytree(CONFIG_DIR, self.config)
        self.seeded = seed_fleet(aws, load_fleet(DirectorySource(str(self.config))),
                                 tmp_path / "stand-ins")
        pin_sources(self.config, self.seeded.pins())
        dev.set_secret(CLOUDS_SECRET, aws.clouds_secret())
        self.queue = taskcluster.Queue(dev.options())
        self.results: dict[str, subprocess.CompletedProcess] = {}

    def run(self, *args: str, env: dict[str, str] | None = None,
            dependencies: tuple[str, ...] = (), kind: str | None = None) -> str:
        """Run `cib args...` as a task (`payload.env` plus `env`, `tags.kind` as taskgraph
        tags it) that must succeed; its id."""
        task_id = slugid.nice()
        payload_env = {"CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging", "CIB_LEVEL": "3",
                       **(env or {})}
        self.queue.createTask(task_id, new_task(
            taskQueueId="cib-3/images", scopes=[f"secrets:get:{CLOUDS_SECRET}"],
            dependencies=list(dependencies), payload={"env": payload_env},
            tags={"kind": kind} if kind else None))
        credentials = self.dev.task_credentials(task_id)["credentials"]
        checkout = self.tmp_path / "tasks" / task_id / "src"
        shutil.copytree(self.config, checkout / "config")
        environ = {"PATH": os.environ["PATH"], "HOME": str(self.tmp_path / "home"),
                   "PYTHONPATH": SOURCE,  # the cib the test imported, as the task's env has it
                   "TASK_ID": task_id, "TASKCLUSTER_ROOT_URL": self.dev.root_url,
                   "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
                   "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"],
                   "TASKCLUSTER_CERTIFICATE": credentials["certificate"], **payload_env}
        result = subprocess.run([sys.executable, "-m", "cib_decision", *args], cwd=checkout,
                                env=environ, capture_output=True, text=True, timeout=120)
        self.results[task_id] = result
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert f"cloud credentials from secret {CLOUDS_SECRET}: AWS" in result.stderr
        artifacts = {f"public/{p.name}": json.loads(p.read_text())
                     for p in sorted((checkout / "artifacts").glob("*.json"))}
        self.dev.resolve_task(task_id, "completed", artifacts)
        return task_id

    def artifact(self, task_id: str, name: str) -> dict:
        return json.loads((self.tmp_path / "tasks" / task_id / "src" / "artifacts" / name)
                          .read_text())

    def log(self, task_id: str) -> str:
        return self.results[task_id].stdout


@pytest.fixture
def pipeline(tmp_path, dev_taskcluster, aws):
    return Pipeline(tmp_path, dev_taskcluster, aws)


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def live_builders(ec2) -> list[dict]:
    return [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:cib:builder", "Values": ["true"]}])["Reservations"]
        for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_the_server_is_seeded_for_the_bundled_fleet(aws, tmp_path):
    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    seeded = seed_fleet(aws, fleet, tmp_path)
    s3 = aws.client("s3")
    assert {"example-cib-disk-images", "example-cib-media", "example-cib-source-mirror"} <= \
        {b["Name"] for b in s3.list_buckets()["Buckets"]}
    # win2022-64 selects its base by owner and name in both of its regions
    for region in ("us-east-1", "us-west-2"):
        images = aws.client("ec2", region).describe_images(Owners=["amazon"], Filters=[
            {"Name": "name", "Values": ["Windows_Server-2022-English-Full-Base-*"]}])["Images"]
        assert [i["ImageId"] for i in images] == [
            v for (r, _), v in seeded.base_images.items() if r == region]
        assert images[0]["OwnerId"] == AMAZON_ACCOUNT and images[0]["Platform"] == "windows"
    # the Ubuntu cloud image (https) is in the source mirror, by the stand-in's SHA-256; the
    # ISOs where the config keeps them; the stand-ins are the same bytes every time
    by_key = {k: s for s in seeded.sources for k in s.keys}
    ubuntu = by_key["ubuntu-2404"]
    assert ubuntu.stored == (f"s3://example-cib-source-mirror/sha256/{ubuntu.sha256}",)
    body = s3.get_object(Bucket="example-cib-source-mirror",
                         Key=f"sha256/{ubuntu.sha256}")["Body"].read()
    assert body[:4] == b"QFI\xfb" and hashlib.sha256(body).hexdigest() == ubuntu.sha256
    assert by_key["win11-64"] is by_key["win11-64-gpu"]
    assert by_key["win10-64"].stored == (
        "s3://example-cib-media/iso/Win10_22H2_EnglishInternational_x64v1.iso",)
    assert seed_fleet(aws, fleet, tmp_path / "again").pins() == seeded.pins()
    assert set(seeded.pins()) == {"058283d62f3ecc6cc3cc74fdc8141f7eb5787537434fcbb50dda8fab"
                                  "3a82da4e", by_key["win10-64"].config_sha256,
                                  by_key["win11-64"].config_sha256}


def test_a_disk_image_is_built_from_the_mirror_imported_tagged_and_its_builder_purged(
        pipeline):
    aws, ec2 = pipeline.aws, pipeline.aws.client("ec2", REGION)
    # disk-image-ubuntu-2404: from the source mirror, verified, converted by qemu-img, uploaded
    disk = pipeline.run("image", "disk", "--key", "ubuntu-2404")
    record = pipeline.artifact(disk, "disk-image.json")
    ubuntu = next(s for s in pipeline.seeded.sources if "ubuntu-2404" in s.keys)
    log = pipeline.log(disk)
    assert (f"fetching the image {ubuntu.location} from the source mirror: "
            f"{ubuntu.stored[0]}") in log
    assert f"SHA-256 {ubuntu.sha256} matches the config" in log
    assert "converting: qemu-img convert -p -f qcow2 -O raw" in log
    bucket, _, key = record["location"].removeprefix("s3://").partition("/")
    uploaded = aws.client("s3").get_object(Bucket=bucket, Key=key)
    body = uploaded["Body"].read()
    assert bucket == "example-cib-disk-images" and key == f"{record['name']}.raw"
    assert body.startswith(b"cib stand-in disk image https://cloud-images.ubuntu.com/")
    assert record["size"] == len(body) == 8 << 20
    assert record["sha256"] == hashlib.sha256(body).hexdigest() == \
        uploaded["Metadata"]["cib-sha256"]
    assert record["build_task_id"] == disk and record["config_commit"] == COMMIT

    # machine-image-ubuntu-2404-amazon-us-east-1, given the disk-image task as the graph
    # gives it; `--keep-resources` (disable-cleanup) leaves its builder for the purge
    machine = pipeline.run("image", "machine", "--key", "ubuntu-2404", "--target",
                           f"amazon/{REGION}", "--keep-resources",
                           env={"CIB_DISK_IMAGE_TASK_ID": disk}, dependencies=(disk,))
    image = pipeline.artifact(machine, "machine-image.json")
    imported = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "tag:cib:disk-sha256", "Values": [record["sha256"]]}])["Images"]
    assert [i["Name"] for i in imported] == [record["name"]]
    built = ec2.describe_images(ImageIds=[image["image_id"]])["Images"][0]
    assert built["State"] == "available"
    assert tags(built)["cib:disk-digest"] == record["disk_digest"]
    assert tags(built)["cib:build-task-id"] == machine
    (builder,) = live_builders(ec2)
    assert builder["ImageId"] == imported[0]["ImageId"] and builder["State"]["Name"] == \
        "stopped"
    assert "importing s3://example-cib-disk-images/" in pipeline.log(machine)

    # test-image-ubuntu-2404-amazon-us-east-1: the environment's Linux smoke tests
    test = smoke_test(pipeline, "ubuntu-2404", machine, image["image_id"])
    assert [r["name"] for r in test["results"]] == ["cloud-init", "no-failed-units"]

    # tag-ubuntu-2404: reads the build's record and, through its CIB_DISK_IMAGE_TASK_ID, the
    # disk image's, and the test run's; tags and releases
    tag = pipeline.run("image", "tag", "--key", "ubuntu-2404",
                       dependencies=(machine, test["test_task_id"]))
    release = manifest.verify(manifest.parse_release(pipeline.artifact(tag, "release.json")))
    assert release.disk_sha256 == record["sha256"]
    assert [(i.target, i.id) for i in release.images] == [(f"amazon/{REGION}",
                                                          image["image_id"])]
    released = ec2.describe_images(ImageIds=[image["image_id"]])["Images"][0]
    assert tags(released)["cib:release-sha256"] == release.sha256

    # purge-amazon-us-east-1 as the graph runs it keeps the young builder (8 hours); by hand,
    # without the age limit, it removes the builder and everything it used
    builder_resources = {builder["InstanceId"], builder["KeyName"],
                         *(g["GroupId"] for g in builder["SecurityGroups"])}
    purge = pipeline.run("purge", "--cloud", "amazon", "--region", REGION)
    assert "0 to remove" in pipeline.log(purge)
    assert live_builders(ec2)
    purge = pipeline.run("purge", "--cloud", "amazon", "--region", REGION, "--min-age", "0")
    removed = {line.split("|")[2].strip() for line in pipeline.log(purge).splitlines()
               if line.startswith("|") and line.rstrip().endswith("removed |")}
    assert builder_resources <= removed
    assert live_builders(ec2) == []
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == []
    assert ec2.describe_images(ImageIds=[image["image_id"]])["Images"]  # images stay


def smoke_test(pipeline, key: str, machine: str, image_id: str) -> dict:
    """Run the test-image task of `machine`'s image: an instance from the image whose user data
    runs the tests and stops it, read from its console output, then removed. Its record."""
    ec2 = pipeline.aws.client("ec2", REGION)
    test = pipeline.run("image", "test", "--key", key, "--target", f"amazon/{REGION}",
                        "--poll-interval", "1", env={"CIB_MACHINE_IMAGE_TASK_ID": machine},
                        dependencies=(machine,), kind="test-image")
    record = pipeline.artifact(test, "image-test.json")
    assert record["passed"] and record["image_id"] == image_id
    assert record["test_task_id"] == test
    (tester,) = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:cib:build-task-id", "Values": [test]}])["Reservations"]
        for i in r["Instances"]]
    assert tester["ImageId"] == image_id and tester["State"]["Name"] == "terminated"
    assert "smoke tests to stop" in pipeline.log(test)
    return record


def test_a_machine_image_from_the_newest_base_ami_is_built_cleaned_up_and_released(pipeline):
    ec2 = pipeline.aws.client("ec2", REGION)
    base = pipeline.seeded.base_images[(REGION, "Windows_Server-2022-English-Full-Base-cib-dev")]
    machine = pipeline.run("image", "machine", "--key", "win2022-64", "--target",
                           f"amazon/{REGION}")
    record = pipeline.artifact(machine, "machine-image.json")
    log = pipeline.log(machine)
    assert f"base image: {base} Windows_Server-2022-English-Full-Base-cib-dev (newest of " \
        "amazon" in log
    assert "the bootstrap to stop builder" in log and "stopped after" in log
    ctx = load_context("win2022-64", pipeline.config, artifacts=pipeline.tmp_path / "x",
                       environ={"TASK_ID": machine, "CIB_HEAD_REV": COMMIT})
    digest = ctx.digests.machines[f"amazon/{REGION}"]
    image = ec2.describe_images(ImageIds=[record["image_id"]])["Images"][0]
    assert image["Name"] == record["image_name"] == f"win2022-64-{digest[:12]}"
    assert tags(image)["cib:machine-digest"] == digest
    assert tags(image)["cib:environment"] == "staging"
    # the builder booted the base image, with the PowerShell bootstrap, and is gone
    (instance,) = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:cib:key", "Values": ["win2022-64"]}])["Reservations"]
        for i in r["Instances"]]
    assert instance["ImageId"] == base and instance["InstanceType"] == "m5.xlarge"
    assert instance["State"]["Name"] == "terminated"
    assert live_builders(ec2) == []

    test = smoke_test(pipeline, "win2022-64", machine, record["image_id"])
    assert [r["name"] for r in test["results"]] == ["powershell", "generalized"]
    tag = pipeline.run("image", "tag", "--key", "win2022-64",
                       dependencies=(machine, test["test_task_id"]))
    release = manifest.parse_release(pipeline.artifact(tag, "release.json"))
    assert release.disk_sha256 is None
    assert release.images[0].tests["passed"] and release.images[0].tests["task_id"] == \
        test["test_task_id"]
    # the build was checked against the key's validation rule on its console output
    assert record["validation"]["rules"] == [{"program": "cib", "match": "^prepare-task-volume "
                                              "passed$", "lines": 2, "passed": True}]
    assert release.images[0].validation == record["validation"]  # the results travel
    image = ec2.describe_images(ImageIds=[record["image_id"]])["Images"][0]
    assert tags(image)["cib:release-sha256"] == release.sha256
    for snapshot in (m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]
                     if "Ebs" in m):
        described = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
        assert tags(described)["cib:release-sha256"] == release.sha256


def test_an_iso_missing_from_the_mirror_is_fetched_from_its_bucket(pipeline):
    disk = pipeline.run("image", "disk", "--key", "win11-64",
                        env={"CIB_CONVERT_COMMAND": STAND_IN_CONVERT_COMMAND})
    iso = next(s for s in pipeline.seeded.sources if "win11-64" in s.keys)
    log = pipeline.log(disk)
    assert f"the source mirror has no s3://example-cib-source-mirror/sha256/{iso.sha256}" in log
    assert f"fetching the iso {iso.location}" in log
    record = pipeline.artifact(disk, "disk-image.json")
    head = pipeline.aws.client("s3").head_object(
        Bucket="example-cib-disk-images", Key=f"{record['name']}.vhd")
    assert record["image_format"] == "vhd" and head["ContentLength"] == record["size"]


def test_the_clouds_secrets_endpoint_is_exported_with_the_credentials_and_only_with_them():
    secret = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
              "aws_endpoint_url": "http://127.0.0.1:5000"}
    assert cloudcreds.variables(secret, CLOUDS_SECRET)["AWS_ENDPOINT_URL"] == \
        "http://127.0.0.1:5000"
    with pytest.raises(CibError, match="AWS: aws_endpoint_url without aws_access_key_id"):
        cloudcreds.variables({"aws_endpoint_url": "http://127.0.0.1:5000"}, CLOUDS_SECRET)


class UnreadableMirror:
    """An S3 whose source mirror refuses to be read; everything else is not expected."""

    def head(self, bucket, key):
        raise BuildError(f"AWS refused reading s3://{bucket}/{key}: 403: Forbidden")


def test_a_mirror_that_cannot_be_read_is_a_warning_and_the_source_is_fetched_from_upstream(
        tmp_path):
    ctx = load_context("ubuntu-2404", CONFIG_DIR, artifacts=tmp_path,
                       progress=Progress(io.StringIO()),
                       environ={"TASK_ID": "x", "CIB_HEAD_REV": COMMIT,
                                "CIB_ENVIRONMENT": "staging"})
    build = DiskBuild(s3=UnreadableMirror(), http=None, work_dir=tmp_path)
    assert not fetch_mirrored(disk_source(ctx.key), build, ctx, tmp_path / "source")
    assert "warning: the source mirror could not be read (AWS refused reading " \
        "s3://example-cib-source-mirror/sha256/058283d6" in ctx.progress.stream.getvalue()
    ctx.environment = "nowhere"  # an environment without a mirror: nothing is asked
    assert not fetch_mirrored(disk_source(ctx.key), build, ctx, tmp_path / "source")


def test_the_commands_tasks_run_never_import_the_local_clouds():
    code = ("import sys, cib_decision.cli as cli; cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto' "
            "or m.startswith('cib_decision.devclouds')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": SOURCE})
    assert result.stdout.strip() == "[]"


def test_an_explicit_base_image_id_is_seeded_in_each_region_of_the_key(aws, tmp_path):
    config = write_fleet(tmp_path, base={"id": "ami-0123456789abcdef0"})
    seeded = seed_base_images(aws, load_fleet(DirectorySource(str(config))))
    assert seeded == {("us-east-1", "based-test-base"): "ami-0123456789abcdef0",
                      ("us-west-2", "based-test-base"): "ami-0123456789abcdef0"}
    for region in ("us-east-1", "us-west-2"):
        (image,) = aws.client("ec2", region).describe_images(
            ImageIds=["ami-0123456789abcdef0"])["Images"]
        assert image["State"] == "available" and image["OwnerId"] == aws.account


@pytest.mark.parametrize("seconds", [0.3, None])
def test_a_builder_stops_once_its_bootstrap_time_has_passed_or_never(seconds):
    with MotoServer(bootstrap_seconds=seconds) as server:
        ec2 = server.client("ec2", REGION)
        ami = ec2.describe_images(Owners=["amazon"], Filters=[  # one of moto's own
            {"Name": "name", "Values": ["Windows_Server-2016-English-Nano-Base-*"]}]
        )["Images"][0]["ImageId"]
        launch = {"ImageId": ami, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
        builder = ec2.run_instances(**launch, TagSpecifications=[{
            "ResourceType": "instance", "Tags": [{"Key": "cib:builder", "Value": "true"}]}]
        )["Instances"][0]["InstanceId"]
        other = ec2.run_instances(**launch)["Instances"][0]["InstanceId"]

        def states():
            return {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()[
                "Reservations"] for i in r["Instances"]}

        assert states() == {builder: "running", other: "running"}
        time.sleep(0.35)
        assert states() == {builder: "stopped" if seconds else "running", other: "running"}


def test_an_instance_type_ec2_does_not_offer_is_refused_as_ec2_refuses_it(aws):
    import botocore.exceptions
    import moto.settings

    ec2 = aws.client("ec2", REGION)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.enormous")
    assert refused.value.response["Error"]["Code"].startswith("InvalidInstanceType")
    ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.large")
    aws.stop()
    assert moto.settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION is False  # put back
