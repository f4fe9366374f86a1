"""What tests of the local pipeline check on a played event: every task completed with its
declared artifacts, the end of each unfinished task's log, the worker that ran a task."""

from __future__ import annotations

import shutil

import pytest

from cib_decision.devpipeline.pipeline import EventResult, LocalPipeline, summary
from cib_decision.devtc.testing import require_schemas
from cib_decision.errors import CibError

from .conftest import ROOT


def require_pipeline_tools(clones_this_checkout: bool = True) -> None:
    """Skip, saying why, where a local pipeline cannot run: the genuine Taskcluster schemas,
    qemu-img (the stand-in disk sources) and, when it plays this checkout, its git history."""
    require_schemas()
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils; .ci/run installs it)")
    if clones_this_checkout and not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the local pipeline clones the repository")


def explain(pipeline: LocalPipeline, result: EventResult) -> str:
    """The summary and the end of each unfinished task's log."""
    text = [summary(result)]
    for task in result.tasks:
        if task.ok:
            continue
        try:
            log = pipeline.artifact(task.task_id, "public/logs/live_backing.log")
        except CibError:
            log = b""
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
