"""The whole system, as `cib dev-up` plays it: a push of the bundled fleet, a pull request and
its close, a cron decision, through the local Taskcluster, moto, the Azure fake and the Compute
fake. The decision
task is created as Taskcluster's GitHub service (or fxci's cron task) creates it and runs, like
every task of its graph, on local workers that follow generic-worker's rules (task directories,
payload schema, mounts, artifact rules, taskcluster-proxy with the task's scopes). Nothing runs
in the test's process.

The repository played is this checkout's HEAD commit (what CI tests). The decision and the
task environment pip-install the package, so the tests need PyPI, and qemu-img for the
stand-in disk sources; they share one deployment and take a few minutes together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from cib_decision.cli import main
from cib_decision.devpipeline.pipeline import (
    IMAGE_PR_NUMBER,
    EventResult,
    LocalPipeline,
    change_a_deployment_id,
    local_pipeline,
    play_scenarios,
    summary,
)
from cib_decision.devtc.testing import require_schemas

from .conftest import ROOT
from .pipeline_support import (
    check_every_task_completed_with_its_artifacts,
    explain,
    pool_worker,
    require_pipeline_tools,
)

TIMEOUT = 900


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """The deployment after a push, a pull request, its close, a pull request that rebuilds
    one key's images and a cron decision, then a pull request with a broken key file and a
    change whose build fails, as a pull request and pushed; each event's result."""
    require_pipeline_tools()
    work = tmp_path_factory.mktemp("local-pipeline")
    scenarios = ["push", "pull-request", "pull-request-untrusted", "pull-request-closed",
                 "pull-request-image", "cron", "cron-drift"]
    with local_pipeline(ROOT, "HEAD", work) as pipeline:
        # one event per scenario, by scenario (two are pull-request events); after the push,
        # what `cib drift` says of the fleet it deployed
        events = play_scenarios(pipeline, scenarios, TIMEOUT)
        results = {"push": next(events), "drift": drift_of(pipeline)}
        results.update(zip(scenarios[1:], events, strict=True))
        broken = pipeline.commit("Add a setting", branch="broken", change=break_a_key)
        results["broken"] = pipeline.play("pull-request", broken, base=pipeline.head,
                                          pull_request=2, timeout=TIMEOUT)
        failing = pipeline.commit("Build on a bigger instance", branch="failing",
                                  change=break_a_build)
        results["failing-pr"] = pipeline.play("pull-request", failing, base=pipeline.head,
                                              pull_request=4, timeout=TIMEOUT)
        results["failing-push"] = pipeline.play("push", failing, timeout=TIMEOUT)
        # the local AWS and Google report this smoke test failed (`devclouds.transcript`)
        moto, google = pipeline.deployment.aws.response, pipeline.deployment.google.fake
        moto.failing_tests = google.failing_tests = {FAILING_TEST}
        try:
            tested = pipeline.commit("Rebuild ubuntu; a smoke test of our own for win2022",
                                     branch="smoke-tests", change=change_smoke_tests)
            results["smoke-tests"] = pipeline.play("push", tested, timeout=TIMEOUT)
        finally:
            moto.failing_tests = set()
            google.failing_tests = set()
        # failed builds and refused tests changed no pool: nothing drifted since the push
        results["drift-at-end"] = drift_of(pipeline)
        yield pipeline, results


def drift_of(pipeline: LocalPipeline) -> subprocess.CompletedProcess:
    """`cib drift` of the played environment, with the deployment's root credentials and
    the local clouds' variables (it asks them whether the images exist)."""
    credentials = pipeline.tc.root_credentials
    environ = {**os.environ, "TASKCLUSTER_ROOT_URL": pipeline.tc.root_url,
               "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
               "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"],
               **pipeline.cloud_environment()}
    environ.pop("TASKCLUSTER_PROXY_URL", None)
    return subprocess.run([sys.executable, "-m", "cib_decision", "drift", "--config-dir",
                           str(pipeline.repo / "config"), "--environment",
                           pipeline.environment], env=environ, capture_output=True, text=True,
                          timeout=300)


BROKEN_KEY = "win2022-64.yaml"


def break_a_key(repo) -> None:
    """A misspelt top-level field at the end of a key file."""
    path = repo / "config" / BROKEN_KEY
    path.write_text(path.read_text() + "imgae: {}\n")


FAILING_KEY = "ubuntu-2404"


FAILING_TEST = "no-failed-units"  # a smoke test of the environments' Linux images
TESTED_KEY = "win2022-64"


def change_smoke_tests(repo) -> None:
    """A rebuild of ubuntu-2404's image (whose smoke test FAILING_TEST will fail), and a smoke
    test of win2022-64's own (a test change: its images are tested again, not rebuilt)."""
    assert change_a_deployment_id(repo) == FAILING_KEY
    path = repo / "config" / f"{FAILING_KEY}.yaml"
    path.write_text(path.read_text().replace("-next'", "-smoke'"))
    path = repo / "config" / f"{TESTED_KEY}.yaml"
    text = path.read_text()
    assert "\nvalidation:\n    instance:\n" in text
    path.write_text(text.replace("\nvalidation:\n    instance:\n", (
        "\nvalidation:\n    image:\n        tests:\n"
        "            - name: task-volume\n"
        "              commands: [\"if (Test-Path 'Z:\\\\') { 'ready' }\"]\n"
        "              match: ready\n"
        "    instance:\n"), 1))


def break_a_build(repo) -> None:
    """A machine-image change whose builds the clouds refuse: a new deploymentId and instance
    types EC2 and Compute do not offer (config check cannot know the clouds' lists). Both of
    the key's builds fail, so nothing of it is released."""
    assert change_a_deployment_id(repo) == FAILING_KEY
    path = repo / "config" / f"{FAILING_KEY}.yaml"
    text = path.read_text()
    assert "type: t3.large" in text and "type: n2-standard-4" in text
    # a deploymentId of its own: the image pull request's digest was built already
    path.write_text(text.replace("type: t3.large", "type: t3.enormous", 1)
                    .replace("type: n2-standard-4", "type: n2-enormous", 1)
                    .replace("-next'", "-bigger'"))


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
                 "actions.json", "parameters.yml", "github/customCheckRunText.md"):
        assert f"public/{name}" in decision.artifacts
    # no schema directory in a task: the decision validated its tasks against the
    # deployment's schemas, fetching each once (not once per task)
    served = pipeline.tc.stats()["schemasServed"]
    decisions = sum(1 for r in results.values() if isinstance(r, EventResult)
                    for t in r.tasks if t.task_id == r.decision_task_id)
    assert 1 <= served.get("/schemas/queue/v1/create-task-request.json", 0) <= decisions
    kinds = {label.split("-")[0] for label in labels}
    assert {"task", "lint", "purge", "disk", "machine", "tag", "worker", "verify"} <= kinds
    # ubuntu-2404's Google target: built from the disk image, tested, released, deployed
    for label in ("machine-image-ubuntu-2404-google-us-central1",
                  "test-image-ubuntu-2404-google-us-central1",
                  "worker-pool-gecko-t-ubuntu-2404-gcp", "verify-gecko-t-ubuntu-2404-gcp"):
        assert labels[label].ok, summary(push)
    record = json.loads(pipeline.artifact(
        labels["machine-image-ubuntu-2404-google-us-central1"].task_id,
        "public/machine-image.json"))
    project, _, name = record["image_id"].removeprefix("projects/").partition("/global/images/")
    image = pipeline.deployment.google.fake.images[(project, name)]
    release = json.loads(pipeline.artifact(labels["tag-ubuntu-2404"].task_id,
                                           "public/release.json"))
    assert image["labels"]["cib-release-sha256"] == release["sha256"][:63]
    # the pool runs a released image of the key (a later push may have replaced the push's)
    served = pipeline.tc.worker_pools()["gecko-t/ubuntu-2404-gcp"]
    (launch,) = served["config"]["launchConfigs"]
    source = launch["disks"][0]["initializeParams"]["sourceImage"]
    project, _, name = source.removeprefix("projects/").partition("/global/images/")
    running = pipeline.deployment.google.fake.images[(project, name)]["labels"]
    assert running["cib-key"] == "ubuntu-2404" and running["cib-release-sha256"]


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


@pytest.mark.parametrize("when", ["drift", "drift-at-end"])
def test_the_fleet_a_push_deployed_has_no_drift_then_or_after_failed_builds_and_tests(
        played, when):
    _, results = played
    drift = results[when]
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert drift.stdout.startswith("no drift: worker-manager runs what the config and the "
                                   "release pointers say")


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


def test_a_pull_request_with_a_broken_key_fails_its_decision_with_an_annotation_at_the_line(
        played):
    pipeline, results = played
    broken = results["broken"]
    (decision,) = broken.tasks  # nothing submitted
    assert decision.state == "failed"
    annotations = json.loads(pipeline.artifact(
        decision.task_id, "public/github/customCheckRunAnnotations.json"))
    lines = (pipeline.repo / "config" / BROKEN_KEY).read_text().splitlines()
    assert [(a["path"], a["start_line"], a["annotation_level"]) for a in annotations] == [
        (f"config/{BROKEN_KEY}", len(lines) + 1, "failure")]
    assert "imgae" in annotations[0]["message"]


def test_the_pull_requests_check_run_names_the_changed_pool_and_rebuilds_no_image(played):
    pipeline, results = played
    opened = results["pull-request"]
    text = pipeline.artifact(opened.decision_task_id,
                              "public/github/customCheckRunText.md").decode()
    assert "gecko-t/ubuntu-2404-aws" in text and "| build |" not in text


def test_an_untrusted_pull_request_only_checks_the_config_under_its_narrow_role(played):
    pipeline, results = played
    untrusted = results["pull-request-untrusted"]
    check_every_task_completed_with_its_artifacts(pipeline, untrusted)
    (decision,) = untrusted.tasks
    assert decision.queue == "cib-1/decision"
    assert pipeline.tc.tasks()[decision.task_id]["scopes"] == [
        "assume:repo:github.com/example/images:pull-request-untrusted"]


def test_a_cron_decision_runs_with_its_cron_role_and_reuses_the_pushed_images(played):
    pipeline, results = played
    cron = results["cron"]
    check_every_task_completed_with_its_artifacts(pipeline, cron)
    decision = pipeline.tc.tasks()[cron.decision_task_id]
    assert decision["scopes"] == ["assume:repo:github.com/example/images:cron:nightly"]
    assert "index.cib.v2.images.latest.taskgraph.decision-nightly" in decision["routes"]
    # the push built every image of this revision: the cron graph rebuilds none, and its
    # check run says so
    assert not [t for t in cron.tasks if t.label.startswith(("disk-image", "machine-image"))]
    text = pipeline.artifact(cron.decision_task_id, "public/github/customCheckRunText.md")
    assert "the index has a task of the same digest" in text.decode()


def test_the_daily_drift_job_runs_its_read_only_task_which_finds_no_drift(played):
    pipeline, results = played
    cron = results["cron-drift"]
    check_every_task_completed_with_its_artifacts(pipeline, cron)  # exit 1 would fail it
    decision = pipeline.tc.tasks()[cron.decision_task_id]
    assert decision["scopes"] == ["assume:repo:github.com/example/images:cron:drift"]
    (task,) = [t for t in cron.tasks if t.label.startswith("drift-")]
    assert sorted(pipeline.tc.tasks()[task.task_id]["scopes"]) == [
        "generic-worker:cache:cib-level-3-*", "secrets:get:project/cib/level-3/clouds",
        "worker-manager:list-worker-pools"]
    text = pipeline.artifact(task.task_id, "public/github/customCheckRunText.md").decode()
    assert text.startswith(f"### No drift in {pipeline.environment}\n")


def test_a_pull_request_that_edits_one_key_rebuilds_and_names_exactly_its_images(played):
    pipeline, results = played
    changed = results["pull-request-image"]
    check_every_task_completed_with_its_artifacts(pipeline, changed)
    built = sorted(t.label for t in changed.tasks
                   if t.label.startswith(("disk-image", "machine-image")))
    assert built == [f"machine-image-{FAILING_KEY}-amazon-us-east-1",
                     f"machine-image-{FAILING_KEY}-google-us-central1"], summary(changed)
    text = pipeline.artifact(changed.decision_task_id,
                              "public/github/customCheckRunText.md").decode()
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {FAILING_KEY} ")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "2: amazon/us-east-1, google/us-central1", text
    assert "target[amazon/us-east-1].tag" in cells[4], text
    # the pull request's own pool runs the image the pull request built
    (verify,) = [t for t in changed.tasks if t.label.startswith("verify-")
                 and t.label.endswith("-aws")]
    pool = pipeline.tc.worker_pools()[verify.queue]
    image_id = pool["config"]["launchConfigs"][0]["launchConfig"]["ImageId"]
    (image,) = pipeline.deployment.aws.client("ec2", "us-east-1").describe_images(
        ImageIds=[image_id])["Images"]
    assert f"-pr{IMAGE_PR_NUMBER}-" in image["Name"]


def test_failed_builds_notify_the_keys_owner_once_each_on_a_push_and_nobody_on_a_pr(played):
    pipeline, results = played
    push, pr = results["failing-push"], results["failing-pr"]
    for result in (push, pr):
        failed = [t for t in result.tasks if not t.ok]
        assert [(t.label, t.state) for t in failed if t.state != "unscheduled"] == [
            (f"machine-image-{FAILING_KEY}-amazon-us-east-1", "failed"),
            (f"machine-image-{FAILING_KEY}-google-us-central1", "failed")], summary(result)
    log = pipeline.artifact(push.by_label()[f"machine-image-{FAILING_KEY}-amazon-us-east-1"]
                            .task_id, "public/logs/live_backing.log").decode()
    assert "t3.enormous" in log
    log = pipeline.artifact(push.by_label()[f"machine-image-{FAILING_KEY}-google-us-central1"]
                            .task_id, "public/logs/live_backing.log").decode()
    assert "n2-enormous" in log
    sent = pipeline.tc.notifications()
    groups = {t.task_id: name for name, r in (("push", push), ("pr", pr)) for t in r.tasks}
    # one message per failed build, to the key's owner, for the push only
    assert [(groups.get(n["taskId"]), n["kind"], n["target"], n["state"]) for n in sent
            if n["taskId"] in groups] == [
        ("push", "email", "relops-linux@example.com", "failed")] * 2


def test_a_failed_smoke_test_stops_its_keys_release_and_pool_while_other_keys_go_on(played):
    pipeline, results = played
    result = results["smoke-tests"]
    tasks = result.by_label()
    failed = {t.label: t.state for t in result.tasks if not t.ok}
    tested = f"test-image-{FAILING_KEY}-amazon-us-east-1"
    pool = f"worker-pool-gecko-t-{FAILING_KEY}-aws"
    assert failed == {tested: "failed", f"tag-{FAILING_KEY}": "failed", pool: "failed",
                      f"verify-gecko-t-{FAILING_KEY}-aws": "unscheduled",
                      f"test-image-{FAILING_KEY}-google-us-central1": "failed",
                      f"worker-pool-gecko-t-{FAILING_KEY}-gcp": "failed",
                      f"verify-gecko-t-{FAILING_KEY}-gcp": "unscheduled"}, summary(result)
    assert tasks[f"machine-image-{FAILING_KEY}-amazon-us-east-1"].ok

    def log(label: str) -> str:
        return pipeline.artifact(tasks[label].task_id, "public/logs/live_backing.log").decode()

    record = json.loads(pipeline.artifact(tasks[tested].task_id, "public/image-test.json"))
    assert not record["passed"]
    assert [(r["name"], r["passed"]) for r in record["results"]] == [
        ("cloud-init", True), (FAILING_TEST, False)]
    assert f"smoke tests of {FAILING_KEY}-" in log(tested)
    assert f"not releasing {FAILING_KEY}: amazon/us-east-1" in log(f"tag-{FAILING_KEY}")
    assert f"smoke tests {FAILING_TEST} failed" in log(f"tag-{FAILING_KEY}")
    assert f"{FAILING_KEY} has smoke tests and none of its images given here passed them" \
        in log(pool)
    # the pool still runs the image it ran
    served = pipeline.tc.worker_pools()[f"gecko-t/{FAILING_KEY}-aws"]
    image_id = served["config"]["launchConfigs"][0]["launchConfig"]["ImageId"]
    (image,) = pipeline.deployment.aws.client("ec2", "us-east-1").describe_images(
        ImageIds=[image_id])["Images"]
    assert image["State"] == "available" and record["image_id"] != image_id
    # win2022-64's own new test ran on its images as they are, and they are released again
    assert not [label for label in tasks if label.startswith(f"machine-image-{TESTED_KEY}")]
    runs = [label for label in tasks if label.startswith(f"test-image-{TESTED_KEY}")]
    assert len(runs) == 2 and all(tasks[label].ok for label in runs)
    release = json.loads(pipeline.artifact(tasks[f"tag-{TESTED_KEY}"].task_id,
                                           "public/release.json"))
    assert all([r["name"] for r in i["tests"]["results"]] == ["task-volume"]
               for i in release["images"])


@pytest.mark.parametrize("args, message", [
    (["--repo", "{tmp}"], "is not a git repository"),
    (["--repo", "{tmp}/nowhere"], "is not a git repository"),
    (["--revision", "no-such-revision"], "no commit 'no-such-revision'"),
    (["--builders", "0"], "--builders must be at least 1"),
])
def test_bad_input_to_dev_up_is_one_line_and_exit_2_before_anything_starts(
        capsys, tmp_path, args, message):
    code = main(["dev-up", "--repo", str(ROOT), *[a.format(tmp=tmp_path) for a in args]])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not list(tmp_path.glob("cib-dev-up-*"))


def test_an_unknown_scenario_is_refused_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["dev-up", "--scenarios", "push,deploy-everything"])
    assert exited.value.code == 2
    assert "unknown scenario deploy-everything; choose from push, pull-request" in \
        capsys.readouterr().err


@pytest.fixture
def deployment(tmp_path):
    """A local deployment with nothing played on it. Its moto starts afresh, and moto keeps
    one state per process: the tests using it come after every test of `played`."""
    require_schemas()
    from cib_decision.devpipeline.deployment import LocalDeployment

    with LocalDeployment(tmp_path, roles_file=ROOT / "taskcluster" / "roles.yml") as started:
        yield started


def aws_pool(deployment, pool_id: str, worker_config: dict, image_id: str) -> None:
    import taskcluster

    taskcluster.WorkerManager(deployment.tc.options()).createWorkerPool(pool_id, {
        "providerId": "aws", "description": "", "owner": "dev@example.com",
        "emailOnError": False, "config": {
            "minCapacity": 0, "maxCapacity": 1, "lifecycle": {"registrationTimeout": 900},
            "launchConfigs": [{"region": "us-east-1", "capacityPerInstance": 1,
                               "launchConfig": {"ImageId": image_id},
                               "workerConfig": worker_config}]}})


def pending_task(deployment, queue: str) -> str:
    import slugid

    import taskcluster
    from cib_decision.devtc.testing import new_task

    task_id = slugid.nice()
    taskcluster.Queue(deployment.tc.options()).createTask(
        task_id, new_task(taskQueueId=queue, payload={"command": [["true"]],
                                                      "maxRunTime": 60}))
    return task_id


def test_a_pool_generic_worker_could_not_start_gets_no_worker_and_the_run_stalls(
        deployment, monkeypatch):
    """A provider starts no worker for a pool whose workerConfig lacks what generic-worker
    needs or whose image the cloud lacks; its tasks stay pending and the event ends as
    stalled instead of waiting for its timeout."""
    from cib_decision.devpipeline import pipeline as pipeline_module

    ec2 = deployment.aws.client("ec2", "us-east-1")
    image = ec2.register_image(Name="worker-image", RootDeviceName="/dev/sda1")["ImageId"]
    aws_pool(deployment, "gecko-t/no-key", {"genericWorker": {"config": {}}}, image)
    aws_pool(deployment, "gecko-t/no-image", {"genericWorker": {"config": {
        "ed25519SigningKeyLocation": "/etc/generic-worker/ed25519_key"}}}, "ami-12345678")
    stuck = [pending_task(deployment, queue)
             for queue in ("gecko-t/no-key", "gecko-t/no-image", "nobody/serves-this")]
    deployment.provision()
    assert "ed25519SigningKeyLocation" in " ".join(deployment.problems["gecko-t/no-key"])
    assert "no AMI ami-12345678" in " ".join(deployment.problems["gecko-t/no-image"])
    assert deployment.workers == {}
    monkeypatch.setattr(pipeline_module, "STALLED_SECONDS", 1.0)
    monkeypatch.setattr(pipeline_module, "POLL_SECONDS", 0.5)
    local = LocalPipeline(deployment)
    for task_id in stuck:
        started = time.monotonic()
        local._wait(task_id, timeout=120)
        assert time.monotonic() - started < 30
        (result,) = local.results(task_id)
        assert result.state == "pending" and not result.ok


def test_a_deployed_pool_with_a_startable_config_and_image_gets_one_worker(deployment):
    ec2 = deployment.aws.client("ec2", "us-east-1")
    image = ec2.register_image(Name="worker-image", RootDeviceName="/dev/sda1")["ImageId"]
    aws_pool(deployment, "gecko-t/good", {"genericWorker": {"config": {
        "ed25519SigningKeyLocation": "/etc/generic-worker/ed25519_key"}}}, image)
    task_id = pending_task(deployment, "gecko-t/good")
    status = deployment.tc.wait_for_task_group(task_id, timeout=60)[task_id]
    assert status["state"] == "completed"
    (worker,) = deployment.workers["gecko-t/good"]
    assert worker.settings.platform == "linux"  # the image keeps generic-worker's files there


def test_the_played_environment_points_at_the_local_taskcluster_whatever_the_file_holds(
        tmp_path):
    from cib_decision.config.model import Environment
    from cib_decision.devpipeline.repository import point_environment_at

    staging = Environment("staging", "https://tc-staging.example.com", pull_requests=True)
    url = "http://127.0.0.1:1234"
    point_environment_at(tmp_path, staging, url)  # no file: the built-in environments
    assert yaml.safe_load((tmp_path / "environments.yaml").read_text()) == {
        "staging": {"root-url": url, "pull-requests": True}}
    (tmp_path / "environments.yaml").write_text(
        "# ours\nproduction:\n    root-url: https://tc.example.com  # real\n"
        "staging:\n    description: no url yet\n")
    point_environment_at(tmp_path, staging, url)
    point_environment_at(tmp_path, Environment("production", "x"), "http://127.0.0.1:99")
    text = (tmp_path / "environments.yaml").read_text()
    assert text.startswith("# ours\n")
    assert yaml.safe_load(text) == {
        "production": {"root-url": "http://127.0.0.1:99"},
        "staging": {"root-url": url, "description": "no url yet"}}

