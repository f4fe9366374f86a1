"""Fleets, images and records for the pool tests, and the tasks their commands run in: a
task created as the decision would, a `cib` command's environment in a task (`in_task`) and the
command itself (test helper)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import slugid
import yaml

import taskcluster
from cib_decision import manifest, pools
from cib_decision.cli import main
from cib_decision.config import DirectorySource, Fleet, load_fleet
from cib_decision.devtc.fake_images import key_images
from cib_decision.digests import fleet_digests
from cib_decision.manifest import ReleaseImage

from .conftest import CONFIG_DIR

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUILD_TASK = "fN1SbArXTPSVFNUvaOlinQ"
WHEN = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


@cache
def fleet(directory: str = str(CONFIG_DIR)) -> Fleet:
    return load_fleet(DirectorySource(directory))


def images(pool_id: str, regions: set[str] | None = None, build: int = 0,
           directory: str = str(CONFIG_DIR)) -> list[ReleaseImage]:
    """One image per target of the pool's key (only in `regions` when given). `build` gives
    the images of another build: other machine digests, names and ids."""
    the_fleet = fleet(directory)
    key, _ = pools.find_pool(the_fleet, pool_id)
    return key_images(the_fleet, key, regions, build, BUILD_TASK)


def release_of(pool_id: str, build: int = 0, regions: set[str] | None = None
               ) -> manifest.Release:
    """A sealed release of the pool's key."""
    key, _ = pools.find_pool(fleet(), pool_id)
    digests = fleet_digests(fleet())[key.name]
    return manifest.release_record(key.name, disk_digest=digests.disk, disk_sha256="cd" * 32,
                                   config_commit=COMMIT, created=WHEN,
                                   images=images(pool_id, regions, build))


def untested_config(directory: Path) -> Path:
    """A copy of the bundled fleet in `directory/config` whose environments name no smoke
    tests, so no key has any (pools then deploy from builds' records too)."""
    config = directory / "config"
    shutil.copytree(CONFIG_DIR, config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    for environment in environments.values():
        environment.pop("image-tests", None)
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    return config


def request(pool_id: str, environment: str = "staging", pull_request: int | None = None,
            expires: datetime | None = None, directory: str = str(CONFIG_DIR)
            ) -> pools.PoolRequest:
    the_fleet = fleet(directory)
    key, pool = pools.find_pool(the_fleet, pool_id)
    return pools.PoolRequest(key, pool, the_fleet.environments[environment], pull_request,
                             expires)


def task(dev, dependencies=(), created=None):
    """Create a task (as the decision would) and return its id."""
    task_id = slugid.nice()
    now = created or datetime.now(UTC)
    taskcluster.Queue(dev.options()).createTask(task_id, {
        "taskQueueId": "cib-3/b-linux", "created": now.isoformat(),
        "deadline": (now + timedelta(hours=2)).isoformat(),
        "dependencies": list(dependencies), "payload": {},
        "metadata": {"name": "t", "description": "t", "owner": "cib@example.com",
                     "source": "https://github.com/example/images"}})
    return task_id


@pytest.fixture
def in_task(dev_taskcluster, monkeypatch):
    """Environment of a `cib` command running with the branch:main role's credentials."""
    credentials = dev_taskcluster.credentials("branch:main")
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    monkeypatch.delenv("TASK_ID", raising=False)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", dev_taskcluster.root_url)
    monkeypatch.setenv("TASKCLUSTER_CLIENT_ID", credentials["clientId"])
    monkeypatch.setenv("TASKCLUSTER_ACCESS_TOKEN", credentials["accessToken"])
    monkeypatch.setenv("CIB_ENVIRONMENT", "staging")
    return monkeypatch


def cib(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
