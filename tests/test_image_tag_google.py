"""`cib image tag --key K` for a key with a Google target: the image is built through
google-cloud-compute against the Compute fake (`devclouds.google_server`), its record served by
the local Taskcluster (`dev_taskcluster`); the tag task labels it with the build's tags and the
release's seal, as Google's labels spell them, keeping its other labels."""

from __future__ import annotations

import io
import json

import pytest
import slugid

from cib_decision import manifest
from cib_decision.clouds.google import Google
from cib_decision.devclouds.google_server import GoogleServer
from cib_decision.images.context import load_context
from cib_decision.images.google_machine import GoogleBuild, Timeouts, build_machine_image
from cib_decision.images.progress import Progress

from .google_build_support import KEY, PROJECT, TARGET, Clock, write_fleet
from .imagefleet import COMMIT
from .tag_support import cib, create_task, tag_task


@pytest.fixture
def env(dev_taskcluster, monkeypatch):
    """The Compute fake on its port and a task's environment pointing the client at it."""
    with GoogleServer() as server:
        server.fake.add_image("ubuntu-os-cloud", "ubuntu-2404-noble-v20261201",
                              family="ubuntu-2404-lts-amd64")
        for name, value in {"CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging",
                            "TASK_ID": slugid.nice(), **server.environ(),
                            **dev_taskcluster.environ("branch:main")}.items():
            monkeypatch.setenv(name, value)
        for name in ("TASKCLUSTER_PROXY_URL", "CIB_DISK_IMAGE_TASK_ID"):
            monkeypatch.delenv(name, raising=False)
        yield monkeypatch, server.fake


def machine_image(tmp_path, dev, config) -> manifest.MachineImageRecord:
    task = create_task(dev)
    clock = Clock()
    ctx = load_context(KEY, config, artifacts=tmp_path / task,
                       progress=Progress(io.StringIO(), clock.clock, clock.sleep))
    ctx.task_id = task
    record = build_machine_image(ctx, GoogleBuild(google=Google.from_environment(),
                                                  target=ctx.target(TARGET),
                                                  timeouts=Timeouts(interval=0)))
    dev.resolve_task(task, artifacts={manifest.MACHINE_IMAGE_ARTIFACT: record.to_json()})
    return record


def test_the_google_image_is_labelled_with_the_release_seal_and_keeps_its_other_labels(
        tmp_path, env, dev_taskcluster, capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path)
    record = machine_image(tmp_path, dev_taskcluster, config)
    image = fake.images[(PROJECT, record.image_name)]
    image["labels"]["team"] = "relops"
    image["labelFingerprint"] = "changed-by-someone"
    tag_task(monkeypatch, dev_taskcluster, [record.build_task_id])
    status, out, err = cib(capsys, "image", "tag", "--key", KEY, "--config-dir", str(config),
                           "--artifacts", str(tmp_path / "artifacts"))
    assert status == 0, err
    release = json.loads((tmp_path / "artifacts" / "release.json").read_text())
    assert [(i["target"], i["id"]) for i in release["images"]] == [(TARGET, record.image_id)]
    labels = fake.images[(PROJECT, record.image_name)]["labels"]
    assert labels["cib-release-sha256"] == release["sha256"][:63]
    assert labels["team"] == "relops" and labels["cib-key"] == KEY
    assert f"labelled image {record.image_name} in {PROJECT}" in out


def test_an_image_gone_from_its_project_exits_3_and_writes_no_release(
        tmp_path, env, dev_taskcluster, capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path)
    record = machine_image(tmp_path, dev_taskcluster, config)
    del fake.images[(PROJECT, record.image_name)]
    tag_task(monkeypatch, dev_taskcluster, [record.build_task_id])
    status, _, err = cib(capsys, "image", "tag", "--key", KEY, "--config-dir", str(config),
                         "--artifacts", str(tmp_path / "artifacts"))
    assert status == 3
    assert f"image {record.image_name} does not exist in {PROJECT}" in err
    assert not (tmp_path / "artifacts" / "release.json").exists()


def test_a_throttled_label_change_exits_75(tmp_path, env, dev_taskcluster, capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path)
    record = machine_image(tmp_path, dev_taskcluster, config)
    fake.fail("images.setLabels", status=429, reason="rateLimitExceeded")
    tag_task(monkeypatch, dev_taskcluster, [record.build_task_id])
    status, _, err = cib(capsys, "image", "tag", "--key", KEY, "--config-dir", str(config),
                         "--artifacts", str(tmp_path / "artifacts"))
    assert status == 75 and "rateLimitExceeded" in err
