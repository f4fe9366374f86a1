"""The weekly `stats` cron job: .cron.yml chooses its target method, its graph is one
`cib stats` task of the decision's environment (plus the task environment) publishing
public/stats.html and public/stats.json, and its role grants no more than the decision and that
task need."""

from __future__ import annotations

import pytest

from cib_decision import cronjobs
from cib_decision.scopes import missing_scopes, role_for_event, role_scopes
from cib_decision.taskgraph.parameters import cron_target_method

from .conftest import ROOT
from .graphs import generator, target
from .scopes_support import ROLES, created_tasks

WRITES = ("worker-manager:", "index:insert-task:", "queue:route:notify.", "secrets:")


def stats_graph(environment: str = "production"):
    return generator(tasks_for="cron", target_tasks_method="cib_stats",
                     environment=environment)


def test_the_cron_file_runs_stats_once_a_week():
    job = cronjobs.load(ROOT)["stats"]
    assert job.target_tasks_method == "cib_stats"
    assert [set(w) for w in job.when] == [{"weekday", "hour", "minute"}]
    assert cron_target_method(ROOT, "stats") == "cib_stats"


@pytest.mark.usefixtures("graph_env")
@pytest.mark.parametrize("environment", ["production", "staging"])
def test_the_stats_graph_is_one_stats_task_of_the_environment_publishing_the_report(
        environment):
    tgg = stats_graph(environment)
    assert set(tgg.target_task_graph.tasks) == {f"stats-{environment}", "task-env-cib"}
    task = tgg.target_task_graph.tasks[f"stats-{environment}"].task
    (script,) = [c[-1] for c in task["payload"]["command"]]
    assert script.endswith(f"-m cib_decision stats --environment {environment} --project "
                           "images --last 200 --artifacts artifacts")
    # cib stats --artifacts artifacts writes stats.html and stats.json: public/ on the queue
    assert {"type": "directory", "path": "src/artifacts", "name": "public"} in \
        task["payload"]["artifacts"]
    assert 75 in task["payload"]["onExitStatus"]["retry"]


@pytest.mark.usefixtures("graph_env")
def test_the_stats_decision_creates_only_what_its_read_only_role_grants(index):
    tgg = stats_graph()
    granted = role_scopes(ROLES, role_for_event("cron", cron_job="stats"), project="images")
    tasks = created_tasks(tgg)
    assert tasks
    for label, definition in tasks:
        assert missing_scopes(definition, granted) == [], label
    assert not [s for s in granted if s.startswith(WRITES)]
    # the task environment's cache on the worker; its reads are public
    assert dict(tasks)["stats-production"]["scopes"] == ["generic-worker:cache:cib-level-3-*"]


@pytest.mark.usefixtures("graph_env")
def test_a_push_graph_has_no_stats_task(index):
    assert not [label for label in target() if label.startswith("stats-")]
