"""Adoption in one file: a fleet repository without a `taskcluster/` folder (cloud-image-builder's
keeps only `config/`) is planned and decided with the folder that ships with cib-decision
(taskgraph/root.py); a repository's own folder, when it has `taskcluster/config.yml`, is used
whole. Plans of other repositories run in a process of their own: taskgraph registers one
graph root per process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from setuptools import find_packages

from cib_decision.decision import DecisionRequest, _role_scopes, roles_advice
from cib_decision.errors import CibError
from cib_decision.scopes import role_scopes
from cib_decision.submit import PendingTask
from cib_decision.taskgraph import root, task_env

from .conftest import CONFIG_DIR, ROOT
from .decision_support import dev_event
from .repos import git

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OUR_ROLES = yaml.safe_load((ROOT / "taskcluster" / "roles.yml").read_text())


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path_factory):
    """cib plan caches parsed config (by default under ~/.cache/cib); these tests use their own."""
    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cib-cache"))


def adopter_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository laid out as cloud-image-builder's: this repository's `config/` and no
    `taskcluster/`, plus `files` (path -> text), in one commit."""
    shutil.copytree(CONFIG_DIR, path / "config")
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path.parent, "init", "-q", "-b", "main", str(path))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fleet")
    return path


def own_folder(repo: Path, priority: str = "low") -> None:
    """Give `repo` a copy of our taskcluster/ folder whose `task-priority` is `priority`."""
    shutil.copytree(ROOT / "taskcluster", repo / "taskcluster",
                    ignore=shutil.ignore_patterns("test"))
    graph_config = repo / "taskcluster" / "config.yml"
    graph_config.write_text(graph_config.read_text().replace(
        "task-priority: low", f"task-priority: {priority}"))


def plan(repo: Path, *args: str) -> tuple[dict, str]:
    """`cib plan --repo REPO --no-base --format json ARGS` in its own process: the plan and
    what it said on standard error."""
    done = subprocess.run([sys.executable, "-m", "cib_decision", "plan", "--repo", str(repo),
                           "--no-base", "--format", "json", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cib: ")]


# --- the folder ships in the package ----------------------------------------------------------


def test_the_package_ships_this_repositorys_taskcluster_folder():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "src", root.PACKAGED: "taskcluster"}
    # every package under src/ is listed (the list replaces setuptools' discovery), and every
    # folder of the kinds whose name could be a package (else setuptools warns at each install)
    kinds = ROOT / "taskcluster" / "kinds"
    assert sorted(setuptools["packages"]) == sorted(
        [*find_packages(str(ROOT / "src")), root.PACKAGED, f"{root.PACKAGED}.kinds",
         *(f"{root.PACKAGED}.kinds.{d.name}" for d in kinds.iterdir()
           if d.is_dir() and d.name.isidentifier())])
    globs = setuptools["package-data"][root.PACKAGED]
    shipped = [path for name in root.FOLDER_FILES
               for path in ([ROOT / "taskcluster" / name] if name.endswith(".yml")
                            else sorted((ROOT / "taskcluster" / name).rglob("*")))
               if path.is_file() and "__pycache__" not in path.parts]
    for path in shipped:
        relative = PurePosixPath(path.relative_to(ROOT / "taskcluster").as_posix())
        assert any(relative.match(glob) for glob in globs), f"{relative} is not shipped"
    # the installed folder is this one (the editable install's, or a copy of it in a wheel)
    installed = root.packaged_folder()
    for path in shipped:
        assert (installed / path.relative_to(ROOT / "taskcluster")).read_bytes() == \
            path.read_bytes()


def test_the_task_environment_digest_covers_the_shipped_folder(tmp_path):
    repo = tmp_path / "cib-decision"
    for name, text in {"pyproject.toml": "[project]\n", "src/cib_decision/__init__.py": "",
                       "taskcluster/config.yml": "---\n",
                       "taskcluster/kinds/lint/kind.yml": "---\n",
                       "taskcluster/test/params/push.yml": "---\n"}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "cib")
    first, package = task_env.graph_env(repo, "HEAD")
    assert package is None  # cib-decision's own source: built from the head revision
    (repo / "taskcluster/kinds/lint/kind.yml").write_text("---\ntransforms: []\n")
    git(repo, "commit", "-q", "-am", "a kind changed")
    changed, _ = task_env.graph_env(repo, "HEAD")
    assert changed != first
    (repo / "taskcluster/test/params/push.yml").write_text("---\nlevel: '1'\n")
    git(repo, "commit", "-q", "-am", "a test parameter set changed")
    assert task_env.graph_env(repo, "HEAD")[0] == changed  # not shipped, not covered


# --- planning -----------------------------------------------------------------------------------


def test_a_repository_without_taskcluster_plans_with_the_packaged_kinds(tmp_path):
    adopter = adopter_repo(tmp_path / "cloud-image-builder")
    adopted, said = plan(adopter)
    ours, ours_said = plan(ROOT)
    assert sorted(adopted["tasks"]) == sorted(ours["tasks"]) and len(adopted["tasks"]) > 20
    assert adopted["skipped"] == ours["skipped"]
    assert notices(said) == [f"cib: {adopter} has no taskcluster/config.yml; planning with "
                             f"the kinds of cib-decision {root.version()}"]
    assert notices(ours_said) == []
    for label, planned in adopted["tasks"].items():
        task, our_task = planned["task"], ours["tasks"][label]["task"]
        assert planned["kind"] == ours["tasks"][label]["kind"]
        assert task["priority"] == our_task["priority"] == "low"
        # the kind's path in the repository, as taskgraph writes it: never a scratch copy
        assert task["metadata"]["source"].endswith(f"/taskcluster/kinds/{planned['kind']}")
    # a repository without cib's source gets the cib-decision that plans it
    env = adopted["tasks"]["task-env-cib"]["task"]["payload"]["env"]
    assert env["CIB_PACKAGE"] == task_env.installed_requirement()
    assert "CIB_HEAD_REPOSITORY" not in env


def test_a_revision_without_taskcluster_is_planned_with_the_packaged_kinds(tmp_path):
    adopter = adopter_repo(tmp_path / "cloud-image-builder")
    head = git(adopter, "rev-parse", "HEAD")
    adopted, said = plan(adopter, "--head", "HEAD")
    assert "lint-config" in adopted["tasks"]
    assert notices(said) == [f"cib: {adopter} has no taskcluster/config.yml at {head[:12]}; "
                             f"planning with the kinds of cib-decision {root.version()}"]


def test_a_repository_with_its_own_taskcluster_folder_uses_it_whole(tmp_path):
    repo = adopter_repo(tmp_path / "images")
    own_folder(repo, priority="very-low")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "our own kinds")
    for args in ((), ("--head", "HEAD")):  # the working tree, and a revision
        planned, said = plan(repo, *args)
        assert notices(said) == []
        assert {t["task"]["priority"] for t in planned["tasks"].values()} == {"very-low"}
    # the revision before it had none: planned with the packaged kinds
    before, said = plan(repo, "--head", "HEAD~1")
    assert {t["task"]["priority"] for t in before["tasks"].values()} == {"low"}
    assert len(notices(said)) == 1


def test_a_roles_file_alone_keeps_the_packaged_kinds(tmp_path):
    repo = adopter_repo(tmp_path / "images", {"taskcluster/roles.yml": "branch:main: []\n"})
    _, said = plan(repo)
    assert len(notices(said)) == 1


# --- the roles the decision checks the graph against ------------------------------------------


def request(repo: Path, tasks_for: str = "github-push", base: str | None = None):
    return DecisionRequest({"tasks_for": tasks_for, "project": "images", "base_rev": base},
                           "decision-task-id", root=repo)


def test_a_repository_without_roles_is_checked_against_the_packaged_roles(tmp_path):
    repo = adopter_repo(tmp_path / "images")
    role, granted = _role_scopes(request(repo), repo)
    assert role == "branch:main"
    assert granted == role_scopes(OUR_ROLES, "branch:main", project="images")


def test_a_repositorys_own_roles_file_says_what_its_deployment_grants(tmp_path):
    roles = "branch:main:\n    - worker-manager:manage-worker-pool:gecko-3/*\n"
    repo = adopter_repo(tmp_path / "images", {"taskcluster/roles.yml": roles})
    _, granted = _role_scopes(request(repo), repo)
    assert granted == ["worker-manager:manage-worker-pool:gecko-3/*"]


def test_a_pull_request_adding_a_roles_file_is_checked_against_its_bases(tmp_path):
    repo = adopter_repo(tmp_path / "images")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "taskcluster").mkdir()
    (repo / "taskcluster" / "roles.yml").write_text("pull-request: ['*']\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "grant the pull request everything")
    _, granted = _role_scopes(request(repo, "github-pull-request", base), repo)
    assert "*" not in granted
    assert granted == role_scopes(OUR_ROLES, "pull-request", project="images")


def test_an_own_folder_without_roles_fails_closed(tmp_path):
    repo = adopter_repo(tmp_path / "images")
    own_folder(repo)
    (repo / "taskcluster" / "roles.yml").unlink()
    with pytest.raises(CibError, match="no roles file"):
        _role_scopes(request(repo), repo)


def test_scopes_the_packaged_roles_lack_are_named_with_the_file_to_add():
    definition = {"provisionerId": "gecko-3", "workerType": "win2019", "priority": "highest",
                  "schedulerId": "cib-level-3",
                  "scopes": ["worker-manager:manage-worker-pool:gecko-3/win2019"]}
    pending = [PendingTask("id", "verify-gecko-3-win2019", definition, frozenset())]
    granted = role_scopes(OUR_ROLES, "branch:main", project="images")
    packaged = root.RolesFile("taskcluster/roles.yml of cib-decision", "", packaged=True)
    advice = roles_advice(pending, granted, "branch:main", packaged)
    assert "in a taskcluster/roles.yml of the repository" in advice
    assert advice.endswith("add to the entry of branch:main:\n"
                           "      - queue:create-task:highest:gecko-3/win2019\n"
                           "      - worker-manager:manage-worker-pool:gecko-3/win2019")
    own = root.RolesFile("taskcluster/roles.yml", "", packaged=False)
    assert roles_advice(pending, granted, "branch:main", own) == ""


# --- a decision of an adopted repository, against the local Taskcluster --------------------


def adopted_with_taskcluster_yml(path: Path) -> Path:
    """An adopter repository that added our `.taskcluster.yml` (its one file)."""
    return adopter_repo(path, {".taskcluster.yml": (ROOT / ".taskcluster.yml").read_text()})


def graph_tasks(tc) -> dict[str, dict]:
    """The tasks the decision created (not the decision task), by task id."""
    return {task_id: task for task_id, task in tc.tasks().items()
            if task_id != task["taskGroupId"]}


def test_an_adopted_repository_s_push_submits_its_graph(dev_taskcluster, tmp_path):
    repo = adopted_with_taskcluster_yml(tmp_path / "images")
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 0, result.stderr
    assert len(notices(result.stderr)) == 1
    created = graph_tasks(dev_taskcluster)
    kinds = {t["tags"]["kind"] for t in created.values()}
    assert {"disk-image", "machine-image", "worker-pool", "verify", "task-env"} <= kinds
    (env,) = [t for t in created.values() if t["tags"]["kind"] == "task-env"]
    assert env["payload"]["env"]["CIB_PACKAGE"] == task_env.installed_requirement()
    # its actions' hooks are named by the hash of its own .taskcluster.yml, as fxci names them
    from taskgraph.actions.registry import hash_taskcluster_yml

    actions = json.loads((repo / "artifacts" / "actions.json").read_text())
    (promote,) = [a for a in actions["actions"] if a["name"] == "promote"]
    assert promote["hookId"] == ("in-tree-action-3-promote/"
                                 + hash_taskcluster_yml(str(repo / ".taskcluster.yml")))


def test_an_adopted_repository_s_pools_beyond_our_roles_fail_saying_what_to_add(
        dev_taskcluster, tmp_path):
    key = (CONFIG_DIR / "win10-64.yaml").read_text()
    assert "domain: gecko-t" in key
    repo = adopted_with_taskcluster_yml(tmp_path / "images")
    (repo / "config" / "win10-64.yaml").write_text(
        key.replace("domain: gecko-t", "domain: gecko-3"))
    git(repo, "commit", "-q", "-am", "win10-64 serves gecko-3")
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 2
    assert "nothing was submitted" in result.stderr and graph_tasks(dev_taskcluster) == {}
    assert "taskcluster/roles.yml of cib-decision" in result.stderr
    assert "add to the entry of branch:main:" in result.stderr
    for scope in ("queue:create-task:highest:gecko-3/win10-64-azure",
                  "worker-manager:manage-worker-pool:gecko-3/win10-64-azure"):
        assert f"      - {scope}\n" in result.stderr
