"""The fleet as the graph sees it: loaded once per process from the repository's config dir."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..config import DirectorySource, Fleet, load_fleet
from ..digests import KeyDigests, fleet_digests


@dataclass(frozen=True, eq=False)
class GraphFleet:
    """A fleet and its digests."""

    fleet: Fleet
    digests: dict[str, KeyDigests]


def config_dir(graph_config) -> Path:
    """The config directory: `cib.config-dir` of taskcluster/config.yml, from the repo root."""
    relative = (graph_config.get("cib") or {}).get("config-dir", "config")
    return repo_root(graph_config) / relative


def repo_root(graph_config) -> Path:
    """The repository root: taskcluster/ sits at its top (no git call needed)."""
    return Path(graph_config.root_dir).parent


@cache
def load(directory: Path) -> GraphFleet:
    """Load and digest the fleet in `directory` (cached: every kind reads the same one)."""
    fleet = load_fleet(DirectorySource(directory))
    return GraphFleet(fleet, fleet_digests(fleet))
