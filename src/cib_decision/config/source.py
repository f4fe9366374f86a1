"""Where config files come from: a directory on disk, or (see gitrepo.py) a git tree."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..errors import CibError


class ConfigSource(Protocol):
    """A flat set of config files, read by name."""

    def names(self) -> list[str]:
        """File names (no directories) in the config directory."""
        ...

    def read(self, name: str) -> bytes:
        """The bytes of one file."""
        ...

    def display(self, name: str) -> str:
        """How to name a file in messages."""
        ...


class DirectorySource:
    """Config files in a directory on disk."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CibError(f"config directory not found: {self.directory}")

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir() if p.is_file())

    def read(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()

    def display(self, name: str) -> str:
        return str(self.directory / name)
