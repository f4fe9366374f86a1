"""`cib image machine` on AWS, end to end through boto3 against moto: base image lookup,
import, launch, the bootstrap's stop, capture, tags, region copies, clean-up, time-out, reuse,
overwrite. The bootstrap is played by a test hook that stops the builder through boto3 while
the build waits (the wait's sleep), so nothing really sleeps."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.clouds.aws import aws_errors
from cib_decision.errors import BuildError, CibError, TransientError
from cib_decision.images.aws_machine import (
    Timeouts,
    copy_regions,
    newest_image,
    next_name,
)
from cib_decision.images.context import load_context
from cib_decision.images.progress import WaitTimeout

from .aws_build_support import Bootstrap, build, leftovers, publish_base_images
from .aws_build_support import aws as aws  # a fixture, used by name
from .imagefleet import COMMIT, TASK_ID, write_fleet

PATTERN = "Windows_Server-2022-English-Full-*"


def only_instance(ec2):
    """The one instance a build launched."""
    (instance,) = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    return instance


def tags(image):
    return {t["Key"]: t["Value"] for t in image.get("Tags") or ()}


def test_a_build_from_the_newest_base_image_launches_captures_tags_copies_and_cleans_up(
        tmp_path, aws):
    bases = publish_base_images()
    record, ctx = build(tmp_path, copies=("eu-west-1",))
    machine = ctx.digests.machines["amazon/us-east-1"]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(ImageIds=[record.image_id])["Images"][0]
    assert image["State"] == "available" and image["Name"] == f"based-test-{machine[:12]}"
    assert tags(image) == {
        "Name": image["Name"], "cib:key": "based-test", "cib:machine-digest": machine,
        "cib:disk-digest": ctx.digests.disk, "cib:config-commit": COMMIT,
        "cib:build-task-id": TASK_ID, "cib:environment": "staging",
        "cib:target": "amazon/us-east-1"}
    # the builder booted the newest matching base image, with the PowerShell bootstrap
    instance = only_instance(ec2)
    assert instance["ImageId"] == bases["Windows_Server-2022-English-Full-Base-2026.11.12"]
    assert instance["InstanceType"] == "m5.xlarge"
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                          Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(data).decode().startswith("<powershell>")
    # copied to eu-west-1, available and tagged alike
    (region, copy), = record.copies
    west = boto3.client("ec2", region_name="eu-west-1").describe_images(ImageIds=[copy])
    assert region == "eu-west-1" and west["Images"][0]["State"] == "available"
    assert tags(west["Images"][0])["cib:machine-digest"] == machine
    # nothing left behind
    assert leftovers() == {"instances": [], "groups": [], "keys": [], "volumes": []}
    written = json.loads((tmp_path / "artifacts" / "machine-image.json").read_text())
    assert manifest.parse_machine_image(written) == record
    assert written["copies"] == {"eu-west-1": copy}
    # how long the copy took, for `cib stats`
    assert set(written["copy_seconds"]) == {"eu-west-1"} and written["copy_seconds"][
        "eu-west-1"] >= 0


def test_the_log_tells_the_story_one_line_per_step_and_state_change(tmp_path, aws):
    publish_base_images()
    build(tmp_path)
    lines = build.log.splitlines()
    story = [line.split("] ", 1)[1] for line in lines]
    assert any(s.startswith("base image: ami-0aaaaaaaaaaaaaaa2 Windows_Server-2022-English-"
                            "Full-Base-2026.11.12 (newest of amazon") for s in story)
    assert any(s.startswith("launched builder i-") for s in story)
    waits = [s for s in story if "the bootstrap to stop builder" in s]
    assert waits[0].startswith("waiting for the bootstrap to stop builder")
    assert "running -> stopped after 1m00s" in waits[-1]
    assert len(waits) == 3  # waiting, running, running -> stopped: no line per poll
    assert any(s.startswith("cleaned up security group") for s in story)
    assert story[-1] == "wrote public/machine-image.json"


def test_an_explicit_base_image_id_is_used_as_it_is(tmp_path, aws):
    bases = publish_base_images()
    explicit = bases["Windows_Server-2019-English-Full-Base-2026.11.20"]
    build(tmp_path, base={"id": explicit})
    ec2 = boto3.client("ec2", region_name="us-east-1")
    instance = only_instance(ec2)
    assert instance["ImageId"] == explicit


def test_no_base_image_matching_is_a_clear_error(tmp_path, aws):
    with pytest.raises(CibError, match="no available image of owner amazon matches"):
        build(tmp_path)
    assert leftovers() == {"instances": [], "groups": [], "keys": [], "volumes": []}


def test_a_bootstrap_that_never_stops_times_out_and_everything_is_cleaned_up(tmp_path, aws):
    publish_base_images()
    with pytest.raises(WaitTimeout, match=r"timed out after 2m00s waiting for the bootstrap "
                                          r"to stop builder i-\w+; last state: running"):
        build(tmp_path, bootstrap=Bootstrap(after=None),
              timeouts=Timeouts(bootstrap=120, interval=30))
    assert leftovers() == {"instances": [], "groups": [], "keys": [], "volumes": []}
    images = boto3.client("ec2", region_name="us-east-1").describe_images(Owners=["self"])
    assert images["Images"] == []
    assert "the build failed; cleaning up" in build.log


def test_keep_resources_leaves_the_builder_after_a_failure(tmp_path, aws):
    publish_base_images()
    with pytest.raises(WaitTimeout):
        build(tmp_path, bootstrap=Bootstrap(after=None), keep=True,
              timeouts=Timeouts(bootstrap=60, interval=30))
    left = leftovers()
    assert len(left["instances"]) == 1 and len(left["groups"]) == 1 and len(left["keys"]) == 1
    assert "--keep-resources: leaving i-" in build.log


def test_a_second_run_for_the_same_digest_reuses_the_image_and_launches_nothing(tmp_path, aws):
    publish_base_images()
    first, _ = build(tmp_path)
    again, _ = build(tmp_path, bootstrap=Bootstrap(after=None))
    assert again.image_id == first.image_id and again.image_name == first.image_name
    assert "reusing " + first.image_id in build.log
    reservations = boto3.client("ec2", region_name="us-east-1").describe_instances()
    assert len(reservations["Reservations"]) == 1


def test_overwrite_builds_a_new_image_under_a_new_name_and_keeps_the_live_one(tmp_path, aws):
    publish_base_images()
    first, ctx = build(tmp_path)
    second, _ = build(tmp_path, overwrite=True)
    machine = ctx.digests.machines["amazon/us-east-1"]
    assert second.image_id != first.image_id
    assert second.image_name == f"based-test-r2-{machine[:12]}"
    states = {i["ImageId"]: i["State"] for i in boto3.client(
        "ec2", region_name="us-east-1").describe_images(Owners=["self"])["Images"]}
    assert states == {first.image_id: "available", second.image_id: "available"}
    # a run after the overwrite reuses the newest
    third, _ = build(tmp_path, bootstrap=Bootstrap(after=None))
    assert third.image_id == second.image_id


def test_a_disk_image_is_imported_registered_and_booted(tmp_path, aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="disk-images")
    s3.put_object(Bucket="disk-images", Key="linux-test-disk.raw", Body=b"\0" * 4096)
    config = write_fleet(tmp_path)
    ctx = load_context("linux-test", config, artifacts=tmp_path / "a")
    disk = manifest.disk_image_record(
        "linux-test", platform="amazon", region="us-east-1",
        location="s3://disk-images/linux-test-disk.raw", image_format="raw", size=4096,
        sha256="cd" * 32, disk_digest=ctx.digests.disk, config_commit=COMMIT,
        build_task_id=TASK_ID, created=datetime(2026, 11, 21, tzinfo=UTC))
    record, _ = build(tmp_path, "linux-test", disk_record=disk)
    lines = build.log
    assert "import task import-snap-" in lines
    assert "active (pending) -> active (converting)" in lines
    assert "active (converting) -> completed" in lines
    ec2 = boto3.client("ec2", region_name="us-east-1")
    imported = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "tag:cib:disk-sha256", "Values": ["cd" * 32]}])["Images"]
    assert len(imported) == 1 and imported[0]["Name"] == disk.name
    instance = only_instance(ec2)
    assert instance["ImageId"] == imported[0]["ImageId"]
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                          Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(data).decode().startswith("#cloud-config")
    assert record.image_id != imported[0]["ImageId"]
    # the us-west-2 target imports nothing again: it copies the imported image over
    west, _ = build(tmp_path, "linux-test", "amazon/us-west-2", disk_record=disk)
    assert "was imported before as " + imported[0]["ImageId"] in build.log
    assert west.region == "us-west-2"


def test_a_key_with_a_disk_image_needs_its_record(tmp_path, aws):
    with pytest.raises(CibError, match="give the disk image record"):
        build(tmp_path, "linux-test")


def test_the_command_exits_3_on_a_bootstrap_timeout_and_names_it(tmp_path, aws, capsys):
    publish_base_images()
    config = write_fleet(tmp_path)
    status = main(["image", "machine", "--key", "based-test", "--target", "amazon/us-east-1",
                   "--config-dir", str(config), "--artifacts", str(tmp_path / "a"),
                   "--bootstrap-timeout", "0"])
    captured = capsys.readouterr()
    assert status == 3
    assert "timed out after 0s waiting for the bootstrap to stop builder" in captured.err
    assert "Traceback" not in captured.err and "cleaned up key pair" in captured.out
    assert leftovers() == {"instances": [], "groups": [], "keys": [], "volumes": []}


def test_an_unknown_target_is_a_clear_error(tmp_path, aws, capsys):
    config = write_fleet(tmp_path)
    assert main(["image", "machine", "--key", "based-test", "--target", "amazon/mars-1",
                 "--config-dir", str(config), "--artifacts", str(tmp_path / "a")]) == 2
    assert "has no target 'amazon/mars-1' (its targets: amazon/us-east-1, amazon/us-west-2)" \
        in capsys.readouterr().err


@pytest.mark.parametrize(("code", "error"), [
    ("InstanceLimitExceeded", TransientError), ("InsufficientInstanceCapacity", TransientError),
    ("RequestLimitExceeded", TransientError), ("InvalidAMIID.Malformed", BuildError)])
def test_quota_capacity_and_throttling_are_transient_other_refusals_are_not(code, error):
    refusal = ClientError({"Error": {"Code": code, "Message": "no"}}, "RunInstances")
    with pytest.raises(error) as caught, aws_errors("launching"):
        raise refusal
    assert caught.type is error and (caught.value.exit_code == 75) == (error is TransientError)


def test_missing_aws_credentials_are_an_input_error_saying_what_was_being_done():
    with pytest.raises(CibError) as caught, aws_errors("listing builder instances in us-east-1"):
        raise NoCredentialsError()
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(
        "AWS: Unable to locate credentials while listing builder instances in us-east-1")


def test_newest_image_picks_by_creation_date_among_matching_names():
    images = [{"ImageId": "ami-1", "Name": "Base-2026.01", "CreationDate": "2026-01-01"},
              {"ImageId": "ami-2", "Name": "Base-2026.03", "CreationDate": "2026-03-01"},
              {"ImageId": "ami-3", "Name": "Other-2026.04", "CreationDate": "2026-04-01"}]
    assert newest_image(images, "Base-*")["ImageId"] == "ami-2"
    assert newest_image(images, "None-*") is None


def test_next_name_takes_the_first_free_revision():
    digest = "ab" * 32
    assert next_name("k", digest, [], None) == "k-abababababab"
    assert next_name("k", digest, ["k-abababababab", "k-r2-abababababab"], None) == \
        "k-r3-abababababab"


def test_copies_skip_the_own_region_and_regions_with_their_own_target(tmp_path):
    config = write_fleet(tmp_path, copies=("us-east-1", "us-west-2", "eu-west-1", "EU-West-1"))
    ctx = load_context("based-test", config, artifacts=tmp_path, environ={
        "TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT})
    target = ctx.target("amazon/us-east-1")
    assert copy_regions(target, ctx.key.targets) == ("eu-west-1",)
