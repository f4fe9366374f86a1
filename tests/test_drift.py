"""`cib drift` against the local Taskcluster (`dev_taskcluster`), moto's AWS and the Azure fake:
a pool deployed as a push deploys it reports nothing; each kind of drift between the config,
worker-manager, the release pointers and the images in the clouds is found, with the fix it
names."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from moto import mock_aws

import taskcluster
from cib_decision import manifest, pools
from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake, StaticToken
from cib_decision.lifecycle import pointers

from .conftest import CONFIG_DIR
from .pools_support import cib, fleet, release_of, task
from .pools_support import in_task as in_task  # a fixture, used by name

AZURE = "gecko-t/win10-64-azure"
DEPLOYED = (AZURE, "gecko-1/win2022-64-aws")  # the pools a test deploys, as a push would

pytestmark = pytest.mark.usefixtures("in_task", "clouds")


@pytest.fixture
def clouds(monkeypatch, dev_taskcluster):
    """moto's AWS (without its public AMIs) and the Azure fake with the bundled fleet's
    resource groups, served in this process; the local Taskcluster stays real."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Azure, "from_environment", classmethod(
        lambda cls, environ=None: cls(SUBSCRIPTION, StaticToken(), polling_interval=0,
                                      retry_total=0)))
    with mock_aws(), AzureFake.running() as azure:
        azure.mock.add_passthru(dev_taskcluster.root_url)
        azure.add_fleet(fleet())
        yield azure


def in_clouds(azure, release: manifest.Release) -> manifest.Release:
    """`release` with each image made in its cloud (moto, the Azure fake) and its real id."""
    images = []
    for image in release.images:
        if image.platform == "amazon":
            made = boto3.client("ec2", region_name=image.region).register_image(
                Name=image.name, RootDeviceName="/dev/sda1")["ImageId"]
        else:
            group = image.id.split("/resourceGroups/")[1].split("/")[0]
            made = azure.put("microsoft.compute/images", group, [image.name], image.region,
                             {"storageProfile": {"osDisk": {"osType": "Windows"}}})["id"]
        images.append(dataclasses.replace(image, id=made))
    return manifest.release_record(release.key, disk_digest=release.disk_digest,
                                   disk_sha256=release.disk_sha256,
                                   config_commit=release.config_commit,
                                   created=manifest.parse_time(release.created),
                                   images=images)


def deploy(dev, monkeypatch, capsys, pool_id, build=0, azure=None):
    """A tag task's release of the pool's key (another `build` for other images; made in the
    clouds when `azure` is given), and the pool deployed from it by `cib pool apply` as its
    worker-pool task runs it."""
    tag = task(dev)
    release = release_of(pool_id, build=build)
    if azure is not None:
        release = in_clouds(azure, release)
    dev.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: release.to_json()})
    monkeypatch.setenv("TASK_ID", task(dev, [tag]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                       pool_id)
    monkeypatch.delenv("TASK_ID")
    assert code == 0, err
    return tag


def drift(capsys, *args):
    code, out, err = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                         "staging", "--format", "json", *args)
    assert code in (0, 1), err
    return code, {(d["subject"], d["kind"]): d for d in json.loads(out)["drift"]}


@pytest.fixture
def deployed(dev_taskcluster, monkeypatch, capsys, clouds):
    for pool_id in DEPLOYED:
        deploy(dev_taskcluster, monkeypatch, capsys, pool_id, azure=clouds)
    return dev_taskcluster


def deployable_pools():
    """The config's pools cib deploys (the Google one it does not build yet is left out)."""
    from cib_decision.config import DirectorySource, load_fleet
    from cib_decision.selection import pool_not_built

    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    return {pool.id for key in fleet.keys.values() for pool in key.pools
            if not pool_not_built(key, pool, fleet, "staging")}


def test_pools_deployed_from_their_release_have_no_drift_and_the_others_are_undeployed(
        deployed, capsys):
    code, found = drift(capsys)
    assert code == 1
    assert set(found) == {(p, "not-deployed") for p in deployable_pools() - set(DEPLOYED)}
    assert found[("gecko-t/ubuntu-2404-aws", "not-deployed")]["fix"] == (
        "push a commit whose message says `pool-deploy` and `include pools: "
        "gecko-t/ubuntu-2404-aws`")


def test_a_pool_edited_by_hand_is_found_with_the_fields_that_differ(deployed, capsys):
    wm = taskcluster.WorkerManager(deployed.options())
    pool = wm.workerPool(AZURE)
    body = pools.comparable(pool)
    body["config"]["maxCapacity"] += 10
    body["owner"] = "someone-else@example.com"
    wm.updateWorkerPool(AZURE, body)
    _, found = drift(capsys)
    edited = found[(AZURE, "hand-edited")]
    assert "in config.maxCapacity, owner" in edited["detail"]
    assert f"cib rollback --pool {AZURE} --to " in edited["fix"]


def test_an_image_no_release_names_and_a_pool_behind_its_key_are_found(
        deployed, monkeypatch, capsys, clouds):
    index = taskcluster.Index(deployed.options())
    # the key moves on (another build released and deployed elsewhere) while the pool stays
    newer = in_clouds(clouds, release_of(AZURE, build=1))
    tag = task(deployed)
    deployed.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: newer.to_json()})
    pointers.set_release(index, "staging", pointers.ReleaseRef(newer.key, newer.sha256, tag),
                         "deploy", lambda line: None)
    _, found = drift(capsys)
    assert f"its key's current release is {newer.sha256[:12]}" in \
        found[(AZURE, "behind-key")]["detail"]
    # a launch config switched to an image of that build by hand
    wm = taskcluster.WorkerManager(deployed.options())
    body = pools.comparable(wm.workerPool(AZURE))
    launch = body["config"]["launchConfigs"][0]
    image = next(i for i in newer.images if i.region == launch["location"])
    launch["storageProfile"]["imageReference"]["id"] = image.id
    launch["workerManager"]["launchConfigId"] = "lc-edited-by-hand"  # as the UI makes one
    wm.updateWorkerPool(AZURE, body)
    _, found = drift(capsys)
    assert f"{launch['location']} runs {image.id}, which release" in \
        found[(AZURE, "unreleased-image")]["detail"]


def test_a_pool_deployed_by_hand_and_one_whose_key_left_the_config_are_found(
        deployed, capsys):
    wm = taskcluster.WorkerManager(deployed.options())
    body = pools.comparable(wm.workerPool(AZURE))
    for pool_id in ("gecko-t/win7-32-azure", "gecko-t/ubuntu-2404-aws"):
        wm.createWorkerPool(pool_id, body)
    _, found = drift(capsys)
    assert found[("gecko-t/win7-32-azure", "not-in-config")]["fix"].startswith(
        "delete it in worker-manager")
    assert ("gecko-t/ubuntu-2404-aws", "no-release") in found
    assert ("gecko-t/ubuntu-2404-aws", "not-deployed") not in found


def test_the_table_says_each_difference_and_its_fix_or_that_there_is_none(deployed, capsys):
    code, out, _ = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                       "staging")
    assert code == 1
    assert "  gecko-t/ubuntu-2404-aws  not-deployed: in the config, not in worker-manager\n" \
           "      fix: push a commit whose message says `pool-deploy`" in out


AWS = "gecko-1/win2022-64-aws"
AWS_KEY, AZURE_KEY = "win2022-64", "win10-64"
REBUILD = "push a commit whose message says `overwrite-machine-image` and `include keys: {}`"


def running(dev, pool_id: str) -> dict[str, str]:
    """The image each region of the pool runs, as worker-manager has it."""
    pool = taskcluster.WorkerManager(dev.options()).workerPool(pool_id)
    return {image.region: image.id for image in pools.current_images(
        "aws" if pool_id.endswith("-aws") else "azure", pool).values()}


def current_release(dev, key: str) -> manifest.Release:
    index, queue = (taskcluster.Index(dev.options()), taskcluster.Queue(dev.options()))
    entry = pointers.find(index, pointers.release_path("staging", key))
    return pointers.read_release(queue, entry.release)


def set_current(dev, release: manifest.Release) -> None:
    """`release` becomes its key's current release in staging (as a deploy of it would)."""
    tag = task(dev)
    dev.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: release.to_json()})
    pointers.set_release(taskcluster.Index(dev.options()), "staging",
                         pointers.ReleaseRef(release.key, release.sha256, tag), "deploy",
                         lambda line: None)


def test_a_pool_running_amis_gc_deregistered_is_told_to_rebuild_its_key(deployed, capsys):
    image = running(deployed, AWS)["us-west-2"]
    boto3.client("ec2", region_name="us-west-2").deregister_image(ImageId=image)
    code, found = drift(capsys)
    assert code == 1
    gone = found[(AWS, "image-gone")]
    assert gone["detail"] == (f"us-west-2 runs {image}, which amazon no longer has: no new "
                              "worker starts there")
    assert gone["fix"] == REBUILD.format(AWS_KEY)
    # the key's current release names it too: a deploy from it would run it again
    assert image in found[(AWS_KEY, "release-image-gone")]["detail"]
    assert not [d for d in found if d[0] == AZURE and d[1] != "not-deployed"]


def test_an_azure_image_deleted_by_hand_is_gone_for_its_pool_and_its_release(
        deployed, capsys, clouds):
    image = running(deployed, AZURE)["eastus2"]
    Azure.from_environment().delete_id(image)
    _, found = drift(capsys)
    assert f"eastus2 runs {image}, which azure no longer has" in \
        found[(AZURE, "image-gone")]["detail"]
    released = found[(AZURE_KEY, "release-image-gone")]
    assert f"names {image} in azure eastus2, which is gone" in released["detail"]
    assert released["fix"].startswith(REBUILD.format(AZURE_KEY))
    assert "`cib promote --key win10-64 --from <where it was verified> --to staging`" in \
        released["fix"]


def test_a_launch_config_switched_to_an_image_that_never_existed_is_told_to_redeploy(
        deployed, capsys):
    wm = taskcluster.WorkerManager(deployed.options())
    body = pools.comparable(wm.workerPool(AWS))
    launch = next(c for c in body["config"]["launchConfigs"] if c["region"] == "us-east-1")
    launch["launchConfig"]["ImageId"] = "ami-0123456789abcdef0"
    launch["workerManager"]["launchConfigId"] = "lc-edited-by-hand"  # as the UI makes one
    wm.updateWorkerPool(AWS, body)
    _, found = drift(capsys)
    assert found[(AWS, "image-gone")]["fix"] == (
        f"push a commit whose message says `pool-deploy` and `include pools: {AWS}`")
    assert (AWS, "unreleased-image") in found


def test_a_region_without_a_launch_config_is_found_with_the_fix_its_release_allows(
        dev_taskcluster, monkeypatch, capsys, clouds):
    # released and deployed in one region of two: the other needs a build
    tag = task(dev_taskcluster)
    partial = in_clouds(clouds, release_of(AWS, regions={"us-east-1"}))
    dev_taskcluster.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: partial.to_json()})
    monkeypatch.setenv("TASK_ID", task(dev_taskcluster, [tag]))
    assert cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AWS)[0] == 0
    monkeypatch.delenv("TASK_ID")
    _, found = drift(capsys)
    missing = found[(AWS, "no-image")]
    assert missing["detail"] == ("us-west-2 is a location of the pool in the config, but no "
                                 "launch config runs an image there")
    assert missing["fix"] == REBUILD.format(AWS_KEY)
    # once the key's current release has the region, deploying the pool again is the fix
    set_current(dev_taskcluster, in_clouds(clouds, release_of(AWS, build=1)))
    _, found = drift(capsys)
    assert found[(AWS, "no-image")]["fix"] == (
        f"push a commit whose message says `pool-deploy` and `include pools: {AWS}`")


def test_a_current_release_whose_image_is_gone_is_found_before_any_pool_runs_it(
        deployed, capsys, clouds):
    release = current_release(deployed, AWS_KEY)
    newer = in_clouds(clouds, release_of(AWS, build=1))
    set_current(deployed, newer)
    gone = next(i for i in newer.images if i.region == "us-east-1")
    boto3.client("ec2", region_name="us-east-1").deregister_image(ImageId=gone.id)
    _, found = drift(capsys)
    assert f"release {newer.sha256[:12]} (current in staging) names {gone.id}" in \
        found[(AWS_KEY, "release-image-gone")]["detail"]
    assert (AWS, "behind-key") in found  # the pool still runs the older, whole release
    assert (AWS, "image-gone") not in found
    assert release.sha256 != newer.sha256


def test_a_cloud_that_cannot_be_read_fails_the_command_saying_what_and_reports_nothing(
        deployed, capsys, clouds, tmp_path):
    clouds.fail("GET Microsoft.Compute/images", status=503, code="ServiceUnavailable",
                times=10)
    code, out, err = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                         "staging", "--artifacts", str(tmp_path))
    assert code == 75, err
    assert "error: Azure" in err and "reading image" in err
    assert out == ""
    text = (tmp_path / "github" / "customCheckRunText.md").read_text()
    assert text.startswith("### cib drift could not read staging\n\nNothing was compared")
    assert not (tmp_path / "drift.json").exists()


def test_the_artifacts_are_the_check_run_text_and_the_json_of_the_drift(
        deployed, capsys, tmp_path):
    code, out, _ = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                       "staging", "--artifacts", str(tmp_path))
    assert code == 1
    text = (tmp_path / "github" / "customCheckRunText.md").read_text()
    result = json.loads((tmp_path / "drift.json").read_text())
    count = len(result["drift"])
    assert text.startswith(f"### {count} differences in staging\n")
    assert "| `gecko-t/ubuntu-2404-aws` | not-deployed | in the config, not in " \
           "worker-manager | push a commit whose message says `pool-deploy` and " \
           "`include pools: gecko-t/ubuntu-2404-aws` |" in text
    assert out.startswith(f"{count} differences:")
