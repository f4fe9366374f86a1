"""Machine-image builds on Google for the tests (test helper): a small fleet with a Linux key
built from a public image family (or its disk image) for one Google target (`write_fleet`),
the build's test clock, and what a build leaves in the fake (`leftovers`)."""

from __future__ import annotations

import yaml

from .azure_build_support import Clock  # noqa: F401  (the builds' test clock, shared)

PROJECT, ZONE, KEY, TARGET = "example-cib-images", "us-central1-a", "linux-gce", \
    "google/us-central1"
BOOTSTRAP = {"executions": [
    {"name": "provision", "shell": "bash", "commands": ["echo provisioned"],
     "test": {"std": {"out": {"match": "provisioned"}}}},
    {"name": "power-off", "shell": "bash", "commands": ["sudo poweroff"],
     "test": {"status": {"code": {"match": "TERMINATED"}}}}]}


def write_fleet(tmp_path, *, base=True, validation=None, copies=(), disks=None):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    image = {"os": "Ubuntu 24.04", "architecture": "x86-64", "format": "RAW"}
    if base:
        image["base"] = {"google": {"project": "ubuntu-os-cloud",
                                   "family": "ubuntu-2404-lts-amd64"}}
    else:
        image |= {"source": {"url": "https://images.example.com/tiny.qcow2",
                             "format": "qcow2"},
                  "target": {"platform": "amazon", "bucket": "disk-images"}}
    key = {"image": image, "target": [{
        "platform": "google", "region": "us-central1", "zone": ZONE, "project": PROJECT,
        "bucket": "gce-staging", "machine": {"type": "n2-standard-2"},
        "disk": disks or [{"os": True, "variant": "pd-ssd", "size": 40}],
        "tag": [{"name": "workerType", "value": "gecko-t-linux-gcp"},
                {"name": "sourceScript", "value": "linux/bootstrap.sh"}],
        "bootstrap": BOOTSTRAP, **({"copies": list(copies)} if copies else {})}]}
    if validation:
        key["validation"] = validation
    (config / f"{KEY}.yaml").write_text(yaml.safe_dump(key))
    return config



def leftovers(fake):
    return {"instances": sorted(n for (_, _, n) in fake.instances),
            "disks": sorted(n for (_, _, n) in fake.disks)}


NOTHING_LEFT = {"instances": [], "disks": []}


