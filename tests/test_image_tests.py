"""Smoke tests of captured images: which tests a key has, the run on an instance booted from the
image (the Azure fake here; AWS as task processes in test_devclouds_aws.py), the tag's refusal
to release an image whose tests failed or did not run, `cib release verify`, and a test change
that tests the same images again instead of rebuilding them."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import yaml

from cib_decision import digests, manifest
from cib_decision.cli import main
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.model import ImageTest
from cib_decision.digests import fleet_digests
from cib_decision.errors import CibError, ConfigError
from cib_decision.images import tag
from cib_decision.images.bootstrap import smoke_test_script
from cib_decision.images.context import load_context
from cib_decision.images.image_test import (
    SmokeTestsFailed,
    SmokeTestTimeouts,
    azure_runner,
    run_smoke_tests,
)
from cib_decision.images.progress import Progress
from cib_decision.images.tag import Builds, SmokeTestsNotPassed, release_images
from cib_decision.images.validation import smoke_test_results

from . import azure_build_support as azure_builds
from .aws_build_support import publish_base_images
from .azure_build_support import Clock, adapter, build_env, running_fake
from .conftest import CONFIG_DIR
from .repos import git
from .tag_support import Fleet, create_task, record_of, run_tag, tag_task
from .tag_support import env as env  # a fixture, used by name

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK = "fN1SbArXTPSVFNUvaOlinQ"
TESTER = "Kvs-53T8SqO-OiPT7I3oCg"
TESTS = {"image": {"tests": [
    {"name": "service", "commands": ["Get-Service sshd | Select -Expand Status"],
     "match": "Running"},
    {"name": "drive", "commands": ["Test-Path Z:\\"]}]}}


# --- which tests a key has ---------------------------------------------------------------------


def test_a_keys_own_tests_replace_its_environments_and_an_empty_list_says_it_has_none(
        fleet_dir):
    fleet = load_fleet(DirectorySource(str(fleet_dir)))
    staging = fleet.environments["staging"]
    windows, linux = (fleet.keys[k].image_tests(staging) for k in ("win10-64", "ubuntu-2404"))
    assert [t.name for t in windows] == ["powershell", "generalized"]
    assert [t.name for t in linux] == ["cloud-init", "no-failed-units"]
    assert fleet.keys["win10-64"].image_tests(None) == ()  # no environment: only its own
    path = fleet_dir / "ubuntu-2404.yaml"
    path.write_text(path.read_text() + "validation:\n    image:\n        tests: []\n")
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text() + yaml.safe_dump({"validation": TESTS}))
    fleet = load_fleet(DirectorySource(str(fleet_dir)))
    assert fleet.keys["ubuntu-2404"].image_tests(staging) == ()
    assert fleet.keys["win10-64"].image_tests(staging) == (
        ImageTest("service", ("Get-Service sshd | Select -Expand Status",), "Running"),
        ImageTest("drive", ("Test-Path Z:\\",)))


def test_a_test_without_commands_or_with_a_bad_pattern_is_a_config_error_at_its_line(
        fleet_dir):
    path = fleet_dir / "environments.yaml"
    text = path.read_text()
    path.write_text(text.replace("              match: 'status: done'",
                                 "              match: 'status: (done'", 1))
    with pytest.raises(ConfigError, match=r"environments.yaml:\d+: staging.image-tests.linux"
                                          r"\[0\].match|production.image-tests.linux\[0\]"):
        load_fleet(DirectorySource(str(fleet_dir)))
    path.write_text(text)
    key = fleet_dir / "win10-64.yaml"
    key.write_text(key.read_text() + "validation:\n    image:\n        tests:\n"
                                     "            - name: empty\n")
    with pytest.raises(ConfigError, match="commands"):
        load_fleet(DirectorySource(str(fleet_dir)))


# --- the test script and its verdicts ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to run the test script")
def test_the_real_linux_test_script_runs_every_test_and_its_verdicts_are_read(tmp_path):
    tests = (ImageTest("ok", ("echo fine",)), ImageTest("exits", ("echo nope", "exit 4")),
             ImageTest("unmatched", ("echo hello",), "^bye"), ImageTest("never", ("true",)))
    script = smoke_test_script([t.to_json() for t in tests[:3]], "linux", power_off=False)
    (tmp_path / "tests.sh").write_text(script)
    output = subprocess.run(["bash", str(tmp_path / "tests.sh")], capture_output=True,
                            text=True, check=True).stdout
    results = smoke_test_results(tests, output)
    assert [(r.name, r.passed, r.exit_code, r.lines) for r in results] == [
        ("ok", True, 0, 1), ("exits", False, 4, 1), ("unmatched", False, 0, 1),
        ("never", False, None, 0)]


def test_an_aws_test_script_stops_the_instance_and_a_run_command_one_does_not():
    tests = [{"name": "t", "commands": ["true"]}]
    assert smoke_test_script(tests, "linux", power_off=True).startswith("#cloud-config\n")
    assert "poweroff" in smoke_test_script(tests, "linux", power_off=True)
    windows = smoke_test_script(tests, "windows", power_off=True)
    assert windows.startswith("<powershell>") and "Stop-Computer -Force" in windows
    assert "Stop-Computer" not in smoke_test_script(tests, "windows", power_off=False)


# --- a run on Azure (the ARM fake, in process) -------------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    build_env(monkeypatch)
    with running_fake() as served:
        yield served


def run_tests(tmp_path, record):
    clock, log = Clock(), io.StringIO()
    ctx = load_context("win-azure", tmp_path / "config", artifacts=tmp_path / "tested",
                       progress=Progress(log, clock.clock, clock.sleep),
                       environ={"TASK_ID": TESTER, "CIB_HEAD_REV": COMMIT,
                                "CIB_ENVIRONMENT": "staging"})
    ctx.now = lambda: datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    try:
        return run_smoke_tests(ctx, ctx.target(record.target), record, azure_runner(adapter()),
                          SmokeTestTimeouts(interval=30))
    finally:
        run_tests.log = log.getvalue()


def test_azure_tests_run_on_a_vm_from_the_new_image_which_is_then_removed(tmp_path, fake):
    record, _ = azure_builds.build(tmp_path, validation=TESTS)
    tested = run_tests(tmp_path, record)
    assert tested.passed and tested.image_id == record.image_id
    assert tested.tests_digest == digests.tests_digest(load_fleet(DirectorySource(str(
        tmp_path / "config"))).keys["win-azure"].image_tests(None))
    vm = fake.calls_of("PUT Microsoft.Compute/virtualMachines")[-1].body
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": record.image_id}
    assert azure_builds.builder_leftovers(fake) == azure_builds.NOTHING_LEFT
    written = json.loads((tmp_path / "tested" / "image-test.json").read_text())
    assert manifest.parse_image_test(written) == tested
    assert "cib-test: drive passed (exit 0)" in (tmp_path / "tested" /
                                                 "image-test.log").read_text()


def test_azure_a_failed_test_exits_3_after_recording_it_and_cleaning_up(tmp_path, fake):
    record, _ = azure_builds.build(tmp_path, validation=TESTS)
    fake.failing_tests = {"service"}
    with pytest.raises(SmokeTestsFailed, match=r"1 of 2 smoke tests of win-azure-\w+ "
                                          r"\(azure/centralus\) failed: service") as raised:
        run_tests(tmp_path, record)
    assert raised.value.exit_code == 3
    written = manifest.parse_image_test(json.loads(
        (tmp_path / "tested" / "image-test.json").read_text()))
    assert not written.passed and [r["passed"] for r in written.results] == [False, True]
    assert "test 'service' failed (exit 1, 1 line of output)" in run_tests.log
    assert azure_builds.builder_leftovers(fake) == azure_builds.NOTHING_LEFT


def test_a_record_of_another_digest_is_not_tested(tmp_path, fake):
    record, _ = azure_builds.build(tmp_path, validation=TESTS)
    other = manifest.parse_machine_image({**record.to_json(), "machine_digest": "ab" * 32,
                                          "image_name": f"win-azure-{'ab' * 6}"})
    with pytest.raises(CibError, match="built at machine digest abababababab"):
        run_tests(tmp_path, other)
    assert not fake.calls_of("PUT Microsoft.Compute/virtualMachines")[1:]


# --- the tag's decision (pure) -----------------------------------------------------------------


def records_of(key="win10-64"):
    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    digests = fleet_digests(fleet)[key]
    when = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    records = tuple(manifest.machine_image_record(
        key, target, image_id=f"/subscriptions/0/resourceGroups/{target.group}/providers/"
                              f"Microsoft.Compute/images/{key}-{digests.machines[target.id][:12]}",
        machine_digest=digests.machines[target.id], disk_digest=digests.disk,
        config_commit=COMMIT, build_task_id=TASK, created=when)
        for target in fleet.keys[key].targets)
    tests = fleet.keys[key].image_tests(fleet.environments["staging"])
    return fleet, records, tests


def a_test_run(record, tests, *, failed=(), digest=None):
    return manifest.image_test_record(
        record, tests_digest=digest or digests.tests_digest(tests),
        results=[{"name": t.name, "passed": t.name not in failed, "exit_code": int(
            t.name in failed), "output_sha256": "ef" * 32} for t in tests],
        test_task_id=TESTER, created=datetime(2026, 11, 21, 14, 0, tzinfo=UTC))




def tag_context(fleet):
    ctx = load_context("win10-64", CONFIG_DIR, artifacts="/nonexistent", environ={
        "TASK_ID": TASK, "CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging"})
    ctx.progress = Progress(io.StringIO())
    return ctx


def test_the_tag_releases_a_tested_keys_images_with_their_tests_outcome():
    fleet, records, tests = records_of()
    ctx = tag_context(fleet)
    builds = tag.tested_builds(ctx, Builds(records, None, "2026-11-21T13:00:00Z"),
                           [a_test_run(r, tests) for r in records], digests.tests_digest(tests))
    images = release_images(ctx, builds.records, dict(builds.tests))
    assert all(i.tests["passed"] and i.tests["task_id"] == TESTER for i in images)
    assert [r["name"] for r in images[0].tests["results"]] == ["powershell", "generalized"]


def test_the_tag_refuses_an_image_whose_tests_failed_or_did_not_run_or_are_old():
    fleet, records, tests = records_of()
    runs = [a_test_run(records[0], tests, failed=("generalized",)),
            a_test_run(records[1], tests, digest="12" * 32)]  # other (earlier) tests
    with pytest.raises(SmokeTestsNotPassed) as raised:
        tag.tested_builds(tag_context(fleet), Builds(records, None, "2026-11-21T13:00:00Z"),
                      runs, digests.tests_digest(tests))
    message = str(raised.value)
    assert raised.value.exit_code == 3
    assert f"{records[0].target} ({records[0].image_id}): smoke tests generalized failed " \
           f"(task {TESTER})" in message
    assert f"{records[1].target} ({records[1].image_id}): its smoke tests did not run" in message
    assert f"{records[2].target} ({records[2].image_id}): its smoke tests did not run" in message
    assert message.endswith("Nothing of the key is released and its pools keep their images")


# --- cib release verify --------------------------------------------------------------------------


def release_file(tmp_path, *, tested: bool, failed=()):
    _, records, tests = records_of()
    runs = {r.target: a_test_run(r, tests, failed=failed).summary() for r in records}
    release = manifest.release_record(
        "win10-64", disk_digest=records[0].disk_digest, disk_sha256=None, config_commit=COMMIT,
        created=datetime(2026, 11, 21, 13, 0, tzinfo=UTC),
        images=[r.image(runs[r.target] if tested else None) for r in records])
    path = tmp_path / "release.json"
    path.write_text(manifest.dumps(release))
    return str(path)


def verify(capsys, *args):
    code = main(["release", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_release_verify_says_what_the_tests_did_and_refuses_failed_ones(tmp_path, capsys):
    code, out, _ = verify(capsys, release_file(tmp_path, tested=True))
    assert code == 0 and "smoke tests passed on 3 of 3 images, sha256 " in out
    code, _, err = verify(capsys, release_file(tmp_path, tested=True, failed=("powershell",)))
    assert code == 2
    assert "release of win10-64 refused: azure/centralus: smoke tests powershell failed on " \
           in err


def test_release_verify_with_the_config_refuses_an_untested_release_of_a_tested_key(
        tmp_path, capsys):
    untested = release_file(tmp_path, tested=False)
    code, out, _ = verify(capsys, untested)
    assert code == 0 and "no smoke tests," in out
    code, _, err = verify(capsys, untested, "--config-dir", str(CONFIG_DIR),
                          "--environment", "staging")
    assert code == 2 and "azure/centralus: no smoke tests ran on /subscriptions/" in err


# --- a test change tests the same images again ---------------------------------------------------


def plan_of(repo):
    code = "import sys; from cib_decision.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "plan", "--repo", str(repo), "--head",
                             "HEAD", "--format", "json"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["tasks"]


def test_a_changed_test_runs_again_on_the_images_there_are_and_rebuilds_nothing(tmp_path):
    repo = tmp_path / "images"
    shutil.copytree(CONFIG_DIR, repo / "config")
    shutil.copytree(CONFIG_DIR.parent / "taskcluster", repo / "taskcluster")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fleet")
    path = repo / "config" / "environments.yaml"
    path.write_text(path.read_text().replace("match: 'status: done'", "match: 'status: done$'"))
    git(repo, "commit", "-q", "-am", "A stricter cloud-init test")
    tasks = plan_of(repo)
    by_kind: dict[str, list[str]] = {}
    for label, task in tasks.items():
        by_kind.setdefault(task["kind"], []).append(label)
    # only the Linux key's images: tested again, released again, nothing rebuilt or deployed
    assert by_kind["test-image"] == ["test-image-ubuntu-2404-amazon-us-east-1",
                                     "test-image-ubuntu-2404-google-us-central1"]
    assert by_kind["tag"] == ["tag-ubuntu-2404"]
    assert not {"disk-image", "machine-image", "worker-pool"} & set(by_kind)
    assert tasks["test-image-ubuntu-2404-amazon-us-east-1"]["reason"] == (
        "smoke tests changed or never ran on this image (the image is reused)")


# --- the tag of a push that changes only a test ------------------------------------------------


def test_a_tag_whose_builds_were_reused_reads_them_through_their_test_runs(
        tmp_path, dev_taskcluster, env, capsys):
    publish_base_images()
    fleet = Fleet(tmp_path, dev_taskcluster, validation=TESTS)
    build = fleet.machine_image("based-test", "amazon/us-east-1")
    record = manifest.parse_machine_image(json.loads(
        (tmp_path / build / "machine-image.json").read_text()))
    tests = load_fleet(DirectorySource(str(fleet.config))).keys["based-test"].image_tests(None)
    test = create_task(dev_taskcluster, [build], {"CIB_MACHINE_IMAGE_TASK_ID": build},
                       kind="test-image")
    dev_taskcluster.resolve_task(test, artifacts={
        manifest.IMAGE_TEST_ARTIFACT: a_test_run(record, tests).to_json()})
    tag_task(env, dev_taskcluster, [test])  # the graph had no build task: it was reused
    code, out, err = run_tag(capsys, fleet, "based-test")
    assert code == 0, err
    assert f"read public/machine-image.json of task {build} (the build test task {test} " \
           "tested)" in out
    release = record_of(fleet)
    assert [(i["id"], i["tests"]["passed"]) for i in release["images"]] == [
        (record.image_id, True)]
