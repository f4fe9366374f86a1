"""`cib purge --cloud google` end to end: the leftovers of a real Google build (`cib image machine
--keep-resources`, through google-cloud-compute against the Compute fake) beside instances and
disks that are not ours, the build task's state in the local Taskcluster (`dev_taskcluster`)."""

from __future__ import annotations

import pytest
import yaml

import taskcluster
from cib_decision.cli import main
from cib_decision.clouds.google import Google
from cib_decision.devtc.testing import new_task
from cib_decision.lifecycle.google_purge import build_task, path_of

from .google_lifecycle_support import (
    STAGING_PROJECT,
    ZONE,
    timestamp,
    writes,
)
from .imagefleet import COMMIT, TASK_ID

KEY, TARGET, REGION = "linux-gce", "google/us-central1", "us-central1"


@pytest.fixture
def env(google_fake, dev_taskcluster, monkeypatch, tmp_path):
    """The purge task's environment: the Compute fake, a local Taskcluster, and a config with
    one Google key building in example-cib-images us-central1-a."""
    for name, value in {"TASK_ID": TASK_ID, "CIB_HEAD_REV": COMMIT,
                        "CIB_ENVIRONMENT": "staging", **dev_taskcluster.environ()}.items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_PROXY_URL", "CIB_DISK_IMAGE_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    google_fake.add_image("ubuntu-os-cloud", "ubuntu-2404-noble-v20261201",
                     family="ubuntu-2404-lts-amd64")
    config = tmp_path / "config"
    config.mkdir()
    (config / f"{KEY}.yaml").write_text(yaml.safe_dump({
        "image": {"os": "Ubuntu 24.04", "architecture": "x86-64", "format": "RAW",
                  "base": {"google": {"project": "ubuntu-os-cloud",
                                      "family": "ubuntu-2404-lts-amd64"}}},
        "target": [{"platform": "google", "region": REGION, "zone": ZONE,
                    "project": STAGING_PROJECT, "machine": {"type": "n2-standard-2"},
                    "disk": [{"os": True, "size": 20}, {"size": 10}],
                    "bootstrap": {"executions": [
                        {"name": "provision", "shell": "bash", "commands": ["echo done"]},
                        {"name": "power-off", "shell": "bash", "commands": ["sudo poweroff"],
                         "test": {"status": {"code": {"match": "TERMINATED"}}}}]}}]}))
    google_fake.dev, google_fake.config = dev_taskcluster, config
    return google_fake


def kept_build(fake, tmp_path) -> dict[str, list[str]]:
    """A build that succeeded under `--keep-resources` (`disable-cleanup`): its stopped
    builder and the builder's two disks stay."""
    assert main(["image", "machine", "--key", KEY, "--target", TARGET, "--config-dir",
                 str(fake.config), "--artifacts", str(tmp_path / "artifacts"),
                 "--poll-interval", "0", "--keep-resources"]) == 0
    left = leftovers(fake)
    assert [fake.instances[(STAGING_PROJECT, ZONE, i)]["status"]
            for i in left["instances"]] == ["TERMINATED"]
    assert len(left["disks"]) == 2
    return left


def leftovers(fake) -> dict[str, list[str]]:
    return {"instances": sorted(n for (_, _, n) in fake.instances),
            "disks": sorted(n for (_, _, n) in fake.disks)}


def build_task_state(dev, state: str | None = "completed") -> None:
    """The build task (`TASK_ID`) in the queue: resolved as `state`, or pending for None."""
    taskcluster.Queue(dev.options()).createTask(TASK_ID, new_task(taskQueueId="cib-3/images"))
    if state:
        dev.resolve_task(TASK_ID, state=state)


def instance(project: str, zone: str, name: str, labels: dict[str, str], *,
             stopped: bool = True, days_old: float = 2) -> None:
    """An instance made through the adapter (and its boot disk), stopped and aged."""
    google = Google.from_environment()
    body = {"name": name, "labels": labels, "description": "someone's machine",
            "disks": [{"boot": True, "autoDelete": True,
                       "initializeParams": {"labels": labels, "sourceImage":
                                            "projects/ubuntu-os-cloud/global/images/"
                                            "ubuntu-2404-noble-v20261201"}}]}
    operation = google.insert_instance(project, zone, body)
    assert google.operation_state(operation) == "DONE"
    if stopped:
        assert google.operation_state(google.stop_instance(project, zone, name)) == "DONE"


def age(fake, days: float) -> None:
    """Every instance and disk made `days` days ago."""
    for item in [*fake.instances.values(), *fake.disks.values()]:
        item["creationTimestamp"] = timestamp(days)


def purge(capsys, fake, *extra: str) -> tuple[int, str, str]:
    code = main(["purge", "--cloud", "google", "--region", REGION, "--config-dir",
                 str(fake.config), "--poll-interval", "0", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> dict[tuple[str, str], list[str]]:
    """The closing table's rows by kind and name (an instance's boot disk has its name):
    [where, reason, action] (a cell folded over several lines joined with a space)."""
    table: dict[tuple[str, str], list[str]] = {}
    last = None
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 5:
            continue
        if cells[0].startswith("google "):
            last = table[(cells[0].split()[1], cells[1])] = [cells[2], cells[3], cells[4]]
        elif last is not None and not cells[0] and not cells[1]:
            for index, more in zip((0, 1, 2), cells[2:], strict=True):
                last[index] = f"{last[index]} {more}".strip() if more else last[index]
    return table


def test_a_kept_builder_and_its_disks_go_and_what_is_not_ours_stays(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev)
    instance(STAGING_PROJECT, ZONE, "lookalike", {"name": "cib-builder-lookalike"})
    instance(STAGING_PROJECT, "us-east1-b", "builder-elsewhere", {"cib-builder": "true"})
    instance(STAGING_PROJECT, ZONE, "running-builder", {"cib-builder": "true"},
             stopped=False)
    age(env, 2)
    env.calls.clear()
    code, out, err = purge(capsys, env)
    assert code == 0, err
    assert leftovers(env) == {
        "instances": ["builder-elsewhere", "lookalike", "running-builder"],
        "disks": ["builder-elsewhere", "lookalike", "running-builder"]}
    (builder,) = left["instances"]
    table = rows(out)
    assert table[("instance", builder)] == [f"{STAGING_PROJECT}/{ZONE}",
                                            "stopped builder (labelled cib-builder)", "removed"]
    for disk in left["disks"]:
        assert table[("disk", disk)][1:] == [f"used only by {builder}, removed first",
                                             "removed"]
    assert {name for _, name in table} == {builder, *left["disks"]}
    # the instance goes first; its auto-delete disks go with it, so none is deleted itself
    assert [c for c in writes(env)] == ["instances.delete"]
    assert "done: 3 removed" in out


def test_a_builder_of_a_running_build_task_is_kept_naming_the_task(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev, state=None)
    age(env, 2)
    code, out, err = purge(capsys, env)
    assert code == 0, err
    assert leftovers(env) == left
    (builder,) = left["instances"]
    # the label has the task id in lower case; the description gives it back as it is
    assert rows(out)[("instance", builder)][1:] == [
        f"stopped builder (labelled cib-builder); kept: build task {TASK_ID} is pending",
        "kept"]


def test_a_young_builder_is_kept_and_an_old_loose_disk_goes(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev)
    google = Google.from_environment()
    (builder,) = left["instances"]
    operation = google.delete_instance(STAGING_PROJECT, ZONE, builder)
    assert google.operation_state(operation) == "DONE"  # auto-delete: its disks go too
    instance(STAGING_PROJECT, ZONE, "new-builder", {"cib-builder": "true"})
    disk = env.disks.pop((STAGING_PROJECT, ZONE, "new-builder"))
    disk.update(name="loose", users=[], creationTimestamp=timestamp(2))
    env.disks[(STAGING_PROJECT, ZONE, "loose")] = disk
    env.instances[(STAGING_PROJECT, ZONE, "new-builder")]["disks"] = []
    code, out, err = purge(capsys, env)
    assert code == 0, err
    table = rows(out)
    assert table[("disk", "loose")][1:] == [
        "disk attached to no instance (labelled cib-builder)", "removed"]
    assert table[("instance", "new-builder")][2] == "kept"
    assert "younger than --min-age" in table[("instance", "new-builder")][1]
    assert leftovers(env) == {"instances": ["new-builder"], "disks": []}


def test_a_dry_run_removes_nothing(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev)
    age(env, 2)
    env.calls.clear()
    code, out, err = purge(capsys, env, "--dry-run")
    assert code == 0, err
    assert leftovers(env) == left and writes(env) == []
    assert {row[2] for row in rows(out).values()} == {"would remove"}


def test_a_failed_listing_exits_75_and_removes_nothing(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev)
    age(env, 2)
    env.fail("disks.list", status=503, reason="backendError")
    code, _, err = purge(capsys, env)
    assert code == 75
    assert "backendError" in err and "Traceback" not in err
    assert leftovers(env) == left


def test_when_every_removal_is_refused_it_exits_3(env, tmp_path, capsys):
    left = kept_build(env, tmp_path)
    build_task_state(env.dev)
    age(env, 2)
    env.fail("instances.delete", status=403, reason="forbidden", message=(
        "Required 'compute.instances.delete' permission for 'projects/p'"))
    code, out, err = purge(capsys, env)
    assert code == 3
    assert "compute.instances.delete" in err and "Traceback" not in err
    table = rows(out)
    assert table[("instance", left["instances"][0])][2].startswith(
        "failed: Google refused deleting")
    assert {table[("disk", d)][2] for d in left["disks"]} == {
        f"skipped: {left['instances'][0]} was not removed"}
    assert leftovers(env) == left


def test_a_region_without_google_targets_is_bad_input(env, capsys):
    code = main(["purge", "--cloud", "google", "--region", "europe-west1", "--config-dir",
                 str(env.config)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "the config has no Google target there" in err


def test_the_task_id_is_read_back_only_when_the_label_agrees():
    labels = {"cib-build-task-id": TASK_ID.lower()}
    assert build_task({"labels": labels,
                       "description": f"cib builder of x (task {TASK_ID})"}) == TASK_ID
    assert build_task({"labels": labels, "description": "cib builder of x (task "
                                                        "AAAAAAAAAAAAAAAAAAAAAA)"}) is None
    assert build_task({"labels": {}, "description": f"(task {TASK_ID})"}) is None
    assert path_of("https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances/"
                   "i") == "projects/p/zones/z/instances/i"
