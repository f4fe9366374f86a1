"""The whole system, as `cib dev-up` plays it: a push of the bundled fleet, a pull request and
its close, through the local Taskcluster, moto and the Azure fake. The decision task is
created as Taskcluster's GitHub service creates it and runs, like every task of its graph, on
local workers that follow generic-worker's rules (task directories, payload schema, mounts,
artifact rules, taskcluster-proxy with the task's scopes). Nothing runs in the test's process.

The repository played is this checkout's HEAD commit (what CI tests). The decision and the
task environment pip-install the package, so the tests need PyPI, and qemu-img for the
stand-in disk sources; they share one deployment and take a few minutes together.
"""

from __future__ import annotations

import gzip
import shutil

import pytest

from cib_decision.devpipeline.pipeline import (
    EventResult,
    LocalPipeline,
    local_pipeline,
    play_scenarios,
    summary,
)
from cib_decision.devtc.testing import require_schemas

from .conftest import ROOT

TIMEOUT = 900


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """The deployment after a push, a pull request and its close; each event's result."""
    require_schemas()
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils; .ci/run installs it)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the local pipeline clones the repository")
    work = tmp_path_factory.mktemp("local-pipeline")
    with local_pipeline(ROOT, "HEAD", work) as pipeline:
        results = {r.event: r for r in play_scenarios(
            pipeline, ["push", "pull-request", "pull-request-closed"], TIMEOUT)}
        yield pipeline, results


def explain(pipeline: LocalPipeline, result: EventResult) -> str:
    """The summary and the end of each unfinished task's log."""
    text = [summary(result)]
    for task in result.tasks:
        if task.ok:
            continue
        log = (task.artifacts.get("public/logs/live_backing.log") or {}).get("content") or b""
        if log[:2] == b"\x1f\x8b":
            log = gzip.decompress(log)
        tail = "\n".join(log.decode(errors="replace").splitlines()[-15:])
        text.append(f"--- {task.label} ({task.state}) on {task.queue}\n{tail}")
    return "\n".join(text)


def check_every_task_completed_with_its_artifacts(pipeline: LocalPipeline,
                                                  result: EventResult) -> None:
    assert result.ok, explain(pipeline, result)
    definitions = pipeline.tc.tasks()
    for task in result.tasks:
        uploaded = task.artifacts
        for declared in definitions[task.task_id]["payload"].get("artifacts", []):
            name = declared["name"]
            found = {n: a for n, a in uploaded.items()
                     if n == name or n.startswith(name.rstrip("/") + "/")}
            assert found, f"{task.label}: nothing uploaded for {name}"
            assert all(a["storageType"] != "error" and a["present"] for a in found.values()), \
                f"{task.label}: {name}: {found}"
        assert "public/logs/live.log" in uploaded, task.label


def pool_worker(pipeline: LocalPipeline, task) -> str:
    (run,) = pipeline.tc.statuses()[task.task_id]["runs"][-1:]
    return run["workerId"]


def test_a_push_of_the_bundled_fleet_completes_every_task_on_workers(played):
    pipeline, results = played
    push = results["push"]
    check_every_task_completed_with_its_artifacts(pipeline, push)
    labels = push.by_label()
    decision = push.tasks[0]
    assert decision.task_id == push.decision_task_id and decision.queue == "cib-3/decision"
    # created with the GitHub service's scopes, not more
    assert pipeline.tc.tasks()[decision.task_id]["scopes"] == [
        "assume:repo:github.com/example/images:branch:main"]
    for name in ("task-graph.json", "label-to-taskid.json", "runnable-jobs.json",
                 "actions.json", "parameters.yml"):
        assert f"public/{name}" in decision.artifacts
    kinds = {label.split("-")[0] for label in labels}
    assert {"task", "lint", "purge", "disk", "machine", "tag", "worker", "verify"} <= kinds
    assert [t for t in labels if "google" in t] == []  # not built yet, so not in the graph


def test_the_pushed_pools_are_deployed_and_each_verified_by_a_worker_of_its_own(played):
    pipeline, results = played
    push = results["push"]
    deployed = {t.label.removeprefix("worker-pool-") for t in push.tasks
                if t.label.startswith("worker-pool-")}
    assert deployed
    pools = pipeline.tc.worker_pools()
    for task in push.tasks:
        if not task.label.startswith("verify-"):
            continue
        assert task.ok, explain(pipeline, push)
        assert task.queue in pools, f"{task.label} ran on {task.queue}, not a deployed pool"
        assert pool_worker(pipeline, task).startswith(task.queue.replace("/", "-")[:20])
        assert pipeline.deployment.problems.get(task.queue) is None
    assert {t.queue.replace("/", "-") for t in push.tasks if t.label.startswith("verify-")} \
        == deployed


def test_a_pull_request_deploys_and_verifies_its_own_pool_and_its_close_tears_it_down(
        played):
    pipeline, results = played
    opened, closed = results["pull-request"], results["pull-request-closed"]
    check_every_task_completed_with_its_artifacts(pipeline, opened)
    decision = pipeline.tc.tasks()[opened.decision_task_id]
    assert decision["scopes"] == ["assume:repo:github.com/example/images:pull-request"]
    pr_pools = {t.queue for t in opened.tasks if t.label.startswith("verify-")}
    assert pr_pools and all(p.startswith("cib-pr/") for p in pr_pools), summary(opened)
    assert all(t.queue.startswith("cib-1/") or t.queue in pr_pools for t in opened.tasks)
    check_every_task_completed_with_its_artifacts(pipeline, closed)
    assert any("teardown" in t.label for t in closed.tasks), summary(closed)
    # worker-manager keeps a deleted pool, with the null provider, until its workers are gone
    pools = pipeline.tc.worker_pools()
    assert {pools[p]["providerId"] for p in pr_pools} == {"null-provider"}
