"""The claim loop (`workers/generic-worker/main.go:RunWorker`): claim work for one task queue
with the worker's credentials, run each task (`run.TaskRun`), and on shutdown abort what runs
with `worker-shutdown` (its artifacts and logs still uploaded)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import taskcluster

from .run import TaskError, TaskRun, WorkerSettings


class DevWorker:
    """A worker for `settings.task_queue_id`; `start()` runs the loop in a thread, `stop()`
    ends it (graceful: what runs is aborted as a worker shutdown)."""

    def __init__(self, settings: WorkerSettings, log: Callable[[str], None] | None = None,
                 claim_interval: float = 0.2):
        self.settings = settings
        self.log = log or (lambda line: None)
        self.claim_interval = claim_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: list[TaskRun] = []
        self._lock = threading.Lock()
        self.resolved: list[tuple[str, int, str]] = []  # (taskId, runId, state)
        self.caches = settings.new_caches()

    def start(self) -> DevWorker:
        self._thread = threading.Thread(target=self.run_forever, daemon=True,
                                        name=f"worker-{self.settings.task_queue_id}")
        self._thread.start()
        return self

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        with self._lock:
            running = list(self._running)
        for task in running:
            task.abort(TaskError("worker shutdown", "exception", "worker-shutdown"))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    def run_forever(self) -> None:
        queue = taskcluster.Queue({**self.settings.options, "maxRetries": 2})
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = queue.claimWork(self.settings.task_queue_id, {
                    "tasks": self.settings.capacity, "workerGroup": self.settings.worker_group,
                    "workerId": self.settings.worker_id})
            except taskcluster.TaskclusterFailure as problem:
                if self._stop.is_set():
                    return
                self.log(f"Could not claim work. {problem}")
                self._stop.wait(1)
                continue
            for claim in reply.get("tasks", []):
                self.run_claim(claim)
            self._stop.wait(max(0.0, self.claim_interval - (time.monotonic() - started)))

    def run_claim(self, claim: dict[str, Any]) -> str:
        """Run one claimed task to its resolution."""
        task = TaskRun(self.settings, claim, self.log, self.caches)
        with self._lock:
            self._running.append(task)
        self.log(f"Running task {self.settings.root_url}/tasks/{task.task_id}/runs/"
                 f"{task.run_id}")
        try:
            if self._stop.is_set():
                task.abort(TaskError("worker shutdown", "exception", "worker-shutdown"))
            state = task.run()
        finally:
            with self._lock:
                self._running.remove(task)
        self.resolved.append((task.task_id, task.run_id, state))
        self.log(f"{task.task_id} run {task.run_id}: {state}")
        self._clean_up(task)
        return state

    def _clean_up(self, task: TaskRun) -> None:
        """generic-worker's purge of finished task directories (`cleanUpTaskDirs`), keeping
        a copy of the log in `logs_dir` when one is set."""
        if self.settings.logs_dir is not None and task.backing_log.is_file():
            self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(task.backing_log,
                            self.settings.logs_dir / f"{task.task_id}-{task.run_id}.log")
        if self.settings.clean_up_task_dirs:
            shutil.rmtree(task.task_dir, ignore_errors=True)
