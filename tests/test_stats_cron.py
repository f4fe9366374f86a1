"""The weekly `stats` cron job: .cron.yml chooses its target method, its graph is one
`cib stats` task of the decision's environment (plus the task environment) publishing
public/stats.html and public/stats.json, and its role grants no more than the decision and that
task need."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import responses

from cib_decision import cronjobs
from cib_decision.devtc.history import generate, seed
from cib_decision.scopes import missing_scopes, role_for_event, role_scopes
from cib_decision.taskgraph.parameters import cron_target_method

from .conftest import ROOT
from .cron_support import run_on_worker
from .graphs import FakeIndex, generator, target
from .plan_support import plan_json
from .scopes_support import ROLES, created_tasks

DECISIONS = 12  # of the generated history the task reads

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


@pytest.mark.usefixtures("graph_env")
def test_the_stats_task_runs_on_a_worker_and_publishes_the_report_of_the_history(
        dev_taskcluster, tmp_path):
    """The weekly task as a worker runs it, through taskcluster-proxy, on a history of the
    bundled fleet's builds seeded in the local Taskcluster: the report counts exactly what
    the history holds."""
    templates = [t["task"] for t in plan_json(ROOT, "--no-base")["tasks"].values()]
    history = generate(templates, DECISIONS, datetime(2026, 11, 30, tzinfo=UTC),
                       project="images", seed_value=3)
    seed(dev_taskcluster, history)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeIndex(mock)  # the decision's index search; the local Taskcluster stays real
        tasks = dict(created_tasks(stats_graph()))
    status, content = run_on_worker(dev_taskcluster, tasks["stats-production"], tmp_path)
    log = content("public/logs/live_backing.log")
    assert status["state"] == "completed", log
    report = json.loads(content("public/stats.json"))
    builds = [t for t in history
              if t.definition["tags"]["kind"] in ("disk-image", "machine-image")]
    assert report["decisions"]["count"] == DECISIONS
    assert report["overall"]["builds"] == len(builds) > DECISIONS
    page = content("public/stats.html")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3
