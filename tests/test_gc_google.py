"""`cib gc --cloud google` end to end: google-cloud-compute against the Compute fake
(`devclouds.google_fake`), worker pools and release pointers in the local Taskcluster
(`dev_taskcluster`). The config's Google projects are its target's (builds) and production's
own (`google.project`, promoted copies)."""

from __future__ import annotations

import pytest
import slugid
import yaml

import taskcluster
from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.devclouds.google_fake import GoogleApiError
from cib_decision.devtc.testing import new_task
from cib_decision.lifecycle import gc, pointers
from cib_decision.lifecycle.gc_google import family_heads, tags_of

from .google_lifecycle_support import PRODUCTION_PROJECT, STAGING_PROJECT, ZONE, timestamp

KEY = "linux-gce"
DIGEST = "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def config(tmp_path, dev_taskcluster):
    """A Google key building in example-cib-images; production keeps its copies in its own
    project; both environments served by the local Taskcluster."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / f"{KEY}.yaml").write_text(yaml.safe_dump({
        "image": {"os": "Ubuntu 24.04", "architecture": "x86-64",
                  "base": {"google": {"project": "ubuntu-os-cloud",
                                      "family": "ubuntu-2404-lts-amd64"}}},
        "target": [{"platform": "google", "region": "us-central1", "zone": ZONE,
                    "project": STAGING_PROJECT}]}))
    environments = {name: {"root-url": dev_taskcluster.root_url, "description": name}
                    for name in ("production", "staging")}
    environments["production"]["google"] = {"project": PRODUCTION_PROJECT}
    (directory / "environments.yaml").write_text(yaml.safe_dump(environments))
    return directory


@pytest.fixture
def fake(google_fake, monkeypatch, dev_taskcluster):
    for name in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL"):
        monkeypatch.delenv(name, raising=False)
    from cib_decision.cli import gc as gc_cli

    options = gc_cli.environment_options
    monkeypatch.setattr(gc_cli, "environment_options",
                        lambda env: {**options(env), "maxRetries": 0})
    return google_fake


def labels(name: str, environment: str = "staging", **extra: str) -> dict[str, str]:
    """Our labels, as a build writes them (`labels_of(machine_image_tags(...))`)."""
    return {"name": name, "cib-key": KEY, "cib-machine-digest": DIGEST[:63],
            "cib-environment": environment, "cib-build-task-id": "fn1sbarxtpsvfnuvaolinq",
            **extra}


def image(fake, name: str, days_old: float, *, project: str = STAGING_PROJECT,
          environment: str = "staging", stored: str | None = "us-central1",
          tags: dict[str, str] | None = None, family: str | None = KEY) -> str:
    """An image of ours (or labelled `tags`), made `days_old` days ago; its id."""
    made = fake.add_image(project, name, family=family, created=timestamp(days_old),
                          labels=labels(name, environment) if tags is None else tags)
    if stored:
        made["storageLocations"] = [stored]
    return f"projects/{project}/global/images/{name}"


def existing(fake) -> set[str]:
    return {f"projects/{p}/global/images/{n}" for (p, n) in fake.images}


def deploy_pool(dev, pool_id: str, sources: list[str]) -> None:
    """A Google worker pool whose launch configs boot `sources`."""
    taskcluster.WorkerManager(dev.options()).createWorkerPool(pool_id, {
        "providerId": "google", "description": "a pool", "owner": "dev@example.com",
        "emailOnError": False,
        "config": {"minCapacity": 0, "maxCapacity": 1, "launchConfigs": [
            {"region": "us-central1", "zone": ZONE,
             "machineType": f"zones/{ZONE}/machineTypes/n2-standard-2",
             "disks": [{"type": "PERSISTENT", "boot": True, "autoDelete": True,
                        "initializeParams": {"sourceImage": source}}],
             "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
             "scheduling": {"onHostMaintenance": "terminate"}, "workerConfig": {}}
            for source in sources]}})


def release(dev, environment: str, image_ids: list[str]) -> None:
    """A release of `image_ids`, left by a task and pointed at by `environment`."""
    fleet_images = [manifest.ReleaseImage("google", "us-central1", "google/us-central1", i,
                                          f"{KEY}-{DIGEST[:12]}", DIGEST,
                                          "fN1SbArXTPSVFNUvaOlinQ") for i in image_ids]
    record = manifest.release_record(KEY, disk_digest="cd" * 32, disk_sha256=None,
                                     config_commit=COMMIT,
                                     created=manifest.parse_time("2026-11-21T13:00:00Z"),
                                     images=fleet_images)
    task_id = slugid.nice()
    taskcluster.Queue(dev.options()).createTask(task_id, new_task())
    dev.resolve_task(task_id, artifacts={manifest.RELEASE_ARTIFACT: record.to_json()})
    pointers.set_release(taskcluster.Index(dev.options()), environment,
                         pointers.ReleaseRef(KEY, record.sha256, task_id), "deploy",
                         lambda _: None)


def run_gc(capsys, config, *args: str) -> tuple[int, str, str]:
    code = main(["gc", "--cloud", "google", "--config-dir", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_gc_keeps_what_pools_and_pointers_name_and_the_newest_per_project_and_deletes_the_rest(
        fake, config, dev_taskcluster, capsys):
    built = [image(fake, f"{KEY}-{n:012x}", days_old=10 * n) for n in range(1, 6)]
    copies = [image(fake, f"{KEY}-{n:012x}", days_old=10 * n, project=PRODUCTION_PROJECT)
              for n in range(1, 4)]
    foreign = image(fake, "someone-elses", days_old=400, tags={"owner": "someone"})
    half = image(fake, "half-ours", days_old=400, tags={"cib-key": KEY})
    # the pool names the image by its self link: compared as its projects/... path
    deploy_pool(dev_taskcluster, "test/linux-gcp",
                [f"https://compute.googleapis.com/compute/v1/{built[4]}"])
    release(dev_taskcluster, "production", [copies[2]])
    fake.calls.clear()
    code, out, err = run_gc(capsys, config, "--keep", "1")
    assert code == 0, err
    # the newest of each project stays, whatever the other project holds
    assert existing(fake) == {built[0], built[4], copies[0], copies[2], foreign, half}
    assert fake.calls.count("images.delete") == 4
    assert fake.calls.count("globalOperations.get") == 4  # each deletion waited on
    assert f"deleted {KEY}-000000000002 in {STAGING_PROJECT} (stored in us-central1)" in out
    table = out[out.index("action"):]
    assert "referenced by pool test/linux-gcp (production); pool test/linux-gcp (staging)" \
        in table
    assert "in production: release" in table
    assert f"among the newest 1 of {KEY} in staging ({PRODUCTION_PROJECT})" in table
    assert "google/us-central1" in table
    assert "4 deleted, 1 not ours" in table


def test_a_pool_booting_the_family_keeps_the_image_the_family_boots(
        fake, config, dev_taskcluster, capsys):
    images = [image(fake, f"{KEY}-{n:012x}", days_old=10 * n) for n in range(1, 4)]
    deploy_pool(dev_taskcluster, "test/linux-family",
                [f"projects/{STAGING_PROJECT}/global/images/family/{KEY}"])
    code, _, err = run_gc(capsys, config, "--keep", "0")
    assert code == 0, err
    assert existing(fake) == {images[0]}  # the newest of the family, which the pool boots


def test_region_narrows_to_images_stored_there_and_environment_to_its_images(
        fake, config, capsys):
    central = image(fake, f"{KEY}-central", days_old=30)
    multi = image(fake, f"{KEY}-multi", days_old=30, stored="us")  # a multi-region
    nowhere = image(fake, f"{KEY}-nowhere", days_old=30, stored=None)
    production = image(fake, f"{KEY}-prod", days_old=30, environment="production",
                       project=PRODUCTION_PROJECT)
    code, out, err = run_gc(capsys, config, "--keep", "0", "--region", "us")
    assert code == 0, err
    assert existing(fake) == {central, nowhere, production} and multi not in existing(fake)
    assert f"deleted {KEY}-multi in {STAGING_PROJECT} (stored in us)" in out
    code, out, err = run_gc(capsys, config, "--keep", "0", "--environment", "production")
    assert code == 0, err
    assert existing(fake) == {central, nowhere}
    assert "1 deleted, 0 not ours (never touched), 2 of other environments" in out
    code, out, err = run_gc(capsys, config, "--keep", "0")
    assert code == 0, err
    assert existing(fake) == set()
    (row,) = [line.split() for line in out.splitlines() if nowhere in line.split()]
    assert row[:3] == ["deleted", "google/global", nowhere]  # no storage location: global


def test_every_page_is_read_and_a_page_that_fails_deletes_nothing(fake, config, capsys,
                                                                   monkeypatch):
    fake.page_size = 2  # five images: three pages, all read
    images = [image(fake, f"{KEY}-{n:012x}", days_old=10 * n) for n in range(1, 6)]
    code, _, err = run_gc(capsys, config, "--keep", "4")
    assert code == 0, err
    assert existing(fake) == set(images[:4])
    copy = image(fake, f"{KEY}-copy", days_old=90, project=PRODUCTION_PROJECT)
    listing = fake._images_list

    def page_two_fails(project, scope, name, query, payload):
        if query.get("pageToken"):
            raise GoogleApiError(503, "backendError", "the second page is not there")
        return listing(project, scope, name, query, payload)

    monkeypatch.setattr(fake, "_images_list", page_two_fails)
    calls = len(fake.calls)
    code, _, err = run_gc(capsys, config, "--keep", "0")
    assert code == 75
    assert "backendError" in err and "nothing was deleted" in err
    assert existing(fake) == {*images[:4], copy}
    assert "images.delete" not in fake.calls[calls:]


def test_a_refused_listing_is_exit_2_and_deletes_nothing(fake, config, capsys):
    images = {image(fake, f"{KEY}-{n}", days_old=30 + n) for n in range(3)}
    fake.fail("images.list", status=403, reason="forbidden", message=(
        "Required 'compute.images.list' permission for 'projects/example-cib-images'"))
    code, _, err = run_gc(capsys, config, "--keep", "0")
    assert code == 2
    assert "compute.images.list" in err and "nothing was deleted" in err
    assert existing(fake) == images


def test_a_refused_deletion_is_reported_and_the_others_go_ahead(fake, config, capsys):
    images = {image(fake, f"{KEY}-{n}", days_old=30 + n) for n in range(3)}
    fake.fail("images.delete", status=400, reason="resourceInUseByAnotherResource",
              message="The image is in use", during="operation")
    code, _, err = run_gc(capsys, config, "--keep", "0")
    assert code == 3
    assert "1 of 3 deletions failed" in err and "The image is in use" in err
    assert len(existing(fake) & images) == 1


def test_labels_read_as_the_tags_they_come_from_and_families_boot_their_newest():
    read = tags_of(labels("x") | {"workertype": "gecko"})
    assert gc.Image("google", "us-central1", "i", "x", None, tuple(read.items())).ours
    assert (read["Name"], read["cib:key"], read["workertype"]) == ("x", KEY, "gecko")
    heads = family_heads("p", [
        {"name": "old", "family": "f", "status": "READY", "creationTimestamp": "2026-01-01"},
        {"name": "new", "family": "f", "status": "READY", "creationTimestamp": "2026-02-01"},
        {"name": "newer", "family": "f", "status": "READY", "creationTimestamp": "2026-03-01",
         "deprecated": {"state": "DEPRECATED"}},
        {"name": "pending", "family": "f", "status": "PENDING",
         "creationTimestamp": "2026-04-01"}])
    assert heads == {"new": "f"}
