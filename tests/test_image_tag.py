"""`cib image tag --key K` as the tag task runs it: the machine images are built through boto3
against moto (two regions and a copy), the tasks live in the local Taskcluster
(`dev_taskcluster`), whose queue serves the builds' records as artifacts."""

from __future__ import annotations

import io
import json
from dataclasses import replace
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
from cib_decision.images.tag import release_images, usable_records

from .imagefleet import COMMIT, write_fleet
from .test_image_machine_aws import Bootstrap, publish_base_images

CREATED = datetime(2026, 11, 21, 13, 0, 7, tzinfo=UTC)
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


def tags_of(region: str, resource: str) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name=region)
    answer = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])
    return {t["Key"]: t["Value"] for t in answer["Tags"]}


def snapshots(region: str, image_id: str) -> list[str]:
    return EC2(region).image_snapshots(image_id)


def build_linux(tmp_path, dev_taskcluster, env, copied_by=("us-east-1",)):
    """linux-test built from its disk image in us-east-1 and us-west-2 (the targets of
    `copied_by` copying to eu-west-1), one failed build, and the tag task over them."""
    fleet = Fleet(tmp_path, dev_taskcluster, copied_by, copies=("eu-west-1",))
    disk = fleet.disk_image()
    east = fleet.machine_image("linux-test", "amazon/us-east-1", disk)
    west = fleet.machine_image("linux-test", "amazon/us-west-2", disk)
    failed = fleet.failed_build()
    created = datetime.now(UTC).replace(microsecond=123000)
    tag = tag_task(env, dev_taskcluster, [east, west, failed], created)
    return fleet, {"east": east, "west": west, "failed": failed, "tag": tag,
                   "created": created.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture
def released(tmp_path, dev_taskcluster, env):
    """linux-test in us-east-1 (copied to eu-west-1) and us-west-2, and a failed build."""
    return build_linux(tmp_path, dev_taskcluster, env)


def record_of(fleet: Fleet) -> dict:
    return json.loads((fleet.tmp_path / "artifacts" / "release.json").read_text())


def test_tag_applies_the_release_tags_to_every_ami_and_its_snapshots_copies_included(
        released, capsys):
    fleet, tasks = released
    code, out, err = run_tag(capsys, fleet)
    assert code == 0, err
    release = manifest.verify(manifest.parse_release(record_of(fleet)))
    images = {i.target: i for i in release.images}
    assert set(images) == {"amazon/us-east-1", "amazon/us-west-2", "amazon/eu-west-1"}
    ctx = load_context("linux-test", fleet.config, artifacts=fleet.tmp_path / "x")
    built_by = {"amazon/us-east-1": tasks["east"], "amazon/eu-west-1": tasks["east"],
                "amazon/us-west-2": tasks["west"]}
    for target, image in images.items():
        source = "amazon/us-west-2" if target == "amazon/us-west-2" else "amazon/us-east-1"
        expected = {
            "Name": image.name, "cib:key": "linux-test",
            "cib:machine-digest": ctx.digests.machines[source],
            "cib:disk-digest": ctx.digests.disk, "cib:config-commit": COMMIT,
            "cib:build-task-id": built_by[target], "cib:environment": "staging",
            "cib:target": source, "cib:release-sha256": release.sha256}
        assert image.build_task_id == built_by[target]
        assert tags_of(image.region, image.id) == expected, target
        found = snapshots(image.region, image.id)
        assert found, f"{target}: moto gave the image no snapshots"
        for snapshot in found:
            assert tags_of(image.region, snapshot) == expected, (target, snapshot)
        assert f"tagged {image.id} {image.name} in {image.region}" in out


def test_the_release_record_holds_the_disk_sha256_digests_commit_and_the_tag_tasks_time(
        released, capsys):
    fleet, tasks = released
    assert run_tag(capsys, fleet)[0] == 0
    record = record_of(fleet)
    ctx = load_context("linux-test", fleet.config, artifacts=fleet.tmp_path / "x")
    assert record["disk_sha256"] == DISK_SHA256
    assert record["disk_digest"] == ctx.digests.disk
    assert record["config_commit"] == COMMIT
    assert record["created"] == tasks["created"]  # the tag task's, to the second
    assert {i["machine_digest"] for i in record["images"]} == {
        ctx.digests.machines["amazon/us-east-1"], ctx.digests.machines["amazon/us-west-2"]}


def test_the_written_record_verifies_with_cib_release_verify(released, capsys):
    fleet, _ = released
    assert run_tag(capsys, fleet)[0] == 0
    code, out, err = cib(capsys, "release", "verify",
                         str(fleet.tmp_path / "artifacts" / "release.json"))
    assert code == 0, err
    assert "OK: release of linux-test" in out and "3 images (amazon)" in out


def test_a_rerun_tags_the_same_and_writes_a_byte_identical_record(released, capsys):
    fleet, _ = released
    assert run_tag(capsys, fleet)[0] == 0
    path = fleet.tmp_path / "artifacts" / "release.json"
    first = path.read_bytes()
    images = manifest.parse_release(json.loads(first)).images
    before = {i.id: tags_of(i.region, i.id) for i in images}
    path.unlink()
    assert run_tag(capsys, fleet)[0] == 0
    assert path.read_bytes() == first
    assert {i.id: tags_of(i.region, i.id) for i in images} == before


def test_a_failed_build_is_named_and_left_out(released, capsys):
    fleet, tasks = released
    code, out, err = run_tag(capsys, fleet)
    assert code == 0, err
    assert f"task {tasks['failed']} left no image record" in out
    assert {i["build_task_id"] for i in record_of(fleet)["images"]} == {
        tasks["east"], tasks["west"]}


def test_when_every_build_failed_the_tag_releases_nothing_and_is_no_second_failure(
        tmp_path, dev_taskcluster, env, capsys):
    """The builds' own failures are what reaches people (one failure, one notification)."""
    fleet = Fleet(tmp_path, dev_taskcluster)
    builds = [fleet.failed_build(), fleet.failed_build()]
    environment = create_task(dev_taskcluster, kind="task-env")  # completed, no record
    dev_taskcluster.resolve_task(environment)
    tag_task(env, dev_taskcluster, [*builds, environment])
    code, out, err = run_tag(capsys, fleet)
    assert code == 0, err
    assert f"every build of linux-test this graph ran failed (tasks {', '.join(sorted(builds))})" \
        in out and "nothing to tag or release" in out
    assert (tmp_path / "artifacts").is_dir()  # the task's declared artifact directory
    assert not (tmp_path / "artifacts" / "release.json").exists()


def test_builds_that_completed_without_a_record_exit_2_with_a_clear_message(
        tmp_path, dev_taskcluster, env, capsys):
    fleet = Fleet(tmp_path, dev_taskcluster)
    completed = create_task(dev_taskcluster)
    dev_taskcluster.resolve_task(completed)
    tag = tag_task(env, dev_taskcluster, [completed, fleet.failed_build()])
    code, _, err = run_tag(capsys, fleet)
    assert code == 2
    assert f"task {tag}: no dependency left a machine-image record of linux-test" in err
    assert "Traceback" not in err
    assert not (tmp_path / "artifacts" / "release.json").exists()


def test_a_key_built_from_a_base_image_is_released_without_a_disk_sha256(
        tmp_path, dev_taskcluster, env, capsys):
    publish_base_images()
    fleet = Fleet(tmp_path, dev_taskcluster, aws_targets=("us-east-1",))
    build = fleet.machine_image("based-test", "amazon/us-east-1")
    tag_task(env, dev_taskcluster, [build])
    code, out, err = run_tag(capsys, fleet, "based-test")
    assert code == 0, err
    record = record_of(fleet)
    assert record["disk_sha256"] is None and len(record["images"]) == 1
    assert "no disk-image record: the release's disk_sha256 is null" in out


def test_an_image_its_record_names_but_the_region_lacks_exits_3(
        tmp_path, dev_taskcluster, env, capsys):
    fleet = Fleet(tmp_path, dev_taskcluster, aws_targets=("us-east-1",))
    ctx = load_context("based-test", fleet.config, artifacts=tmp_path / "x")
    build = create_task(dev_taskcluster)
    record = manifest.machine_image_record(
        "based-test", ctx.target("amazon/us-east-1"), image_id="ami-0123456789abcdef0",
        machine_digest=ctx.digests.machines["amazon/us-east-1"], disk_digest=ctx.digests.disk,
        config_commit=COMMIT, build_task_id=build, created=CREATED)
    dev_taskcluster.resolve_task(build, artifacts={
        manifest.MACHINE_IMAGE_ARTIFACT: record.to_json()})
    tag_task(env, dev_taskcluster, [build])
    code, _, err = run_tag(capsys, fleet, "based-test")
    assert code == 3
    assert "image ami-0123456789abcdef0 is not in us-east-1" in err
    assert not (tmp_path / "artifacts" / "release.json").exists()


def test_records_of_another_key_or_machine_digest_are_left_out(tmp_path, env):
    config = write_fleet(tmp_path)
    ctx = load_context("based-test", config, artifacts=tmp_path / "x",
                       progress=Progress(io.StringIO()))
    own = manifest.machine_image_record(
        "based-test", ctx.target("amazon/us-east-1"), image_id="ami-0123456789abcdef0",
        machine_digest=ctx.digests.machines["amazon/us-east-1"], disk_digest=ctx.digests.disk,
        config_commit=COMMIT, build_task_id=ctx.task_id, created=CREATED)
    stale_digest = "0" * 64
    stale = replace(own, machine_digest=stale_digest, image_name=f"based-test-{'0' * 12}")
    other = replace(own, key="linux-test")
    assert usable_records(ctx, [other, stale, own]) == [own]
    story = ctx.progress.stream.getvalue()
    assert "skipping the machine-image record of linux-test" in story
    assert "machine digest 000000000000 is not this config's" in story


def test_two_targets_copying_into_one_region_release_their_shared_copy_once(
        tmp_path, dev_taskcluster, env, capsys):
    fleet, tasks = build_linux(tmp_path, dev_taskcluster, env,
                               copied_by=("us-east-1", "us-west-2"))
    code, _, err = run_tag(capsys, fleet)
    assert code == 0, err
    release = manifest.parse_release(record_of(fleet))
    (copy,) = [i for i in release.images if i.region == "eu-west-1"]
    assert copy.build_task_id == tasks["east"]
    assert tags_of("eu-west-1", copy.id)["cib:release-sha256"] == release.sha256


def test_different_copies_into_one_region_release_the_first_targets_and_say_so(tmp_path, env):
    ctx = load_context("linux-test", write_fleet(tmp_path), artifacts=tmp_path / "x",
                       progress=Progress(io.StringIO()))
    east, west = (manifest.with_copies(manifest.machine_image_record(
        "linux-test", ctx.target(target), image_id=image_id,
        machine_digest=ctx.digests.machines[target], disk_digest=ctx.digests.disk,
        config_commit=COMMIT, build_task_id=ctx.task_id, created=CREATED),
        {"eu-west-1": copy}) for target, image_id, copy in (
            ("amazon/us-east-1", "ami-0000000000000000a", "ami-0000000000000000b"),
            ("amazon/us-west-2", "ami-0000000000000000c", "ami-0000000000000000d")))
    images = release_images(ctx, [west, east])
    assert {i.target: i.id for i in images} == {
        "amazon/us-east-1": "ami-0000000000000000a", "amazon/us-west-2": "ami-0000000000000000c",
        "amazon/eu-west-1": "ami-0000000000000000b"}
    assert ("amazon/eu-west-1 has images of both amazon/us-east-1 (ami-0000000000000000b) and "
            "amazon/us-west-2 (ami-0000000000000000d): releasing ami-0000000000000000b"
            in ctx.progress.stream.getvalue())
