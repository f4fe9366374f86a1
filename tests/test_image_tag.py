"""`cib image tag --key K` as the tag task runs it: the machine images are built through boto3
against moto (two regions and a copy), the tasks live in the local Taskcluster
(`dev_taskcluster`), whose queue serves the builds' records as artifacts."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest

from cib_decision import manifest
from cib_decision.clouds.aws import EC2
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress
from cib_decision.images.tag import release_images, usable_records

from .aws_build_support import publish_base_images
from .imagefleet import COMMIT, write_fleet
from .tag_support import DISK_SHA256, Fleet, cib, create_task, record_of, run_tag, tag_task
from .tag_support import env as env  # a fixture, used by name

CREATED = datetime(2026, 11, 21, 13, 0, 7, tzinfo=UTC)


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
