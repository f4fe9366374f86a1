"""A small fleet for image-build tests: a Linux key from a source image, a Windows key from an
ISO, and a key built from a base AMI, written to a temporary config directory."""

from __future__ import annotations

from pathlib import Path

import yaml

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK_ID = "fN1SbArXTPSVFNUvaOlinQ"
SOURCE_URL = "https://images.example.com/tiny.qcow2"


def write_fleet(directory: Path, *, source_sha256: str | None = None,
                iso_sha256: str | None = None, base: dict | None = None,
                aws_targets: tuple[str, ...] = ("us-east-1", "us-west-2"),
                pool_locations: tuple[str, ...] | None = None,
                copies: tuple[str, ...] = (), validation: dict | None = None,
                log: tuple[str, ...] = ()) -> Path:
    """Write the fleet into `directory/config` and return that path (`validation`: the
    based key's validation rules and smoke tests; `log`: the programs of its `log`)."""
    config = directory / "config"
    config.mkdir(parents=True, exist_ok=True)
    source = {"url": SOURCE_URL, "format": "qcow2"}
    if source_sha256:
        source["sha256"] = source_sha256
    linux = {
        "image": {"os": "Ubuntu 24.04", "architecture": "x86-64", "format": "RAW",
                  "source": source,
                  "target": {"platform": "amazon", "bucket": "disk-images"}},
        "target": [{"platform": "amazon", "region": region, "bucket": "amis",
                    **({"copies": list(copies)} if copies else {}),
                    "machine": {"type": "t3.large"},
                    "tag": [{"name": "workerType", "value": "linux-test"}],
                    "bootstrap": {"executions": [
                        {"name": "provision", "shell": "bash",
                         "commands": ["echo provisioning", "poweroff"]}]}}
                   for region in aws_targets],
    }
    if pool_locations:
        linux["manager"] = {"pool": [{"domain": "test", "variant": "linux", "provider": "aws",
                                      "platform": "amazon",
                                      "locations": list(pool_locations)}]}
    iso = {"source": {"platform": "amazon", "bucket": "media", "key": "iso/windows.iso"}}
    if iso_sha256:
        iso["sha256"] = iso_sha256
    windows = {
        "image": {"os": "Windows 10", "edition": "Professional", "architecture": "x86-64",
                  "format": "VHD", "target": {"platform": "amazon", "bucket": "disk-images"}},
        "iso": iso,
        "target": [{"platform": "amazon", "region": "us-east-1",
                    "bootstrap": {"executions": [
                        {"name": "provision", "shell": "powershell",
                         "commands": ["Write-Output hello", "Stop-Computer -Force"]}]}}],
    }
    based = {
        "image": {"os": "Windows Server 2022", "architecture": "x86-64",
                  "base": {"amazon": base or {"owner": "amazon",
                                              "name": "Windows_Server-2022-English-Full-*"}}},
        "target": [{"platform": "amazon", "region": region, "machine": {"type": "m5.xlarge"},
                    **({"copies": list(copies)} if copies else {}),
                    "tag": [{"name": "workerType", "value": "win-test"}],
                    "bootstrap": {"executions": [
                        {"name": "provision", "shell": "powershell",
                         "commands": ["Stop-Computer -Force"]}]}}
                   for region in aws_targets],
    }
    if validation:
        based["validation"] = validation
    if log:
        based["log"] = list(log)
    for name, content in (("linux-test", linux), ("windows-test", windows),
                          ("based-test", based)):
        (config / f"{name}.yaml").write_text(yaml.safe_dump(content))
    return config
