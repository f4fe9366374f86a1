"""`cib gc --cloud aws` end to end: AMIs and their snapshots in moto, worker pools in the local
Taskcluster (`dev_taskcluster`), whose worker-manager the garbage collector lists page by page
and where faults make a listing fail half-way."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import slugid
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.ec2.models import ec2_backends

import taskcluster
from cib_decision import manifest
from cib_decision.cli import gc as gc_cli
from cib_decision.cli import main
from cib_decision.clouds.aws import EC2, snapshots_of
from cib_decision.devtc.testing import new_task
from cib_decision.errors import TransientError
from cib_decision.images.progress import Progress
from cib_decision.lifecycle import gc_aws, pointers
from cib_decision.lifecycle.references import worker_pool_source

from .imagefleet import COMMIT, TASK_ID, write_fleet

ACCOUNT = "123456789012"
DIGEST = "ab" * 32
NOW = datetime.now(UTC)


@pytest.fixture
def aws(dev_taskcluster, monkeypatch):
    """moto's AWS (without its public AMIs: loading them is most of a test's time); both
    environments of the config read the local Taskcluster (with no retries, so a fault fails
    the listing at once)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL"):
        monkeypatch.delenv(name, raising=False)
    options = gc_cli.environment_options
    monkeypatch.setattr(gc_cli, "environment_options",
                        lambda env: {**options(env), "maxRetries": 0})
    with mock_aws():
        CLIENTS.clear()
        yield


CLIENTS: dict[str, object] = {}


def ec2(region: str = "us-east-1"):
    """One boto3 EC2 client per region and test (a client per call is most of a test's
    time)."""
    if region not in CLIENTS:
        CLIENTS[region] = boto3.client("ec2", region_name=region)
    return CLIENTS[region]


@pytest.fixture
def config(tmp_path, dev_taskcluster):
    """The image-build test fleet (AWS targets in us-east-1 and us-west-2) with production and
    staging both served by the local Taskcluster."""
    directory = write_fleet(tmp_path)
    (directory / "environments.yaml").write_text(yaml.safe_dump({
        name: {"root-url": dev_taskcluster.root_url, "description": name}
        for name in ("production", "staging")}))
    return directory


def ami(name: str, days_old: float, *, region: str = "us-east-1", key: str | None = "linux-test",
        environment: str = "production", digest: str | None = DIGEST,
        tags: dict[str, str] | None = None) -> str:
    """An AMI of this account (with moto's snapshot), tagged as a cib build of `key` unless
    `key`/`digest` are None, made `days_old` days ago; its id."""
    client = ec2(region)
    image_id = client.register_image(Name=name, RootDeviceName="/dev/sda1")["ImageId"]
    wanted = {"Name": name, **(tags or {})}
    if key:
        wanted["cib:key"] = key
    if digest:
        wanted["cib:machine-digest"] = digest
    if key or digest:
        wanted["cib:environment"] = environment
    client.create_tags(Resources=[image_id],
                       Tags=[{"Key": k, "Value": v} for k, v in wanted.items()])
    ec2_backends[ACCOUNT][region].amis[image_id].creation_date = NOW - timedelta(days=days_old)
    return image_id


def snapshot_of(image_id: str, region: str = "us-east-1") -> str:
    (image,) = ec2(region).describe_images(ImageIds=[image_id])["Images"]
    return snapshots_of(image)[0]


def existing_images(region: str = "us-east-1") -> set[str]:
    return {i["ImageId"] for i in ec2(region).describe_images(Owners=["self"])["Images"]}


def snapshot_exists(snapshot_id: str, region: str = "us-east-1") -> bool:
    try:
        ec2(region).describe_snapshots(SnapshotIds=[snapshot_id])
    except ClientError:
        return False
    return True


def deploy_pool(dev, pool_id: str, images: dict[str, str]) -> None:
    """A worker pool whose launch configs run `images` (`{region: ami}`)."""
    taskcluster.WorkerManager(dev.options()).createWorkerPool(pool_id, {
        "providerId": "aws", "description": "a pool", "owner": "dev@example.com",
        "emailOnError": False,
        "config": {"minCapacity": 0, "maxCapacity": 1, "launchConfigs": [
            {"region": region, "launchConfig": {"ImageId": image_id, "InstanceType": "m5.large"}}
            for region, image_id in sorted(images.items())]}})


def gc(capsys, config, *args: str) -> tuple[int, str, str]:
    code = main(["gc", "--cloud", "aws", "--config-dir", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def history(aws, config, dev_taskcluster):
    """Five builds of linux-test in us-east-1 (newest first), the oldest of them and one in
    us-west-2 run by a pool; an untagged image and one with only `cib:key`, both old."""
    builds = [ami(f"linux-test-{n:012x}", days_old=7 * n) for n in range(1, 6)]
    west = ami("linux-test-west", days_old=90, region="us-west-2")
    untagged = ami("someone-elses", days_old=400, key=None, digest=None)
    half = ami("half-tagged", days_old=400, digest=None)
    deploy_pool(dev_taskcluster, "test/linux", {"us-east-1": builds[-1], "us-west-2": west})
    return {"builds": builds, "west": west, "untagged": untagged, "half": half,
            "snapshots": {i: snapshot_of(i) for i in builds}}


def test_gc_keeps_what_pools_run_and_the_newest_and_deletes_the_rest_with_their_snapshots(
        history, config, capsys):
    builds = history["builds"]
    code, out, err = gc(capsys, config, "--keep", "1")
    assert code == 0, err
    left = existing_images()
    assert builds[0] in left  # the newest
    assert builds[4] in left  # the oldest, run by test/linux
    assert history["west"] in existing_images("us-west-2")
    assert {history["untagged"], history["half"]} <= left  # not ours: never touched
    for deleted in builds[1:4]:
        assert deleted not in left
        assert not snapshot_exists(history["snapshots"][deleted])
    for kept in (builds[0], builds[4]):
        assert snapshot_exists(history["snapshots"][kept])
    assert f"deleted {builds[1]} linux-test-000000000002 in us-east-1 and its snapshot" in out
    table = out[out.index("action"):]
    assert "referenced by pool test/linux (production); pool test/linux (staging)" in table
    assert "among the newest 1 of linux-test in production" in table
    assert "3 kept" in table and "3 deleted" in table and "2 not ours (never touched)" in table


def test_a_dry_run_lists_what_it_would_delete_and_deletes_nothing(history, config, capsys):
    before = existing_images()
    code, out, _ = gc(capsys, config, "--keep", "1", "--dry-run")
    assert code == 0
    assert existing_images() == before
    for image_id in history["builds"][1:4]:
        assert f"would delete {image_id}" in out
    assert "3 would delete" in out


def test_images_younger_than_the_minimum_age_stay(aws, config, capsys):
    young = [ami(f"linux-test-young{n}", days_old=n / 24) for n in range(1, 4)]
    code, _, err = gc(capsys, config, "--keep", "0", "--min-age", "1 day")
    assert code == 0, err
    assert set(young) <= existing_images()
    code, _, err = gc(capsys, config, "--keep", "0", "--min-age", "2 hours")
    assert existing_images() == {young[0]}


def test_only_the_configs_regions_unless_a_region_is_given(aws, config, capsys):
    elsewhere = ami("linux-test-ireland", days_old=90, region="eu-west-1")
    newer = ami("linux-test-ireland-2", days_old=1, region="eu-west-1")
    assert gc(capsys, config, "--keep", "1")[0] == 0
    assert existing_images("eu-west-1") == {elsewhere, newer}
    code, out, _ = gc(capsys, config, "--keep", "1", "--region", "eu-west-1")
    assert code == 0
    assert existing_images("eu-west-1") == {newer}
    assert "amazon images in eu-west-1" in out


def test_an_environment_narrows_the_images_but_every_environments_pools_are_read(
        aws, config, dev_taskcluster, capsys):
    production = ami("linux-test-prod", days_old=30)
    staging_used = ami("linux-test-stage-used", days_old=30, environment="staging")
    ami("linux-test-stage-old", days_old=40, environment="staging")
    deploy_pool(dev_taskcluster, "test/linux", {"us-east-1": staging_used})
    code, _, err = gc(capsys, config, "--keep", "0", "--environment", "staging")
    assert code == 0, err
    assert existing_images() == {production, staging_used}
    assert dev_taskcluster.stats()["requests"]["worker-manager.listWorkerPools"] == 2


@pytest.mark.parametrize("requests_before, message", [
    (0, "worker-manager failed to list the worker pools of production (page 1) (503)"),
    (1, "the index failed to list cib.v2.cib-decision.pointers.production.release"),
    (3, "worker-manager failed to list the worker pools of staging (page 1) (503)"),
])
def test_a_failed_listing_of_any_environment_deletes_nothing_and_exits_75(
        history, config, dev_taskcluster, capsys, requests_before, message):
    # Requests in order: production's pools, its key and pool pointers, then staging's.
    before = existing_images()
    dev_taskcluster.script_faults(*[""] * requests_before, "503")
    code, out, err = gc(capsys, config, "--keep", "0")
    assert code == 75
    assert existing_images() == before
    assert message in err
    assert "nothing was deleted" in err
    assert "deleted" not in out


def test_an_unknown_environment_is_an_error(aws, config, capsys):
    code, _, err = gc(capsys, config, "--environment", "prod")
    assert code == 2
    assert "no environment prod; the config has production, staging" in err


# --- release pointers and rollback spares -------------------------------------------------------


def silent(_line: str) -> None:
    """A log that drops its lines."""


def released(dev, n: int, environment: str = "production", pool: str = "test/linux") -> str:
    """Release `n` of linux-test: one AMI, its record left by a tag task, deployed to `pool`
    in `environment` (a history entry and the key's pointer); the AMI's id."""
    digest = f"{n:x}" * 64
    name = f"linux-test-{digest[:12]}"
    image_id = ami(name, days_old=100 - n, digest=digest)
    release = manifest.release_record(
        "linux-test", disk_digest="cd" * 32, disk_sha256=None, config_commit=COMMIT,
        created=NOW, images=[manifest.ReleaseImage("amazon", "us-east-1", "amazon/us-east-1",
                                                   image_id, name, digest, TASK_ID)])
    task_id = slugid.nice()
    taskcluster.Queue(dev.options()).createTask(task_id, new_task())
    dev.resolve_task(task_id, artifacts={manifest.RELEASE_ARTIFACT: release.to_json()})
    index = taskcluster.Index(dev.options())
    ref = pointers.ReleaseRef("linux-test", release.sha256, task_id)
    pointers.record_pool(index, environment, pool, ref, "deploy", silent)
    pointers.set_release(index, environment, ref, "deploy", silent)
    return image_id


def test_the_current_release_and_rollback_spares_keep_their_images(
        aws, config, dev_taskcluster, capsys):
    images = [released(dev_taskcluster, n) for n in (1, 2, 3, 4)]  # 4 is current
    code, out, err = gc(capsys, config, "--keep", "0", "--rollback-spares", "1")
    assert code == 0, err
    assert existing_images() == {images[2], images[3]}
    table = out[out.index("action"):]
    assert "rollback spare of test/linux in production: release" in table
    assert "current release of test/linux in production: release" in table
    assert "current release of the key in production" in table


def test_a_release_record_that_cannot_be_read_deletes_nothing(
        aws, config, dev_taskcluster, capsys):
    images = [released(dev_taskcluster, n) for n in (1, 2)]
    old = ami("linux-test-old", days_old=300)
    index = taskcluster.Index(dev_taskcluster.options())
    pointers.record_pool(index, "staging", "test/linux",
                         pointers.ReleaseRef("linux-test", "9" * 64, TASK_ID), "deploy",
                         silent)  # a task that never wrote a release record
    code, _, err = gc(capsys, config, "--keep", "0")
    assert code == 2
    assert "is gone" in err and "nothing was deleted" in err
    assert existing_images() == {*images, old}


# --- the pool listing, page by page -----------------------------------------------------------


def pools_over_pages(dev, image_id: str) -> None:
    """Five pools; the last (on page 3 of pages of 2) runs `image_id`."""
    for n in range(4):
        deploy_pool(dev, f"test/filler-{n}", {"us-east-1": "ami-00000000000000000"})
    deploy_pool(dev, "test/zz-last", {"us-east-1": image_id})


def run_gc(dev, *, keep: int = 0) -> None:
    """`gc_cli.run` on us-east-1 with pages of two pools."""
    wm = taskcluster.WorkerManager(dev.options(max_retries=0))
    ec2 = EC2("us-east-1")
    gc_cli.run([worker_pool_source(wm, "production", page_size=2)],
               lambda: gc_aws.list_images(ec2),
               lambda decisions, log: gc_aws.delete_all(decisions, lambda _: ec2, log),
               keep=keep, min_age=timedelta(0), now=datetime.now(UTC), dry_run=False,
               progress=Progress(io.StringIO()))


def test_an_image_only_the_last_page_refers_to_is_kept(aws, dev_taskcluster):
    used, unused = ami("linux-test-used", days_old=30), ami("linux-test-unused", days_old=30)
    pools_over_pages(dev_taskcluster, used)
    run_gc(dev_taskcluster)
    assert existing_images() == {used}
    assert dev_taskcluster.stats()["requests"]["worker-manager.listWorkerPools"] == 3
    assert unused


@pytest.mark.parametrize("fault", ["500", "drop-before"])
def test_a_page_that_fails_half_way_deletes_nothing(aws, dev_taskcluster, fault):
    used, unused = ami("linux-test-used", days_old=30), ami("linux-test-unused", days_old=30)
    pools_over_pages(dev_taskcluster, used)
    dev_taskcluster.script_faults("", fault)  # page 1 answers, page 2 fails
    with pytest.raises(TransientError, match=r"worker pools of production \(page 2"):
        run_gc(dev_taskcluster)
    assert existing_images() == {used, unused}


def test_regions_are_those_of_the_configs_aws_targets_and_their_copies(tmp_path):
    from cib_decision.config import DirectorySource, load_fleet

    fleet = load_fleet(DirectorySource(write_fleet(tmp_path, copies=("eu-west-1",))))
    assert gc_aws.regions(fleet) == ["eu-west-1", "us-east-1", "us-west-2"]
