"""`cib image disk` for a key whose disk image is stored on Azure: the converted VHD is uploaded
as a page blob to the storage account `image.target` names, recorded with its blob URL and the
region of the key's target using that account, and reused on a second run (Blob storage
served by `devclouds.azure_fake` through the real azure-storage-blob client)."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import responses
import yaml

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake, StaticToken
from cib_decision.images.context import load_context
from cib_decision.images.disk import upload_target

from .imagefleet import COMMIT, TASK_ID

ISO_URL = "https://media.example.com/windows.iso"
ISO = b"\x01" * 4096 + bytes(8192)  # whole 512-byte pages, the last ones empty
# The worker's conversion command, played by a copy (an ISO of whole pages is a fine VHD here).
CONVERT = f"{sys.executable} -c \"import shutil,sys; shutil.copy(sys.argv[1], sys.argv[2])\" " \
          "{iso} {output}"


def write_fleet(directory, image_target=None, image_format="VHD"):
    config = directory / "config"
    config.mkdir(parents=True, exist_ok=True)
    key = {"image": {"os": "Windows 10", "architecture": "x86-64", "format": image_format,
                     "target": image_target or {"platform": "azure", "storage": "sacentral",
                                                "group": "rg-central"}},
           "iso": {"source": {"url": ISO_URL},
                   "sha256": hashlib.sha256(ISO).hexdigest()},
           "target": [{"platform": "azure", "region": "Central US", "group": "rg-central",
                       "storage": "sacentral"},
                      {"platform": "azure", "region": "East US 2", "group": "rg-east",
                       "storage": "saeast"}]}
    (config / "win-disk.yaml").write_text(yaml.safe_dump(key))
    return config


@pytest.fixture
def fake(monkeypatch):
    for name, value in {"TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT}.items():
        monkeypatch.setenv(name, value)
    with AzureFake.running() as served:
        served.add_storage_account("sacentral", "disk-images")
        served.mock.add(responses.GET, ISO_URL, body=ISO)
        monkeypatch.setattr(Azure, "from_environment", classmethod(
            lambda cls: Azure(SUBSCRIPTION, StaticToken(), retry_total=0)))
        yield served


def run_disk(tmp_path, config):
    return main(["image", "disk", "--key", "win-disk", "--config-dir", str(config),
                 "--artifacts", str(tmp_path / "artifacts"), "--work-dir", str(tmp_path),
                 "--convert-command", CONVERT])


def test_the_vhd_is_uploaded_as_a_page_blob_and_recorded_with_its_url(tmp_path, fake, capsys):
    config = write_fleet(tmp_path)
    assert run_disk(tmp_path, config) == 0
    record = manifest.parse_disk_image(json.loads(
        (tmp_path / "artifacts" / "disk-image.json").read_text()))
    ctx = load_context("win-disk", config, artifacts=tmp_path)
    name = f"win-disk-disk-{ctx.digests.disk[:12]}.vhd"
    assert record.location == f"https://sacentral.blob.core.windows.net/disk-images/{name}"
    assert (record.platform, record.region, record.size) == ("azure", "centralus", len(ISO))
    assert record.sha256 == hashlib.sha256(ISO).hexdigest()
    blob = fake.blob("sacentral", "disk-images", name)
    assert blob.kind == "PageBlob" and bytes(blob.content) == ISO
    assert blob.metadata == {"cibdiskdigest": ctx.digests.disk, "cibsha256": record.sha256}
    assert len(fake.calls_of("PUT blob/page")) == 1  # the empty pages are not sent
    assert f"uploading {name} to {record.location} (centralus)" in capsys.readouterr().out


def test_a_second_run_reuses_the_blob_without_fetching(tmp_path, fake, capsys):
    config = write_fleet(tmp_path)
    assert run_disk(tmp_path, config) == 0
    first = (tmp_path / "artifacts" / "disk-image.json").read_text()
    fake.calls.clear()
    capsys.readouterr()
    assert run_disk(tmp_path, config) == 0
    assert "already holds this disk digest: reusing it" in capsys.readouterr().out
    assert [c.kind for c in fake.calls] == ["HEAD blob"]
    again = json.loads((tmp_path / "artifacts" / "disk-image.json").read_text())
    assert again["location"] == json.loads(first)["location"]


def test_azure_disk_images_must_be_vhd(tmp_path, fake, capsys):
    assert run_disk(tmp_path, write_fleet(tmp_path, image_format="RAW")) == 2
    assert "must be VHD to store it on Azure" in capsys.readouterr().err
    assert fake.calls == []


def test_the_storage_accounts_region_comes_from_a_target_or_the_image_target(tmp_path, fake):
    config = write_fleet(tmp_path, {"platform": "azure", "storage": "saeast"})
    key = load_context("win-disk", config, artifacts=tmp_path).key
    assert upload_target(key).region == "eastus2"
    config = write_fleet(tmp_path, {"platform": "azure", "storage": "elsewhere",
                                    "region": "West Europe", "bucket": "vhds"})
    destination = upload_target(load_context("win-disk", config, artifacts=tmp_path).key)
    assert (destination.region, destination.bucket) == ("West Europe", "vhds")
    assert destination.location("a.vhd") == "https://elsewhere.blob.core.windows.net/vhds/a.vhd"


def test_an_account_of_no_target_without_a_region_is_a_clear_error(tmp_path, fake, capsys):
    config = write_fleet(tmp_path, {"platform": "azure", "storage": "elsewhere"})
    assert run_disk(tmp_path, config) == 2
    assert "which no Azure target of the key uses: give its region" in capsys.readouterr().err


def test_a_disk_image_in_a_sovereign_or_local_cloud_is_recorded_at_its_blob_endpoint(
        tmp_path, fake, monkeypatch):
    config = write_fleet(tmp_path, {"platform": "azure", "storage": "saeast"})
    destination = upload_target(load_context("win-disk", config, artifacts=tmp_path).key)
    monkeypatch.setenv("AZURE_STORAGE_SUFFIX", "core.chinacloudapi.cn")
    assert destination.location("a.vhd") == \
        "https://saeast.blob.core.chinacloudapi.cn/disk-images/a.vhd"
