"""The repository GitHub holds for the local pipeline: a clone of the user's repository at a
revision, with one commit on top that the local deployment needs (the environment it plays
points at its root URL; disk sources pinned to the local mirror's stand-ins), and the commits
each played event adds (a push's, a pull request's branch).

Tasks clone it by its GitHub URL; the workers' git configuration maps that URL here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ..errors import CibError

AUTHOR = ["-c", "user.name=cib dev-up", "-c", "user.email=dev-up@example.com"]


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its stdout (CibError with git's message when it fails)."""
    done = subprocess.run(["git", *AUTHOR, *args], cwd=repo, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise CibError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def commit_of(source: Path, revision: str) -> str:
    """The sha of `revision` in the repository `source` (CibError when there is none)."""
    if not source.is_dir() or (not (source / ".git").exists() and
                               not (source / "HEAD").is_file()):
        raise CibError(f"{source} is not a git repository")
    try:
        return git(source, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except CibError:
        raise CibError(f"{source}: no commit {revision!r}") from None


def clone(source: Path, revision: str, target: Path) -> Path:
    """A clone of `source` with branch main at `revision` checked out."""
    sha = commit_of(source, revision)
    target.parent.mkdir(parents=True, exist_ok=True)
    git(target.parent, "clone", "--quiet", "--no-checkout", str(source.resolve()), target.name)
    git(target, "checkout", "--quiet", "-B", "main", sha)
    return target


def config_dir(repo: Path) -> Path:
    """The config directory the taskgraph config of the repository's working tree names
    (`cib.config-dir`): its own taskcluster/config.yml's, else the one that ships with
    cib-decision (taskgraph/root.py)."""
    from ..taskgraph.root import GRAPH_CONFIG, ROOT_DIR, has_own_folder, packaged_folder

    graph_config = (repo / ROOT_DIR if has_own_folder(repo) else packaged_folder()) / GRAPH_CONFIG
    settings = yaml.safe_load(graph_config.read_text()) or {}
    return repo / str((settings.get("cib") or {}).get("config-dir", "config"))


def point_environment_at(config: Path, environment: Any, root_url: str) -> Path:
    """Make `root-url` of `environment` (a config `Environment`) `root_url` in
    `config/environments.yaml`, textually (comments stay): the line rewritten, or added to
    the environment's block, or the environment added (a config without the file or without
    that environment uses the built-in ones)."""
    path = config / "environments.yaml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = text.splitlines(keepends=True)
    header = next((n for n, line in enumerate(lines)
                   if re.match(rf"^{re.escape(environment.name)}\s*:", line)), None)
    if header is None:
        block = yaml.safe_dump({environment.name: {
            "root-url": root_url, "pull-requests": environment.pull_requests}})
        lines += ([] if not lines or lines[-1].endswith("\n") else ["\n"]) + [block]
    else:
        end = next((n for n in range(header + 1, len(lines))
                    if re.match(r"^\S", lines[n]) and not lines[n].startswith("#")),
                   len(lines))
        found = next((n for n in range(header + 1, end)
                      if re.match(r"^\s+root-url\s*:", lines[n])), None)
        if found is None:
            lines.insert(header + 1, f"    root-url: {root_url}\n")
        else:
            indent = lines[found][:len(lines[found]) - len(lines[found].lstrip())]
            lines[found] = f"{indent}root-url: {root_url}\n"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def commit_all(repo: Path, message: str, allow_empty: bool = False) -> str:
    """Commit every change in `repo` with `message`; the new commit's sha."""
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", *(["--allow-empty"] if allow_empty else []),
        "-m", message)
    return git(repo, "rev-parse", "HEAD")
