"""The Azure fake behaves like ARM and Blob storage for the real SDK clients: long-running
operations polled to their end (or their error), 404s, paging through `nextLink`, tag updates,
injected faults, the rules that make clean-up order matter, and page-blob uploads."""

from __future__ import annotations

import io

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.storage.blob import BlobServiceClient, BlobType

from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake, StaticToken

CLIENT = {"polling_interval": 0, "retry_total": 0}


@pytest.fixture
def fake():
    with AzureFake.running() as served:
        served.add_group("rg", "centralus")
        yield served


@pytest.fixture
def compute():
    return ComputeManagementClient(StaticToken(), SUBSCRIPTION, **CLIENT)


@pytest.fixture
def network():
    return NetworkManagementClient(StaticToken(), SUBSCRIPTION, **CLIENT)


def subnet(network, fake):
    """A network security group, a virtual network and its subnet; the subnet id."""
    group = network.network_security_groups.begin_create_or_update(
        "rg", "nsg", {"location": "centralus", "properties": {"securityRules": []}}).result()
    network.virtual_networks.begin_create_or_update("rg", "vn", {
        "location": "centralus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/24"]},
                       "subnets": [{"name": "sn", "properties": {
                           "addressPrefix": "10.0.0.0/24",
                           "networkSecurityGroup": {"id": group.id}}}]}}).result()
    return network.subnets.get("rg", "vn", "sn").id


def vm(compute, network, fake, name="vm", public_ip=False):
    """A VM with a NIC (and a public IP); the VM's id."""
    config = {"subnet": {"id": subnet(network, fake)}}
    if public_ip:
        ip = network.public_ip_addresses.begin_create_or_update(
            "rg", f"{name}-ip", {"location": "centralus",
                                 "properties": {"publicIPAllocationMethod": "Static"}}).result()
        config["publicIPAddress"] = {"id": ip.id}
    nic = network.network_interfaces.begin_create_or_update("rg", f"{name}-nic", {
        "location": "centralus",
        "properties": {"ipConfigurations": [{"name": "ipconfig", "properties": config}]}}
    ).result()
    created = compute.virtual_machines.begin_create_or_update("rg", name, {
        "location": "centralus", "tags": {"cib:builder": "true"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_DS2_v2"},
            "storageProfile": {"imageReference": {"publisher": "MicrosoftWindowsServer",
                                                  "offer": "WindowsServer",
                                                  "sku": "2022-datacenter", "version": "latest"},
                               "osDisk": {"createOption": "FromImage", "name": f"{name}-os"}},
            "osProfile": {"computerName": name, "adminUsername": "cib",
                          "adminPassword": "Pa55-word-for-tests"},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    return created.id


def power(compute, name="vm"):
    statuses = compute.virtual_machines.instance_view("rg", name).statuses
    return [s.code for s in statuses if s.code.startswith("PowerState/")]


def test_a_write_is_a_long_running_operation_polled_until_it_succeeds(compute):
    with AzureFake.running(lro_polls=3) as fake:
        fake.add_group("rg", "centralus")
        poller = compute.galleries.begin_create_or_update(
            "rg", "gallery", {"location": "Central US", "properties": {}})
        assert fake.resources("*/galleries")[0]["properties"]["provisioningState"] == "Creating"
        gallery = poller.result()
        assert gallery.location == "centralus"
        statuses = [c for c in fake.calls_of("GET operation")]
        assert len(statuses) == 4  # InProgress three times, then Succeeded
        assert fake.calls[0].status == 201
        assert fake.resources("*/galleries")[0]["properties"]["provisioningState"] == \
            "Succeeded"


def test_a_failed_operation_carries_arms_error_object(fake, compute):
    fake.fail("PUT Microsoft.Compute/galleries", during="operation",
              code="InternalOperationError", message="replication broke")
    poller = compute.galleries.begin_create_or_update(
        "rg", "gallery", {"location": "centralus", "properties": {}})
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert caught.value.error.code == "InternalOperationError"
    assert "replication broke" in caught.value.error.message
    assert fake.resources("*/galleries")[0]["properties"]["provisioningState"] == "Failed"


def test_missing_resources_and_groups_are_404s_with_arms_codes(fake, compute):
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.images.get("rg", "nothing")
    assert caught.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.images.get("no-such-group", "nothing")
    assert caught.value.error.code == "ResourceGroupNotFound"


def test_lists_page_through_next_links_by_group_and_subscription(fake, compute):
    fake.add_group("other", "eastus")
    for index in range(5):
        fake.put("Microsoft.Compute/images", "rg", [f"image-{index}"], "centralus")
    fake.put("Microsoft.Compute/images", "other", ["elsewhere"], "eastus")
    names = [i.name for i in compute.images.list_by_resource_group("rg")]
    assert names == [f"image-{i}" for i in range(5)]
    assert len(list(compute.images.list())) == 6
    pages = fake.calls_of("GET Microsoft.Compute/images (list)")
    assert len(pages) == 3 + 3  # five images in pages of two, then six
    assert "$skiptoken=2" in pages[1].url


def test_tags_are_replaced_by_an_update(fake, compute):
    fake.put("Microsoft.Compute/images", "rg", ["image"], "centralus", tags={"old": "1"})
    compute.images.begin_update("rg", "image", {"tags": {"cib:key": "k"}}).result()
    assert compute.images.get("rg", "image").tags == {"cib:key": "k"}


def test_a_throttled_call_is_retried_by_the_sdk_after_retry_after(fake):
    fake.fail("GET Microsoft.Compute/images", status=429, code="TooManyRequests",
              message="slow down", retry_after=0)
    fake.put("Microsoft.Compute/images", "rg", ["image"], "centralus")
    patient = ComputeManagementClient(StaticToken(), SUBSCRIPTION, polling_interval=0,
                                      retry_total=2, retry_backoff_factor=0)
    assert patient.images.get("rg", "image").name == "image"
    assert [c.status for c in fake.calls_of("GET Microsoft.Compute/images")] == [429, 200]


def test_a_vm_runs_its_command_stops_is_generalized_and_captured(fake, compute, network):
    vm_id = vm(compute, network, fake)
    assert power(compute) == ["PowerState/running"]
    with pytest.raises(HttpResponseError, match="since the VM is running"):
        compute.virtual_machines.generalize("rg", "vm")
    result = compute.virtual_machines.begin_run_command("rg", "vm", {
        "commandId": "RunPowerShellScript", "script": ["Write-Output hi", "Stop-Computer"]}
    ).result()
    assert result.value[0].code == "ComponentStatus/StdOut/succeeded"
    assert power(compute) == ["PowerState/stopped"]
    with pytest.raises(HttpResponseError, match="to be generalized"):
        compute.images.begin_create_or_update("rg", "image", {
            "location": "centralus", "properties": {"sourceVirtualMachine": {"id": vm_id}}})
    compute.virtual_machines.begin_deallocate("rg", "vm").result()
    assert power(compute) == ["PowerState/deallocated"]
    compute.virtual_machines.generalize("rg", "vm")
    image = compute.images.begin_create_or_update("rg", "image", {
        "location": "centralus", "properties": {"sourceVirtualMachine": {"id": vm_id}}}
    ).result()
    assert image.name == "image"


def test_clean_up_order_matters_as_on_arm(fake, compute, network):
    vm(compute, network, fake, public_ip=True)
    (disk,) = fake.resources("Microsoft.Compute/disks")
    assert disk["managedBy"].endswith("/virtualMachines/vm")
    (ip,) = fake.resources("Microsoft.Network/publicIPAddresses")
    assert ip["properties"]["ipAddress"].startswith("203.0.113.")
    with pytest.raises(HttpResponseError) as caught:
        network.network_interfaces.begin_delete("rg", "vm-nic").result()
    assert caught.value.error.code == "NicInUse"
    with pytest.raises(HttpResponseError) as caught:
        network.public_ip_addresses.begin_delete("rg", "vm-ip").result()
    assert caught.value.error.code == "PublicIPAddressCannotBeDeleted"
    with pytest.raises(HttpResponseError, match="is attached to VM"):
        compute.disks.begin_delete("rg", "vm-os").result()
    compute.virtual_machines.begin_delete("rg", "vm").result()
    assert fake.resources("Microsoft.Compute/disks")[0]["properties"]["diskState"] == \
        "Unattached"
    network.network_interfaces.begin_delete("rg", "vm-nic").result()
    network.public_ip_addresses.begin_delete("rg", "vm-ip").result()
    compute.disks.begin_delete("rg", "vm-os").result()
    assert fake.resources("Microsoft.Compute/*") == []


def test_gallery_versions_report_replication_to_their_target_regions(fake, compute, network):
    vm_id = vm(compute, network, fake)
    fake.set_power(vm_id, "deallocated")
    compute.virtual_machines.generalize("rg", "vm")
    compute.galleries.begin_create_or_update("rg", "g", {"location": "centralus"}).result()
    compute.gallery_images.begin_create_or_update("rg", "g", "win", {
        "location": "centralus", "properties": {
            "osType": "Windows", "osState": "Generalized",
            "identifier": {"publisher": "cib", "offer": "win", "sku": "default"}}}).result()
    with pytest.raises(HttpResponseError, match=r"Major\.Minor\.Patch"):
        compute.gallery_image_versions.begin_create_or_update("rg", "g", "win", "v1", {
            "location": "centralus", "properties": {
                "storageProfile": {"source": {"virtualMachineId": vm_id}}}})
    compute.gallery_image_versions.begin_create_or_update("rg", "g", "win", "2026.1121.1", {
        "location": "centralus", "properties": {
            "publishingProfile": {"targetRegions": [{"name": "centralus"},
                                                    {"name": "eastus2"}]},
            "storageProfile": {"source": {"virtualMachineId": vm_id}}}}).result()
    version = compute.gallery_image_versions.get("rg", "g", "win", "2026.1121.1",
                                                 expand="ReplicationStatus").as_dict()
    status = version["properties"]["replicationStatus"]
    assert status["aggregatedState"] == "Completed"
    assert [s["region"] for s in status["summary"]] == ["centralus", "eastus2"]


def test_a_quota_refusal_has_arms_shape(fake, compute):
    fake.quota_exceeded("PUT Microsoft.Compute/images")
    with pytest.raises(HttpResponseError) as caught:
        compute.images.begin_create_or_update("rg", "x", {"location": "centralus"})
    assert caught.value.status_code == 409
    assert caught.value.error.code == "OperationNotAllowed"
    assert "Cores quota" in caught.value.error.message


def test_a_call_without_an_api_version_is_refused(fake):
    import requests

    answer = requests.get(f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/"
                          "resourceGroups/rg/providers/Microsoft.Compute/images", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "MissingApiVersionParameter"


def test_a_page_blob_upload_writes_its_pages_and_metadata(fake):
    fake.add_storage_account("account", "vhds")
    service = BlobServiceClient("https://account.blob.core.windows.net",
                                credential=StaticToken(), retry_total=0)
    blob = service.get_blob_client("vhds", "disk.vhd")
    data = b"\1" * 1024 + bytes(5 << 20) + b"\2" * 512
    blob.upload_blob(io.BytesIO(data), blob_type=BlobType.PAGEBLOB, length=len(data),
                     metadata={"cibsha256": "ab"})
    properties = blob.get_blob_properties()
    assert (properties.size, properties.metadata) == (len(data), {"cibsha256": "ab"})
    assert bytes(fake.blob("account", "vhds", "disk.vhd").content) == data
    # the empty 4 MiB page range in the middle was never sent
    assert len(fake.calls_of("PUT blob/page")) == 2
    with pytest.raises(ResourceExistsError):
        blob.upload_blob(io.BytesIO(data), blob_type=BlobType.PAGEBLOB, length=len(data))
    with pytest.raises(ResourceNotFoundError):
        service.get_blob_client("vhds", "other.vhd").get_blob_properties()
    with pytest.raises(ResourceNotFoundError):
        service.get_blob_client("missing", "disk.vhd").upload_blob(b"x")
