"""`cib decision` end to end against the local Taskcluster, started the way Taskcluster starts
it: `cib dev-event` renders .taskcluster.yml for a GitHub event, creates the decision task with
the GitHub service's credentials and runs its command with the task's own scopes.

Each decision runs in a subprocess (taskgraph registers one graph root per process).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cib_decision.devtc.harness import DevTaskcluster
from cib_decision.submit import CONCURRENCY

from .decision_support import dev_event
from .devtc_support import ctrl_c_reaches_it
from .repos import fleet_repo, git

pytestmark = pytest.mark.usefixtures("dev_taskcluster")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return fleet_repo(tmp_path / "images")


def decision_ids(tc: DevTaskcluster) -> list[str]:
    return [task_id for task_id, task in tc.tasks().items() if task_id == task["taskGroupId"]]


def graph_tasks(tc: DevTaskcluster) -> dict[str, dict]:
    """The tasks the decision created (not the decision task), by task id."""
    return {task_id: task for task_id, task in tc.tasks().items()
            if task_id != task["taskGroupId"]}


def labels(tasks: dict[str, dict]) -> list[str]:
    return sorted(task["tags"]["label"] for task in tasks.values())


def test_a_push_submits_every_task_of_the_graph_once(dev_taskcluster, repo):
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 0, result.stderr
    created = graph_tasks(dev_taskcluster)
    label_to_taskid = json.loads((repo / "artifacts" / "label-to-taskid.json").read_text())
    assert sorted(label_to_taskid) == labels(created)
    assert {label_to_taskid[t["tags"]["label"]] for t in created.values()} == set(created)
    (decision,) = decision_ids(dev_taskcluster)
    assert all(t["taskGroupId"] == decision and t["schedulerId"] == "cib-level-3"
               for t in created.values())
    kinds = {t["tags"]["kind"] for t in created.values()}
    assert {"disk-image", "machine-image", "worker-pool", "verify"} <= kinds
    for name in ("parameters.yml", "full-task-graph.json", "task-graph.json",
                 "target-tasks.json"):
        assert (repo / "artifacts" / name).is_file()
    # the check run: the plan, every key built (nothing was in the index)
    text = (repo / "artifacts" / "github" / "customCheckRunText.md").read_text()
    assert text.startswith("### Plan") and "| win10-64 | build |" in text
    assert "0 reused from earlier builds" in text
    # Treeherder's "add new jobs": every task of the full graph, with its symbol
    runnable = json.loads((repo / "artifacts" / "runnable-jobs.json").read_text())
    full = json.loads((repo / "artifacts" / "full-task-graph.json").read_text())
    assert set(runnable) == set(full)
    assert runnable["task-env-cib"]["symbol"] == "cib" and runnable["task-env-cib"]["platform"]


def test_a_decision_run_again_creates_no_duplicate(dev_taskcluster, repo):
    assert dev_event(dev_taskcluster, repo, "push").returncode == 0
    before = dev_taskcluster.tasks()
    (decision,) = decision_ids(dev_taskcluster)
    rerun = dev_event(dev_taskcluster, repo, "push", "--rerun", decision)
    assert rerun.returncode == 0, rerun.stderr
    assert dev_taskcluster.tasks() == before
    assert f"0 created, {len(before) - 1} already existed" in rerun.stderr


def push_under_way(tc: DevTaskcluster, repo: Path, **popen) -> subprocess.Popen:
    """`cib dev-event push` started against a slow queue (40 ms a request), returned once it
    has created at least 5 tasks: its decision is submitting."""
    tc.set_faults(latency_ms=40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    env.update(tc.environ())
    process = subprocess.Popen(
        [sys.executable, "-m", "cib_decision", "dev-event", "--repo", str(repo), "push"],
        env=env, preexec_fn=ctrl_c_reaches_it, **popen)
    deadline = time.monotonic() + 120
    while len(graph_tasks(tc)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


def rerun_completes_the_graph(tc: DevTaskcluster, repo: Path) -> dict[str, str]:
    """Run the decision again (a Taskcluster rerun: same task id) without faults: every label
    exists exactly once afterwards. The graph's label-to-taskid."""
    tc.set_faults()
    (decision,) = decision_ids(tc)
    rerun = dev_event(tc, repo, "push", "--rerun", decision)
    assert rerun.returncode == 0, rerun.stderr
    label_to_taskid = json.loads((repo / "artifacts" / "label-to-taskid.json").read_text())
    assert labels(graph_tasks(tc)) == sorted(label_to_taskid)  # each label exactly once
    return label_to_taskid


def test_a_decision_killed_half_way_completes_the_same_graph_when_run_again(
        dev_taskcluster, repo):
    process = push_under_way(dev_taskcluster, repo, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(process.pid, 9)
    process.wait()
    partial = len(graph_tasks(dev_taskcluster))
    assert 5 <= partial < len(rerun_completes_the_graph(dev_taskcluster, repo))


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("signum, code, name", [(15, 143, "SIGTERM"), (2, 130, "SIGINT")])
def test_a_signal_during_submission_stops_it_at_once_and_says_what_exists(
        dev_taskcluster, repo, signum, code, name):
    """A worker cancelling the decision (SIGTERM) or a person's Ctrl-C: no task is created
    after the signal is handled, the error counts what exists, and a rerun completes it."""
    process = push_under_way(dev_taskcluster, repo, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    (decision_process,) = _children(process.pid)  # `cib decision`, as the worker runs it
    os.kill(decision_process, signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    # requests already sent when the signal came may still land (40 ms each): let them
    time.sleep(0.5)
    existing = len(graph_tasks(dev_taskcluster))
    time.sleep(1)
    assert len(graph_tasks(dev_taskcluster)) == existing  # nothing submitted after it ended
    (line,) = [line for line in stderr.splitlines() if "interrupted by" in line]
    said = re.search(rf"interrupted by {name} while submitting: (\d+) of ", line)
    assert said, line
    # it counts the creations it saw answered; one in flight may have landed unanswered
    assert int(said.group(1)) <= existing <= int(said.group(1)) + CONCURRENCY, line
    assert "Rerun the decision task to complete the graph" in line
    assert "Traceback" not in stderr
    assert existing < len(rerun_completes_the_graph(dev_taskcluster, repo))


def test_a_pull_request_deploys_only_per_pr_pools_at_level_1(dev_taskcluster, repo):
    result = dev_event(dev_taskcluster, repo, "pull-request", "--pull-request", "7",
                       "--environment", "staging")
    assert result.returncode == 0, result.stderr
    created = graph_tasks(dev_taskcluster)
    assert created and all(t["schedulerId"] == "cib-level-1" for t in created.values())
    pool_scopes = [s for t in created.values() for s in t.get("scopes", [])
                   if s.startswith("worker-manager:manage-worker-pool:")]
    assert pool_scopes and all(s.startswith("worker-manager:manage-worker-pool:cib-pr/")
                               for s in pool_scopes)


def test_closing_a_pull_request_submits_its_teardown(dev_taskcluster, repo):
    result = dev_event(dev_taskcluster, repo, "pull-request-closed", "--pull-request", "7")
    assert result.returncode == 0, result.stderr
    assert {t["tags"]["kind"] for t in graph_tasks(dev_taskcluster).values()} == {
        "pr-teardown", "task-env"}


def test_a_bad_directive_exits_2_naming_the_line_and_submits_nothing(dev_taskcluster, repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", "Tweak\n\ninclude keys: win10-46")
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 2
    assert "line 3" in result.stderr and "win10-46" in result.stderr
    assert "Traceback" not in result.stderr
    assert graph_tasks(dev_taskcluster) == {}
    # the check run says why: the commit message is no file, so the text only
    text = (repo / "artifacts" / "github" / "customCheckRunText.md").read_text()
    assert "directive problems" in text and "line 3: `include keys: win10-46`" in text
    assert not (repo / "artifacts" / "github" / "customCheckRunAnnotations.json").exists()


def test_a_config_error_is_an_annotation_on_its_file_and_line_and_nothing_is_submitted(
        dev_taskcluster, repo):
    path = repo / "config" / "win10-64.yaml"
    lines = path.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith("    timezone:")) + 1
    lines[number - 1] = "    timezone: UTC\n    timezon: UTC\n"
    path.write_text("".join(lines))
    git(repo, "commit", "-q", "-am", "Typo")
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert graph_tasks(dev_taskcluster) == {}
    github = repo / "artifacts" / "github"
    (annotation,) = json.loads((github / "customCheckRunAnnotations.json").read_text())
    assert annotation["path"] == "config/win10-64.yaml"
    assert annotation["start_line"] == annotation["end_line"] == number + 1
    assert annotation["annotation_level"] == "failure" and "timezon" in annotation["message"]
    assert "The config has 1 problem" in (github / "customCheckRunText.md").read_text()


HOSTILE = """
import sys
import cib_decision.decision as d

original = d.complete_definitions


def aim_at_real_pools(*args, **kwargs):  # a PR whose code deploys the real pools
    pending = original(*args, **kwargs)
    for task in pending:
        task.definition["scopes"] = [s.replace("cib-pr/", "gecko-t/")
                                     for s in task.definition.get("scopes", [])]
    return pending


d.complete_definitions = aim_at_real_pools
{bypass}
from cib_decision.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_pull_request_aiming_at_production_pools_is_refused_before_submission(
        dev_taskcluster, repo, tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE.format(bypass=""))
    result = dev_event(dev_taskcluster, repo, "pull-request", "--environment", "staging",
                       setup=f"{sys.executable} {script}")
    assert result.returncode == 2, result.stderr
    assert "nothing was submitted" in result.stderr
    assert "worker-manager:manage-worker-pool:gecko-t/" in result.stderr
    assert graph_tasks(dev_taskcluster) == {}


def test_the_queue_refuses_production_pool_tasks_even_when_the_check_is_bypassed(
        dev_taskcluster, repo, tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE.format(
        bypass="import cib_decision.decision as d; d.check = lambda *a: []"))
    result = dev_event(dev_taskcluster, repo, "pull-request", "--environment", "staging",
                       setup=f"{sys.executable} {script}")
    assert result.returncode == 2
    assert "403 InsufficientScopes" in result.stderr
    created = graph_tasks(dev_taskcluster)
    assert not any(s.startswith("worker-manager:manage-worker-pool:gecko-")
                   for t in created.values() for s in t.get("scopes", []))


def test_the_decision_applies_the_commit_directives(dev_taskcluster, repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", "Only Linux\n\ninclude keys: ubuntu-2404")
    result = dev_event(dev_taskcluster, repo, "push")
    assert result.returncode == 0, result.stderr
    built = {t["tags"]["label"] for t in graph_tasks(dev_taskcluster).values()
             if t["tags"]["kind"] in ("disk-image", "machine-image")}
    assert built and all("ubuntu-2404" in label for label in built)


def test_a_push_under_server_errors_latency_and_dropped_connections_loses_and_duplicates_nothing(
        dev_taskcluster, repo):
    dev_taskcluster.set_faults(error_rate=0.1, latency_ms=20, drop_rate=0.05, seed=7)
    result = dev_event(dev_taskcluster, repo, "push")
    faults = dev_taskcluster.stats()["faults"]
    dev_taskcluster.set_faults()
    assert result.returncode == 0, result.stderr
    label_to_taskid = json.loads((repo / "artifacts" / "label-to-taskid.json").read_text())
    assert labels(graph_tasks(dev_taskcluster)) == sorted(label_to_taskid)
    assert faults.get("drop-after") and faults.get("500")  # the seed meets both kinds
