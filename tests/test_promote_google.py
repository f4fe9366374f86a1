"""`cib promote` of the bundled ubuntu-2404 key, whose release has an AWS and a Google image, from
a staging to a production local Taskcluster, with the Google images in the Compute fake (through
google-cloud-compute): production keeps its Google images in a project of its own
(environments.yaml `google_fake.project`), so the Google image is copied there, labelled with the
promoted release's seal, and production's Google pool boots the copy; no instance is made, and
a rerun changes nothing."""

from __future__ import annotations

import shutil

import yaml

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.images.google_machine import identity_labels
from cib_decision.lifecycle.promote import plan_copies
from cib_decision.manifest import ReleaseImage, parse_time, release_record

from .conftest import CONFIG_DIR
from .google_lifecycle_support import (
    PRODUCTION_PROJECT,
    STAGING_PROJECT,
    writes,
)
from .pools_support import cib
from .promote_support import (
    BUILD_TASK,
    machine_digest,
    promote,
    promoted_record,
    released_in_staging,
)
from .promote_support import writes as tc_writes

KEY = "ubuntu-2404"
GCP_POOL, AWS_POOL = "gecko-t/ubuntu-2404-gcp", "gecko-t/ubuntu-2404-aws"
AMI = "ami-0123456789abcdef0"


def digest() -> str:
    return machine_digest(KEY, "google/us-central1")


def name() -> str:
    return f"{KEY}-{digest()[:12]}"


def staging_labels() -> dict[str, str]:
    return {**identity_labels(KEY, digest()), "name": name(), "cib-environment": "staging",
            "cib-build-task-id": BUILD_TASK.lower(), "cib-release-sha256": "5e" * 31 + "5"}


def staging_images(fake) -> list[ReleaseImage]:
    """The staging build's Google image (in the target's project, family ubuntu-2404, stored
    in us-central1) and its AMI, as the release lists them."""
    image = fake.add_image(STAGING_PROJECT, name(), family="ubuntu-2404",
                           labels=staging_labels())
    image["storageLocations"] = ["us-central1"]
    aws = machine_digest(KEY, "amazon/us-east-1")
    return [ReleaseImage("google", "us-central1", "google/us-central1",
                         f"projects/{STAGING_PROJECT}/global/images/{name()}", name(), digest(),
                         BUILD_TASK, tests={"passed": True, "task_id": BUILD_TASK,
                                            "results": [], "tests_digest": "7e" * 32}),
            ReleaseImage("amazon", "us-east-1", "amazon/us-east-1", AMI, f"{KEY}-{aws[:12]}",
                         aws, BUILD_TASK)]


def booted(dev, pool: str) -> list[str]:
    """The image each launch config of a production pool boots."""
    configs = dev.worker_pools()[pool]["config"]["launchConfigs"]
    return [lc["disks"][0]["initializeParams"]["sourceImage"] if "disks" in lc
            else lc["launchConfig"]["ImageId"] for lc in configs]


def test_the_google_image_is_copied_into_productions_project_and_its_pool_boots_the_copy(
        staging, production_task, google_fake, tmp_path, capsys):
    built, ami = staging_images(google_fake)
    source = released_in_staging(staging, KEY, [built, ami])
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    copy_id = f"projects/{PRODUCTION_PROJECT}/global/images/{name()}"
    copy = google_fake.images[(PRODUCTION_PROJECT, name())]
    assert copy["sourceImage"].endswith(built.id)
    assert (copy["status"], copy["family"], copy["storageLocations"]) == (
        "READY", "ubuntu-2404", ["us-central1"])
    promoted = promoted_record(tmp_path)
    # the copy takes the staging image's place; the AMI is the release's own
    assert {(i.target, i.region, i.id) for i in promoted.images} == {
        ("google/us-central1", "us-central1", copy_id), ("amazon/us-east-1", "us-east-1", AMI)}
    (entry,) = [i for i in promoted.images if i.platform == "google"]
    assert (entry.name, entry.machine_digest, entry.tests) == (name(), digest(), built.tests)
    assert promoted.sha256 != source.sha256
    # labelled like the source, with the identity labels and the promoted release's seal
    assert copy["labels"] == {**staging_labels(), "cib-release-sha256": promoted.sha256[:63]}
    assert google_fake.images[(STAGING_PROJECT, name())]["labels"] == staging_labels()
    assert booted(production_task, GCP_POOL) == [copy_id]
    assert booted(production_task, AWS_POOL) == [AMI]
    assert not any(c.startswith("instances.") for c in google_fake.calls)
    assert writes(google_fake) == ["images.insert", "images.setLabels"]
    assert f"copying {built.id} to {PRODUCTION_PROJECT} as {name()}" in err


def test_a_rerun_finds_the_copy_and_writes_nothing(staging, production_task, google_fake,
                                                   tmp_path, capsys):
    released_in_staging(staging, KEY, staging_images(google_fake))
    assert promote(capsys, staging, tmp_path, KEY)[0] == 0
    first, before, calls = promoted_record(tmp_path), tc_writes(production_task), \
        len(writes(google_fake))
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    assert f"{PRODUCTION_PROJECT} already has {name()}" in err
    assert promoted_record(tmp_path) == first
    assert (tc_writes(production_task), len(writes(google_fake))) == (before, calls)


def test_without_a_project_of_its_own_the_release_image_serves_and_google_is_not_asked(
        staging, production_task, google_fake, tmp_path, capsys):
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    del environments["production"]["google"]
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    built, ami = staging_images(google_fake)
    source = released_in_staging(staging, KEY, [built, ami])
    code, _, err = cib(capsys, "promote", "--key", KEY, "--from", "staging", "--to",
                       "production", "--from-root-url", staging.root_url, "--config-dir",
                       str(config), "--artifacts", str(tmp_path / "artifacts"))
    assert code == 0, err
    assert promoted_record(tmp_path).sha256 == source.sha256  # the release itself
    assert booted(production_task, GCP_POOL) == [built.id]
    assert google_fake.calls == []


def test_an_image_of_that_name_without_the_identity_labels_is_refused(
        staging, production_task, google_fake, tmp_path, capsys):
    released_in_staging(staging, KEY, staging_images(google_fake))
    google_fake.add_image(PRODUCTION_PROJECT, name(), labels={"owner": "someone-else"})
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 2
    assert f"{PRODUCTION_PROJECT} has an image named {name()} without the labels" in err
    assert "Traceback" not in err
    assert production_task.worker_pools() == {}
    assert writes(google_fake) == []


def test_a_release_image_that_is_gone_exits_2_and_deploys_nothing(
        staging, production_task, google_fake, tmp_path, capsys):
    built, ami = staging_images(google_fake)
    del google_fake.images[(STAGING_PROJECT, name())]
    released_in_staging(staging, KEY, [built, ami])
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 2
    assert f"release image {built.id} does not exist (any more)" in err
    assert production_task.worker_pools() == {}


def test_throttling_of_the_copy_exits_75_and_a_rerun_completes_it(
        staging, production_task, google_fake, tmp_path, capsys):
    released_in_staging(staging, KEY, staging_images(google_fake))
    google_fake.fail("images.insert", status=429, reason="rateLimitExceeded")
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 75, err
    assert "rateLimitExceeded" in err and "Traceback" not in err
    assert production_task.worker_pools() == {}
    code, _, err = promote(capsys, staging, tmp_path, KEY)
    assert code == 0, err
    assert (PRODUCTION_PROJECT, name()) in google_fake.images


def test_a_dry_run_names_the_google_copy_and_changes_nothing(staging, production_task, google_fake,
                                                             tmp_path, capsys):
    built, ami = staging_images(google_fake)
    released_in_staging(staging, KEY, [built, ami])
    code, _, err = promote(capsys, staging, tmp_path, KEY, "--dry-run")
    assert code == 0, err
    assert (f"would copy {built.id} (google/us-central1) to us-central1 (project "
            f"{PRODUCTION_PROJECT}) for google/us-central1") in err
    assert writes(google_fake) == [] and tc_writes(production_task) == 0


def test_the_plan_copies_a_google_image_only_into_another_project_than_its_own():
    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    digests = fleet_digests(fleet)[KEY]

    def release_in(project: str):
        image = ReleaseImage("google", "us-central1", "google/us-central1",
                             f"projects/{project}/global/images/{name()}", name(), digest(),
                             BUILD_TASK)
        return release_record(KEY, disk_digest=digests.disk, disk_sha256=None,
                              config_commit="0" * 40, created=parse_time("2026-11-21T13:00Z"),
                              images=[image])

    (copy,) = plan_copies(fleet.keys[KEY], digests, release_in(STAGING_PROJECT), fleet,
                          "production").copies
    assert (copy.region, copy.project, copy.entry_target) == (
        "us-central1", PRODUCTION_PROJECT, "google/us-central1")
    assert plan_copies(fleet.keys[KEY], digests, release_in(PRODUCTION_PROJECT), fleet,
                       "production").copies == []
    assert plan_copies(fleet.keys[KEY], digests, release_in(STAGING_PROJECT), fleet,
                       "staging").copies == []  # staging names no project of its own
