"""`cib release verify FILE`: a release record's fields and its sha256 seal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import fleet_digests

from .conftest import CONFIG_DIR

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK = "fN1SbArXTPSVFNUvaOlinQ"


@pytest.fixture(scope="module")
def release_json():
    fleet = load_fleet(DirectorySource(CONFIG_DIR))
    digests = fleet_digests(fleet)["win2022-64"]
    key = fleet.keys["win2022-64"]
    when = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    images = [manifest.machine_image_record(
        key.name, target, image_id=f"ami-0123456789abcdef{i}",
        machine_digest=digests.machines[target.id], disk_digest=digests.disk,
        config_commit=COMMIT, build_task_id=TASK, created=when)
        for i, target in enumerate(key.targets)]
    release = manifest.release_record(key.name, disk_digest=digests.disk, disk_sha256=None,
                                      config_commit=COMMIT, created=when, images=images)
    return json.loads(manifest.dumps(release))


def write(tmp_path, data):
    path = tmp_path / "release.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_a_sealed_release_verifies_and_the_summary_names_key_images_and_seal(
        tmp_path, release_json, capsys):
    assert main(["release", "verify", write(tmp_path, release_json)]) == 0
    out = capsys.readouterr().out
    assert "OK: release of win2022-64 at 0123456789ab, 2 images (amazon)" in out
    assert release_json["sha256"] in out


def test_a_release_changed_after_sealing_fails_with_both_hashes(tmp_path, release_json, capsys):
    tampered = json.loads(json.dumps(release_json))
    tampered["images"][0]["id"] = "ami-0000000000000bad0"
    assert main(["release", "verify", write(tmp_path, tampered)]) == 2
    err = capsys.readouterr().err
    assert "fails verification" in err and release_json["sha256"] in err
    assert "Traceback" not in err


def test_a_signature_field_is_outside_the_seal(tmp_path, release_json):
    signed = {**release_json, "signature": "-----BEGIN PGP SIGNATURE-----..."}
    assert main(["release", "verify", write(tmp_path, signed)]) == 0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not JSON"),
    ({"format": 1}, "images: missing"),
])
def test_a_malformed_release_names_what_is_wrong(tmp_path, capsys, content, message):
    assert main(["release", "verify", write(tmp_path, content)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["release", "verify", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
