"""The local worker runs tasks as generic-worker does: fresh task directory, clean environment,
taskcluster-proxy with the task's scopes, mounts of dependency artifacts, maxRunTime,
onExitStatus, artifact rules, logs, and resolution after the uploads."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import slugid

import taskcluster
from cib_decision.devtc.testing import new_task
from cib_decision.devworker.config import from_worker_pool, problems
from cib_decision.devworker.run import WorkerSettings, go_duration
from cib_decision.devworker.worker import DevWorker

QUEUE = "cib-3/b-linux"


def settings_of(dev_taskcluster, tmp_path: Path, worker_id: str) -> WorkerSettings:
    """A worker of QUEUE with its credentials, its files under `tmp_path`."""
    return WorkerSettings(
        root_url=dev_taskcluster.root_url,
        credentials=dev_taskcluster.worker_credentials(QUEUE, "local", worker_id),
        task_queue_id=QUEUE, worker_group="local", worker_id=worker_id,
        tasks_dir=tmp_path / "tasks", downloads_dir=tmp_path / "downloads")


@pytest.fixture
def worker(dev_taskcluster, tmp_path) -> Iterator[DevWorker]:
    running = DevWorker(settings_of(dev_taskcluster, tmp_path, "worker-1")).start()
    yield running
    running.stop()


def run(dev_taskcluster, payload: dict, **fields) -> tuple[str, dict]:
    """Create a task on the worker's queue, wait for it; its id and final status."""
    task_id = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options())
    queue.createTask(task_id, new_task(taskQueueId=QUEUE, payload=payload, **fields))
    statuses = dev_taskcluster.wait_for_task_group(task_id, timeout=60)
    return task_id, statuses[task_id]


def bash(script: str, **payload) -> dict:
    return {"command": [["bash", "-c", script]], "maxRunTime": 60, **payload}


def test_a_task_runs_in_a_fresh_directory_with_a_clean_environment_and_uploads(
        dev_taskcluster, worker):
    task_id, status = run(dev_taskcluster, bash(
        'mkdir out && env | sort > out/env.txt && pwd > out/pwd.txt && echo hi',
        env={"GREETING": "hello", "TASK_ID": "spoofed"},
        artifacts=[{"type": "directory", "path": "out", "name": "public/out"}]))
    assert status["state"] == "completed", status
    artifacts = dev_taskcluster.artifacts(task_id)
    env = dict(line.split("=", 1) for line in
               gzip.decompress(artifacts["public/out/env.txt"]["content"]).decode().splitlines())
    assert env["GREETING"] == "hello" and env["TASK_ID"] == task_id  # the worker's wins
    assert env["TASKCLUSTER_ROOT_URL"] == dev_taskcluster.root_url
    assert "TASKCLUSTER_PROXY_URL" not in env and "TASKCLUSTER_ACCESS_TOKEN" not in env
    workdir = gzip.decompress(artifacts["public/out/pwd.txt"]["content"]).decode().strip()
    assert workdir == env["TASK_WORKDIR"] == env["HOME"]
    assert Path(workdir).name == f"task_{task_id[:13]}_0"
    worker.stop()  # its loop has moved on: generic-worker's cleanUpTaskDirs removed the directory
    assert not Path(workdir).exists()
    log = gzip.decompress(artifacts["public/logs/live_backing.log"]["content"]).decode()
    assert "hi\n" in log and "=== Task Finished ===" in log
    assert artifacts["public/logs/live.log"]["storageType"] == "link"


def test_each_command_s_cpu_and_wall_time_are_logged_as_generic_worker_logs_them(
        dev_taskcluster, worker):
    # half a second of CPU in a child the command waits for, then a quarter second asleep
    task_id, status = run(dev_taskcluster, bash(
        'python3 -c "import time; t = time.process_time()\n'
        'while time.process_time() - t < 0.5: pass" && sleep 0.25'))
    assert status["state"] == "completed", status
    log = gzip.decompress(
        dev_taskcluster.artifacts(task_id)["public/logs/live_backing.log"]["content"]).decode()
    found = re.search(r"Exit Code: 0\n.*User Time: (\S+)\n.*Kernel Time: (\S+)\n"
                      r".*Wall Time: (\S+)\n.*Result: SUCCEEDED", log)
    assert found, log
    user, kernel, wall = (seconds(found.group(i)) for i in (1, 2, 3))
    assert 0.45 <= user + kernel <= wall and wall >= 0.7


def seconds(go: str) -> float:
    """A Go duration as generic-worker prints it, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|ms|µs|m|s)", go))


@pytest.mark.parametrize(("value", "go"), [
    (0, "0s"), (0.0005, "500µs"), (0.3125, "312.5ms"), (1.5, "1.5s"), (123.5, "2m3.5s"),
    (3723, "1h2m3s")])
def test_durations_are_printed_as_go_prints_them(value, go):
    assert go_duration(value) == go


def test_a_declared_artifact_the_command_never_made_fails_the_task(dev_taskcluster, worker):
    task_id, status = run(dev_taskcluster, bash("true", artifacts=[
        {"type": "directory", "path": "src/artifacts", "name": "public"}]))
    assert status["state"] == "failed"
    error = dev_taskcluster.artifacts(task_id)["public"]
    assert (error["storageType"], error["reason"]) == ("error", "file-missing-on-worker")


def test_a_symlinked_directory_artifact_is_an_error(dev_taskcluster, worker):
    _, status = run(dev_taskcluster, bash("mkdir real && ln -s real out", artifacts=[
        {"type": "directory", "path": "out", "name": "public/out"}]))
    assert status["state"] == "failed"


def test_exit_statuses_map_to_failed_and_intermittent_retries(dev_taskcluster, worker):
    _, status = run(dev_taskcluster, bash("exit 3"))
    assert status["state"] == "failed"
    _, status = run(dev_taskcluster, bash("exit 75", onExitStatus={"retry": [75]}),
                    retries=1)
    runs = status["runs"]
    assert [(r["state"], r.get("reasonResolved")) for r in runs] == [
        ("exception", "intermittent-task"), ("exception", "intermittent-task")]
    assert runs[1]["reasonCreated"] == "task-retry"


def test_max_run_time_kills_the_command_and_fails(dev_taskcluster, worker):
    task_id, status = run(dev_taskcluster, {"command": [["sleep", "30"]], "maxRunTime": 1})
    assert status["state"] == "failed"
    log = gzip.decompress(
        dev_taskcluster.artifacts(task_id)["public/logs/live_backing.log"]["content"]).decode()
    assert "task aborted - max run time exceeded" in log


def test_a_payload_generic_worker_refuses_is_malformed(dev_taskcluster, worker):
    _, status = run(dev_taskcluster, {"command": ["echo a string, not an argv"],
                                      "maxRunTime": 60})
    assert (status["state"], status["runs"][-1]["reasonResolved"]) == (
        "exception", "malformed-payload")


def test_the_proxy_calls_with_the_task_scopes_only(dev_taskcluster, worker):
    dev_taskcluster.set_secret("project/cib/level-3/clouds", {"a": "b"})
    dev_taskcluster.set_secret("project/other", {"a": "b"})
    script = ('curl -sf "$TASKCLUSTER_PROXY_URL/api/secrets/v1/secret/project%2Fcib%2F'
              'level-3%2Fclouds" && ! curl -sf "$TASKCLUSTER_PROXY_URL/secrets/v1/secret/'
              'project%2Fother"')
    _, status = run(dev_taskcluster, bash(script, features={"taskclusterProxy": True}),
                    scopes=["secrets:get:project/cib/level-3/clouds"])
    assert status["state"] == "completed"


def test_a_mounted_dependency_artifact_is_unpacked_into_the_task_directory(
        dev_taskcluster, worker, tmp_path):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"print('from the mount')\n"
        info = tarfile.TarInfo("hello.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    producer = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options())
    queue.createTask(producer, new_task(taskQueueId="cib-3/elsewhere",
                                        payload={"command": [["true"]], "maxRunTime": 1}))
    dev_taskcluster.resolve_task(producer, artifacts={"public/env.tar.gz": archive.getvalue()})
    mount = {"content": {"taskId": producer, "artifact": "public/env.tar.gz"},
             "directory": "env", "format": "tar.gz"}
    _, status = run(dev_taskcluster, bash("python3 env/hello.py", mounts=[mount]),
                    dependencies=[producer])
    assert status["state"] == "completed"
    # a mount from a task that is not a dependency is refused, as generic-worker does
    _, status = run(dev_taskcluster, bash("true", mounts=[mount]))
    assert status["runs"][-1]["reasonResolved"] == "malformed-payload"


def env_archive(text: str) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = text.encode()
        info = tarfile.TarInfo("marker.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def test_a_writable_cache_is_preloaded_once_kept_between_tasks_and_purged_when_asked(
        dev_taskcluster, worker):
    producer = slugid.nice()
    queue = taskcluster.Queue(dev_taskcluster.options())
    queue.createTask(producer, new_task(taskQueueId="cib-3/elsewhere",
                                        payload={"command": [["true"]], "maxRunTime": 1}))
    dev_taskcluster.resolve_task(producer, artifacts={"public/env.tar.gz": env_archive("v1")})
    mount = {"cacheName": "cib-level-3-env", "directory": "env", "format": "tar.gz",
             "content": {"taskId": producer, "artifact": "public/env.tar.gz"}}
    scoped = {"dependencies": [producer], "scopes": ["generic-worker:cache:cib-level-3-*"]}

    def task(script: str, **payload) -> str:
        _, status = run(dev_taskcluster, bash(script, mounts=[mount], **payload),
                              **scoped)
        return status["runs"][-1].get("reasonResolved")

    # created with its content, then written to: the next task sees the write, not a
    # fresh copy of the content
    assert task("grep -q v1 env/marker.txt && echo used >> env/marker.txt") == "completed"
    assert task("grep -q used env/marker.txt") == "completed"
    assert worker.caches.names() == {"cib-level-3-env": 1}
    # an exit status listed in purgeCaches evicts the cache: the next task gets the content
    assert task("exit 3", onExitStatus={"purgeCaches": [3]}) == "failed"
    assert worker.caches.names() == {}
    assert task("! grep -q used env/marker.txt") == "completed"
    # a cache needs its scope
    _, status = run(dev_taskcluster, bash("true", mounts=[mount]), dependencies=[producer])
    assert status["runs"][-1]["reasonResolved"] == "malformed-payload"


def test_generic_worker_config_rules_as_worker_runner_passes_them():
    nested = {"genericWorker": {"config": {"idleTimeoutSecs": 60,
                                           "ed25519SigningKeyLocation": "/etc/gw/key"}}}
    assert from_worker_pool(nested) == {"idleTimeoutSecs": 60,
                                        "ed25519SigningKeyLocation": "/etc/gw/key"}
    assert problems(from_worker_pool(nested), runner_supplied=True) == []
    assert any("exits 73" in p for p in problems({"idleTimeoutSecs": 60},
                                                 runner_supplied=True))
    assert any("deploymentId" in p for p in problems(
        {"deploymentId": "x", "ed25519SigningKeyLocation": "k"}, runner_supplied=True))


def test_a_worker_killed_mid_task_leaves_a_run_the_queue_retries_on_another_worker(
        dev_taskcluster, tmp_path):
    """SIGKILL of the worker (and its task's processes) reports nothing: the claim expires,
    the queue retries the task, and another worker completes the new run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    dev_taskcluster.set_timeouts(claim_timeout=3)
    task_id = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(task_id, new_task(
        taskQueueId=QUEUE, retries=1,
        payload=bash('if [ "$RUN_ID" = 0 ]; then sleep 120; fi; echo run $RUN_ID')))
    credentials = dev_taskcluster.worker_credentials(QUEUE, "local", "doomed")
    doomed = subprocess.Popen(
        [sys.executable, "-m", "cib_decision.devworker", "--root-url", dev_taskcluster.root_url,
         "--queue", QUEUE, "--worker-id", "doomed", "--work-dir", str(tmp_path / "doomed")],
        env={**os.environ, "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
             "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"]},
        stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        give_up = time.monotonic() + 60
        while not dev_taskcluster.statuses()[task_id]["runs"] or \
                dev_taskcluster.statuses()[task_id]["runs"][0]["state"] != "running":
            assert time.monotonic() < give_up, "the worker never claimed the task"
            time.sleep(0.1)
        time.sleep(0.5)  # the command is running
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
    survivor = DevWorker(settings_of(dev_taskcluster, tmp_path, "survivor")).start()
    try:
        status = dev_taskcluster.wait_for_task_group(task_id, timeout=60)[task_id]
    finally:
        survivor.stop()
    assert [(r["state"], r["reasonResolved"], r.get("workerId")) for r in status["runs"]] == [
        ("exception", "claim-expired", "doomed"), ("completed", "completed", "survivor")]


def test_a_worker_with_a_logs_directory_keeps_each_tasks_log_there(dev_taskcluster, tmp_path):
    settings = settings_of(dev_taskcluster, tmp_path, "logger")
    settings.logs_dir = tmp_path / "logs"
    worker = DevWorker(settings).start()
    try:
        task_id, status = run(dev_taskcluster, bash("echo kept"))
    finally:
        worker.stop()
    assert status["state"] == "completed"
    assert "kept\n" in (tmp_path / "logs" / f"{task_id}-0.log").read_text()
    assert list((tmp_path / "tasks").iterdir()) == []


def test_a_cache_scope_a_role_grants_is_the_tasks_as_generic_worker_expands_it(
        dev_taskcluster, worker):
    """generic-worker checks a feature's scopes after the auth service expands the task's
    roles: a decision task carries only `assume:repo:...`."""
    expanded = taskcluster.Auth(dev_taskcluster.options()).expandScopes(
        {"scopes": ["assume:repo:github.com/example/images:branch:main"]})["scopes"]
    assert "generic-worker:cache:cib-level-3-*" in expanded
    mount = {"cacheName": "cib-level-3-decision", "directory": "cache"}
    for role, reason in (("branch:main", "completed"), ("pull-request", "malformed-payload")):
        _, status = run(dev_taskcluster, bash("touch cache/x", mounts=[mount]),
                        scopes=[f"assume:repo:github.com/example/images:{role}"])
        assert status["runs"][-1].get("reasonResolved") == reason, role
