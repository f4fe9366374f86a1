"""Shared fixtures: paths to the bundled fleet and to ../shared/reference (skipped when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
REFERENCE_CONFIG = REFERENCE / "cib-config"


def require_reference(path: Path = REFERENCE) -> Path:
    """Skip the calling test when ../shared/reference is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the reference data lives in ../shared beside the repo")
    return path


@pytest.fixture
def reference_config() -> Path:
    return require_reference(REFERENCE_CONFIG)


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled fleet."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target
