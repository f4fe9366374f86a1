"""Machine-image builds on Azure for the tests (test helper): a small fleet with a Windows
key built from a marketplace image in two regions (`write_fleet`), the build's test clock, the
Azure adapter that talks to the ARM fake (`devclouds.azure_fake`), the fake with the key's
resource groups (`fake`) and a build of one target (`build`)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake, StaticToken
from cib_decision.images.azure_machine import AzureBuild, Timeouts, build_machine_image
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress

from .imagefleet import COMMIT, TASK_ID

GROUP = "rg-central"
BOOTSTRAP = {"executions": [{"name": "provision", "shell": "azure-powershell",
                             "commands": ["Write-Output provisioned"],
                             "test": {"std": {"out": {"match": "provisioned"}}}}]}


def azure_target(region="Central US", group=GROUP, **extra):
    return {"platform": "azure", "region": region, "group": group,
            "machine": {"cpu": 2, "format": "Standard_DS{0}_v2", "hyperv": "V1"},
            "disk": [{"os": True, "variant": "ssd", "size": 64, "caching": "ReadOnly"},
                     {"os": False, "variant": "ssd", "size": 96}],
            "network": {"name": f"vn-{group}", "prefix": "10.20.0.0/24", "dns": ["9.9.9.9"],
                        "subnet": {"name": f"sn-{group}", "prefix": "10.20.0.0/24"},
                        "flow": {"name": f"nsg-{group}", "rules": [
                            {"name": "allow-rdp", "access": "Allow", "protocol": "Tcp",
                             "direction": "Inbound", "priority": 200,
                             "sourceAddressPrefix": ["198.51.100.0/24"],
                             "sourcePortRange": "*", "destinationAddressPrefix": "*",
                             "destinationPortRange": 3389}]}},
            "tag": [{"name": "workerType", "value": "win-azure"}],
            "bootstrap": BOOTSTRAP, **extra}


def write_fleet(directory: Path, validation: dict | None = None, **extra) -> Path:
    """A Windows key built from a marketplace image in Central US and East US 2 (`validation`:
    its validation rules and smoke tests; `extra`: more target fields)."""
    config = directory / "config"
    config.mkdir(parents=True, exist_ok=True)
    key = {"image": {"os": "Windows Server 2022", "architecture": "x86-64",
                     "base": {"azure": {"publisher": "MicrosoftWindowsServer",
                                        "offer": "WindowsServer", "sku": "2022-datacenter"}}},
           "target": [azure_target(**extra), azure_target("East US 2", "rg-east", **extra)]}
    if validation:
        key["validation"] = validation
    (config / "win-azure.yaml").write_text(yaml.safe_dump(key))
    return config


class Clock:
    """The build's clock and sleep: sleeping moves the clock."""

    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def adapter():
    return Azure(SUBSCRIPTION, StaticToken(), polling_interval=0, retry_total=0)


def build_env(monkeypatch) -> None:
    """The environment of an image task: its task id, revision and environment."""
    for name, value in {"TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT,
                        "CIB_ENVIRONMENT": "staging"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CIB_DISK_IMAGE_TASK_ID", raising=False)


@contextlib.contextmanager
def running_fake() -> Iterator[AzureFake]:
    """The ARM fake, in process, with the fleet's two resource groups."""
    with AzureFake.running() as served:
        served.add_group(GROUP, "centralus")
        served.add_group("rg-east", "eastus2")
        yield served


def build(tmp_path, target="azure/centralus", *, overwrite=False, keep=False, timeouts=None,
          disk_record=None, config=None, **fleet):
    config = config or write_fleet(tmp_path, **fleet)
    log, clock = io.StringIO(), Clock()
    ctx = load_context("win-azure", config, artifacts=tmp_path / "artifacts",
                       keep_resources=keep, progress=Progress(log, clock.clock, clock.sleep))
    ctx.now = lambda: datetime(2026, 11, 21, 13, 5, tzinfo=UTC)
    try:
        return build_machine_image(ctx, AzureBuild(
            azure=adapter(), target=ctx.target(target), overwrite=overwrite,
            disk_record=disk_record, timeouts=timeouts or Timeouts(interval=30),
            password=lambda: "Test-Pa55word!")), ctx
    finally:
        build.log = log.getvalue()


def builder_leftovers(fake):
    kinds = ("virtualMachines", "disks", "networkInterfaces", "publicIPAddresses")
    return {k: [r["name"] for r in fake.resources(f"*/{k}")] for k in kinds}


NOTHING_LEFT = {"virtualMachines": [], "disks": [], "networkInterfaces": [],
                "publicIPAddresses": []}
