"""Rules the config model answers once for every reader. What a disk's `variant` means on Azure
(config.model.azure_disk_sku), for the builder VM and the pool's launch configs alike:
cloud-image-builder made `ssd` a standard SSD in both, where we once made it a premium SSD for
builders and a standard one for workers. An image's OS family (config.model.os_family), for
the bootstrap, the builders, the pools and the graph's worker OS."""

from __future__ import annotations

import pytest

from cib_decision import pools
from cib_decision.config.model import Target, azure_disk_sku, os_family

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
