"""Rules the config model answers once for every reader. What a disk's `variant` means on Azure
(config.model.azure_disk_sku), for the builder VM and the pool's launch configs alike:
cloud-image-builder made `ssd` a standard SSD in both, where we once made it a premium SSD for
builders and a standard one for workers. An image's OS family (config.model.os_family), for
the bootstrap, the builders, the pools and the graph's worker OS. A disk's type on every cloud,
the machine a builder runs on, the Google zone, a pool's defaults: Target and Pool accessors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cib_decision import pools
from cib_decision.config.model import Pool, Target, azure_disk_sku, os_family
from cib_decision.images.google_machine import instance_body

from .pools_support import images, request


@pytest.mark.parametrize("disk, sku", [
    ({}, "StandardSSD_LRS"),  # the default variant is ssd
    ({"variant": "ssd"}, "StandardSSD_LRS"),
    ({"variant": "SSD"}, "StandardSSD_LRS"),
    ({"variant": "standard-ssd"}, "StandardSSD_LRS"),
    ({"variant": "premium"}, "Premium_LRS"),
    ({"variant": "hdd"}, "Standard_LRS"),
    ({"variant": "standard"}, "Standard_LRS"),
    ({"variant": "Premium_ZRS"}, "Premium_ZRS"),  # Azure's own names as written
])
def test_a_disk_variant_means_one_azure_sku(disk, sku):
    assert azure_disk_sku(disk) == sku


def test_a_pools_workers_get_the_sku_of_their_targets_os_disk():
    pool_id = "gecko-t/win10-64-azure"
    definition = pools.render(request(pool_id), images(pool_id, None, 0), None)
    key = request(pool_id).key
    for launch_config in definition.launch_configs:
        target = next(t for t in key.targets if t.region == launch_config["location"])
        os_disk = next(d for d in target.raw["disk"] if d.get("os"))
        assert launch_config["storageProfile"]["osDisk"]["managedDisk"] == {
            "storageAccountType": azure_disk_sku(os_disk)}


@pytest.mark.parametrize("os, family", [
    ("Windows 10", "windows"), ("Windows Server 2022", "windows"),
    ("Microsoft Windows Server", "windows"),  # named anywhere in `os`, for every reader
    ("Ubuntu 24.04", "linux"), ("", "linux")])
def test_an_images_os_family_is_one_rule_for_bootstrap_builders_pools_and_graph(os, family):
    from cib_decision.images.bootstrap import is_windows

    assert os_family({"os": os}) == family
    assert is_windows({"os": os}) is (family == "windows")


@pytest.mark.parametrize("machine, size", [
    ({"type": "m5.large"}, "m5.large"),
    ({"format": "Standard_DS{0}_v2", "cpu": 4}, "Standard_DS4_v2"),
    ({"format": "Standard_DS{0}_v2"}, "Standard_DS2_v2"),  # builders and workers alike
    ({}, None)])
def test_a_targets_machine_size_is_one_rule_for_builders_and_workers(machine, size):
    target = Target("azure/eastus", "azure", "eastus", {"machine": machine})
    assert target.machine_size == size


def test_a_targets_copies_os_disk_and_tags_are_read_once_for_every_reader():
    target = Target("amazon/us-east-1", "amazon", "us-east-1", {
        "copies": ["US West 2", "eu-central-1"],
        "disk": [{"os": False, "size": 96}, {"os": True, "size": 64}],
        "tag": [{"name": "deploymentId", "value": 7}]})
    assert target.copies == ("uswest2", "eu-central-1")
    assert target.os_disk == {"os": True, "size": 64}
    assert target.tags == {"deploymentId": "7"}


@pytest.mark.parametrize("platform, disk, disk_type", [
    ("amazon", {"os": True}, "gp3"),
    ("amazon", {"os": True, "variant": "io2"}, "io2"),
    ("google", {"os": True}, "pd-balanced"),
    ("google", {"os": True, "variant": "pd-ssd"}, "pd-ssd"),
    ("azure", {"os": True}, "StandardSSD_LRS"),  # the Azure rule, azure_disk_sku
    ("azure", {"os": True, "variant": "premium"}, "Premium_LRS")])
def test_a_disks_type_is_one_rule_per_cloud_for_builders_and_workers(platform, disk, disk_type):
    assert Target("t", platform, "r", {"disk": [disk]}).disk_type(disk) == disk_type


@pytest.mark.parametrize("platform, default", [
    ("amazon", "m5.large"), ("azure", "Standard_D2s_v3"), ("google", "n2-standard-4")])
def test_a_builder_runs_on_the_targets_machine_size_else_its_clouds_default(platform, default):
    assert Target("t", platform, "r", {}).builder_machine_size == default
    assert Target("t", platform, "r", {"machine": {"type": "big"}}).builder_machine_size == "big"
    formatted = Target("t", platform, "r", {"machine": {"format": "s{0}", "cpu": 8}})
    assert formatted.builder_machine_size == formatted.machine_size == "s8"


def test_workers_get_no_default_machine_size_a_pool_needs_the_targets_own():
    base = request("gecko-t/ubuntu-2404-gcp")
    raw = {k: v for k, v in base.key.targets[1].raw.items() if k != "machine"}
    target = Target(base.key.targets[1].id, "google", "us-central1", raw)
    key = replace(base.key, targets=(base.key.targets[0], target))
    with pytest.raises(pools.PoolError, match=r"no machine\.type or machine\.format"):
        pools.render(replace(base, key=key), images("gecko-t/ubuntu-2404-gcp"))


def test_a_google_pool_and_its_builder_use_the_targets_zone_machine_and_disk_type():
    pool_id = "gecko-t/ubuntu-2404-gcp"
    definition = pools.render(request(pool_id), images(pool_id), None)
    (launch_config,) = definition.launch_configs
    target = request(pool_id).key.target("google/us-central1")
    body = instance_body(target, "builder", "base", [], {}, "")
    assert launch_config["zone"] == target.zone == "us-central1-a"
    assert launch_config["machineType"] == body["machineType"] == \
        "zones/us-central1-a/machineTypes/n2-standard-4"
    assert launch_config["disks"][0]["initializeParams"]["diskType"] == \
        body["disks"][0]["initializeParams"]["diskType"] == \
        "zones/us-central1-a/diskTypes/pd-balanced"


@pytest.mark.parametrize("zone, region, expected", [
    ("us-central1-a", "us-central1", "us-central1-a"),
    ("us-central1-a", "europe-west4", "europe-west4-b"),  # a region the image is copied to
    (None, "us-central1", "us-central1-b")])
def test_a_google_targets_machines_run_in_its_zone_or_the_regions_b_zone(zone, region, expected):
    assert Target("t", "google", "us-central1", {"zone": zone}).zone_in(region) == expected


def test_a_targets_cloud_settings_are_none_when_not_written():
    target = Target("t", "google", "us-central1", {"project": "", "machine": {}})
    assert (target.project, target.zone, target.bucket, target.gallery) == (None,) * 4
    assert (target.network, target.public_ip, target.hyperv) == ({}, False, "V1")
    assert target.bootstrap_executions == []


def test_a_pools_defaults_are_decided_once_in_the_model():
    pool = Pool("d", "v", {"provider": "p", "locations": ["x"]})
    assert pool.capacity == (0, 1)
    assert (pool.registration_timeout, pool.reregistration_timeout) == (3600, 345600)
    assert (pool.spot, pool.owner, pool.provider) == (False, None, "p")
    written = Pool("d", "v", {"provider": "p", "capacity": {"maximum": 9}, "lifecycle": "spot",
                              "timeout": {"registration": 60}, "owner": "a@example.com"})
    assert written.capacity == (0, 9)
    assert (written.registration_timeout, written.reregistration_timeout) == (60, 345600)
    assert (written.spot, written.owner) == (True, "a@example.com")


def test_a_pools_rendered_definition_takes_the_models_answers():
    pool_id = "gecko-t/ubuntu-2404-gcp"
    pool = request(pool_id).pool
    body = pools.render(request(pool_id), images(pool_id), None).body
    assert (body["providerId"], body["owner"]) == (pool.provider, pool.owner)
    assert (body["config"]["minCapacity"], body["config"]["maxCapacity"]) == pool.capacity
    assert body["config"]["lifecycle"]["registrationTimeout"] == pool.registration_timeout
    assert body["config"]["launchConfigs"][0]["scheduling"]["provisioningModel"] == "SPOT"
