"""`cib purge --cloud azure` end to end: the real Azure SDK clients against the ARM fake
(`devclouds.azure_fake`), the bundled config's resource groups in centralus, build task states in
the local Taskcluster (`dev_taskcluster`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import slugid
import yaml

import taskcluster
from cib_decision.cli import main
from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake, StaticToken
from cib_decision.devtc.testing import new_task

from .conftest import CONFIG_DIR
from .imagefleet import COMMIT, TASK_ID

LOCATION = "centralus"
OWNED = "rg-central-us-win10"      # an Azure target's group in centralus (win10-64)
ALSO_OWNED = "rg-central-us-win11"
FOREIGN = "rg-someone-else"         # in centralus, but no target of the config's
OLD = datetime.now(UTC) - timedelta(days=2)
WORKER_MANAGER = {"managed-by": "taskcluster", "worker-pool-id": "gecko-t/win10-64-azure"}

VM, NIC, IP, DISK = ("Microsoft.Compute/virtualMachines", "Microsoft.Network/networkInterfaces",
                     "Microsoft.Network/publicIPAddresses", "Microsoft.Compute/disks")


@pytest.fixture
def fake(dev_taskcluster, monkeypatch):
    """The ARM fake with the groups, as the purge task's environment sees it."""
    for name, value in dev_taskcluster.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    monkeypatch.setattr(Azure, "from_environment", classmethod(
        lambda cls, environ=None: cls(SUBSCRIPTION, StaticToken(), polling_interval=0,
                                      retry_total=0)))
    with AzureFake.running() as served:
        served.mock.add_passthru(dev_taskcluster.root_url)  # the queue is real
        for group in (OWNED, ALSO_OWNED, FOREIGN):
            served.add_group(group, LOCATION)
        served.dev = dev_taskcluster
        yield served


def task(dev, state: str | None = "completed") -> str:
    """A build task in the queue, resolved as `state` (pending for None); its id."""
    task_id = slugid.nice()
    taskcluster.Queue(dev.options()).createTask(task_id, new_task(taskQueueId="cib-3/images"))
    if state:
        dev.resolve_task(task_id, state=state)
    return task_id


def builder(fake, group: str, name: str, *, power: str = "deallocated",
            created: datetime = OLD, tags: dict | None = None) -> dict[str, str]:
    """A builder VM as a build leaves it: its NIC with a public IP, its OS disk; their ids."""
    tags = dict(tags or {})
    when = created.isoformat()
    ip = fake.put(IP, group, [f"{name}-ip"], LOCATION,
                  {"publicIPAllocationMethod": "Static", "ipAddress": "203.0.113.7"}, tags)
    nic = fake.put(NIC, group, [f"{name}-nic"], LOCATION, tags=tags)
    vm = fake.put(VM, group, [name], LOCATION, {"timeCreated": when}, tags)
    disk = fake.put(DISK, group, [f"{name}-os"], LOCATION,
                    {"diskState": "Reserved", "timeCreated": when}, tags, managedBy=vm["id"])
    nic["properties"].update(virtualMachine={"id": vm["id"]}, ipConfigurations=[{
        "name": "ipconfig", "id": f"{nic['id']}/ipConfigurations/ipconfig",
        "properties": {"publicIPAddress": {"id": ip["id"]}}}])
    vm["properties"].update(
        storageProfile={"osDisk": {"name": disk["name"], "managedDisk": {"id": disk["id"]},
                                   "deleteOption": "Detach"}},
        networkProfile={"networkInterfaces": [{"id": nic["id"]}]})
    fake.set_power(vm["id"], power)
    return {"vm": vm["id"], "nic": nic["id"], "ip": ip["id"], "disk": disk["id"]}


def loose(fake, group: str, prefix: str, *, tags: dict | None = None,
          created: datetime = OLD) -> dict[str, str]:
    """A NIC attached to no VM, a public IP with no address, an unattached disk; their ids."""
    tags = dict(tags or {})
    nic = fake.put(NIC, group, [f"{prefix}-nic"], LOCATION, {"ipConfigurations": []}, tags)
    ip = fake.put(IP, group, [f"{prefix}-ip"], LOCATION,
                  {"publicIPAllocationMethod": "Dynamic"}, tags)
    disk = fake.put(DISK, group, [f"{prefix}-data"], LOCATION,
                    {"diskState": "Unattached", "timeCreated": created.isoformat()}, tags)
    return {"nic": nic["id"], "ip": ip["id"], "disk": disk["id"]}


def present(fake) -> set[str]:
    return {r["id"] for r in fake.resources()}


def purge(capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["purge", "--cloud", "azure", "--region", LOCATION, "--config-dir",
                 str(CONFIG_DIR), "--poll-interval", "0", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> dict[str, list[str]]:
    """The closing table's rows by name: [resource, group, reason, action] (a cell folded
    over several lines joined with a space)."""
    table: dict[str, list[str]] = {}
    last = None
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 5:
            continue
        if cells[0].startswith("azure "):
            last = table[cells[1]] = [cells[0], cells[2], cells[3], cells[4]]
        elif last is not None and not cells[0] and not cells[1]:
            for index, more in zip((1, 2, 3), cells[2:], strict=True):
                last[index] = f"{last[index]} {more}".strip() if more else last[index]
    return table


def test_orphans_in_owned_groups_go_and_nothing_else_does(fake, capsys):
    done = task(fake.dev)
    build = builder(fake, OWNED, "vm-builder")
    leftovers = loose(fake, ALSO_OWNED, "left", tags={"cib:build-task-id": done})
    untagged = loose(fake, OWNED, "untagged")
    running = builder(fake, OWNED, "vm-running", power="running")
    foreign = builder(fake, FOREIGN, "vm-foreign") | loose(fake, FOREIGN, "foreign")
    worker = builder(fake, OWNED, "vm-worker", tags=WORKER_MANAGER)
    before = present(fake)
    code, out, err = purge(capsys)
    assert code == 0, err
    gone = {*build.values(), *leftovers.values(), untagged["disk"]}
    assert present(fake) == before - gone
    assert set(running.values()) | set(foreign.values()) | set(worker.values()) <= present(fake)
    table = rows(out)
    assert table["vm-builder"] == ["azure vm", OWNED, "deallocated VM (owned group)", "removed"]
    assert table["vm-builder-ip"][2:] == ["used only by vm-builder-nic, removed first",
                                          "removed"]
    assert table["left-nic"][2:] == ["NIC attached to no VM (owned group)", "removed"]
    assert table["untagged-nic"][2:] == [
        "NIC attached to no VM (owned group); kept: no creation time and no build task tag",
        "kept"]
    assert not {"vm-running", "vm-foreign", "foreign-nic", "vm-worker"} & set(table)


def test_the_builder_goes_before_its_nic_and_disk_and_the_nic_before_its_ip(fake, capsys):
    build = builder(fake, OWNED, "vm-builder")
    code, _, err = purge(capsys)
    assert code == 0, err
    deletes = [c.url.split("?")[0].split("/providers/")[1] for c in fake.calls
               if c.method == "DELETE"]
    assert deletes == ["Microsoft.Compute/virtualMachines/vm-builder",
                       "Microsoft.Network/networkInterfaces/vm-builder-nic",
                       "Microsoft.Compute/disks/vm-builder-os",
                       "Microsoft.Network/publicIPAddresses/vm-builder-ip"]
    assert not set(build.values()) & present(fake)


def test_a_dry_run_lists_the_same_and_deletes_nothing(fake, capsys):
    builder(fake, OWNED, "vm-builder")
    loose(fake, OWNED, "left", tags={"cib:build-task-id": task(fake.dev, "failed")})
    before = present(fake)
    code, out, err = purge(capsys, "--dry-run")
    assert code == 0, err
    assert present(fake) == before
    assert fake.calls_of("DELETE *") == []
    actions = {name: row[3] for name, row in rows(out).items()}
    assert actions == {name: "would remove" for name in (
        "vm-builder", "vm-builder-nic", "vm-builder-os", "vm-builder-ip",
        "left-nic", "left-ip", "left-data")}


def test_worker_manager_vms_go_only_with_include_worker_manager(fake, capsys):
    worker = builder(fake, OWNED, "vm-worker", tags=WORKER_MANAGER)
    code, out, _ = purge(capsys)
    assert code == 0 and set(worker.values()) <= present(fake)
    code, out, _ = purge(capsys, "--include-worker-manager")
    assert code == 0
    assert not set(worker.values()) & present(fake)
    assert rows(out)["vm-worker"][2] == "deallocated VM (worker-manager group)"


def test_a_young_builder_or_one_whose_task_is_running_stays(fake, capsys):
    young = builder(fake, OWNED, "vm-young", created=datetime.now(UTC) - timedelta(minutes=20))
    busy = task(fake.dev, state=None)
    pending = loose(fake, OWNED, "busy", tags={"cib:build-task-id": busy})
    before = present(fake)
    code, out, _ = purge(capsys)
    assert code == 0
    assert present(fake) == before
    table = rows(out)
    assert "younger than --min-age" in table["vm-young"][2]
    assert table["busy-data"][2].endswith(f"kept: build task {busy} is pending")
    assert set(young.values()) | set(pending.values()) <= present(fake)


def test_a_refused_deletion_is_a_warning_and_what_depends_on_it_is_skipped(fake, capsys):
    build = builder(fake, OWNED, "vm-builder")
    fake.fail("DELETE Microsoft.Network/networkInterfaces", status=409,
              code="OperationNotAllowed", message="locked by policy")
    code, out, err = purge(capsys)
    assert code == 0, err
    table = rows(out)
    assert table["vm-builder-nic"][3] == (
        "failed: Azure refused deleting network-interface vm-builder-nic in "
        f"{OWNED}: OperationNotAllowed: locked by policy")
    assert table["vm-builder-ip"][3] == "skipped: vm-builder-nic was not removed"
    assert table["vm-builder"][3] == table["vm-builder-os"][3] == "removed"
    assert present(fake) & set(build.values()) == {build["nic"], build["ip"]}
    assert "warning: could not remove nic vm-builder-nic" in out


@pytest.mark.parametrize("status, code, exit_status", [
    (409, "OperationNotAllowed", 3), (503, "ServiceUnavailable", 75)])
def test_when_every_deletion_fails_the_purge_fails_transiently_or_not(fake, capsys, status,
                                                                       code, exit_status):
    loose(fake, OWNED, "left", tags={"cib:build-task-id": task(fake.dev)})
    fake.fail("DELETE *", status=status, code=code, message="no", times=10)
    result, out, err = purge(capsys)
    assert result == exit_status
    assert "every removal failed (3)" in err
    assert "Traceback" not in err
    assert {row[3].split(":")[0] for row in rows(out).values()} == {"failed"}


def test_a_failed_deletion_operation_is_reported_with_arms_error(fake, capsys):
    loose(fake, OWNED, "left", tags={"cib:build-task-id": task(fake.dev)})
    fake.fail("DELETE Microsoft.Compute/disks", during="operation", status=409,
              code="OperationNotAllowed", message="disk is being exported")
    code, out, err = purge(capsys)
    assert code == 0, err
    table = rows(out)
    assert "disk is being exported" in table["left-data"][3]
    assert table["left-nic"][3] == table["left-ip"][3] == "removed"


def test_a_kept_azure_builds_vm_nic_ip_and_disks_go_once_its_task_is_resolved(
        fake, capsys, tmp_path, monkeypatch):
    from . import test_image_machine_azure as azure_build

    for name, value in {"TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT,
                        "CIB_ENVIRONMENT": "staging"}.items():
        monkeypatch.setenv(name, value)
    fake.add_group(azure_build.GROUP, LOCATION)
    fake.add_group("rg-east", "eastus2")
    config = azure_build.write_fleet(tmp_path)
    raw = yaml.safe_load((config / "win-azure.yaml").read_text())
    raw["target"][0]["network"]["public-ip"] = True
    (config / "win-azure.yaml").write_text(yaml.safe_dump(raw))
    record, _ = azure_build.build(tmp_path, config=config, keep=True)
    left = azure_build.builder_leftovers(fake)
    assert left["virtualMachines"] and left["publicIPAddresses"] and left["disks"]
    taskcluster.Queue(fake.dev.options()).createTask(TASK_ID, new_task(
        taskQueueId="cib-3/images"))
    fake.dev.resolve_task(TASK_ID)
    code, out, err = purge(capsys, "--config-dir", str(config), "--min-age", "0")
    assert code == 0, err
    assert azure_build.builder_leftovers(fake) == azure_build.NOTHING_LEFT
    assert fake.resource(record.image_id) is not None  # the image is not the purge's
    actions = {name: row[3] for name, row in rows(out).items()}
    assert set(actions) == {n for names in left.values() for n in names}
    assert set(actions.values()) == {"removed"}


def test_a_disk_being_uploaded_or_reserved_by_a_running_vm_is_not_an_orphan(fake, capsys):
    for state in ("ActiveUpload", "ReadyToUpload", "ActiveSAS"):
        fake.put(DISK, OWNED, [f"disk-{state.lower()}"], LOCATION,
                 {"diskState": state, "timeCreated": OLD.isoformat()})
    running = builder(fake, OWNED, "vm-running", power="running")
    before = present(fake)
    code, out, _ = purge(capsys)
    assert code == 0
    assert present(fake) == before and set(running.values()) <= before
    assert rows(out) == {}
