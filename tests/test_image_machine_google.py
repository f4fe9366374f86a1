"""`cib image machine` for Google targets against the Compute fake (devclouds.google_fake served
by google_server), through google-cloud-compute's REST transport, and the adapter's error
mapping."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.clouds.aws import S3
from cib_decision.clouds.google import Google, classify, label_key, label_value, labels_of
from cib_decision.config.model import Target
from cib_decision.devclouds.google_fake import GoogleFake
from cib_decision.devclouds.google_server import GoogleServer
from cib_decision.errors import BuildError, CibError, TransientError
from cib_decision.images.context import load_context
from cib_decision.images.google_machine import (
    GoogleBuild,
    Timeouts,
    build_machine_image,
    script_lines,
    startup_metadata,
    storage_locations,
)
from cib_decision.images.progress import Progress

from .google_build_support import (
    BOOTSTRAP,
    KEY,
    NOTHING_LEFT,
    PROJECT,
    TARGET,
    ZONE,
    Clock,
    leftovers,
    write_fleet,
)
from .imagefleet import COMMIT, TASK_ID


@pytest.fixture(scope="module")
def server():
    with GoogleServer(GoogleFake(operation_polls=1, run_polls=1)) as served:
        yield served


@pytest.fixture
def fake(server, monkeypatch):
    fresh = GoogleFake(url=server.url, operation_polls=1, run_polls=1, check_tokens=True,
                       service_accounts=server.fake.service_accounts)
    server.fake = fresh
    fresh.add_image("ubuntu-os-cloud", "ubuntu-2404-noble-v20261101",
                    family="ubuntu-2404-lts-amd64", created="2026-11-01T00:00:00.000+00:00")
    fresh.add_image("ubuntu-os-cloud", "ubuntu-2404-noble-v20261201",
                    family="ubuntu-2404-lts-amd64", created="2026-12-01T00:00:00.000+00:00")
    for name, value in {"TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT,
                        "CIB_ENVIRONMENT": "staging", **server.environ()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CIB_DISK_IMAGE_TASK_ID", raising=False)
    return fresh


def build(tmp_path, *, overwrite=False, keep=False, timeouts=None, disk_record=None, s3=None,
          **fleet):
    config = write_fleet(tmp_path, **fleet)
    log, clock = io.StringIO(), Clock()
    ctx = load_context(KEY, config, artifacts=tmp_path / "artifacts", keep_resources=keep,
                       progress=Progress(log, clock.clock, clock.sleep))
    ctx.now = lambda: datetime(2026, 12, 6, 13, 5, tzinfo=UTC)
    try:
        return build_machine_image(ctx, GoogleBuild(
            google=Google.from_environment(), target=ctx.target(TARGET), overwrite=overwrite,
            disk_record=disk_record, s3=s3, timeouts=timeouts or Timeouts(interval=30),
            work_dir=tmp_path)), ctx
    finally:
        build.log = log.getvalue()


def test_a_fresh_build_boots_the_family_runs_the_startup_script_captures_labels_and_cleans_up(
        tmp_path, fake):
    record, ctx = build(tmp_path)
    digest = ctx.digests.machines[TARGET]
    name = f"{KEY}-{digest[:12]}"
    assert record.image_id == f"projects/{PROJECT}/global/images/{name}"
    assert (record.platform, record.region, record.image_name) == ("google", "us-central1", name)
    image = fake.images[(PROJECT, name)]
    assert image["status"] == "READY" and image["family"] == KEY
    assert image["storageLocations"] == ["us-central1"]
    assert image["labels"]["cib-key"] == KEY
    assert image["labels"]["cib-machine-digest"] == digest[:63]
    assert image["labels"]["cib-build-task-id"] == TASK_ID.lower()
    assert image["labels"]["cib-target"] == "google-us-central1"
    assert TASK_ID in image["description"]
    (inserted,) = [c for c in fake.calls if c == "instances.insert"]
    assert inserted and leftovers(fake) == NOTHING_LEFT
    builder_log = (tmp_path / "artifacts" / "builder.log").read_text()
    assert "cib: provision passed" in builder_log
    assert "google_metadata_script_runner" not in builder_log  # the agent's prefix is off
    written = json.loads((tmp_path / "artifacts" / "machine-image.json").read_text())
    assert written["image_id"] == record.image_id


def test_the_builder_boots_the_newest_of_the_family_with_its_script_and_tags_as_metadata(
        tmp_path, fake, server):
    seen = {}

    def launched(google, instance):
        seen.update(fake.instances[(PROJECT, ZONE, instance)])
        seen["boot"] = fake.disks[(PROJECT, ZONE, instance)]

    config = write_fleet(tmp_path)
    ctx = load_context(KEY, config, artifacts=tmp_path / "artifacts",
                       progress=Progress(io.StringIO(), Clock().clock, Clock().sleep))
    build_machine_image(ctx, GoogleBuild(google=Google.from_environment(),
                                         target=ctx.target(TARGET), on_launch=launched,
                                         timeouts=Timeouts(interval=0)))
    items = {i["key"]: i["value"] for i in seen["metadata"]["items"]}
    assert items["startup-script"].startswith("#!/bin/bash")
    assert "# execution provision" in items["startup-script"]
    assert items["workerType"] == "gecko-t-linux-gcp"
    assert items["sourceScript"] == "linux/bootstrap.sh"
    assert seen["machineType"].endswith("zones/us-central1-a/machineTypes/n2-standard-2")
    assert seen["boot"]["sourceImage"].endswith("ubuntu-2404-noble-v20261201")
    assert seen["boot"]["sizeGb"] == "40" and seen["boot"]["type"].endswith("pd-ssd")
    assert seen["labels"]["cib-builder"] == "true"
    assert seen["labels"]["workertype"] == "gecko-t-linux-gcp"


def test_a_data_disk_is_made_with_the_builder_and_deleted_with_it(tmp_path, fake):
    seen = []
    fake.on_startup = lambda instance, script: (
        seen.extend(sorted(n for (_, _, n) in fake.disks))
        or fake.default_startup(instance, script))
    build(tmp_path, disks=[{"os": False, "variant": "pd-standard", "size": 100},
                           {"os": True, "size": 40}])
    assert len(seen) == 2 and seen[1] == f"{seen[0]}-1"
    assert leftovers(fake) == NOTHING_LEFT


def test_a_second_run_for_the_same_digest_reuses_the_image_and_boots_nothing(tmp_path, fake):
    first, _ = build(tmp_path)
    fake.calls.clear()
    second, _ = build(tmp_path)
    assert second.image_id == first.image_id
    assert "instances.insert" not in fake.calls and "images.insert" not in fake.calls
    assert "reusing" in build.log


def test_overwrite_builds_a_new_revision_and_keeps_the_existing_image(tmp_path, fake):
    first, ctx = build(tmp_path)
    second, _ = build(tmp_path, overwrite=True)
    digest = ctx.digests.machines[TARGET]
    assert second.image_name == f"{KEY}-r2-{digest[:12]}"
    assert (PROJECT, first.image_name) in fake.images
    assert (PROJECT, second.image_name) in fake.images


def test_a_missed_validation_rule_exits_3_before_capture_and_cleans_up(tmp_path, fake):
    validation = {"instance": {"log": [{"program": "provision", "match": "never written"}]}}
    with pytest.raises(BuildError, match="never written"):
        build(tmp_path, validation=validation)
    assert "images.insert" not in fake.calls
    assert leftovers(fake) == NOTHING_LEFT


def test_a_bootstrap_that_never_stops_times_out_with_exit_3_and_is_cleaned_up(tmp_path, fake):
    from cib_decision.devclouds.google_fake import StartupOutcome

    fake.on_startup = lambda instance, script: StartupOutcome("hanging\n", stops=False)
    with pytest.raises(BuildError, match="timed out"):
        build(tmp_path, timeouts=Timeouts(bootstrap=120, interval=30))
    assert leftovers(fake) == NOTHING_LEFT


def test_keep_resources_leaves_the_builder_after_a_failure(tmp_path, fake):
    from cib_decision.devclouds.google_fake import StartupOutcome

    fake.on_startup = lambda instance, script: StartupOutcome("hanging\n", stops=False)
    with pytest.raises(BuildError):
        build(tmp_path, keep=True, timeouts=Timeouts(bootstrap=60, interval=30))
    left = leftovers(fake)
    assert len(left["instances"]) == 1 and left["disks"] == left["instances"]
    assert "--keep-resources: leaving" in build.log


@pytest.mark.parametrize("status, reason, during", [
    (429, "rateLimitExceeded", "call"), (403, "quotaExceeded", "operation"),
    (503, "backendError", "call"), (500, "ZONE_RESOURCE_POOL_EXHAUSTED", "operation")])
def test_throttling_quota_capacity_and_service_errors_on_launch_are_transient(
        tmp_path, fake, status, reason, during):
    fake.fail("instances.insert", status=status, reason=reason, during=during)
    with pytest.raises(TransientError):
        build(tmp_path)
    assert leftovers(fake) == NOTHING_LEFT


def test_a_machine_type_compute_does_not_have_fails_the_build_with_exit_3(tmp_path, fake):
    config = write_fleet(tmp_path)
    key = config / f"{KEY}.yaml"
    key.write_text(key.read_text().replace("n2-standard-2", "n2-enormous"))
    ctx = load_context(KEY, config, artifacts=tmp_path / "artifacts",
                       progress=Progress(io.StringIO(), Clock().clock, Clock().sleep))
    with pytest.raises(BuildError, match="Machine type with name 'n2-enormous' does not exist"):
        build_machine_image(ctx, GoogleBuild(google=Google.from_environment(),
                                             target=ctx.target(TARGET)))
    assert leftovers(fake) == NOTHING_LEFT and fake.project_images(PROJECT) == []


def test_the_cli_builds_and_a_missing_permission_exits_2_naming_it(tmp_path, fake, capsys):
    config = write_fleet(tmp_path)
    arguments = ["image", "machine", "--key", KEY, "--target", TARGET, "--config-dir",
                 str(config), "--artifacts", str(tmp_path / "artifacts"), "--poll-interval",
                 "0"]
    fake.fail("images.insert", status=403, reason="forbidden",
              message=f"Required 'compute.images.create' permission for 'projects/{PROJECT}'")
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "compute.images.create" in err and "Traceback" not in err
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert f"done: projects/{PROJECT}/global/images/{KEY}-" in out


DISK = b"\x00" * 4096 + b"raw disk" + b"\x00" * 4096


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="disk-images")
        yield client


def disk_record(tmp_path, s3, content=DISK, sha256=None):
    ctx = load_context(KEY, write_fleet(tmp_path, base=False), artifacts=tmp_path / "a")
    name = f"{KEY}-disk-{ctx.digests.disk[:12]}"
    s3.put_object(Bucket="disk-images", Key=f"{name}.raw", Body=content)
    return manifest.disk_image_record(
        KEY, platform="amazon", region="us-east-1", location=f"s3://disk-images/{name}.raw",
        image_format="raw", size=len(content),
        sha256=sha256 or hashlib.sha256(content).hexdigest(), disk_digest=ctx.digests.disk,
        config_commit=COMMIT, build_task_id=TASK_ID, created=datetime(2026, 12, 6, tzinfo=UTC))


def test_a_disk_image_in_s3_is_packed_as_disk_raw_imported_and_reused(tmp_path, fake, s3):
    record = disk_record(tmp_path, s3)
    machine, _ = build(tmp_path, base=False, disk_record=record, s3=S3())
    packed = fake.objects[("gce-staging", f"{record.name}.tar.gz")]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(packed))) as archive:
        assert archive.getnames() == ["disk.raw"]
        assert archive.extractfile("disk.raw").read() == DISK
    imported = fake.images[(PROJECT, record.name)]
    assert imported["rawDisk"]["source"].endswith(f"/gce-staging/{record.name}.tar.gz")
    assert imported["labels"]["cib-disk-sha256"] == record.sha256[:63]
    assert f"from {record.name} with the bootstrap" in build.log
    fake.calls.clear()
    build(tmp_path, base=False, disk_record=record, s3=S3(), overwrite=True)
    assert "objects.insert" not in fake.calls
    assert fake.calls.count("images.insert") == 1  # the new machine image only
    assert machine.platform == "google"


def test_an_s3_disk_image_that_is_not_the_recorded_one_exits_2_and_uploads_nothing(
        tmp_path, fake, s3):
    record = disk_record(tmp_path, s3, sha256="0" * 64)
    with pytest.raises(CibError, match="not the recorded disk image"):
        build(tmp_path, base=False, disk_record=record, s3=S3())
    assert fake.objects == {} and leftovers(fake) == NOTHING_LEFT


# --- pure rules ---------------------------------------------------------------------------------


def test_cib_tags_map_to_google_labels_by_the_written_rule():
    digest = "ab" * 32
    assert labels_of({"Name": "ubuntu-2404-0123", "cib:machine-digest": digest,
                      "cib:build-task-id": "fN1SbArXTPSVFNUvaOlinQ",
                      "cib:target": "google/us-central1"}) == {
        "name": "ubuntu-2404-0123", "cib-machine-digest": digest[:63],
        "cib-build-task-id": "fn1sbarxtpsvfnuvaolinq", "cib-target": "google-us-central1"}
    assert label_key("2nd Tag") == "k2nd-tag" and label_value("") == ""


def test_storage_location_is_the_region_or_the_multi_region_holding_them_all():
    assert storage_locations(["us-central1"]) == ["us-central1"]
    assert storage_locations(["us-central1", "us-east1", "northamerica-northeast1"]) == ["us"]
    assert storage_locations(["europe-west4", "europe-west1"]) == ["eu"]
    assert storage_locations(["us-central1", "europe-west4"]) == []


def test_serial_output_loses_the_guest_agents_prefix_and_keeps_other_lines():
    serial = ("Booting\nDec 6 host google_metadata_script_runner[812]: startup-script: "
              "cib: a passed\n")
    assert script_lines(serial) == "Booting\ncib: a passed\n"


def test_windows_targets_get_a_powershell_startup_script_without_ec2_tags():
    image = {"os": "Windows Server 2022"}
    target = Target("google/us-central1", "google", "us-central1",
                    {"bootstrap": BOOTSTRAP, "tag": [{"name": "a", "value": "b"}]})
    (item, tag) = startup_metadata(image, target)
    assert item["key"] == "windows-startup-script-ps1"
    assert "<powershell>" not in item["value"] and "Write-CibLine" in item["value"]
    assert tag == {"key": "a", "value": "b"}


@pytest.mark.parametrize("status, reasons, message, error", [
    (429, ["rateLimitExceeded"], "slow down", TransientError),
    (403, ["quotaExceeded"], "Quota 'CPUS' exceeded", TransientError),
    (None, ["QUOTA_EXCEEDED"], "Quota 'IMAGES' exceeded", TransientError),
    (503, ["backendError"], "try again", TransientError),
    (403, ["forbidden"], "Required 'compute.instances.create' permission for 'x'", CibError),
    (400, ["invalid"], "bad field", BuildError),
])
def test_google_answers_map_to_cibs_exit_statuses(status, reasons, message, error):
    mapped = classify(status, reasons, message, "doing it")
    assert type(mapped) is error
    if status == 403 and error is CibError:
        assert "compute.instances.create" in str(mapped)


# --- smoke tests on the new image ----------------------------------------------------------------

SMOKE = {"image": {"tests": [{"name": "agent", "commands": ["systemctl is-active sshd"],
                              "match": "active"},
                             {"name": "disk", "commands": ["test -d /var/lib/cib"]}]}}


def run_smoke(tmp_path, record):
    from cib_decision.images.image_test import SmokeTestTimeouts, google_runner, run_smoke_tests

    clock, log = Clock(), io.StringIO()
    ctx = load_context(KEY, tmp_path / "config", artifacts=tmp_path / "tested",
                       progress=Progress(log, clock.clock, clock.sleep),
                       environ={"TASK_ID": "Kvs-53T8SqO-OiPT7I3oCg", "CIB_HEAD_REV": COMMIT,
                                "CIB_ENVIRONMENT": "staging"})
    return run_smoke_tests(ctx, ctx.target(TARGET), record,
                           google_runner(Google.from_environment()),
                           SmokeTestTimeouts(interval=30))


def test_smoke_tests_boot_the_image_and_read_verdicts_from_the_serial_port(tmp_path, fake):
    record, _ = build(tmp_path, validation=SMOKE)
    booted = {}
    fake.on_startup = lambda instance, script: (
        booted.update(script=script, disk=fake.disks[(PROJECT, ZONE, instance["name"])])
        or fake.default_startup(instance, script))
    tested = run_smoke(tmp_path, record)
    assert tested.passed and [r["name"] for r in tested.results] == ["agent", "disk"]
    assert booted["disk"]["sourceImage"] == record.image_id
    assert booted["script"].rstrip().endswith("poweroff")
    assert "cib-test: disk passed (exit 0)" in (tmp_path / "tested" /
                                                "image-test.log").read_text()
    assert leftovers(fake) == NOTHING_LEFT


def test_a_failed_smoke_test_on_google_exits_3_and_cleans_up(tmp_path, fake):
    from cib_decision.images.image_test import SmokeTestsFailed

    record, _ = build(tmp_path, validation=SMOKE)
    fake.failing_tests = {"agent"}
    with pytest.raises(SmokeTestsFailed, match="failed: agent"):
        run_smoke(tmp_path, record)
    assert leftovers(fake) == NOTHING_LEFT
