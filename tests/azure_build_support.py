"""Machine-image builds on Azure for the tests (test helper): a small fleet with a Windows
key built from a marketplace image in two regions (`write_fleet`), the build's test clock and
the Azure adapter that talks to the ARM fake (`devclouds.azure_fake`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, StaticToken

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


def write_fleet(directory: Path, **extra) -> Path:
    """A Windows key built from a marketplace image in Central US and East US 2."""
    config = directory / "config"
    config.mkdir(parents=True, exist_ok=True)
    key = {"image": {"os": "Windows Server 2022", "architecture": "x86-64",
                     "base": {"azure": {"publisher": "MicrosoftWindowsServer",
                                        "offer": "WindowsServer", "sku": "2022-datacenter"}}},
           "target": [azure_target(**extra), azure_target("East US 2", "rg-east", **extra)]}
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
