"""`cib image tag --key K` for a key with Azure targets: the images are built through the real
Azure SDK against the ARM fake (`devclouds.azure_fake`), their records served by the local
Taskcluster (`dev_taskcluster`); the tag task tags each managed image, and a gallery version
once however many regions it is replicated to, with the build's tags and the release's seal.
(Google images: tests/test_image_tag_google.py.)"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
import slugid

from cib_decision import manifest
from cib_decision.clouds.azure import Azure
from cib_decision.devclouds.azure_fake import AzureFake
from cib_decision.images.azure_machine import AzureBuild, Timeouts, build_machine_image
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress

from .azure_build_support import GROUP, Clock, adapter, write_fleet
from .imagefleet import COMMIT
from .tag_support import cib, create_task, tag_task


@pytest.fixture
def env(dev_taskcluster, monkeypatch):
    """The ARM fake (the local Taskcluster passed through) and a task's environment."""
    for name, value in {"CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging",
                        "TASK_ID": slugid.nice(),
                        **dev_taskcluster.environ("branch:main")}.items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_PROXY_URL", "CIB_DISK_IMAGE_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Azure, "from_environment", classmethod(lambda cls: adapter()))
    with AzureFake.running() as fake:
        fake.mock.add_passthru(dev_taskcluster.root_url)
        fake.add_group(GROUP, "centralus")
        fake.add_group("rg-east", "eastus2")
        yield monkeypatch, fake


def machine_image(tmp_path, dev, config, target: str) -> tuple[str, manifest.MachineImageRecord]:
    """Build the target's image in a machine-image task and serve its record."""
    task = create_task(dev)
    clock = Clock()
    ctx = load_context("win-azure", config, artifacts=tmp_path / task,
                       progress=Progress(io.StringIO(), clock.clock, clock.sleep))
    ctx.task_id, ctx.now = task, lambda: datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    record = build_machine_image(ctx, AzureBuild(
        azure=adapter(), target=ctx.target(target), timeouts=Timeouts(interval=30),
        password=lambda: "Test-Pa55word!"))
    dev.resolve_task(task, artifacts={manifest.MACHINE_IMAGE_ARTIFACT: record.to_json()})
    return task, record


def run_tag(capsys, tmp_path, config):
    return cib(capsys, "image", "tag", "--key", "win-azure", "--config-dir", str(config),
               "--artifacts", str(tmp_path / "artifacts"))


def test_each_managed_image_is_tagged_with_the_builds_tags_and_the_seal(
        tmp_path, env, dev_taskcluster, capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path)
    central, first = machine_image(tmp_path, dev_taskcluster, config, "azure/centralus")
    east, second = machine_image(tmp_path, dev_taskcluster, config, "azure/eastus2")
    tag_task(monkeypatch, dev_taskcluster, [central, east])
    status, out, err = run_tag(capsys, tmp_path, config)
    assert status == 0, err
    release = manifest.parse_release(json.loads(
        (tmp_path / "artifacts" / "release.json").read_text()))
    assert [i.id for i in release.images] == [first.image_id, second.image_id]
    for record in (first, second):
        tags = fake.resource(record.image_id)["tags"]
        assert tags["cib:release-sha256"] == release.sha256
        assert (tags["cib:build-task-id"], tags["cib:target"], tags["Name"]) == (
            record.build_task_id, record.target, record.image_name)
        assert f"tagged image {record.image_name} ({record.image_name}) in " \
               f"{record.image_id.split('/')[4]}, {record.region}" in out
    assert "not supported yet" not in out


def test_a_gallery_version_is_tagged_once_for_all_its_regions(tmp_path, env, dev_taskcluster,
                                                              capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path, gallery="cibgallery")
    task, record = machine_image(tmp_path, dev_taskcluster, config, "azure/centralus")
    tag_task(monkeypatch, dev_taskcluster, [task])
    status, out, err = run_tag(capsys, tmp_path, config)
    assert status == 0, err
    release = json.loads((tmp_path / "artifacts" / "release.json").read_text())
    assert [(i["target"], i["id"]) for i in release["images"]] == [
        ("azure/centralus", record.image_id), ("azure/eastus2", record.image_id)]
    assert fake.resource(record.image_id)["tags"]["cib:release-sha256"] == release["sha256"]
    assert len(fake.calls_of("PATCH */versions")) == 1
    assert "in rg-central, centralus, eastus2" in out


def test_an_image_gone_since_its_build_exits_3_and_writes_no_release(
        tmp_path, env, dev_taskcluster, capsys):
    monkeypatch, fake = env
    config = write_fleet(tmp_path)
    task, record = machine_image(tmp_path, dev_taskcluster, config, "azure/centralus")
    del fake.store[record.image_id.lower()]
    tag_task(monkeypatch, dev_taskcluster, [task])
    status, _, err = run_tag(capsys, tmp_path, config)
    assert status == 3
    assert f"image {record.image_id} does not exist" in err
    assert not (tmp_path / "artifacts" / "release.json").exists()
