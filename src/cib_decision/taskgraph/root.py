"""Which `taskcluster/` folder a revision of a fleet repository uses, and where taskgraph finds
its kinds. Every reader of that folder asks here: `cib plan`, `cib decision` (the graph and the
roles file it checks the graph against), `cib action-callback`, the local Taskcluster and
pipeline (the roles they grant, the config directory).

- A repository whose revision has `taskcluster/config.yml` uses its own folder, all of it: its
  graph config, kinds and roles file (nothing of the packaged folder is merged in).
- Otherwise it uses the folder that ships with cib-decision: the data-only package
  `cib_decision_taskcluster`, which is this project's top-level `taskcluster/` (mapped in
  pyproject.toml, found through the import system), with the repository's config in
  `cib.config-dir` (`config`), where cloud-image-builder keeps it. Its roles file is the
  repository's `taskcluster/roles.yml` when it has one (what its deployment grants: see
  `roles_file`), else the packaged one.

taskgraph runs from a directory holding the chosen folder as `taskcluster/`: the repository
itself when its working tree has its own, else a scratch directory the folder is copied into
(the repository's at a revision, or the packaged one). It always gets the relative root
`taskcluster`: taskgraph writes each task's `metadata.source` from the kind's path as given, so
an absolute path (a scratch copy, site-packages) would end up in every task's link to its
source instead of `taskcluster/kinds/<kind>`. The graph's readers of the repository (the
config, git) ask `repository_of` for the repository behind a root.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

ROOT_DIR = "taskcluster"
GRAPH_CONFIG = "config.yml"
ROLES = "roles.yml"
# the package the default folder ships as (pyproject.toml maps it to taskcluster/)
PACKAGED = "cib_decision_taskcluster"
# what of a taskcluster/ folder the graph and the decision read (not its test parameter sets)
FOLDER_FILES = (GRAPH_CONFIG, ROLES, "kinds")
# the file taskgraph hashes into action hook ids, copied beside a scratch folder
TASKCLUSTER_YML = ".taskcluster.yml"


def version() -> str:
    from .. import __version__

    return __version__


@functools.cache
def packaged_folder() -> Path:
    """The `taskcluster/` folder installed with cib-decision: a wheel's in site-packages (or a
    `pip install --target` directory), an editable install's is this project's own. It is a
    namespace package (pyproject.toml says why), whose search locations also hold an editable
    install's placeholder (which importlib.resources refuses as no directory): the folder is
    the location with a graph config."""
    from ..errors import CibError

    spec = importlib.util.find_spec(PACKAGED)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / GRAPH_CONFIG).is_file():
            return Path(location)
    raise CibError(f"cib-decision is installed without its {ROOT_DIR}/ folder (the package "
                   f"{PACKAGED}): reinstall it")


@dataclass(frozen=True)
class GraphRoot:
    """The folder a revision's graph is generated from."""

    repository: Path  # the fleet repository: its config and history
    directory: Path  # where taskgraph runs: it holds the folder as taskcluster/
    packaged: bool  # the folder is cib-decision's (the repository has no taskcluster/config.yml)
    revision: str | None = None  # the commit planned; None: the working tree

    @property
    def taskcluster(self) -> Path:
        return self.directory / ROOT_DIR

    def notice(self) -> str:
        """The line the commands print when the folder is the packaged one."""
        at = f" at {self.revision[:12]}" if self.revision else ""
        return (f"cib: {self.repository} has no {ROOT_DIR}/{GRAPH_CONFIG}{at}; planning with "
                f"the kinds of cib-decision {version()}")


# taskcluster/ folders being planned (real paths) -> the repository behind each
_repositories: dict[str, GraphRoot] = {}


def _key(taskcluster_dir: str | Path) -> str:
    return os.path.realpath(taskcluster_dir)


def graph_root_of(root_dir: str | Path) -> GraphRoot | None:
    """The prepared root whose taskcluster/ folder is `root_dir` (taskgraph's
    `graph_config.root_dir`), None for a folder `graph_root` did not prepare (taskgraph's own
    command line run in a repository)."""
    # every task's transforms ask: a folder named by its real path needs no realpath call
    return _repositories.get(str(root_dir)) or _repositories.get(_key(root_dir))


def repository_of(root_dir: str | Path) -> Path:
    """The fleet repository whose graph taskgraph generates from `root_dir`: the one the
    prepared root was made for, else the folder's parent (a repository's own taskcluster/)."""
    prepared = graph_root_of(root_dir)
    return prepared.repository if prepared else Path(root_dir).parent


def is_packaged(root_dir: str | Path) -> bool:
    """Whether `root_dir` is a copy of the packaged folder."""
    prepared = graph_root_of(root_dir)
    return bool(prepared and prepared.packaged)


def has_own_folder(repository: Path, commit: Any = None) -> bool:
    """Whether the repository has its own `taskcluster/config.yml`: at `commit` (a gitpython
    commit), or in its working tree."""
    if commit is None:
        return (repository / ROOT_DIR / GRAPH_CONFIG).is_file()
    return _blob(commit, f"{ROOT_DIR}/{GRAPH_CONFIG}") is not None


def _blob(commit: Any, path: str) -> Any:
    try:
        item = commit.tree / path
    except KeyError:
        return None
    return item if item.type == "blob" else None


@contextlib.contextmanager
def graph_root(repository: Path, commit: Any = None,
               notify: Callable[[str], None] | None = None) -> Iterator[GraphRoot]:
    """The root the graph of `repository` at `commit` (a gitpython commit; None: the working
    tree) is generated from, for the duration of the context: the working tree itself when it
    has its own folder, else a scratch directory holding the revision's own folder exported
    from git or a copy of the packaged one (and the repository's `.taskcluster.yml`, which
    taskgraph hashes into action hook ids). `notify` is told `GraphRoot.notice()` when the
    folder is the packaged one."""
    repository = Path(repository).absolute()
    own = has_own_folder(repository, commit)
    revision = commit.hexsha if commit is not None else None
    with contextlib.ExitStack() as stack:
        if own and commit is None:
            root = GraphRoot(repository, repository, False)
        else:
            directory = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cib-graph-root-")))
            if own:
                _export(commit, [ROOT_DIR], directory)
            else:
                _copy_packaged(directory / ROOT_DIR)
                _copy_taskcluster_yml(repository, commit, directory)
            root = GraphRoot(repository, directory, not own, revision)
        if root.packaged and notify is not None:
            notify(root.notice())
        key = _key(root.taskcluster)
        previous = _repositories.get(key)
        _repositories[key] = root
        try:
            yield root
        finally:
            if previous is None:
                _repositories.pop(key, None)
            else:
                _repositories[key] = previous


def _copy_packaged(target: Path) -> None:
    source = packaged_folder()
    target.mkdir(parents=True)
    for name in FOLDER_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(path, target / name)


def _copy_taskcluster_yml(repository: Path, commit: Any, directory: Path) -> None:
    if commit is None:
        source = repository / TASKCLUSTER_YML
        if source.is_file():
            shutil.copyfile(source, directory / TASKCLUSTER_YML)
        return
    blob = _blob(commit, TASKCLUSTER_YML)
    if blob is not None:
        (directory / TASKCLUSTER_YML).write_bytes(blob.data_stream.read())


def _export(commit: Any, paths: list[str], into: Path) -> None:
    """Write the files below `paths` of `commit` into `into` (no checkout needed)."""
    for path in paths:
        try:
            tree = commit.tree / path
        except KeyError:
            continue
        for item in tree.traverse():
            if item.type == "blob":
                target = into / PurePosixPath(item.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.data_stream.read())


@contextlib.contextmanager
def kinds_root(root: GraphRoot) -> Iterator[str]:
    """Run taskgraph generation from the root's directory and yield the root directory to give
    its generator: `taskcluster`, relative (see the module's docstring)."""
    with contextlib.chdir(root.directory):
        yield ROOT_DIR


@dataclass(frozen=True)
class RolesFile:
    """The roles file a graph is checked against."""

    where: str  # how errors name it
    text: str
    packaged: bool  # cib-decision's own (the repository has no taskcluster/ of its own)


def roles_file(repository: Path, commit: Any = None) -> RolesFile:
    """The roles file of `repository` at `commit` (None: the working tree): the repository's
    `taskcluster/roles.yml` when it has one or has its own `taskcluster/config.yml` (its own
    folder is used whole: without a roles file it has none, CibError), else the packaged one.
    A repository planned with the packaged kinds adds only `taskcluster/roles.yml` to say
    what its deployment grants it."""
    from ..errors import CibError

    relative = f"{ROOT_DIR}/{ROLES}"
    at = f" at the base revision {commit.hexsha[:12]}" if commit is not None else ""
    if commit is None:
        path = repository / ROOT_DIR / ROLES
        own_roles = path.is_file()
        where = str(path)
    else:
        own_roles = _blob(commit, relative) is not None
        where = f"{relative}{at}"
    if own_roles:
        try:
            text = (path.read_text(encoding="utf-8") if commit is None
                    else _blob(commit, relative).data_stream.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise CibError(f"{where}: cannot read the roles file: {error}") from None
        return RolesFile(where, text, False)
    if has_own_folder(repository, commit):
        raise CibError(f"no readable {relative}{at}: the repository's own {ROOT_DIR}/ folder "
                       "has no roles file to check the graph against")
    return RolesFile(f"{relative} of cib-decision {version()} (the repository has no "
                     f"{relative}{at})", (packaged_folder() / ROLES).read_text("utf-8"), True)
