"""The fleet as the graph sees it: loaded once per process from the repository's config dir."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigSource, DirectorySource, Fleet, load_fleet
from ..config.cache import ParsedCache
from ..digests import KeyDigests, fleet_digests


@dataclass(frozen=True, eq=False)
class GraphFleet:
    """A fleet and its digests."""

    fleet: Fleet
    digests: dict[str, KeyDigests]


def config_dir(graph_config) -> Path:
    """The config directory: `cib.config-dir` of taskcluster/config.yml, from the repo root;
    a relative path that stays inside the repository (CibError otherwise). Every task's
    transforms ask: the answer is worked out once per process."""
    relative = str((graph_config.get("cib") or {}).get("config-dir", "config"))
    return _checked_config_dir(repo_root(graph_config), relative)


@functools.cache
def _checked_config_dir(root: Path, relative: str) -> Path:
    from pathlib import PurePosixPath

    from ..errors import CibError

    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise CibError(f"taskcluster/config.yml: cib.config-dir {relative!r} must be a "
                       "relative path inside the repository")
    directory = root / relative
    if directory.exists() and not directory.resolve().is_relative_to(root.resolve()):
        raise CibError(f"the config directory {relative} is a link leading outside the "
                       "repository: cib reads config only from inside it")
    return directory


def repo_root(graph_config) -> Path:
    """The repository root: the repository a prepared root was made for (root.py: a scratch
    copy of its folder at a revision, or of the packaged one), else the folder's parent (its
    own taskcluster/ at its top; no git call needed)."""
    from .root import repository_of

    return repository_of(graph_config.root_dir)


_loaded: dict[Path, GraphFleet] = {}


def load(directory: Path, source: ConfigSource | None = None,
         cache: ParsedCache | None = None) -> GraphFleet:
    """The fleet of `directory` and its digests, loaded once per process: every kind reads the
    same one. With `source`, the files are read from there instead of from the directory (and
    replace what was loaded before): `cib plan` reads a revision straight from git objects.
    Parsed files come from `cache`, or from the one `CIB_CACHE_DIR` names (config/cache.py)."""
    if source is None and directory in _loaded:
        return _loaded[directory]
    fleet = load_fleet(source or DirectorySource(directory),
                       cache or ParsedCache.from_environment(default_location=False))
    _loaded[directory] = loaded = GraphFleet(fleet, fleet_digests(fleet))
    return loaded
