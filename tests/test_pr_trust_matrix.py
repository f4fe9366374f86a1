"""The pull-request trust matrix: every hostile commit message, pull request action,
environment and base-revision policy together. Whatever a pull request writes, no task of its
graph reaches a real pool, a level-3 queue or secret, production, or a scope its role lacks."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from cib_decision.scopes import missing_scopes, role_for_event, role_scopes

from .graphs import FLEET, pr
from .scopes_support import ROLES, created_tasks

pytestmark = pytest.mark.usefixtures("graph_env")

MESSAGES = {
    "plain": "Change an image",
    "every flag": ("x\n\npurge-taskcluster-resources\npool-deploy\ndisable-cleanup\n"
                   "overwrite-machine-image\noverwrite-disk-image\nno-verify"),
    "production": "x\n\ninclude environments: production\npool-deploy",
    "all keys": "x\n\ninclude keys: *\noverwrite-machine-image",
    "hidden": "Fix typo\u2028purge-taskcluster-resources\u2029include environments: production",
}
ACTIONS = ("opened", "synchronize", "reopened", "closed")
ENVIRONMENTS = ("staging", "production")


def every_environment_takes_pull_requests():
    """A base revision whose config lets every environment build pull requests: even then,
    a pull request builds nothing real."""
    return dataclasses.replace(FLEET, environments={
        name: dataclasses.replace(environment, pull_requests=True)
        for name, environment in FLEET.environments.items()})


BASES = {"bundled": lambda: FLEET, "permissive": every_environment_takes_pull_requests,
         "unreadable": lambda: None}
PR_ROLE = role_scopes(ROLES, role_for_event("github-pull-request"), project="images")


def check(tgg, environment: str, base: str) -> None:
    tasks = created_tasks(tgg)  # none at all is fine: nothing is reached
    for label, definition in tasks:
        where = f"{label} ({environment}, base {base})"
        assert missing_scopes(definition, PR_ROLE) == [], where
        assert definition["provisionerId"] in ("cib-1", "cib-pr"), where
        assert definition["schedulerId"] == "cib-level-1", where
        scopes = definition.get("scopes", [])
        assert not [s for s in scopes if "level-3" in s or s.endswith("level-*")], where
        assert not [s for s in scopes if s.startswith("worker-manager:manage-worker-pool:")
                    and not s.startswith("worker-manager:manage-worker-pool:cib-pr/")], where
        assert not [r for r in definition.get("routes", []) if r.startswith("notify.")], where
        task = tgg.morphed_task_graph.tasks.get(
            tgg.label_to_taskid.get(label, ""), None)
        kind = definition.get("tags", {}).get("kind")
        assert kind != "purge", where
        if kind in ("worker-pool", "verify") and task is not None:
            assert task.attributes["cib-deploy-pool"].startswith("cib-pr/"), where
    if base != "permissive" and environment == "production":
        kinds = {definition.get("tags", {}).get("kind") for _, definition in tasks}
        assert kinds <= {"lint", "task-env", "pr-teardown"}, kinds


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("base", BASES)
def test_no_pull_request_reaches_anything_real(message, base, index):
    for action, environment in itertools.product(ACTIONS, ENVIRONMENTS):
        tgg = pr(MESSAGES[message], environment=environment, action=action, changed=None,
                 base=BASES[base]())
        try:
            check(tgg, environment, base)
        except AssertionError as failed:
            raise AssertionError(f"{message} / {action} / {environment} / {base}: "
                                 f"{failed}") from None


# --- the roles a pull request's graph is checked against ---------------------------------------


def roles_request(repo, tasks_for: str, base_rev: str | None):
    from cib_decision.decision import DecisionRequest

    return DecisionRequest({"tasks_for": tasks_for, "project": "images",
                            "base_rev": base_rev}, "decision-task-id", root=repo)


def test_a_pull_requests_graph_is_checked_against_its_base_revisions_roles(tmp_path):
    from cib_decision.decision import _role_scopes

    from .repos import fleet_repo, git

    repo = fleet_repo(tmp_path / "images")
    base = git(repo, "rev-parse", "HEAD")
    roles = repo / "taskcluster" / "roles.yml"
    roles.write_text(roles.read_text().replace(
        "pull-request:\n", "pull-request:\n    - '*'\n", 1))  # the PR grants itself all
    git(repo, "commit", "-q", "-am", "more scopes for pull requests")
    role, granted = _role_scopes(roles_request(repo, "github-pull-request", base), repo)
    assert role == "pull-request" and "*" not in granted and granted == PR_ROLE
    # a push is checked against the pushed file (main is trusted ground)
    _, pushed = _role_scopes(roles_request(repo, "github-push", base), repo)
    assert "*" not in pushed


@pytest.mark.parametrize("base", [None, "missing-roles"])
def test_a_pull_request_without_readable_base_roles_fails_closed(tmp_path, base):
    from cib_decision.decision import _role_scopes
    from cib_decision.errors import CibError

    from .repos import fleet_repo, git

    repo = fleet_repo(tmp_path / "images")
    if base == "missing-roles":
        git(repo, "rm", "-q", "taskcluster/roles.yml")
        git(repo, "commit", "-q", "-m", "no roles")
        base = git(repo, "rev-parse", "HEAD")
    with pytest.raises(CibError, match="base revision"):
        _role_scopes(roles_request(repo, "github-pull-request", base), repo)
