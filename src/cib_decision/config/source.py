"""Where config files come from: a directory on disk, or (see gitrepo.py) a git tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ..errors import CibError


class ConfigSource(Protocol):
    """A flat set of config files, read by name."""

    def names(self) -> list[str]:
        """File names (no directories) in the config directory."""
        ...

    def read(self, name: str) -> bytes:
        """The bytes of one file; SourceRefused for one that is not read."""
        ...

    def display(self, name: str) -> str:
        """How to name a file in messages."""
        ...

    def beside(self, name: str) -> tuple[str, bytes] | None:
        """A repository-level file `name` beside the config directory (cloud-image-builder's
        `.platforms.yml`): how to name it and its bytes; None when there is none.
        SourceRefused for one that is not read."""
        ...


LINK_REFUSED = ("is a symbolic link; config files must be regular files of the repository "
                "(a link may lead outside it)")


class SourceRefused(Exception):
    """A config file that is not read (a symbolic link); the loader reports it."""


class DirectorySource:
    """Config files in a directory on disk. With `root` (the repository), the directory must
    lie inside it once links are followed. A file that is a symbolic link is never read, in
    or out of the repository: what git holds (GitTreeSource) and a checkout give the same."""

    def __init__(self, directory: str | Path, root: str | Path | None = None):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CibError(f"config directory not found: {self.directory}")
        if root is not None and not self.directory.resolve().is_relative_to(
                Path(root).resolve()):
            raise CibError(f"config directory {self.directory} leads outside the repository "
                           f"{root}: cib reads config only from inside it")

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_symlink() or p.is_file())

    def read(self, name: str) -> bytes:
        path = self.directory / name
        if path.is_symlink():
            raise SourceRefused(LINK_REFUSED)
        return path.read_bytes()

    def display(self, name: str) -> str:
        return str(self.directory / name)

    def beside(self, name: str) -> tuple[str, bytes] | None:
        path = self.directory.parent / name
        if path.is_symlink():
            raise SourceRefused(LINK_REFUSED)
        return (str(path), path.read_bytes()) if path.is_file() else None


def default_config_dir(start: Path | None = None) -> str:
    """The config directory when none is given: the repository's (`cib.config-dir` of its
    taskcluster/config.yml, else `config`), found from `start` (the working directory) or any
    directory below the repository root; plain `config` outside a repository."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / ".git").exists():
            import yaml

            name = "config"
            try:
                settings = yaml.safe_load(
                    (directory / "taskcluster" / "config.yml").read_text()) or {}
                name = str((settings.get("cib") or {}).get("config-dir") or name)
            except (OSError, yaml.YAMLError, AttributeError):
                pass
            return os.path.relpath(directory / name)
    return "config"
