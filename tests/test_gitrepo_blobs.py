"""A plan reads the base revision after the head: files that are the same git objects are read
from git once per process."""

from __future__ import annotations

from cib_decision import gitrepo
from cib_decision.gitrepo import GitTreeSource, open_repo, resolve

from .repos import fleet_repo


def test_the_same_blob_at_two_revisions_is_read_from_git_once(tmp_path, monkeypatch):
    repo = open_repo(fleet_repo(tmp_path / "images"))  # two commits: win10-64 changed
    reads: list[str] = []
    real = gitrepo.git.Blob.data_stream

    def counted(blob):
        reads.append(blob.path)
        return real.fget(blob)

    monkeypatch.setattr(gitrepo.git.Blob, "data_stream", property(counted))
    monkeypatch.setattr(gitrepo, "_BLOBS", {})
    head = GitTreeSource(resolve(repo, "HEAD"), "config")
    base = GitTreeSource(resolve(repo, "HEAD~1"), "config")
    contents = {name: head.read(name) for name in head.names()}
    assert {name: base.read(name) for name in base.names()} == {
        **contents, "win10-64.yaml": base.read("win10-64.yaml")}
    assert base.read("win10-64.yaml") != contents["win10-64.yaml"]
    # every head file once, and of the base only the one that differs
    assert sorted(reads) == sorted([*(f"config/{n}" for n in contents), "config/win10-64.yaml"])
