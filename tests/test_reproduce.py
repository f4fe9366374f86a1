"""Reproducing an old image: `cib plan --head OLD_REV` shows the images and digests that
revision had, and its machine-image task's build at OLD_REV (against moto) makes an image of
exactly those digests and that name."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest

from cib_decision.clouds.aws import EC2
from cib_decision.images.aws_machine import AwsBuild, Timeouts, build_machine_image
from cib_decision.images.context import load_context
from cib_decision.images.progress import Progress

from .aws_build_support import Bootstrap, aws, publish_base_images  # noqa: F401
from .plan_support import cib
from .repos import fleet_repo, git

KEY = "win2022-64"
TASK = f"machine-image-{KEY}-amazon-us-east-1"
HASH_ROUTE = re.compile(r"\.machine-image\.[^.]+\.hash\.([0-9a-f]{64})$")
NAME = re.compile(r"Build machine image (\S+) of ")


def images_of(plan: dict) -> dict[str, tuple[str, str, str, str]]:
    """Per machine-image task of the key: its digest (index route), image name, the revision
    it checks out and its command."""
    found = {}
    for label, entry in plan["tasks"].items():
        if entry["kind"] != "machine-image" or f"-{KEY}-" not in label:
            continue
        task = entry["task"]
        digest = next(m.group(1) for r in task["routes"] if (m := HASH_ROUTE.search(r)))
        found[label] = (digest, NAME.match(task["metadata"]["description"]).group(1),
                        task["payload"]["env"]["CIB_HEAD_REV"],
                        task["payload"]["command"][0][-1])
    return found


def plan(repo, head: str) -> dict:
    """`cib plan --head HEAD --no-base --format json` (in its own process: taskgraph registers
    one graph root per process)."""
    result = cib("plan", "--repo", str(repo), "--head", head, "--no-base", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def history(tmp_path, monkeypatch):
    """A repository whose last commit changes win2022-64's bootstrap, with what `cib plan`
    showed for the key's images before that commit."""
    monkeypatch.setenv("CIB_CACHE_DIR", "")
    repo = fleet_repo(tmp_path / "images")
    old = git(repo, "rev-parse", "HEAD")
    original = images_of(plan(repo, "HEAD"))
    path = repo / "config" / f"{KEY}.yaml"
    path.write_text(path.read_text().replace("value: '5b0e8d2'", "value: '5b0e8d3'"))
    git(repo, "commit", "-q", "-am", "win2022: next deployment")
    return repo, old, original


def test_plan_at_an_old_revision_shows_the_images_and_digests_it_had(history):
    repo, old, original = history
    assert original and all(rev == old for _, _, rev, _ in original.values())
    assert images_of(plan(repo, old)) == original
    now = images_of(plan(repo, "HEAD"))
    assert {label: v[0] for label, v in now.items()} != {
        label: v[0] for label, v in original.items()}


def test_a_rebuild_at_the_old_revision_makes_the_same_digests_and_name(history, aws, tmp_path,  # noqa: F811
                                                                      monkeypatch):
    repo, old, original = history
    checkout = tmp_path / "old"
    git(repo, "worktree", "add", "-q", "--detach", str(checkout), old)
    publish_base_images()
    digest, name, _, command = original[TASK]
    assert command.endswith(f"cib_decision image machine --key {KEY} --target amazon/us-east-1")
    bootstrap = Bootstrap()
    ctx = load_context(KEY, checkout / "config", artifacts=tmp_path / "artifacts",
                       progress=Progress(io.StringIO(), clock=bootstrap.clock,
                                         sleep=bootstrap.sleep),
                       environ={"CIB_HEAD_REV": old, "TASK_ID": "fN1SbArXTPSVFNUvaOlinQ"})
    ctx.now = lambda: datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    target = ctx.target("amazon/us-east-1")
    record = build_machine_image(ctx, AwsBuild(ec2=EC2(target.region), target=target,
                                               on_launch=bootstrap.launched,
                                               timeouts=Timeouts(interval=30)))
    assert (record.machine_digest, record.image_name, record.config_commit) == (
        digest, name, old)
