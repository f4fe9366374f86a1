"""`cib promote` from a staging to a production local Taskcluster, with the images in moto:
it copies the release's images to the regions the production pools lack, builds nothing,
deploys the pools from the promoted record and moves production's pointers; a rerun changes
nothing."""

from __future__ import annotations

import os
import shutil

import boto3
import pytest
import yaml
from moto import mock_aws

import taskcluster
from cib_decision import manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.lifecycle import pointers
from cib_decision.lifecycle.promote import plan_copies
from cib_decision.manifest import ReleaseImage
from cib_decision.signing import SignatureError, SigningKey, sign_release, verify_release

from . import promote_support as support
from .conftest import CONFIG_DIR
from .promote_support import BUILD_TASK, COMMIT, CREATED, promoted_record, writes
from .signing_keys import generate

KEY, POOL = "win2022-64", "gecko-1/win2022-64-aws"


@pytest.fixture
def production(production_task, monkeypatch):
    """moto's AWS and a promote task in production."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield production_task


def digest(key: str = KEY) -> str:
    return support.machine_digest(key, "amazon/us-east-1")


def staging_build(regions=("us-east-1",), key: str = KEY) -> list[ReleaseImage]:
    """The AMIs a staging build of `key` made (registered from a snapshot: no instance),
    tagged as builds tag them; one release image per region."""
    machine = digest(key)
    name = f"{key}-{machine[:12]}"
    images = []
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region)
        volume = ec2.create_volume(Size=8, AvailabilityZone=f"{region}a")["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        ami = ec2.register_image(
            Name=name, RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot}}],
            TagSpecifications=[{"ResourceType": "image", "Tags": [
                {"Key": "cib:key", "Value": key}, {"Key": "cib:machine-digest", "Value": machine},
                {"Key": "cib:environment", "Value": "staging"}]}])["ImageId"]
        images.append(ReleaseImage("amazon", region, f"amazon/{region}", ami, name, machine,
                                   BUILD_TASK))
    return images


def released_in_staging(staging, images, forge=None) -> manifest.Release:
    return support.released_in_staging(staging, KEY, images, forge)


def promote(capsys, staging, tmp_path, *extra):
    return support.promote(capsys, staging, tmp_path, KEY, *extra)


def images_in(region):
    return boto3.client("ec2", region_name=region).describe_images(Owners=["self"])["Images"]


def instances():
    return [i for region in ("us-east-1", "us-west-2")
            for r in boto3.client("ec2", region_name=region).describe_instances()[
                "Reservations"] for i in r["Instances"]]


def running(dev):
    return {lc["region"]: lc["launchConfig"]["ImageId"]
            for lc in dev.worker_pools()[POOL]["config"]["launchConfigs"]}


def test_promotion_copies_the_missing_region_without_building_and_deploys_production(
        staging, production, tmp_path, capsys):
    built = staging_build()
    source = released_in_staging(staging, built)
    code, _, err = promote(capsys, staging, tmp_path)
    assert code == 0, err
    assert instances() == []  # no builder was launched
    (copy,) = images_in("us-west-2")
    assert copy["Name"] == built[0].name and built[0].id in copy["Description"]
    assert {t["Key"]: t["Value"] for t in copy["Tags"]}["cib:machine-digest"] == digest()
    promoted = promoted_record(tmp_path)
    assert promoted.sha256 != source.sha256
    assert (promoted.disk_digest, promoted.config_commit, promoted.created) == (
        source.disk_digest, source.config_commit, source.created)
    assert {(i.target, i.id, i.machine_digest) for i in promoted.images} == {
        ("amazon/us-east-1", built[0].id, digest()), ("amazon/us-west-2", copy["ImageId"],
                                                      digest())}
    assert {t["Key"]: t["Value"] for t in images_in("us-west-2")[0]["Tags"]}[
        "cib:release-sha256"] == promoted.sha256
    assert running(production) == {"us-east-1": built[0].id, "us-west-2": copy["ImageId"]}
    index = taskcluster.Index({"rootUrl": production.root_url})
    pointer = pointers.find(index, pointers.release_path("production", KEY)).release
    assert pointer == pointers.ReleaseRef(KEY, promoted.sha256, os.environ["TASK_ID"])
    # the worker publishes the artifacts directory: the pointer then reads the record
    production.resolve_task(pointer.task_id, artifacts={
        manifest.RELEASE_ARTIFACT: promoted.to_json()})
    assert pointers.read_release(taskcluster.Queue({"rootUrl": production.root_url}),
                                 pointer) == promoted
    assert [(e.action, e.release) for e in pointers.history(index, "production", POOL)] == [
        ("promote", pointer)]
    assert "copying" in err and "promoted release" in err


def test_promotion_run_again_copies_writes_and_deploys_nothing(staging, production, tmp_path,
                                                                capsys):
    released_in_staging(staging, staging_build())
    assert promote(capsys, staging, tmp_path)[0] == 0
    first, before = promoted_record(tmp_path), writes(production)
    code, _, err = promote(capsys, staging, tmp_path)
    assert code == 0, err
    assert len(images_in("us-west-2")) == 1 and "already has" in err
    assert promoted_record(tmp_path) == first
    assert writes(production) == before


def test_a_release_with_every_region_is_promoted_as_it_is(staging, production, tmp_path,
                                                          capsys):
    built = staging_build(("us-east-1", "us-west-2"))
    source = released_in_staging(staging, built)
    code, _, err = promote(capsys, staging, tmp_path)
    assert code == 0, err
    assert promoted_record(tmp_path) == source
    assert len(images_in("us-west-2")) == 1 and instances() == []
    assert running(production) == {i.region: i.id for i in built}


def test_a_pool_on_a_cloud_the_environment_does_not_build_on_is_left_as_it_is(
        staging, production, tmp_path, capsys):
    """Production builds on AWS and Azure only (environments.yaml `platforms`): promotion
    deploys ubuntu-2404's AWS pool and leaves its Google pool alone, as pushes do."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    environments["production"]["platforms"] = ["amazon", "azure"]
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    built = staging_build(key="ubuntu-2404")
    support.released_in_staging(staging, "ubuntu-2404", built)
    code, _, err = support.cib(
        capsys, "promote", "--key", "ubuntu-2404", "--from", "staging", "--to", "production",
        "--from-root-url", staging.root_url, "--config-dir", str(config), "--artifacts",
        str(tmp_path / "artifacts"))
    assert code == 0, err
    assert "gecko-t/ubuntu-2404-gcp: not deployed (google is not enabled in environment " \
           "production" in err
    deployed = production.worker_pools()
    assert "gecko-t/ubuntu-2404-gcp" not in deployed
    assert {lc["launchConfig"]["ImageId"] for lc in deployed["gecko-t/ubuntu-2404-aws"][
        "config"]["launchConfigs"]} == {built[0].id}


def test_a_dry_run_copies_deploys_and_points_nothing(staging, production, tmp_path, capsys):
    released_in_staging(staging, staging_build())
    code, _, err = promote(capsys, staging, tmp_path, "--dry-run")
    assert code == 0, err
    assert "would copy" in err and f"{POOL}: would create" in err
    assert images_in("us-west-2") == [] and production.worker_pools() == {}
    assert writes(production) == 0


def test_promotion_refuses_a_missing_pointer_and_a_release_failing_its_seal(
        staging, production, tmp_path, capsys):
    code, _, err = promote(capsys, staging, tmp_path)
    assert code == 2 and "staging has no release of win2022-64" in err
    released_in_staging(staging, staging_build(),
                        forge=lambda data: data["images"][0].update(id="ami-0123456789abcdef0"))
    code, _, err = promote(capsys, staging, tmp_path)
    assert code == 2 and "fails verification" in err and "Traceback" not in err
    assert images_in("us-west-2") == [] and production.worker_pools() == {}


def test_the_plan_copies_only_images_of_the_configs_machine_digest():
    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    key, digests = fleet.keys[KEY], fleet_digests(fleet)[KEY]
    other = ReleaseImage("amazon", "us-east-1", "amazon/us-east-1", "ami-0123456789abcdef0",
                         f"{KEY}-{'ab' * 6}", "ab" * 32, BUILD_TASK)
    release = manifest.release_record(KEY, disk_digest=digests.disk, disk_sha256=None,
                                      config_commit=COMMIT, created=CREATED, images=[other])
    plan = plan_copies(key, digests, release)
    assert plan.copies == []
    assert plan.unserved == [f"{POOL} amazon/us-west-2: the release has no image of its "
                             "machine digest"]


@pytest.fixture
def signing_config(tmp_path):
    """The bundled config with staging and production each signing with their own test key
    (public keys beside the config); production's private key in its secrets service."""
    keys = {"staging": generate("staging-signer"), "production": generate("production-signer")}
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    (tmp_path / "keys").mkdir()
    for name, key in keys.items():
        environments[name]["signing"] = {"secret": f"project/cib/level-{{level}}/{name}-signing",
                                         "public-key": f"keys/{name}-{{level}}.asc"}
        (tmp_path / "keys" / f"{name}-3.asc").write_text(key.public)
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    return config, keys


def test_promotion_into_a_signing_environment_signs_with_its_key(
        staging, production, tmp_path, capsys, signing_config):
    config, keys = signing_config
    production.set_secret("project/cib/level-3/production-signing",
                          keys["production"].secret())
    staging_key = SigningKey.from_secret(keys["staging"].secret(), "staging")
    released_in_staging(staging, staging_build(), forge=lambda data: data.update(
        signature=sign_release(manifest.parse_release(data), staging_key)[0].signature))
    code, _, err = promote(capsys, staging, tmp_path, "--config-dir", str(config))
    assert code == 0, err
    promoted = promoted_record(tmp_path)
    verify_release(promoted, keys["production"].public, "promoted")
    with pytest.raises(SignatureError):
        verify_release(promoted, keys["staging"].public, "promoted")
    first = (tmp_path / "artifacts" / "release.json").read_bytes()
    code, _, err = promote(capsys, staging, tmp_path, "--config-dir", str(config))
    assert code == 0, err
    assert (tmp_path / "artifacts" / "release.json").read_bytes() == first  # signed alike


def test_promotion_refuses_an_unsigned_release_of_a_signing_environment(
        staging, production, tmp_path, capsys, signing_config):
    config, _ = signing_config
    released_in_staging(staging, staging_build())
    code, _, err = promote(capsys, staging, tmp_path, "--config-dir", str(config))
    assert code == 2 and "signature" in err
    assert not (tmp_path / "artifacts" / "release.json").exists()
    assert instances() == [] and len(images_in("us-west-2")) == 0
