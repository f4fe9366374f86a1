"""One rule for what a disk's `variant` means on Azure (config.model.azure_disk_sku), used by the
builder VM and by the pool's launch configs alike: cloud-image-builder made `ssd` a standard SSD
in both, where we once made it a premium SSD for builders and a standard one for workers."""

from __future__ import annotations

import pytest

from cib_decision import pools
from cib_decision.config.model import azure_disk_sku

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
