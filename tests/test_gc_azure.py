"""`cib gc --cloud azure` end to end: the real Azure SDK clients against the ARM fake
(`devclouds.azure_fake`), worker pools and release pointers in the local Taskcluster
(`dev_taskcluster`)."""

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

DIGEST = "ab" * 32
NOW = datetime.now(UTC)
IMAGES = "microsoft.compute/images"
VERSIONS = "microsoft.compute/galleries/images/versions"
PREFIX = f"/subscriptions/{SUBSCRIPTION}/resourceGroups"


@pytest.fixture
def config(tmp_path, dev_taskcluster):
    """A Windows key with targets in Central US (rg-central) and East US 2 (rg-east); both
    environments served by the local Taskcluster."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "win-azure.yaml").write_text(yaml.safe_dump({
        "image": {"os": "Windows Server 2022", "architecture": "x86-64",
                  "base": {"azure": {"publisher": "MicrosoftWindowsServer",
                                     "offer": "WindowsServer", "sku": "2022-datacenter"}}},
        "target": [{"platform": "azure", "region": "Central US", "group": "rg-central"},
                   {"platform": "azure", "region": "East US 2", "group": "rg-east"}]}))
    (directory / "environments.yaml").write_text(yaml.safe_dump({
        name: {"root-url": dev_taskcluster.root_url, "description": name}
        for name in ("production", "staging")}))
    return directory


@pytest.fixture
def fake(monkeypatch, dev_taskcluster):
    for name in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL"):
        monkeypatch.delenv(name, raising=False)
    from cib_decision.cli import gc as gc_cli

    options = gc_cli.environment_options
    monkeypatch.setattr(gc_cli, "environment_options",
                        lambda env: {**options(env), "maxRetries": 0})
    monkeypatch.setattr(Azure, "from_environment", classmethod(
        lambda cls, environ=None: cls(SUBSCRIPTION, StaticToken(), polling_interval=0,
                                      retry_total=0)))
    with AzureFake.running() as served:
        served.mock.add_passthru(dev_taskcluster.root_url)  # the local Taskcluster is real
        for group, location in (("rg-central", "centralus"), ("rg-east", "eastus2"),
                                ("rg-other", "centralus")):
            served.add_group(group, location)
        yield served


def ours(name: str, environment: str = "production", **extra: str) -> dict[str, str]:
    return {"Name": name, "cib:key": "win-azure", "cib:machine-digest": DIGEST,
            "cib:environment": environment, **extra}


def managed(fake, name: str, days_old: float | None, *, group: str = "rg-central",
            location: str = "centralus", tags: dict[str, str] | None = None) -> str:
    """A managed image (made `days_old` days ago, as ARM's systemData says; None: no
    creation time); its id."""
    extra = {} if days_old is None else {"systemData": {"createdAt": (
        NOW - timedelta(days=days_old)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
    return fake.put(IMAGES, group, [name], location,
                    {"storageProfile": {"osDisk": {"osType": "Windows"}}},
                    ours(name) if tags is None else tags, **extra)["id"]


def version(fake, number: str, days_old: float, *, environment: str = "production") -> str:
    """A version of win-azure's image in gallery cibgallery (rg-east); its id."""
    fake.put("microsoft.compute/galleries", "rg-east", ["cibgallery"], "eastus2")
    fake.put("microsoft.compute/galleries/images", "rg-east", ["cibgallery", "win-azure"],
             "eastus2")
    published = (NOW - timedelta(days=days_old)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return fake.put(VERSIONS, "rg-east", ["cibgallery", "win-azure", number], "eastus2",
                    {"publishingProfile": {"publishedDate": published}},
                    ours(f"win-azure-{number}", environment))["id"]


def existing(fake, kind: str = IMAGES) -> set[str]:
    return {r["id"] for r in fake.resources(fake_type(kind))}


def fake_type(kind: str) -> str:
    return {IMAGES: "Microsoft.Compute/images", VERSIONS: "Microsoft.Compute/galleries/images/"
            "versions"}[kind]


def deploy_pool(dev, pool_id: str, image_ids: list[str]) -> None:
    """An Azure worker pool whose launch configs run `image_ids`."""
    taskcluster.WorkerManager(dev.options()).createWorkerPool(pool_id, {
        "providerId": "azure", "description": "a pool", "owner": "dev@example.com",
        "emailOnError": False,
        "config": {"minCapacity": 0, "maxCapacity": 1, "launchConfigs": [
            {"location": "centralus", "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
             "subnetId": f"{PREFIX}/rg-central/providers/Microsoft.Network/virtualNetworks/vn/"
                         "subnets/sn",
             "storageProfile": {"imageReference": {"id": image_id},
                                "osDisk": {"createOption": "FromImage"}},
             "workerConfig": {}}
            for image_id in image_ids]}})


def gc(capsys, config, *args: str) -> tuple[int, str, str]:
    code = main(["gc", "--cloud", "azure", "--config-dir", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_gc_keeps_the_images_pools_run_and_the_newest_and_deletes_the_rest(
        fake, config, dev_taskcluster, capsys):
    images = [managed(fake, f"win-azure-{n:012x}", days_old=10 * n) for n in range(1, 5)]
    east = managed(fake, "win-azure-east", days_old=90, group="rg-east", location="eastus2")
    foreign = managed(fake, "someone-elses", days_old=400, tags={"Name": "someone-elses"})
    elsewhere = managed(fake, "win-azure-elsewhere", days_old=400, group="rg-other")
    # the pool names the image in ARM's other casing: ids are compared case-insensitively
    deploy_pool(dev_taskcluster, "test/win", [images[3].upper()])
    code, out, err = gc(capsys, config, "--keep", "1")
    assert code == 0, err
    assert existing(fake) == {images[0], images[3], east, foreign, elsewhere}
    assert f"deleted win-azure-000000000002 in centralus ({images[1]})" in out
    assert fake.calls_of("DELETE Microsoft.Compute/images")
    table = out[out.index("action"):]
    assert "referenced by pool test/win (production); pool test/win (staging)" in table
    assert "2 deleted, 1 not ours" in table


def test_gallery_versions_are_collected_and_a_pool_on_the_image_definition_keeps_them_all(
        fake, config, dev_taskcluster, capsys):
    versions = [version(fake, f"2026.{n}.0", days_old=10 * n) for n in range(1, 4)]
    definition = versions[0].rsplit("/versions/", 1)[0]
    deploy_pool(dev_taskcluster, "test/win-gallery", [definition])  # runs the latest version
    code, _, err = gc(capsys, config, "--keep", "0")
    assert code == 0, err
    assert existing(fake, VERSIONS) == set(versions)
    # a deleted pool's definition (null-provider) has no launch configs: it refers to nothing
    deploy_pool(dev_taskcluster, "test/win-pinned", [versions[0]])
    taskcluster.WorkerManager(dev_taskcluster.options()).deleteWorkerPool("test/win-gallery")
    code, out, err = gc(capsys, config, "--keep", "0")
    assert code == 0, err
    assert existing(fake, VERSIONS) == {versions[0]}
    assert "deleted win-azure-2026.3.0 in eastus2" in out


def test_a_managed_image_without_a_creation_time_takes_its_build_tasks(
        fake, config, dev_taskcluster, capsys):
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task())
    built = managed(fake, "win-azure-built", None,
                    tags=ours("win-azure-built", **{"cib:build-task-id": task_id}))
    unknown = managed(fake, "win-azure-unknown", None,
                      tags=ours("win-azure-unknown", **{"cib:build-task-id": slugid.nice()}))
    code, out, _ = gc(capsys, config, "--keep", "0", "--min-age", "1 day")
    assert existing(fake) == {built, unknown}
    table = out[out.index("action"):]
    assert "younger than the minimum age" in table and "creation time unknown" in table
    code, _, err = gc(capsys, config, "--keep", "0", "--min-age", "0 seconds")
    assert code == 0, err
    assert existing(fake) == {unknown}


@pytest.mark.parametrize("kind, status, code, exit_status", [
    ("GET Microsoft.Compute/galleries (list)", 503, "ServiceUnavailable", 75),
    ("GET Microsoft.Compute/images (list)", 403, "AuthorizationFailed", 2),
])
def test_a_failed_image_listing_deletes_nothing(fake, config, capsys, kind, status, code,
                                                exit_status):
    images = [managed(fake, f"win-azure-{n}", days_old=30 + n) for n in range(3)]
    fake.fail(kind, status=status, code=code, message="no")
    result, _, err = gc(capsys, config, "--keep", "0")
    assert result == exit_status
    assert code in err and "nothing was deleted" in err
    assert existing(fake) == set(images)
    assert not fake.calls_of("DELETE *")


def test_a_failed_pool_listing_deletes_nothing(fake, config, dev_taskcluster, capsys):
    images = [managed(fake, f"win-azure-{n}", days_old=30 + n) for n in range(3)]
    dev_taskcluster.script_faults("", "", "", "500")  # staging's pools
    code, _, err = gc(capsys, config, "--keep", "0")
    assert code == 75
    assert "failed to list the worker pools of staging" in err
    assert existing(fake) == set(images)
    assert not fake.calls_of("DELETE *")


def test_a_refused_deletion_is_reported_and_the_others_go_ahead(fake, config, capsys):
    images = [managed(fake, f"win-azure-{n}", days_old=30 + n) for n in range(3)]
    fake.fail("DELETE Microsoft.Compute/images", status=409, code="OperationNotAllowed",
              message="The image is in use")
    code, _, err = gc(capsys, config, "--keep", "0")
    assert code == 3
    assert "1 of 3 deletions failed" in err and "OperationNotAllowed" in err
    assert len(existing(fake) & set(images)) == 1
