"""Shared fixtures: paths to the bundled fleet and to ../shared/reference (skipped when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import responses
from taskgraph.util.taskcluster import get_root_url, get_taskcluster_client

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
REFERENCE_CONFIG = REFERENCE / "cib-config"
FAKE_ROOT_URL = "https://tc.example.com"

pytest_plugins = ["cib_decision.devtc.testing", "tests.promote_support",
                  "tests.google_lifecycle_support"]
# Support modules that assert, rewritten as the test modules they came from were (pytest
# rewrites test modules and plugins only).
pytest.register_assert_rewrite("tests.devtc_support", "tests.plan_support")


# Test modules that take minutes, slowest first. They are collected first so that, with one
# worker per core, the longest module starts at once instead of last.
SLOWEST_MODULES = ("test_local_pipeline.py", "test_local_pipeline_promote.py",
                   "test_local_pipeline_adoption.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest modules' tests first, each module's in its own order."""
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)

    items.sort(key=rank)  # stable: every module keeps its order


def require_reference(path: Path = REFERENCE) -> Path:
    """Skip the calling test when ../shared/reference is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the reference data lives in ../shared beside the repo")
    return path


# cloud-image-builder's repository root holds `.platforms.yml` beside `config/` (one version,
# commit fd36501: `- azure`): its amazon targets, which carry Azure region names, were never
# built. The reference files are played in that layout.
PREDECESSOR_PLATFORMS = "---\n- azure\n"


@pytest.fixture(scope="session")
def reference_config(tmp_path_factory) -> Path:
    """The reference config files in a copy of the predecessor's repository layout:
    `<repo>/config/` with its `.platforms.yml` beside it."""
    source = require_reference(REFERENCE_CONFIG)
    repo = tmp_path_factory.mktemp("cloud-image-builder")
    shutil.copytree(source, repo / "config")
    (repo / ".platforms.yml").write_text(PREDECESSOR_PLATFORMS)
    return repo / "config"


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled fleet."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


@pytest.fixture
def graph_env(monkeypatch):
    """Generate graphs in-process against a fake Taskcluster root URL."""
    monkeypatch.setenv("TASKGRAPH_SERIAL", "1")
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", FAKE_ROOT_URL)
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    get_taskcluster_client.cache_clear()
    get_root_url.cache_clear()


@pytest.fixture
def index():
    """A fake index and queue (responses) for index-search optimization."""
    from .graphs import FakeIndex

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeIndex(mock)
