"""Reading config straight from git objects (no checkout): works in bare and shallow clones."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import git
from gitdb.exc import BadName, BadObject

from .errors import GitError


def open_repo(path: str | Path) -> git.Repo:
    """Open the repository at (or above) `path`."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise GitError(f"not a git repository: {path}") from None


def resolve(repo: git.Repo, rev: str) -> git.Commit:
    """The commit `rev` names; a clear error when it is not in this clone."""
    try:
        commit = repo.commit(rev)
        commit.tree  # noqa: B018 - a shallow clone can know the name but lack the objects
        return commit
    except (BadName, BadObject, ValueError, git.GitCommandError):
        shallow = Path(repo.git_dir, "shallow").exists()
        hint = (" (this is a shallow clone: fetch more history, e.g. `git fetch --deepen=50`, "
                "or fetch that revision)") if shallow else ""
        raise GitError(f"revision {rev!r} is not in the repository at "
                       f"{repo.working_dir or repo.git_dir}{hint}") from None


def commit_message(repo: git.Repo, rev: str) -> str:
    """The full message of commit `rev`."""
    message = resolve(repo, rev).message
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else message


_SYMLINK_MODE = 0o120000
# Blob contents read in this process, by object id: a plan reads the base revision after the
# head, and most of its files are the same objects (each read is a round trip to git).
_BLOBS: dict[str, bytes] = {}
_BLOB_BYTES_KEPT = 64 << 20
_blob_bytes = 0


def read_blob(blob: git.Blob) -> bytes:
    """The content of `blob`, read from git once per process (up to 64 MB of them kept)."""
    global _blob_bytes
    content = _BLOBS.get(blob.hexsha)
    if content is None:
        content = blob.data_stream.read()
        if _blob_bytes + len(content) <= _BLOB_BYTES_KEPT:
            _BLOBS[blob.hexsha] = content
            _blob_bytes += len(content)
    return content


class GitTreeSource:
    """Config files of one directory of one commit, read from git objects."""

    def __init__(self, commit: git.Commit, directory: str):
        self.commit = commit
        self.directory = PurePosixPath(directory.strip("/") or ".")
        self._blobs: dict[str, git.Blob] = {}
        try:
            tree = commit.tree if str(self.directory) == "." else commit.tree / str(self.directory)
        except KeyError:
            tree = None
        self.exists = tree is not None and tree.type == "tree"
        if self.exists:
            self._blobs = {b.name: b for b in tree.blobs}

    def names(self) -> list[str]:
        return sorted(self._blobs)

    def read(self, name: str) -> bytes:
        from .config.source import LINK_REFUSED, SourceRefused

        blob = self._blobs[name]
        if blob.mode == _SYMLINK_MODE:  # its content is where the link points
            raise SourceRefused(LINK_REFUSED)
        return read_blob(blob)

    def display(self, name: str) -> str:
        return f"{self.commit.hexsha[:12]}:{self.directory / name}"

    def beside(self, name: str) -> tuple[str, bytes] | None:
        from .config.source import LINK_REFUSED, SourceRefused

        path = self.directory.parent / name
        try:
            blob = self.commit.tree / str(path)
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        if blob.mode == _SYMLINK_MODE:
            raise SourceRefused(LINK_REFUSED)
        return f"{self.commit.hexsha[:12]}:{path}", blob.data_stream.read()
