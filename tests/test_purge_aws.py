"""`cib purge --cloud amazon` end to end: the leftovers of a real build (`cib image machine` with
`--keep-resources`, through boto3 against moto) beside resources that are not ours, the build
task's state in the local Taskcluster (`dev_taskcluster`)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

import taskcluster
from cib_decision.cli import main
from cib_decision.devclouds import moto_ec2_import
from cib_decision.devtc.testing import new_task

from .aws_build_support import build, leftovers, publish_base_images
from .conftest import CONFIG_DIR
from .imagefleet import COMMIT, TASK_ID

REGION = "us-east-1"


@pytest.fixture
def env(dev_taskcluster, monkeypatch):
    """moto's AWS and a local Taskcluster, as the purge task has them."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "TASK_ID": TASK_ID,
                        "CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging",
                        **dev_taskcluster.environ()}.items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_PROXY_URL", "CIB_DISK_IMAGE_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws(), moto_ec2_import.install():
        yield dev_taskcluster


def build_task(dev, state: str | None = "completed") -> None:
    """The build task (`TASK_ID`) in the queue: resolved as `state`, or pending for None."""
    taskcluster.Queue(dev.options()).createTask(TASK_ID, new_task(taskQueueId="cib-3/images"))
    if state:
        dev.resolve_task(TASK_ID, state=state)


def kept_build(tmp_path) -> dict[str, list]:
    """A build that succeeded under `--keep-resources` (`disable-cleanup`): its stopped
    builder, the builder's volumes, security group and key pair stay."""
    publish_base_images()
    build(tmp_path, keep=True)
    left = leftovers()
    assert [i["State"]["Name"] for i in left["instances"]] == ["stopped"]
    assert len(left["groups"]) == len(left["keys"]) == 1 and left["volumes"]
    return left


def foreign_resources() -> dict[str, str]:
    """Resources that look like a builder's but are not tagged as one: never touched."""
    ec2 = boto3.client("ec2", region_name=REGION)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    not_ours = [{"Key": "Name", "Value": "cib-builder-lookalike"},
                {"Key": "cib:build-task-id", "Value": TASK_ID}]
    specs = [{"ResourceType": kind, "Tags": not_ours} for kind in ("instance", "volume")]
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 TagSpecifications=specs)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    volume = ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "cib:builder", "Value": "false"}]}])
    ec2.create_key_pair(KeyName="cib-lookalike")
    group = ec2.create_security_group(GroupName="cib-lookalike", Description="not ours")
    return {"instance": instance, "volume": volume["VolumeId"], "key": "cib-lookalike",
            "group": group["GroupId"]}


def inventory() -> set[tuple[str, str, str]]:
    """Every instance that is not terminated, volume, key pair and security group (but the
    default one) of the region: (kind, id, state)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    return ({("instance", i["InstanceId"], i["State"]["Name"])
             for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
             if i["State"]["Name"] != "terminated"}
            | {("volume", v["VolumeId"], v["State"]) for v in ec2.describe_volumes()["Volumes"]}
            | {("key-pair", k["KeyName"], "") for k in ec2.describe_key_pairs()["KeyPairs"]}
            | {("security-group", g["GroupId"], "")
               for g in ec2.describe_security_groups()["SecurityGroups"]
               if g["GroupName"] != "default"})


def purge(capsys, *extra: str) -> tuple[int, str]:
    code = main(["purge", "--cloud", "aws", "--region", REGION, "--config-dir",
                 str(CONFIG_DIR), *extra])
    out, err = capsys.readouterr()
    assert not err or "Traceback" not in err
    return code, out


def rows(out: str) -> dict[str, list[str]]:
    """The closing table's rows by resource id: [resource, where, reason, action]."""
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[0].startswith("amazon "):
            table[cells[1]] = [cells[0], cells[2], cells[3], cells[4]]
    return table


def test_a_kept_builds_leftovers_go_once_its_task_is_resolved_and_foreign_ones_stay(
        tmp_path, env, capsys):
    left = kept_build(tmp_path)
    foreign = foreign_resources()
    before = inventory()
    build_task(env, "completed")
    code, out = purge(capsys, "--min-age", "0")
    assert code == 0
    built = {left["instances"][0]["InstanceId"], left["groups"][0]["GroupId"],
             left["keys"][0]["KeyName"], *(v["VolumeId"] for v in left["volumes"])}
    assert inventory() == {r for r in before if r[1] not in built}
    instance = left["instances"][0]["InstanceId"]
    table = rows(out)
    assert table[instance] == ["amazon instance", REGION,
                               "stopped builder (tagged cib:builder)", "removed"]
    assert table[left["groups"][0]["GroupId"]][3] == "removed"
    assert table[left["keys"][0]["KeyName"]][2:] == [
        f"used only by {instance}, removed first", "removed"]
    assert not set(table) & set(foreign.values())
    # the log tells the story first and ends with the table
    assert out.index(f"removing instance {instance}") < out.index("done: ")
    assert out.rstrip().splitlines()[-1].startswith("+--")


def test_a_dry_run_lists_what_would_go_and_removes_nothing(tmp_path, env, capsys):
    left = kept_build(tmp_path)
    foreign_resources()
    before = inventory()
    build_task(env, "failed")
    code, out = purge(capsys, "--min-age", "0", "--dry-run")
    assert code == 0
    assert inventory() == before
    actions = {rid: row[3] for rid, row in rows(out).items()}
    assert actions[left["instances"][0]["InstanceId"]] == "would remove"
    assert actions[left["groups"][0]["GroupId"]] == "would remove"
    assert actions[left["keys"][0]["KeyName"]] == "would remove"
    assert set(actions.values()) == {"would remove"}
    assert "(dry run: nothing is removed)" in out


def test_the_leftovers_of_a_build_task_still_pending_stay(tmp_path, env, capsys):
    left = kept_build(tmp_path)
    build_task(env, state=None)
    before = inventory()
    code, out = purge(capsys, "--min-age", "0")
    assert code == 0
    assert inventory() == before
    instance = left["instances"][0]["InstanceId"]
    assert rows(out)[instance][2:] == [
        f"stopped builder (tagged cib:builder); kept: build task {TASK_ID} is pending", "kept"]


def test_leftovers_younger_than_the_default_min_age_stay(tmp_path, env, capsys):
    left = kept_build(tmp_path)
    build_task(env, "completed")
    before = inventory()
    code, out = purge(capsys)
    assert code == 0
    assert inventory() == before
    assert "younger than --min-age" in rows(out)[left["instances"][0]["InstanceId"]][2]


def test_a_builder_security_group_a_foreign_interface_uses_stays(tmp_path, env, capsys):
    left = kept_build(tmp_path)
    build_task(env, "completed")
    ec2 = boto3.client("ec2", region_name=REGION)
    group = left["groups"][0]["GroupId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    interface = ec2.create_network_interface(SubnetId=subnet, Groups=[group])[
        "NetworkInterface"]["NetworkInterfaceId"]
    code, out = purge(capsys, "--min-age", "0")
    assert code == 0
    assert [g["GroupId"] for g in leftovers()["groups"]] == [group]
    assert leftovers()["instances"] == [] and leftovers()["keys"] == []
    assert f"in use by {interface}" in rows(out)[group][2]


def test_an_available_builder_volume_goes_and_an_attached_one_of_a_running_builder_stays(
        env, capsys):
    ec2 = boto3.client("ec2", region_name=REGION)
    ours = [{"Key": "cib:builder", "Value": "true"}]
    loose = ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a", TagSpecifications=[
        {"ResourceType": "volume", "Tags": ours}])["VolumeId"]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    running = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": kind, "Tags": ours} for kind in ("instance", "volume")])
    instance = running["Instances"][0]["InstanceId"]
    code, out = purge(capsys, "--min-age", "0")
    assert code == 0
    volumes = {v["VolumeId"]: v["State"] for v in ec2.describe_volumes()["Volumes"]}
    assert loose not in volumes
    assert list(volumes.values()) == ["in-use"]
    assert set(rows(out)) == {loose}
    assert ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "State"]["Name"] == "running"


def test_an_unknown_cloud_or_a_bad_min_age_is_exit_2_before_any_cloud_call(env, capsys):
    assert main(["purge", "--cloud", "oracle", "--region", "us-central1"]) == 2
    assert "purging is supported on amazon, aws, azure, google" in capsys.readouterr().err
    assert main(["purge", "--cloud", "aws", "--region", REGION, "--min-age", "soon",
                 "--config-dir", str(CONFIG_DIR)]) == 2
    assert "--min-age 'soon' is not a duration" in capsys.readouterr().err
