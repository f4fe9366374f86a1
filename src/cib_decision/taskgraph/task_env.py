"""The task environment: cib and its pinned dependencies, built once per content digest by the
`task-env` kind and mounted by every task that runs `cib` (taskgraph's toolchain idiom).

The environment is `pip install --target` of cib-decision: a plain directory of modules that
works wherever it is unpacked, run as `python3 -m cib_decision` with `PYTHONPATH` pointing at
it. In cib-decision's own repository it is built from the head revision's source, and its
digest covers exactly what it is built from (`ENV_INPUTS` at the head revision, the
`taskcluster/` folder that ships in the package included). A fleet repository without that
source (one adopted from cloud-image-builder) gets the cib-decision its decision runs: the pip
requirement of the installed distribution (`installed_requirement`), with a digest of its
installed files (`installed_digest`). Either way a task reaches its first `cib` line in
seconds instead of cloning and installing everything itself.

Tasks do not list the environment among their taskgraph dependencies: taskgraph never replaces
a task one of whose dependencies runs, so a change of cib's own code would rebuild every image.
The morph `attach_task_env` adds the dependency and the mount after optimization instead, on
the environment task of this graph or the earlier one the index gave.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from .root import FOLDER_FILES, ROOT_DIR, packaged_folder

ENV_LABEL = "task-env-cib"
ENV_ARTIFACT = "public/cib-env.tar.gz"
# where a task unpacks the environment, relative to its task directory
ENV_DIRECTORY = "cib-env"
# what the environment is built from, relative to the repository root: the package and the
# taskcluster/ folder it ships (pyproject.toml; taskgraph/root.py), so a change of the kinds
# rebuilds the environment
ENV_INPUTS = ("pyproject.toml", "src", *(f"{ROOT_DIR}/{name}" for name in FOLDER_FILES))
# a repository holding this is cib-decision's own source: its environment is built from it
SOURCE_MARK = "src/cib_decision/__init__.py"
DISTRIBUTION = "cib-decision"
# the attribute of tasks that run cib from the environment
USES_ENV = "cib-task-env"
DIGEST_VERSION = "cib-env-v1"


def env_digest(repo_root: Path, rev: str | None) -> str:
    """SHA-256 over the git object ids of `ENV_INPUTS` at `rev` (git ids are content hashes,
    so this is a content digest that costs no file reads); the working tree's files when the
    revision cannot be read from git (a directory that is no repository)."""
    digest = hashlib.sha256(f"{DIGEST_VERSION}\n".encode())
    for name, object_id in _input_ids(repo_root, rev):
        digest.update(f"{name} {object_id}\n".encode())
    return digest.hexdigest()


def graph_env(repo_root: Path, rev: str | None) -> tuple[str, str | None]:
    """The task environment of a graph of the repository at `rev`: its digest, and the pip
    requirement it is built from, None when it is built from the repository's own source (the
    repository is cib-decision's)."""
    if _input_ids(repo_root, rev, (SOURCE_MARK,))[0][1] != "-":
        return env_digest(repo_root, rev), None
    requirement = installed_requirement()
    return installed_digest(requirement), requirement


def _input_ids(repo_root: Path, rev: str | None,
               names: tuple[str, ...] = ENV_INPUTS) -> list[tuple[str, str]]:
    from ..errors import CibError
    from ..gitrepo import open_repo, resolve

    try:
        tree = resolve(open_repo(repo_root), rev or "HEAD").tree
    except (CibError, ValueError, KeyError):
        return [(name, _files_digest(repo_root / name)) for name in names]
    return [(name, _object_id(tree, name)) for name in names]


def _object_id(tree: Any, path: str) -> str:
    try:
        return tree[path].hexsha
    except KeyError:
        return "-"


@functools.cache
def installed_requirement() -> str:
    """The pip requirement of the cib-decision this process runs, as its installer recorded
    it (PEP 610 `direct_url.json`): a git URL at the very commit installed, an archive's URL,
    a local directory's `file://` URL (reachable by workers on this machine only), or the
    version from the package index."""
    import importlib.metadata
    import json

    distribution = importlib.metadata.distribution(DISTRIBUTION)
    recorded = distribution.read_text("direct_url.json")
    if not recorded:
        return f"{DISTRIBUTION}=={distribution.version}"
    origin = json.loads(recorded)
    url = origin["url"]
    vcs = origin.get("vcs_info")
    if vcs:
        url = f"{vcs['vcs']}+{url}@{vcs['commit_id']}"
    if origin.get("subdirectory"):
        url += f"#subdirectory={origin['subdirectory']}"
    return f"{DISTRIBUTION} @ {url}"


@functools.cache
def installed_digest(requirement: str) -> str:
    """SHA-256 over `requirement`, the installed package's files (the packaged taskcluster/
    folder included) and its pinned dependencies: what an environment built from it holds."""
    import importlib.metadata

    digest = hashlib.sha256(f"{DIGEST_VERSION}\npackage {requirement}\n".encode())
    inputs = [("cib_decision", Path(__file__).resolve().parents[1]),
              *((f"{ROOT_DIR}/{name}", packaged_folder() / name) for name in FOLDER_FILES)]
    for name, location in inputs:
        digest.update(f"{name} {_files_digest(location)}\n".encode())
    for dependency in sorted(importlib.metadata.requires(DISTRIBUTION) or ()):
        digest.update(f"requires {dependency}\n".encode())
    return digest.hexdigest()


def _files_digest(path: Path) -> str:
    if not path.exists():
        return "-"
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*"))
                   if "__pycache__" not in p.parts and p.is_file())
    digest = hashlib.sha256()
    for file in files:
        try:
            content = file.read_bytes()
        except FileNotFoundError:  # removed while we walked (an editor's temporary file)
            continue
        digest.update(f"{file.relative_to(path.parent)} ".encode())
        digest.update(hashlib.sha256(content).hexdigest().encode())
    return digest.hexdigest()


def cache_name(trust_domain: str, level: str | int, env_task_id: str) -> str:
    """The writable cache the environment built by `env_task_id` is unpacked into, named by
    level as fxci names its caches (`<trust-domain>-level-<level>-...`): a worker serves one
    level, and a task environment is the same content wherever its task id is."""
    return f"{trust_domain}-level-{level}-task-env-{env_task_id}"


def cache_scope(trust_domain: str, level: str | int) -> str:
    """The scope every cache of a level's tasks needs (the level's role grants it)."""
    return f"generic-worker:cache:{trust_domain}-level-{level}-*"


def mount(env_task_id: str, trust_domain: str, level: str | int) -> dict[str, Any]:
    """The generic-worker mount of the environment: a writable directory cache preloaded
    with the environment's artifact, so a worker unpacks each environment once instead of
    once per task (generic-worker extracts a cache's content only when it creates it)."""
    return {"cacheName": cache_name(trust_domain, level, env_task_id),
            "content": {"taskId": env_task_id, "artifact": ENV_ARTIFACT},
            "directory": ENV_DIRECTORY, "format": "tar.gz"}


def add_mount(definition: dict[str, Any], env_task_id: str, trust_domain: str,
              level: str | int) -> None:
    """Make a task definition mount the environment: the dependency, the mount and the
    cache's scope."""
    if env_task_id not in definition.setdefault("dependencies", []):
        definition["dependencies"].append(env_task_id)
    definition["payload"].setdefault("mounts", []).append(
        mount(env_task_id, trust_domain, level))
    scope = cache_scope(trust_domain, level)
    if scope not in definition.setdefault("scopes", []):
        definition["scopes"].append(scope)


def attach_task_env(taskgraph: Any, label_to_taskid: dict[str, str], parameters: Any,
                    graph_config: Any) -> tuple[Any, dict[str, str]]:
    """taskgraph morph: every task marked `USES_ENV` depends on the environment task (the one
    of this graph, or the indexed one that replaced it) and mounts its artifact."""
    users = [task for task in taskgraph.tasks.values() if task.attributes.get(USES_ENV)]
    if not users:
        return taskgraph, label_to_taskid
    env_task_id = label_to_taskid.get(ENV_LABEL)
    if env_task_id is None:
        raise ValueError(f"tasks run cib but the graph has no {ENV_LABEL} task: "
                         f"{', '.join(sorted(t.label for t in users)[:5])}")
    edges = set(taskgraph.graph.edges)
    for task in users:
        add_mount(task.task, env_task_id, graph_config["trust-domain"], parameters["level"])
        if env_task_id in taskgraph.tasks:
            task.dependencies["task-env"] = env_task_id
            edges.add((task.task_id, env_task_id, "task-env"))
    if len(edges) == len(taskgraph.graph.edges):
        return taskgraph, label_to_taskid
    from taskgraph.graph import Graph
    from taskgraph.taskgraph import TaskGraph

    return TaskGraph(taskgraph.tasks, Graph(taskgraph.graph.nodes, frozenset(edges))), \
        label_to_taskid
