"""Fixtures and helpers of the `cib promote` tests (test helper): a staging local Taskcluster
beside the production one (`dev_taskcluster`), a promote task's environment in production,
a release left by a staging tag task and pointed at by staging, and the promote command."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import taskcluster
from cib_decision import manifest
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.devtc.harness import DevTaskcluster
from cib_decision.devtc.testing import require_schemas
from cib_decision.digests import fleet_digests
from cib_decision.lifecycle import pointers
from cib_decision.manifest import ReleaseImage

from .conftest import CONFIG_DIR
from .pools_support import cib, task

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUILD_TASK = "fN1SbArXTPSVFNUvaOlinQ"
CREATED = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
WRITES = ("worker-manager.createWorkerPool", "worker-manager.updateWorkerPool",
          "index.insertTask")


@pytest.fixture(scope="module")
def staging_server():
    """A second local Taskcluster: the staging deployment."""
    require_schemas()
    with DevTaskcluster() as server:
        yield server


@pytest.fixture
def staging(staging_server):
    staging_server.reset()
    return staging_server


@pytest.fixture
def production_task(dev_taskcluster, monkeypatch):
    """The environment of a promote task in production (the promote action's role); its
    artifacts directory is `tmp_path / "artifacts"`."""
    for name, value in dev_taskcluster.environ("action:promote").items():
        monkeypatch.setenv(name, value)
    for name in ("TASKCLUSTER_PROXY_URL", "CIB_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASK_ID", task(dev_taskcluster))
    return dev_taskcluster


def machine_digest(key: str, target: str) -> str:
    """The bundled config's machine digest of `key`'s `target`."""
    return fleet_digests(load_fleet(DirectorySource(str(CONFIG_DIR))))[key].machines[target]


def released_in_staging(staging, key: str, images: list[ReleaseImage], forge=None
                        ) -> manifest.Release:
    """The release of `images`, left by a staging tag task and pointed at by staging
    (`forge` edits the record the task leaves)."""
    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    release = manifest.release_record(key, disk_digest=fleet_digests(fleet)[key].disk,
                                      disk_sha256=None, config_commit=COMMIT, created=CREATED,
                                      images=images)
    tag, data = task(staging), release.to_json()
    if forge:
        forge(data)
    staging.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: data})
    pointers.set_release(taskcluster.Index(staging.options()), "staging",
                         pointers.ReleaseRef(key, release.sha256, tag), "deploy",
                         lambda _: None)
    return release


def promote(capsys, staging, tmp_path, key: str, *extra):
    """`cib promote --key K --from staging --to production`: (status, stdout, stderr)."""
    return cib(capsys, "promote", "--key", key, "--from", "staging", "--to", "production",
               "--from-root-url", staging.root_url, "--config-dir", str(CONFIG_DIR),
               "--artifacts", str(tmp_path / "artifacts"), *extra)


def promoted_record(tmp_path) -> manifest.Release:
    data = json.loads((tmp_path / "artifacts" / "release.json").read_text())
    return manifest.verify(manifest.parse_release(data))


def writes(dev) -> int:
    """How many writes production's worker-manager and index answered."""
    requests = dev.stats()["requests"]
    return sum(requests.get(method, 0) for method in WRITES)
