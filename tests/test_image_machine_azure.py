"""`cib image machine` on Azure, end to end through the real Azure SDK against the ARM fake
(`devclouds.azure_fake`): network, builder VM, the bootstrap's run command and stop, capture as a
managed image or a replicated gallery version, tags, clean-up, time-out, quota, reuse,
overwrite. The fake's run command plays the bootstrap; waits run on a test clock, so nothing
sleeps."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.clouds.azure import Azure, is_transient, parse_id
from cib_decision.config import Target
from cib_decision.devclouds.azure_fake import (
    SUBSCRIPTION,
    AzureFake,
    RunCommandOutcome,
)
from cib_decision.errors import BuildError, CibError, TransientError
from cib_decision.images.azure_machine import (
    Timeouts,
    replication_regions,
    run_command,
    security_rules,
    version_name,
)
from cib_decision.images.azure_vhd import placement
from cib_decision.images.context import load_context
from cib_decision.images.progress import WaitTimeout

from .azure_build_support import (
    GROUP,
    NOTHING_LEFT,
    adapter,
    build,
    build_env,
    builder_leftovers,
    running_fake,
    write_fleet,
)
from .conftest import CONFIG_DIR
from .imagefleet import COMMIT, TASK_ID


@pytest.fixture
def env(monkeypatch):
    build_env(monkeypatch)


@pytest.fixture
def fake(env):
    with running_fake() as served:
        yield served


def from_disk_image(config: Path) -> None:
    """Make the key one built from a disk image (a VHD in Azure blob storage)."""
    raw = yaml.safe_load((config / "win-azure.yaml").read_text())
    del raw["image"]["base"]
    raw["image"]["source"] = {"url": "https://images.example.com/windows.vhd", "format": "vhd"}
    raw["image"]["target"] = {"platform": "azure", "storage": "sacentral", "group": GROUP}
    (config / "win-azure.yaml").write_text(yaml.safe_dump(raw))


def test_a_fresh_build_boots_the_base_runs_the_bootstrap_captures_tags_and_cleans_up(
        tmp_path, fake):
    record, ctx = build(tmp_path)
    machine = ctx.digests.machines["azure/centralus"]
    (image,) = fake.resources("Microsoft.Compute/images")
    assert record.image_id == image["id"] and image["name"] == f"win-azure-{machine[:12]}"
    assert image["tags"] == {
        "Name": image["name"], "cib:key": "win-azure", "cib:machine-digest": machine,
        "cib:disk-digest": ctx.digests.disk, "cib:config-commit": COMMIT,
        "cib:build-task-id": TASK_ID, "cib:environment": "staging",
        "cib:target": "azure/centralus"}
    assert image["properties"]["sourceVirtualMachine"]["id"].endswith(
        f"/virtualMachines/cib-{image['name']}-{TASK_ID}")
    # the builder: the marketplace base, the size from the format, the target's tags
    (vm_call,) = fake.calls_of("PUT Microsoft.Compute/virtualMachines")
    vm = vm_call.body
    assert vm["properties"]["hardwareProfile"] == {"vmSize": "Standard_DS2_v2"}
    assert vm["properties"]["storageProfile"]["imageReference"] == {
        "publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
        "sku": "2022-datacenter", "version": "latest"}
    assert [d["diskSizeGB"] for d in vm["properties"]["storageProfile"]["dataDisks"]] == [96]
    assert vm["tags"]["workerType"] == "win-azure" and vm["tags"]["cib:builder"] == "true"
    # the bootstrap ran through the run command as PowerShell, without user-data markers
    (run,) = fake.calls_of("POST */runCommand")
    assert run.body["commandId"] == "RunPowerShellScript"
    assert "Stop-Computer -Force" in run.body["script"]
    assert not any("powershell>" in line for line in run.body["script"])
    # the VM was deallocated and generalized before the capture; nothing left behind
    assert fake.calls_of("POST */deallocate") and fake.calls_of("POST */generalize")
    assert builder_leftovers(fake) == NOTHING_LEFT
    # the target's network was created and stays
    (nsg,) = fake.resources("*/networkSecurityGroups")
    assert nsg["properties"]["securityRules"][0]["properties"]["sourceAddressPrefixes"] == \
        ["198.51.100.0/24"]
    assert [s["name"] for s in fake.resources("*/subnets")] == ["sn-rg-central"]
    written = json.loads((tmp_path / "artifacts" / "machine-image.json").read_text())
    assert manifest.parse_machine_image(written) == record
    assert (record.platform, record.region, record.copies) == ("azure", "centralus", ())


def test_the_log_tells_the_story_one_line_per_step_and_state_change(tmp_path, fake):
    build(tmp_path)
    story = [line.split("] ", 1)[1] for line in build.log.splitlines()]
    assert story[1] == ("base image: MicrosoftWindowsServer:WindowsServer:2022-datacenter:"
                        "latest (marketplace)")
    assert "created virtual network vn-rg-central with subnet sn-rg-central" in story
    assert "created NIC cib-win-azure-" in "\n".join(story)
    waits = [s for s in story if "the bootstrap to stop builder" in s]
    assert waits[0].startswith("waiting for the bootstrap to stop builder cib-win-azure-")
    assert waits[1].endswith(": running after 0s")
    assert waits[-1].endswith("running -> stopped after 30s")
    assert len(waits) == 3  # no line per poll
    assert any(s.startswith("cleaned up VM cib-win-azure-") for s in story)
    assert any(s.endswith("went with the VM") for s in story)  # disks deleted with the VM
    assert story[-1] == "wrote public/machine-image.json"


def test_a_gallery_target_publishes_a_version_replicated_to_the_keys_regions(tmp_path, fake):
    record, ctx = build(tmp_path, gallery="cibgallery", copies=["West US 2"])
    (version,) = fake.resources("*/galleries/images/versions")
    assert version["name"] == "2026.1121.130500"
    assert record.image_id == version["id"]
    assert record.image_name == f"win-azure-{ctx.digests.machines['azure/centralus'][:12]}"
    assert version["tags"]["Name"] == record.image_name
    regions = [r["name"] for r in version["properties"]["publishingProfile"]["targetRegions"]]
    assert regions == ["centralus", "eastus2", "westus2"]
    assert dict(record.copies) == {"eastus2": version["id"], "westus2": version["id"]}
    (definition,) = fake.resources("*/galleries/images")
    assert definition["properties"]["osType"] == "Windows"
    assert builder_leftovers(fake) == NOTHING_LEFT
    # the East US 2 target's own build is its own version (its own group and gallery)
    again, _ = build(tmp_path, gallery="cibgallery", copies=["West US 2"])
    assert again.image_id == record.image_id and "reusing" in build.log
    assert dict(again.copies) == dict(record.copies)


def test_a_second_run_for_the_same_digest_reuses_the_image_and_creates_no_vm(tmp_path, fake):
    first, _ = build(tmp_path)
    again, _ = build(tmp_path)
    assert (again.image_id, again.image_name) == (first.image_id, first.image_name)
    assert f"reusing {first.image_name} ({first.image_id}): built for this digest by task " \
        f"{TASK_ID}" in build.log
    assert len(fake.calls_of("PUT Microsoft.Compute/virtualMachines")) == 1


def test_overwrite_builds_a_new_image_under_a_new_name_and_keeps_the_live_one(tmp_path, fake):
    first, ctx = build(tmp_path)
    second, _ = build(tmp_path, overwrite=True)
    machine = ctx.digests.machines["azure/centralus"]
    assert second.image_name == f"win-azure-r2-{machine[:12]}" != first.image_name
    assert "stays as it is" in build.log
    images = {i["name"]: i["properties"]["provisioningState"]
              for i in fake.resources("Microsoft.Compute/images")}
    assert images == {first.image_name: "Succeeded", second.image_name: "Succeeded"}
    assert not fake.calls_of("DELETE Microsoft.Compute/images")
    third, _ = build(tmp_path)
    assert third.image_id == second.image_id


def test_a_failing_bootstrap_exits_3_names_the_execution_and_cleans_up(tmp_path, fake, capsys,
                                                                       monkeypatch):
    fake.on_run_command = lambda vm, command: RunCommandOutcome(
        stdout="cib: provision failed (attempt 1)\ncib: provision failed; not stopping\n")
    monkeypatch.setattr(Azure, "from_environment", classmethod(lambda cls: adapter()))
    config = write_fleet(tmp_path)
    status = main(["image", "machine", "--key", "win-azure", "--target", "azure/centralus",
                   "--config-dir", str(config), "--artifacts", str(tmp_path / "a"),
                   "--poll-interval", "0"])
    captured = capsys.readouterr()
    assert status == 3
    assert "execution provision kept failing (last output: cib: provision failed (attempt " \
           "1) | cib: provision failed; not stopping)" in captured.err
    assert "Traceback" not in captured.err
    assert "the build failed; cleaning up" in captured.out
    assert builder_leftovers(fake) == NOTHING_LEFT
    assert fake.resources("Microsoft.Compute/images") == []
    assert not (tmp_path / "a" / "machine-image.json").exists()


def test_a_bootstrap_that_never_stops_the_vm_times_out_and_everything_is_cleaned_up(
        tmp_path, fake):
    fake.on_run_command = lambda vm, command: RunCommandOutcome(stdout="still going\n")
    with pytest.raises(WaitTimeout, match=r"timed out after 2m00s waiting for the bootstrap "
                                          r"to stop builder cib-win-azure-\S+; last state: "
                                          r"running"):
        build(tmp_path, timeouts=Timeouts(bootstrap=120, interval=30))
    assert "the run command on cib-win-azure-" in build.log
    assert builder_leftovers(fake) == NOTHING_LEFT
    assert fake.resources("Microsoft.Compute/images") == []


def test_exhausted_quota_exits_75_and_cleans_up_the_nic(tmp_path, fake, capsys, monkeypatch):
    fake.quota_exceeded()
    monkeypatch.setattr(Azure, "from_environment", classmethod(lambda cls: adapter()))
    config = write_fleet(tmp_path)
    status = main(["image", "machine", "--key", "win-azure", "--target", "azure/centralus",
                   "--config-dir", str(config), "--artifacts", str(tmp_path / "a")])
    captured = capsys.readouterr()
    assert status == 75
    assert "OperationNotAllowed: Operation could not be completed as it results in exceeding " \
           "approved standardDSv2Family Cores quota" in captured.err
    assert builder_leftovers(fake) == NOTHING_LEFT
    assert "cleaned up NIC cib-win-azure-" in captured.out


def test_an_allocation_failure_during_creation_is_transient_and_the_vm_is_removed(
        tmp_path, fake):
    fake.fail("PUT Microsoft.Compute/virtualMachines", during="operation",
              code="AllocationFailed", message="Allocation failed. We do not have sufficient "
              "capacity for the requested VM size in this region.")
    with pytest.raises(TransientError, match="AllocationFailed"):
        build(tmp_path)
    assert builder_leftovers(fake) == NOTHING_LEFT


def test_keep_resources_leaves_the_builder_after_a_failure(tmp_path, fake):
    fake.on_run_command = lambda vm, command: RunCommandOutcome(
        stdout="cib: provision failed; not stopping\n")
    with pytest.raises(BuildError):
        build(tmp_path, keep=True)
    left = builder_leftovers(fake)
    assert len(left["virtualMachines"]) == 1 and len(left["networkInterfaces"]) == 1
    assert len(left["disks"]) == 2
    assert "--keep-resources: leaving cib-win-azure-" in build.log


def test_a_public_ip_only_when_the_target_asks_and_it_is_cleaned_up(tmp_path, fake):
    config = write_fleet(tmp_path)
    raw = yaml.safe_load((config / "win-azure.yaml").read_text())
    raw["target"][0]["network"]["public-ip"] = True
    (config / "win-azure.yaml").write_text(yaml.safe_dump(raw))
    build(tmp_path, config=config)
    (nic,) = [c.body for c in fake.calls_of("PUT Microsoft.Network/networkInterfaces")]
    assert "publicIPAddress" in nic["properties"]["ipConfigurations"][0]["properties"]
    assert len(fake.calls_of("PUT Microsoft.Network/publicIPAddresses")) == 1
    assert any(line.endswith("cleaned up public IP " + fake.calls_of(
        "PUT Microsoft.Network/publicIPAddresses")[0].url.split("/")[-1].split("?")[0])
        for line in build.log.splitlines())
    assert builder_leftovers(fake) == NOTHING_LEFT
    # without the option: no public IP
    fake.calls.clear()
    build(tmp_path, "azure/eastus2")
    assert fake.calls_of("PUT Microsoft.Network/publicIPAddresses") == []


def test_a_clean_up_problem_is_a_warning_not_a_failure(tmp_path, fake):
    fake.fail("DELETE Microsoft.Compute/virtualMachines", status=500)
    record, _ = build(tmp_path)
    assert record.image_id and (tmp_path / "artifacts" / "machine-image.json").exists()
    assert "warning: could not clean up VM cib-win-azure-" in build.log
    # the NIC and disks are still the VM's: ARM refuses, the build says so and goes on
    assert "warning: could not clean up NIC cib-win-azure-" in build.log
    assert "NicInUse" in build.log
    left = builder_leftovers(fake)
    assert len(left["virtualMachines"]) == 1 and len(left["disks"]) == 2
    assert all(d["tags"]["cib:builder"] == "true" and d["tags"]["cib:build-task-id"] == TASK_ID
               for d in fake.resources("*/disks"))  # what purge tasks look for


def test_a_disk_image_vhd_is_made_into_an_image_and_booted(tmp_path, fake):
    fake.add_storage_account("sacentral", "disk-images")
    azure = adapter()
    vhd = tmp_path / "disk.vhd"
    vhd.write_bytes(b"\1" * 1024)
    url = azure.upload_page_blob(vhd, "sacentral", "disk-images", "win-azure-disk.vhd", {})
    config = write_fleet(tmp_path)
    from_disk_image(config)
    ctx = load_context("win-azure", config, artifacts=tmp_path / "x")
    disk = manifest.disk_image_record(
        "win-azure", platform="azure", region="centralus", location=url, image_format="vhd",
        size=1024, sha256="cd" * 32, disk_digest=ctx.digests.disk, config_commit=COMMIT,
        build_task_id=TASK_ID, created=datetime(2026, 11, 21, tzinfo=UTC))
    uploads = len(fake.calls_of("PUT blob*"))
    build(tmp_path, config=config, disk_record=disk)
    made = [i for i in fake.resources("Microsoft.Compute/images")
            if i["tags"].get("cib:disk-sha256") == "cd" * 32]
    assert len(made) == 1 and made[0]["properties"]["storageProfile"]["osDisk"]["blobUri"] == url
    vm = fake.calls_of("PUT Microsoft.Compute/virtualMachines")[0].body
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": made[0]["id"]}
    # `ssd` is a standard SSD for the builder, as for the pool's workers (azure_disk_sku)
    assert vm["properties"]["storageProfile"]["osDisk"]["managedDisk"] == {
        "storageAccountType": "StandardSSD_LRS"}
    assert len(fake.calls_of("PUT blob*")) == uploads  # used where it is: nothing copied
    # a build in another region copies the VHD into the target's storage account: here the
    # one cloud-image-builder's builder derived from the group (rg-east: saeast)
    build(tmp_path, "azure/eastus2", config=config, disk_record=disk)
    copied = [i for i in fake.resources("Microsoft.Compute/images")
              if i["tags"].get("cib:disk-sha256") == "cd" * 32 and i is not made[0]]
    assert [i["properties"]["storageProfile"]["osDisk"]["blobUri"].split("/")[2].split(".")[0]
            for i in copied] == ["saeast"]


def test_a_vhd_elsewhere_needs_a_storage_account_the_target_names_or_its_group_gives():
    record = manifest.DiskImageRecord(
        "win", "win-disk", "azure", "centralus",
        "https://sacentral.blob.core.windows.net/disk-images/win.vhd", "VHD", 1, "ab" * 32,
        "cd" * 32, COMMIT, TASK_ID, "2026-12-06T00:00:00Z")
    target = Target("azure/eastus2", "azure", "eastus2", {
        "group": "rg-a-resource-group-name-too-long-for-an-account", "region": "East US 2"})
    with pytest.raises(CibError, match="not in azure/eastus2's region, and the target names "
                                       "no storage account"):
        placement(record, target)
    named = Target(target.id, "azure", "eastus2", {**target.raw, "storage": "mine"})
    assert placement(record, named).account == "mine"


def test_a_key_without_a_base_needs_its_disk_image_record(tmp_path, fake):
    config = write_fleet(tmp_path)
    from_disk_image(config)
    with pytest.raises(CibError, match="give the disk image record"):
        build(tmp_path, config=config)
    assert fake.calls_of("PUT *") == []


# --- pure decisions and the adapter's error mapping -------------------------------------------


def test_vm_size_type_wins_then_format_with_cpus(tmp_path, env):
    ctx = load_context("win-azure", write_fleet(tmp_path), artifacts=tmp_path)
    target = ctx.target("azure/centralus")
    assert target.builder_machine_size == "Standard_DS2_v2"
    raw = {**target.raw, "machine": {"type": "Standard_D8s_v5", "format": "x{0}", "cpu": 4}}
    assert type(target)(target.id, "azure", target.region, raw).builder_machine_size == \
        "Standard_D8s_v5"


def test_replication_regions_start_with_the_targets_own_and_have_no_duplicates(tmp_path, env):
    ctx = load_context("win-azure", write_fleet(tmp_path, copies=["eastus2", "West Europe"]),
                       artifacts=tmp_path)
    assert replication_regions(ctx.target("azure/eastus2"), ctx.key.targets) == (
        "eastus2", "centralus", "westeurope")


def test_version_names_are_three_32_bit_integers():
    assert version_name(datetime(2026, 1, 5, 0, 0, 7)) == "2026.105.7"
    assert version_name(datetime(2026, 12, 31, 23, 59, 59)) == "2026.1231.235959"


def test_security_rules_accept_both_spellings_and_lists_of_prefixes():
    (rule,) = security_rules([{"Name": "r", "Access": "Allow", "Protocol": "Tcp",
                               "Direction": "Inbound", "Priority": 200,
                               "SourceAddressPrefix": ["192.0.2.0/24"],
                               "DestinationPortRange": 5986}])
    assert rule == {"name": "r", "properties": {
        "access": "Allow", "protocol": "Tcp", "direction": "Inbound", "priority": 200,
        "sourcePortRange": "*", "sourceAddressPrefixes": ["192.0.2.0/24"],
        "destinationAddressPrefix": "*", "destinationPortRange": "5986"}}


def test_a_linux_bootstrap_runs_as_a_shell_script(tmp_path, env):
    ctx = load_context("win-azure", write_fleet(tmp_path), artifacts=tmp_path)
    command, script = run_command({"os": "Ubuntu 24.04"}, ctx.target("azure/centralus"))
    assert command == "RunShellScript" and script[0] == "#!/bin/bash"
    assert script[-1] == "poweroff"


@pytest.mark.parametrize(("status", "code", "message", "transient"), [
    (429, "TooManyRequests", "slow down", True),
    (503, "ServiceUnavailable", "", True),
    (409, "OperationNotAllowed", "exceeding approved standardDSv2Family Cores quota", True),
    (409, "SkuNotAvailable", "not available in location", True),
    (200, "AllocationFailed", "no capacity", True),
    (409, "OperationNotAllowed", "The VM is generalized", False),
    (400, "InvalidParameter", "bad", False),
])
def test_throttling_service_errors_quota_and_capacity_are_transient(status, code, message,
                                                                    transient):
    assert is_transient(status, code, message) is transient


def test_resource_ids_parse_into_kind_group_and_names():
    arm_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/"
              "galleries/g/images/win/versions/1.2.3")
    assert parse_id(arm_id) == ("gallery-image-version", "rg", ("g", "win", "1.2.3"))
    with pytest.raises(CibError):
        parse_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/x")


# --- a disk image stored in S3 or in another region's storage account ------------------------

BUNDLED_KEY, BUNDLED_GROUP, BUNDLED_STORAGE = "win11-64", "rg-central-us-win11", \
    "sacentraluswin11"
VHD = b"\1" * 2048 + bytes(4096) + b"\2" * 1024  # whole 512-byte pages


@pytest.fixture
def s3_and_azure(env, monkeypatch):
    """moto's S3 (started first: see `devclouds.azure_fake`) and the ARM fake with the bundled
    win11-64 key's Central US group; `cib` commands get the fake's adapter."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Azure, "from_environment", classmethod(lambda cls: adapter()))
    with mock_aws(), AzureFake.running() as served:
        served.add_group(BUNDLED_GROUP, "centralus")
        yield served


def bundled_disk_record(tmp_path, *, in_s3=True, content=VHD, sha256=None) -> Path:
    """The bundled key's disk image as its disk-image task records it (uploaded to its S3
    bucket, or to East US's storage account), written as a `--disk-image` file."""
    ctx = load_context(BUNDLED_KEY, CONFIG_DIR, artifacts=tmp_path)
    name = f"{BUNDLED_KEY}-disk-{ctx.digests.disk[:12]}.vhd"
    digest = hashlib.sha256(content).hexdigest()
    if in_s3:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="example-cib-disk-images")
        s3.put_object(Bucket="example-cib-disk-images", Key=name, Body=content)
        location, region, platform = f"s3://example-cib-disk-images/{name}", "us-east-1", \
            "amazon"
    else:
        source = tmp_path / name
        source.write_bytes(content)
        location = adapter().upload_page_blob(source, "saeastuswin11", "disk-images", name,
                                              {"cibdiskdigest": ctx.digests.disk,
                                               "cibsha256": digest})
        region, platform = "eastus", "azure"
    record = manifest.disk_image_record(
        BUNDLED_KEY, platform=platform, region=region, location=location, image_format="vhd",
        size=len(content), sha256=sha256 or digest, disk_digest=ctx.digests.disk,
        config_commit=COMMIT, build_task_id=TASK_ID, created=datetime(2026, 11, 21, tzinfo=UTC))
    path = tmp_path / "disk-image.json"
    path.write_text(manifest.dumps(record))
    return path


def machine_cli(tmp_path, capsys, record: Path) -> tuple[int, str, str]:
    status = main(["image", "machine", "--key", BUNDLED_KEY, "--target", "azure/centralus",
                   "--config-dir", str(CONFIG_DIR), "--artifacts", str(tmp_path / "artifacts"),
                   "--disk-image", str(record), "--poll-interval", "0"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_bundled_key_with_its_disk_image_in_s3_builds_on_azure(tmp_path, s3_and_azure,
                                                                 capsys):
    fake = s3_and_azure
    record_file = bundled_disk_record(tmp_path)
    disk = manifest.parse_disk_image(json.loads(record_file.read_text()))
    status, out, err = machine_cli(tmp_path, capsys, record_file)
    assert status == 0, err
    name = disk.location.rsplit("/", 1)[1]
    url = f"https://{BUNDLED_STORAGE}.blob.core.windows.net/disk-images/{name}"
    blob = fake.blob(BUNDLED_STORAGE, "disk-images", name)
    assert blob.kind == "PageBlob" and bytes(blob.content) == VHD
    assert blob.metadata == {"cibdiskdigest": disk.disk_digest, "cibsha256": disk.sha256}
    assert len(fake.calls_of("PUT blob/page")) == 1  # the disk step's upload: one chunk
    (made,) = [i for i in fake.resources("Microsoft.Compute/images")
               if i["tags"].get("cib:disk-sha256") == disk.sha256]
    assert made["properties"]["storageProfile"]["osDisk"]["blobUri"] == url
    assert made["id"].split("/")[4] == BUNDLED_GROUP
    vm = fake.calls_of("PUT Microsoft.Compute/virtualMachines")[0].body
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": made["id"]}
    record = manifest.parse_machine_image(json.loads(
        (tmp_path / "artifacts" / "machine-image.json").read_text()))
    assert record.target == "azure/centralus" and builder_leftovers(fake) == NOTHING_LEFT
    story = [line.split("] ", 1)[1] for line in out.splitlines()]
    copying = story.index(f"copying {disk.location} ({len(VHD)} bytes) to {url}, streamed "
                          "through this worker")
    assert story[copying + 1] == f"copied {len(VHD)} bytes; SHA-256 {disk.sha256} matches " \
                                 "the record"
    assert story[copying + 2] == f"making image {disk.name} of {url}"


def test_a_rerun_reuses_the_copied_vhd_and_copies_nothing(tmp_path, s3_and_azure, capsys):
    fake = s3_and_azure
    record_file = bundled_disk_record(tmp_path)
    fake.fail("PUT Microsoft.Compute/images", during="operation", code="InternalError",
              message="The image could not be created.")  # after the copy: exit 3
    status, _, err = machine_cli(tmp_path, capsys, record_file)
    assert status == 3 and "The image could not be created" in err
    copies = len(fake.calls_of("PUT blob*"))
    status, out, err = machine_cli(tmp_path, capsys, record_file)
    assert status == 0, err
    assert "already holds disk image win11-64-disk-" in out and "streamed" not in out
    assert len(fake.calls_of("PUT blob*")) == copies
    # the next run reuses the machine image itself: no VHD, no image, no VM
    vms = len(fake.calls_of("PUT Microsoft.Compute/virtualMachines"))
    status, out, _ = machine_cli(tmp_path, capsys, record_file)
    assert status == 0 and "reusing win11-64-" in out
    assert len(fake.calls_of("PUT Microsoft.Compute/virtualMachines")) == vms
    assert len(fake.calls_of("PUT blob*")) == copies


def test_an_s3_disk_image_that_is_not_the_recorded_one_exits_2_and_leaves_no_copy(
        tmp_path, s3_and_azure, capsys):
    fake = s3_and_azure
    record_file = bundled_disk_record(tmp_path, sha256="ab" * 32)
    status, _, err = machine_cli(tmp_path, capsys, record_file)
    assert status == 2
    assert f"the copy's SHA-256 is {hashlib.sha256(VHD).hexdigest()} but the disk image " \
           f"record says {'ab' * 32}; deleted the copy" in err and "Traceback" not in err
    assert fake.containers[(BUNDLED_STORAGE, "disk-images")] == {}
    assert fake.resources("Microsoft.Compute/images") == []
    assert fake.calls_of("PUT Microsoft.Compute/virtualMachines") == []


def test_a_vhd_in_another_regions_account_is_copied_server_side(tmp_path, s3_and_azure,
                                                                capsys):
    fake = s3_and_azure
    fake.add_storage_account("saeastuswin11", "disk-images")
    fake.copy_polls = 2
    record_file = bundled_disk_record(tmp_path, in_s3=False)
    disk = manifest.parse_disk_image(json.loads(record_file.read_text()))
    status, out, err = machine_cli(tmp_path, capsys, record_file)
    assert status == 0, err
    name = disk.location.rsplit("/", 1)[1]
    assert len([c for c in fake.calls_of("PUT blob") if BUNDLED_STORAGE in c.url]) == 1
    blob = fake.blob(BUNDLED_STORAGE, "disk-images", name)
    assert bytes(blob.content) == VHD and blob.kind == "PageBlob"
    assert blob.metadata["cibsha256"] == disk.sha256
    assert fake.calls_of("POST blob/userdelegationkey")  # the source is read through a SAS
    # the bytes did not pass through here: no page written to the target's account
    assert [c for c in fake.calls_of("PUT blob/page") if BUNDLED_STORAGE in c.url] == []
    assert "a server-side copy" in out and "pending -> success" in out
    (made,) = [i for i in fake.resources("Microsoft.Compute/images")
               if i["tags"].get("cib:disk-sha256") == disk.sha256]
    assert BUNDLED_STORAGE in made["properties"]["storageProfile"]["osDisk"]["blobUri"]


def test_a_failed_server_side_copy_exits_3_and_is_not_left_to_be_reused(tmp_path, s3_and_azure,
                                                                         capsys):
    fake = s3_and_azure
    fake.add_storage_account("saeastuswin11", "disk-images")
    fake.copy_outcome = "failed"
    status, _, err = machine_cli(tmp_path, capsys, bundled_disk_record(tmp_path, in_s3=False))
    assert status == 3
    assert "state failed after" in err and "Copy failed when reading the source" in err
    assert fake.containers[(BUNDLED_STORAGE, "disk-images")] == {}
    assert fake.resources("Microsoft.Compute/images") == []
