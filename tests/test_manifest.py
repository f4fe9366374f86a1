"""Machine-image and release records: what builds write and pool deploys read."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cib_decision import manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests
from cib_decision.errors import CibError
from cib_decision.manifest import RecordError

from .conftest import CONFIG_DIR

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK_A = "fN1SbArXTPSVFNUvaOlinQ"
TASK_B = "Xq3P2rYhT3aH0VxqCeUPmA"
WHEN = datetime(2026, 11, 21, 13, 0, 5, 123456, tzinfo=UTC)
AZURE_ID = ("/subscriptions/0000-sub/resourceGroups/rg-central-us-win10/providers/"
            "Microsoft.Compute/images/{}")


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(DirectorySource(CONFIG_DIR))


@pytest.fixture(scope="module")
def digests(fleet):
    return fleet_digests(fleet)


def record(fleet, digests, key="win10-64", index=0, **overrides):
    target = fleet.keys[key].targets[index]
    machine = digests[key].machines[target.id]
    name = f"{key}-{machine[:12]}"
    ids = {"azure": AZURE_ID.format(name), "amazon": "ami-0123456789abcdef0",
           "google": f"projects/example-cib-images/global/images/{name}"}
    arguments = {"image_id": ids[target.platform], "machine_digest": machine,
                 "disk_digest": digests[key].disk, "config_commit": COMMIT,
                 "build_task_id": TASK_A, "created": WHEN, **overrides}
    return manifest.machine_image_record(key, target, **arguments)


def release(fleet, digests, key="win10-64", **overrides):
    images = [record(fleet, digests, key, i) for i in range(len(fleet.keys[key].targets))]
    arguments = {"disk_digest": digests[key].disk, "disk_sha256": "ab" * 32,
                 "config_commit": COMMIT, "created": WHEN, "images": images, **overrides}
    return manifest.release_record(key, **arguments)


def test_machine_image_record_names_the_image_with_naming_and_spells_region_canonically(
        fleet, digests):
    rec = record(fleet, digests)
    machine = digests["win10-64"].machines["azure/centralus"]
    assert rec.image_name == f"win10-64-{machine[:12]}"
    assert (rec.target, rec.platform, rec.region) == ("azure/centralus", "azure", "centralus")
    assert rec.created == "2026-11-21T13:00:05Z"


def test_pull_request_builds_record_their_pull_request_image_name(fleet, digests):
    rec = record(fleet, digests, pull_request=42)
    assert rec.image_name.startswith("win10-64-pr42-")


def test_machine_image_record_round_trips_through_its_artifact_text(fleet, digests):
    rec = record(fleet, digests, key="ubuntu-2404", index=1)
    text = manifest.dumps(rec)
    assert json.loads(text)["format"] == manifest.FORMAT
    assert manifest.loads(text, "artifact") == rec


def test_release_round_trips_and_lists_images_by_target(fleet, digests):
    rel = release(fleet, digests)
    assert [i.target for i in rel.images] == sorted(i.target for i in rel.images)
    assert manifest.loads(manifest.dumps(rel), "artifact") == rel


def test_release_sha256_is_the_sha256_of_the_canonical_body_without_sha256_and_signature(
        fleet, digests):
    data = release(fleet, digests).to_json()
    body = {k: v for k, v in data.items() if k not in ("sha256", "signature")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert data["sha256"] == hashlib.sha256(canonical).hexdigest()


def test_a_release_verifies_and_a_signature_does_not_change_its_hash(fleet, digests):
    data = release(fleet, digests).to_json()
    data["signature"] = "sig"
    assert manifest.verify(manifest.parse_release(data)).signature == "sig"


@pytest.mark.parametrize("change", [
    lambda d: d["images"][0].update(id=AZURE_ID.format("someone-elses-image")),
    lambda d: d.update(config_commit="f" * 40),
    lambda d: d["images"].pop(),
])
def test_a_release_whose_content_was_changed_fails_verification(fleet, digests, change):
    data = release(fleet, digests).to_json()
    change(data)
    tampered = manifest.parse_release(data)
    with pytest.raises(RecordError, match="fails verification"):
        manifest.verify(tampered)


def test_a_key_built_from_a_base_image_has_no_disk_sha256(fleet, digests):
    rel = release(fleet, digests, key="win2022-64", disk_sha256=None)
    assert manifest.verify(manifest.loads(manifest.dumps(rel), "x")).disk_sha256 is None


def test_times_are_utc_with_a_z_whatever_zone_they_come_in():
    east = timezone(timedelta(hours=2))
    assert manifest.format_time(datetime(2026, 1, 1, 2, 0, tzinfo=east)) == "2026-01-01T00:00:00Z"
    assert manifest.parse_time("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.pop("machine_digest"), "machine_digest: missing"),
    (lambda d: d.update(colour="red"), "colour: unknown field"),
    (lambda d: d.update(region="Central US"), "region: 'Central US' is not in canonical"),
    (lambda d: d.update(platform="aws"), "platform: 'aws' is not one of"),
    (lambda d: d.update(disk_digest="abc"), "disk_digest: 'abc' is not a SHA-256"),
    (lambda d: d.update(build_task_id="tid-a"), "build_task_id: 'tid-a' is not a Taskcluster"),
    (lambda d: d.update(created="yesterday"), "created: 'yesterday' is not an ISO 8601"),
    (lambda d: d.update(created="2026-11-21T13:00:00"), "created: .* time zone"),
    (lambda d: d.update(image_id="ami-0123456789abcdef0"), "image_id: .* not an image id on azure"),
    (lambda d: d.update(image_name="win10-64-000000000000"), "image_name: .* machine digest"),
    (lambda d: d.update(target="azure/eastus2"), "target: 'azure/eastus2' is not on azure/"),
    (lambda d: d.update(format=2), "format: 2 is not a format"),
])
def test_a_malformed_machine_image_record_is_refused_naming_the_field(fleet, digests, edit,
                                                                       problem):
    data = record(fleet, digests).to_json()
    edit(data)
    with pytest.raises(RecordError, match=problem) as caught:
        manifest.parse_machine_image(data, "task X public/machine-image.json")
    assert str(caught.value).startswith("task X public/machine-image.json is malformed")
    assert isinstance(caught.value, CibError)


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(images=[]), "images: must be a non-empty list"),
    (lambda d: d["images"][1].pop("name"), r"images\[1\]\.name: missing"),
    (lambda d: d["images"][0].update(id="ami-1"), r"images\[0\]\.id: .*not an image id"),
    (lambda d: d["images"].append(dict(d["images"][0])), "appears more than once"),
    (lambda d: d.update(sha256=None), "sha256: must be a non-empty string, not null"),
])
def test_a_malformed_release_is_refused_naming_the_field(fleet, digests, edit, problem):
    data = release(fleet, digests).to_json()
    edit(data)
    with pytest.raises(RecordError, match=problem):
        manifest.parse_release(data)


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "is a list, not an object"),
])
def test_an_artifact_that_is_not_a_json_object_is_refused(text, problem):
    with pytest.raises(RecordError, match=problem):
        manifest.loads(text, "artifact")


@pytest.mark.parametrize("image_id", [
    "https://www.googleapis.com/compute/v1/projects/p-1/global/images/ubuntu-2404-0123456789ab",
    "projects/p-1/global/images/ubuntu-2404-0123456789ab",
    "ubuntu-2404-0123456789ab",
])
def test_google_images_may_be_a_self_link_a_path_or_a_name(image_id):
    assert manifest.IMAGE_ID_PATTERNS["google"].fullmatch(image_id)


def test_azure_gallery_image_versions_are_image_ids():
    gallery = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/"
               "images/win10-64/versions/1.0.3")
    assert manifest.IMAGE_ID_PATTERNS["azure"].fullmatch(gallery)
