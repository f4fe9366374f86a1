"""`cib promote` of a key built on Azure, from a staging to a production local Taskcluster,
with the images in the ARM fake (`devclouds.azure_fake`, through the real SDK): a managed image is
published as a gallery version replicated to the regions the production pools lack, a gallery
version gets those regions added; no VM is ever created, the pools are deployed from the
promoted record, and a rerun changes nothing."""

from __future__ import annotations

import pytest

from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import SUBSCRIPTION, AzureFake
from cib_decision.manifest import ReleaseImage

from .azure_build_support import adapter
from .promote_support import (
    BUILD_TASK,
    machine_digest,
    promote,
    promoted_record,
    released_in_staging,
    writes,
)

KEY = "win11-64"
GROUPS = {"rg-central-us-win11": "centralus", "rg-east-us-win11": "eastus",
          "rg-north-europe-win11": "northeurope", "rg-west-europe-win11": "westeurope"}
HOME = "rg-central-us-win11"
POOLS = ("gecko-t/win11-64-azure", "gecko-1/win11-64-azure")
MISSING = ["eastus", "northeurope", "westeurope"]


@pytest.fixture
def azure(production_task, staging, monkeypatch):
    """The ARM fake with the bundled win11-64 key's resource groups (both local Taskclusters
    passed through); `cib promote` gets the fake's adapter."""
    monkeypatch.setattr(Azure, "from_environment", classmethod(lambda cls: adapter()))
    # operations end at their first status read: the command's waits never sleep
    with AzureFake.running(lro_polls=0) as fake:
        fake.mock.add_passthru(production_task.root_url)
        fake.mock.add_passthru(staging.root_url)
        for group, location in GROUPS.items():
            fake.add_group(group, location)
        yield fake


def digest() -> str:
    return machine_digest(KEY, "azure/centralus")


def build_tags(name: str) -> dict[str, str]:
    return {"Name": name, "cib:key": KEY, "cib:machine-digest": digest(),
            "cib:build-task-id": BUILD_TASK, "cib:environment": "staging",
            "cib:target": "azure/centralus", "cib:release-sha256": "5e" * 32}


def staging_managed_image(fake) -> ReleaseImage:
    """The managed image a staging build captured in Central US (its builder long gone)."""
    name = f"{KEY}-{digest()[:12]}"
    vm = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOME}/providers/"
          f"Microsoft.Compute/virtualMachines/cib-{name}-{BUILD_TASK}")
    image = fake.put("Microsoft.Compute/images", HOME, [name], "centralus", {
        "hyperVGeneration": "V2", "sourceVirtualMachine": {"id": vm},
        "storageProfile": {"osDisk": {"osType": "Windows", "osState": "Generalized",
                                      "managedDisk": {"id": f"{vm}-os"}}}},
        build_tags(name))
    return ReleaseImage("azure", "centralus", "azure/centralus", image["id"], name, digest(),
                        BUILD_TASK)


def staging_gallery_version(fake) -> ReleaseImage:
    """A gallery version a staging build published, replicated to Central US only."""
    name = f"{KEY}-{digest()[:12]}"
    fake.put("Microsoft.Compute/galleries", HOME, ["cibgallery"], "centralus")
    fake.put("Microsoft.Compute/galleries/images", HOME, ["cibgallery", KEY], "centralus",
             {"osType": "Windows", "osState": "Generalized", "hyperVGeneration": "V2"})
    version = fake.put("Microsoft.Compute/galleries/images/versions", HOME,
                       ["cibgallery", KEY, "2026.1121.120000"], "centralus", {
                           "publishingProfile": {"targetRegions": [
                               {"name": "Central US", "regionalReplicaCount": 1}]},
                           "storageProfile": {"source": {"virtualMachineId": "gone"}}},
                       build_tags(name))
    return ReleaseImage("azure", "centralus", "azure/centralus", version["id"], name,
                        digest(), BUILD_TASK)


def running(dev) -> dict[str, dict[str, str]]:
    """Per production pool: the image each region's launch config boots."""
    return {pool: {lc["location"]: lc["storageProfile"]["imageReference"]["id"]
                   for lc in dev.worker_pools()[pool]["config"]["launchConfigs"]}
            for pool in POOLS}


def arm_writes(fake) -> int:
    return len([c for c in fake.calls if c.method in ("PUT", "PATCH", "DELETE")
                and "management.azure.com" in c.url])


def test_a_managed_image_is_published_to_the_missing_regions_without_a_vm(
        staging, production_task, azure, tmp_path, capsys):
    built = staging_managed_image(azure)
    source = released_in_staging(staging, KEY, [built])
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    assert azure.calls_of("PUT Microsoft.Compute/virtualMachines") == []
    (version,) = azure.resources("Microsoft.Compute/galleries/images/versions")
    assert version["id"].startswith(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOME}/"
                                    f"providers/Microsoft.Compute/galleries/cibpromoted/"
                                    f"images/{KEY}/versions/")
    assert version["properties"]["storageProfile"]["source"]["id"] == built.id
    assert [r["name"] for r in version["properties"]["publishingProfile"][
        "targetRegions"]] == ["centralus", *MISSING]
    (definition,) = azure.resources("Microsoft.Compute/galleries/images")
    assert definition["properties"]["hyperVGeneration"] == "V2"
    promoted = promoted_record(tmp_path)
    assert (promoted.disk_digest, promoted.config_commit, promoted.created) == (
        source.disk_digest, source.config_commit, source.created)
    assert {(i.target, i.region, i.id) for i in promoted.images} == {
        ("azure/centralus", "centralus", built.id),
        *((f"azure/{r}", r, version["id"]) for r in MISSING)}
    assert all(i.machine_digest == digest() and i.name == built.name
               for i in promoted.images)
    # tagged like the source, with the promoted release's seal
    assert version["tags"] == {**build_tags(built.name),
                               "cib:release-sha256": promoted.sha256}
    assert running(production_task) == {
        POOLS[0]: {"centralus": built.id, **dict.fromkeys(MISSING, version["id"])},
        POOLS[1]: {"centralus": built.id, "eastus": version["id"]}}
    assert f"publishing image {built.name} ({built.id}) as cibpromoted/{KEY} version " in err
    assert "is replicated to centralus, eastus, northeurope, westeurope" in err


def test_a_rerun_publishes_replicates_deploys_and_points_nothing(
        staging, production_task, azure, tmp_path, capsys):
    released_in_staging(staging, KEY, [staging_managed_image(azure)])
    assert promote(capsys, staging, tmp_path, KEY)[0] == 0
    first, before, arm = promoted_record(tmp_path), writes(production_task), arm_writes(azure)
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    assert "was published as cibpromoted/win11-64 version" in err
    assert "is already replicated to centralus, eastus, northeurope, westeurope" in err
    assert promoted_record(tmp_path) == first
    assert (writes(production_task), arm_writes(azure)) == (before, arm)
    assert len(azure.resources("Microsoft.Compute/galleries/images/versions")) == 1


def test_a_gallery_version_gets_the_missing_regions_added(staging, production_task, azure,
                                                          tmp_path, capsys):
    built = staging_gallery_version(azure)
    released_in_staging(staging, KEY, [built])
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    (version,) = azure.resources("Microsoft.Compute/galleries/images/versions")
    assert version["id"] == built.id  # nothing new: the version itself serves them
    assert [r["name"] for r in version["properties"]["publishingProfile"][
        "targetRegions"]] == ["Central US", *MISSING]
    (update,) = azure.calls_of("PATCH */versions")
    assert set(update.body) == {"properties"}  # only the regions change
    assert version["tags"] == build_tags(built.name)  # the staging release's version, as is
    assert {(i.target, i.id) for i in promoted_record(tmp_path).images} == {
        ("azure/centralus", built.id), *((f"azure/{r}", built.id) for r in MISSING)}
    assert running(production_task)[POOLS[0]] == dict.fromkeys(["centralus", *MISSING],
                                                               built.id)
    assert azure.calls_of("PUT Microsoft.Compute/virtualMachines") == []
    assert f"adding {', '.join(MISSING)} to the regions of cibgallery/{KEY} version " \
           "2026.1121.120000" in err
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0 and "is already replicated" in err
    assert len(azure.calls_of("PATCH */versions")) == 1


def test_a_region_that_fails_to_replicate_exits_3_and_deploys_nothing(
        staging, production_task, azure, tmp_path, capsys):
    azure.replication_failures = {"northeurope"}
    released_in_staging(staging, KEY, [staging_gallery_version(azure)])
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 3
    assert "did not replicate: northeurope: Failed (Replication failed:" in err
    assert "Traceback" not in err
    assert production_task.worker_pools() == {}
    assert not (tmp_path / "artifacts" / "release.json").exists()


def test_a_dry_run_names_the_azure_copies_and_changes_nothing(staging, production_task, azure,
                                                              tmp_path, capsys):
    built = staging_managed_image(azure)
    released_in_staging(staging, KEY, [built])
    code, _, err = promote(capsys, staging, tmp_path, KEY, "--dry-run")
    assert code == 0, err
    for region in MISSING:
        assert f"would copy {built.id} (azure/centralus) to {region} for azure/{region}" in err
    assert arm_writes(azure) == 0 and writes(production_task) == 0
