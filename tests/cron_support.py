"""The graphs of the cron jobs of .cron.yml, and their tasks checked against the job's role
(test helper; docs/cron.md)."""

from __future__ import annotations

import copy
import gzip
import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import slugid

import taskcluster
from cib_decision import cronjobs
from cib_decision.devtc.testing import new_task
from cib_decision.scopes import missing_scopes, role_for_event, role_scopes

from .conftest import ROOT
from .graphs import generator
from .scopes_support import ROLES, created_tasks


def cron_graph(method: str, environment: str = "production"):
    """The graph a cron decision of target method `method` generates in `environment`."""
    return generator(tasks_for="cron", target_tasks_method=method, environment=environment)


def created_within_role(tgg, job: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The tasks `tgg`'s decision creates, by label, each checked to be within the scopes of
    the role `cron:<job>`; and those scopes."""
    granted = role_scopes(ROLES, role_for_event("cron", cron_job=job), project="images")
    tasks = dict(created_tasks(tgg))
    assert tasks
    for label, definition in tasks.items():
        assert missing_scopes(definition, granted) == [], label
    return tasks, granted


def job_script(tgg, label: str) -> str:
    """The command of the one task (`label`) a cron job's graph runs besides the task
    environment, checked to publish its `artifacts/` as `public/` and to be retried on exit
    75."""
    assert set(tgg.target_task_graph.tasks) == {label, "task-env-cib"}
    task = tgg.target_task_graph.tasks[label].task
    assert {"type": "directory", "path": "src/artifacts", "name": "public"} in \
        task["payload"]["artifacts"]
    assert 75 in task["payload"]["onExitStatus"]["retry"]
    (script,) = [c[-1] for c in task["payload"]["command"]]
    return script


SHIM = '''import os, sys
os.environ.pop("PYTHONPATH", None)
os.execv({python!r}, [{python!r}, "-m", "cib_decision", *sys.argv[1:]])
'''


def shim_env() -> bytes:
    """A stand-in for the task environment's archive: a `cib_decision` package whose
    `__main__` runs this checkout's cib with the test's Python (building the real one is the
    task-env task's pip install)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in (("cib_decision/__init__.py", ""),
                           ("cib_decision/__main__.py", SHIM.format(python=sys.executable))):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def fleet_repository(directory: Path, with_taskgraph: bool = False) -> tuple[str, str]:
    """A git repository holding the bundled fleet's config (`with_taskgraph`: and the graph
    config and .cron.yml); its path and head commit."""
    shutil.copytree(ROOT / "config", directory / "config")
    if with_taskgraph:
        (directory / "taskcluster").mkdir()
        shutil.copy(ROOT / "taskcluster" / "config.yml", directory / "taskcluster")
        shutil.copy(ROOT / cronjobs.CRON_FILE, directory)
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.email=cib@example.com", "-c", "user.name=cib", "commit", "-qm",
                  "fleet"]):
        subprocess.run(["git", *args], cwd=directory, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, check=True,
                          capture_output=True, text=True).stdout.strip()
    return str(directory), head


def run_on_worker(dev_taskcluster, definition: dict[str, Any], tmp_path: Path
                  ) -> tuple[dict[str, Any], Callable[[str], str]]:
    """Run one task a cron decision created (`definition`) on a local worker that follows
    generic-worker's rules: its task environment stood in by `shim_env`, its repository the
    bundled fleet's. Its status, and a reader of its artifacts' text."""
    from cib_decision.devworker.run import WorkerSettings
    from cib_decision.devworker.worker import DevWorker

    definition = copy.deepcopy(definition)
    queue = taskcluster.Queue(dev_taskcluster.options())
    env_id = slugid.nice()  # the task environment, as its task would have left it
    queue.createTask(env_id, new_task(taskQueueId="cib-3/elsewhere",
                                      payload={"command": [["true"]], "maxRunTime": 1}))
    (mount,) = definition["payload"]["mounts"]
    dev_taskcluster.resolve_task(env_id, artifacts={mount["content"]["artifact"]: shim_env()})
    mount["content"]["taskId"] = env_id
    repository, head = fleet_repository(tmp_path / "repo")
    definition["payload"]["env"].update(CIB_HEAD_REPOSITORY=repository, CIB_HEAD_REV=head)
    definition.update(dependencies=[env_id], routes=[], taskGroupId=env_id)
    task_id = slugid.nice()
    task_queue = f"{definition['provisionerId']}/{definition['workerType']}"
    queue.createTask(task_id, definition)
    worker = DevWorker(WorkerSettings(
        root_url=dev_taskcluster.root_url,
        credentials=dev_taskcluster.worker_credentials(task_queue, "local", "w1"),
        task_queue_id=task_queue, worker_group="local", worker_id="w1",
        tasks_dir=tmp_path / "tasks", downloads_dir=tmp_path / "downloads")).start()
    try:
        status = dev_taskcluster.wait_for_task_group(env_id, timeout=120)[task_id]
    finally:
        worker.stop()
    artifacts = dev_taskcluster.artifacts(task_id)

    def content(name: str) -> str:
        data = artifacts[name]["content"]
        return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()

    return status, content
