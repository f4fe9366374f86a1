"""The daily `drift` cron job: .cron.yml chooses its target method, its graph is one
read-only `cib drift` task of the decision's environment (plus the task environment), and its
role grants reads only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from cib_decision import cronjobs
from cib_decision.errors import CibError
from cib_decision.taskgraph.parameters import cron_target_method

from .conftest import ROOT
from .cron_support import (
    created_within_role,
    cron_graph,
    fleet_repository,
    job_script,
    run_on_worker,
)
from .graphs import FakeIndex, target
from .scopes_support import created_tasks

# what a role that only reads must not hold (writes to pools, pointers, notify, any secret
# but the cloud listing credentials)
WRITES = ("worker-manager:manage-worker-pool:", "worker-manager:create-worker-pool:",
          "index:insert-task:", "queue:route:notify.", "worker-manager:provider:")


def drift_graph(environment: str = "production"):
    return cron_graph("cib_drift", environment)


def test_the_repository_cron_file_runs_drift_daily_and_other_jobs_run_the_push_graph():
    jobs = cronjobs.load(ROOT)
    assert jobs["drift"].target_tasks_method == "cib_drift"
    assert len(jobs["drift"].when) == 1  # once a day
    assert cron_target_method(ROOT, "drift") == "cib_drift"
    assert cron_target_method(ROOT, "nightly") == "cib"


@pytest.mark.parametrize(("text", "says"), [
    ("jobs: {}", "needs `jobs`"),
    ("jobs:\n  - job: {type: decision-task, treeherder-symbol: D}", "job 1 has no `name`"),
    ("jobs:\n  - {name: d, job: {type: hook}}", "job d: `job.type` must be decision-task"),
    ("jobs:\n  - {name: d, job: {type: decision-task, treeherder-symbol: D}}\n"
     "  - {name: d, job: {type: decision-task, treeherder-symbol: E}}", "job d is there twice"),
])
def test_a_cron_file_out_of_format_names_the_job_and_field(text, says):
    with pytest.raises(CibError, match=says):
        cronjobs.parse(text)


def test_a_job_without_a_method_runs_the_push_graph():
    jobs = cronjobs.parse("jobs:\n  - {name: n, job: {type: decision-task, "
                          "treeherder-symbol: N}, when: []}")
    assert cronjobs.target_method(jobs, "n") == "cib"


@pytest.mark.usefixtures("graph_env")
@pytest.mark.parametrize("environment", ["production", "staging"])
def test_the_drift_graph_is_one_drift_task_of_the_environment_and_its_task_env(
        environment):
    script = job_script(drift_graph(environment), f"drift-{environment}")
    assert script.endswith(f"-m cib_decision drift --environment {environment} "
                           "--artifacts artifacts")


@pytest.mark.usefixtures("graph_env")
def test_the_drift_decision_creates_only_what_its_read_only_role_grants(index):
    tasks, granted = created_within_role(drift_graph(), "drift")
    assert not [s for s in granted if s.startswith(WRITES) or
                (s.startswith("secrets:get:") and not s.endswith("/clouds"))]
    drift = tasks["drift-production"]
    # the task environment's cache on the worker (task_env.py), and two reads
    assert sorted(drift["scopes"]) == ["generic-worker:cache:cib-level-3-*",
                                       "secrets:get:project/cib/level-3/clouds",
                                       "worker-manager:list-worker-pools"]


@pytest.mark.usefixtures("graph_env")
def test_a_push_graph_has_no_drift_task(index):
    assert not [label for label in target() if label.startswith("drift-")]


@pytest.mark.usefixtures("graph_env")
def test_the_drift_task_runs_on_a_worker_with_its_own_scopes_and_fails_on_drift(
        dev_taskcluster, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeIndex(mock)  # the decision's index search; the local Taskcluster stays real
        tasks = dict(created_tasks(drift_graph()))
    assert tasks["task-env-cib"]["payload"]  # built by its own task in a real graph
    status, content = run_on_worker(dev_taskcluster, tasks["drift-production"], tmp_path)
    log = content("public/logs/live_backing.log")
    # nothing is deployed in the local worker-manager: every pool is drift, exit 1, failed
    assert status["state"] == "failed", log
    assert "worker-manager has 0 pools" in log
    text = content("public/github/customCheckRunText.md")
    result = json.loads(content("public/drift.json"))
    assert text.startswith(f"### {len(result['drift'])} differences in production\n")
    assert {d["kind"] for d in result["drift"]} == {"not-deployed"}


def test_a_cron_decision_runs_the_method_its_job_names_in_the_repositorys_cron_file(
        tmp_path, monkeypatch):
    from taskgraph.config import load_graph_config

    from cib_decision.taskgraph.parameters import decision_parameters

    repo, head = fleet_repository(tmp_path / "images", with_taskgraph=True)
    graph_config = load_graph_config(str(Path(repo) / "taskcluster"))
    for job, method in (("drift", "cib_drift"), ("nightly", "cib")):
        monkeypatch.setenv("CIB_CRON_JOB", job)
        parameters = {"head_rev": head, "tasks_for": "cron"}
        decision_parameters(graph_config, parameters)
        assert parameters["target_tasks_method"] == method, job
