"""Every task a decision creates is within the scopes of the role its event assumes."""

from __future__ import annotations

import pytest

from cib_decision.scopes import (
    create_task_requirements,
    missing_scopes,
    role_for_event,
    role_scopes,
    satisfies,
)

from .graphs import generator, pr
from .scopes_support import ROLES, created_tasks

pytestmark = pytest.mark.usefixtures("graph_env")

def granted_for(tgg) -> list[str]:
    role = role_for_event(tgg.parameters["tasks_for"], cron_job="nightly")
    return role_scopes(ROLES, role, project="images")


def test_satisfies_follows_taskclusters_star_rule():
    assert satisfies(["queue:route:index.cib.*"], "queue:route:index.cib.v2.x")
    assert satisfies(["a:b"], "a:b")
    assert not satisfies(["a:b"], "a:bc")
    assert not satisfies(["queue:route:index.cib.*"], "queue:route:index.other")


def test_a_higher_priority_grant_covers_a_lower_priority_task():
    task = {"provisionerId": "p", "workerType": "w", "priority": "low", "schedulerId": "s"}
    (queue,) = [r for r in create_task_requirements(task) if "create-task:" in str(r)
                and "project" not in str(r)]
    assert queue.met_by(["queue:create-task:highest:p/*"])
    assert not queue.met_by(["queue:create-task:lowest:p/w"])


@pytest.mark.parametrize(("name", "make"), [
    ("push", lambda: generator("commit\n\npurge-taskcluster-resources")),
    ("cron", lambda: generator(tasks_for="cron")),
    ("pull-request", lambda: pr(changed=None)),
    ("pull-request-closed", lambda: pr(action="closed")),
    ("pull-request-hostile", lambda: pr(
        "x\n\npurge-taskcluster-resources\npool-deploy\ndisable-cleanup", changed=None)),
])
def test_every_created_task_is_within_the_role_of_its_event(name, make, index):
    tgg = make()
    granted = granted_for(tgg)
    tasks = created_tasks(tgg)
    assert tasks
    for label, definition in tasks:
        assert missing_scopes(definition, granted) == [], label


def test_a_pr_role_cannot_create_the_tasks_that_deploy_real_pools(index):
    push = generator()
    pr_role = role_scopes(ROLES, role_for_event("github-pull-request"), project="images")
    refused = {label: missing_scopes(task, pr_role) for label, task in created_tasks(push)
               if label.startswith("worker-pool-")}
    assert refused and all(refused.values())
    assert any("worker-manager:manage-worker-pool:gecko-t/win10-64-azure" in scopes
               for scopes in refused.values())


def test_untrusted_pull_requests_may_create_only_their_config_check_decision_task():
    """The GitHub service creates the untrusted decision (a config check) with this role alone:
    it grants that one queue at level 1 and nothing that reads secrets, indexes or deploys."""
    scopes = role_scopes(ROLES, "pull-request-untrusted", project="images")
    assert sorted(scopes) == ["queue:create-task:project:none",
                              "queue:create-task:very-low:cib-1/decision",
                              "queue:route:checks", "queue:scheduler-id:cib-level-1"]
