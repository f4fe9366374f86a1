"""Throw-away git repositories holding our fleet (test helper)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import CONFIG_DIR, ROOT


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as a test committer; its standard output."""
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def fleet_repo(path: Path) -> Path:
    """A repository like ours at `path` (config, taskcluster, .taskcluster.yml): a first commit,
    then one that changes win10-64's edition."""
    shutil.copytree(CONFIG_DIR, path / "config")
    shutil.copytree(ROOT / "taskcluster", path / "taskcluster")
    shutil.copy(ROOT / ".taskcluster.yml", path / ".taskcluster.yml")
    git(path.parent, "init", "-q", "-b", "main", str(path))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial fleet")
    key = path / "config" / "win10-64.yaml"
    key.write_text(key.read_text().replace("edition: Professional", "edition: Enterprise"))
    git(path, "commit", "-q", "-am", "win10: Enterprise edition")
    return path


def cib_output(*args: str) -> str:
    """`cib ARGS` in a process of its own (taskgraph registers one graph root per process, so
    a plan of another repository must not run in the test's); its output, which must be a
    success."""
    import sys

    done = subprocess.run([sys.executable, "-m", "cib_decision", *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout
