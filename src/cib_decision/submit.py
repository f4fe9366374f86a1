"""Submit a task graph to the queue: concurrently, in dependency order, retried, idempotent.

Every task is created only after the tasks it depends on (the queue refuses a task whose
dependencies do not exist). Server errors (5xx) and lost connections are retried with the exact
same body, so a create whose answer was lost is answered 200 the second time. A 409 means the
task id is taken: when the stored task is ours (the same definition but for the timestamps the
previous run resolved, as after a decision task is rerun) it counts as already created; anything
else is a real conflict and fails the submission. Client errors (400, 401, 403) are not retried.
"""

from __future__ import annotations

import logging
import queue as queues
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskcluster.exceptions import (
    TaskclusterAuthFailure,
    TaskclusterRestFailure,
)

from .errors import CibError
from .tc import Queue, retrying, status_of

log = logging.getLogger(__name__)

CONCURRENCY = 50
ATTEMPTS = 10


@dataclass(frozen=True)
class PendingTask:
    """One task to create: its id, label, definition (timestamps resolved) and the paths in the
    definition that hold timestamps (allowed to differ from a previous run's)."""

    task_id: str
    label: str
    definition: dict[str, Any]
    timestamp_paths: frozenset[tuple[str | int, ...]] = frozenset()

    @property
    def dependencies(self) -> list[str]:
        return list(self.definition.get("dependencies", []))


@dataclass
class SubmitReport:
    """What a submission did."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_attempted: list[str] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted


class Progress(Protocol):
    """Told about each task as it is settled."""

    def start(self, total: int) -> None: ...

    def advance(self, label: str, outcome: str) -> None: ...

    def finish(self, report: SubmitReport) -> None: ...


class LogProgress:
    """Plain log lines for CI logs: one every `every` tasks (and failures), and a summary."""

    def __init__(self, every: int = 0):
        self.every = every
        self.done = 0
        self.total = 0

    def start(self, total: int) -> None:
        self.total = total
        self.every = self.every or max(1, total // 10)
        log.info("submitting %d tasks", total)

    def advance(self, label: str, outcome: str) -> None:
        self.done += 1
        if outcome == "failed":
            log.error("%s: failed", label)
        if self.done % self.every == 0 or self.done == self.total:
            log.info("submitted %d/%d tasks", self.done, self.total)

    def finish(self, report: SubmitReport) -> None:
        log.info("%d created, %d already existed, %d failed, %d not attempted, %d retries, "
                 "%.1f s", len(report.created), len(report.existing), len(report.failed),
                 len(report.not_attempted), report.retries, report.seconds)


def first_difference(stored: Mapping[str, Any], ours: PendingTask) -> str | None:
    """The first path (`payload.env.X`) where the queue's stored definition differs from
    `ours`, or None when it is `ours` but for timestamps: every field we send is equal, except
    at the timestamp paths (fields we leave out are the queue's defaults)."""
    def walk(a: Any, b: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
        if path in ours.timestamp_paths:
            return None
        if isinstance(b, dict) and isinstance(a, dict):
            for key, value in b.items():
                if key not in a:
                    return (*path, key)
                if (found := walk(a[key], value, (*path, key))) is not None:
                    return found
            return None
        if isinstance(b, list) and isinstance(a, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                if (found := walk(x, y, (*path, index))) is not None:
                    return found
            return None
        return None if a == b else path

    found = walk(stored, ours.definition, ())
    return None if found is None else ".".join(map(str, found)) or "(the whole task)"


def same_task(stored: Mapping[str, Any], ours: PendingTask) -> bool:
    """True when the queue's stored definition is `ours` but for timestamps."""
    return first_difference(stored, ours) is None


class Submitter:
    """Creates tasks with a queue client that does not retry by itself (`maxRetries: 0`)."""

    def __init__(self, queue: Queue, *, concurrency: int = CONCURRENCY,
                 attempts: int = ATTEMPTS, backoff: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep):
        self.queue = _pooled(queue, concurrency)
        self.concurrency = concurrency
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._lock = threading.Lock()
        self._retries = 0

    def call(self, what: str, function: Callable[[], Any]) -> Any:
        """Call `function`, retrying 5xx answers and connection failures (`tc.retrying`)."""

        def retried(error: BaseException, attempt: int) -> None:
            with self._lock:
                self._retries += 1
            log.debug("%s: %s, retrying", what, status_of(error) or "connection failed")

        return retrying(function, attempts=self.attempts, backoff=self.backoff,
                        sleep=self.sleep, retried=retried)

    def create(self, task: PendingTask) -> str:
        """Create one task: "created", or "existing" when it was created before."""
        try:
            self.call(task.label, lambda: self.queue.createTask(task.task_id, task.definition))
            return "created"
        except TaskclusterRestFailure as error:
            if error.status_code != 409:
                raise
        stored = self.call(task.label, lambda: self.queue.task(task.task_id))
        difference = first_difference(stored, task)
        if difference is None:
            return "existing"
        raise CibError(f"task id {task.task_id} is already used by a different task (it "
                       f"differs at {difference}; did the graph change between runs of this "
                       "decision task?)")

    def submit(self, tasks: Iterable[PendingTask], progress: Progress | None = None
               ) -> SubmitReport:
        """Create every task, each after its dependencies within `tasks`. A task whose
        dependency failed is not attempted."""
        started = time.monotonic()
        tasks = {task.task_id: task for task in tasks}
        progress = progress or LogProgress()
        progress.start(len(tasks))
        report = SubmitReport()
        waiting_on: dict[str, set[str]] = {
            task_id: {d for d in task.dependencies if d in tasks}
            for task_id, task in tasks.items()}
        dependents: dict[str, list[str]] = {task_id: [] for task_id in tasks}
        for task_id, deps in waiting_on.items():
            for dep in deps:
                dependents[dep].append(task_id)
        blocked: set[str] = set()

        with futures.ThreadPoolExecutor(self.concurrency) as pool:
            running: dict[futures.Future[str], str] = {}
            # Each answered create is put here: waiting on it is one lock, where waiting on
            # all running futures (`futures.wait`) installed a waiter in each of the 50 every
            # time, most of the submitting thread's CPU.
            answered: queues.SimpleQueue[futures.Future[str]] = queues.SimpleQueue()

            def launch(task_id: str) -> None:
                future = pool.submit(self.create, tasks[task_id])
                running[future] = task_id
                future.add_done_callback(answered.put)

            def settle(future: futures.Future[str]) -> None:
                nonlocal blocked
                task_id = running.pop(future)
                label = tasks[task_id].label
                error = future.exception()
                if error is None:
                    (report.created if future.result() == "created"
                     else report.existing).append(label)
                    progress.advance(label, future.result())
                    for child in dependents[task_id]:
                        waiting_on[child].discard(task_id)
                        if not waiting_on[child] and child not in blocked:
                            launch(child)
                else:
                    report.failed[label] = _describe(error)
                    progress.advance(label, "failed")
                    blocked |= _descendants(task_id, dependents)

            for task_id, deps in waiting_on.items():
                if not deps:
                    launch(task_id)
            try:
                while running:
                    settle(answered.get())
            except KeyboardInterrupt as interrupt:  # SIGINT, or SIGTERM (cli.Terminated)
                raise self._interrupted(interrupt, pool, running, tasks, report) from None
        report.not_attempted = sorted(tasks[t].label for t in blocked)
        report.retries = self._retries
        report.seconds = time.monotonic() - started
        progress.finish(report)
        return report


    @staticmethod
    def _interrupted(interrupt: KeyboardInterrupt, pool: futures.ThreadPoolExecutor,
                     running: Mapping[futures.Future[str], str],
                     tasks: Mapping[str, PendingTask], report: SubmitReport
                     ) -> SubmissionInterrupted:
        """Stop at once: nothing queued starts, the requests already sent end (their tasks
        may exist); what exists is counted from the answers."""
        pool.shutdown(wait=False, cancel_futures=True)
        sent = [future for future in running if not future.cancelled()]
        futures.wait(sent, timeout=30)
        created = len(report.created) + sum(
            1 for f in sent if f.done() and not f.cancelled() and f.exception() is None
            and f.result() == "created")
        existing = len(report.existing) + sum(
            1 for f in sent if f.done() and not f.cancelled() and f.exception() is None
            and f.result() == "existing")
        unknown = sum(1 for f in sent if not f.done())
        return SubmissionInterrupted(interrupt, len(tasks), created, existing, unknown)


class SubmissionInterrupted(KeyboardInterrupt):
    """Submission stopped by SIGINT or SIGTERM, and what exists of the graph."""

    def __init__(self, interrupt: KeyboardInterrupt, total: int, created: int, existing: int,
                 unknown: int):
        self.signal_name = getattr(interrupt, "signal_name", "SIGINT")
        self.exit_code = getattr(interrupt, "exit_code", 130)
        exists = created + existing
        super().__init__(
            f"interrupted by {self.signal_name} while submitting: {exists} of {total} tasks "
            f"exist ({created} created now, {existing} before)"
            + (f", {unknown} requests unanswered" if unknown else "")
            + "; nothing more was submitted. Rerun the decision task to complete the graph: it "
            "creates the missing tasks under the same task ids and leaves the others.")


def _pooled(queue: Queue, connections: int) -> Queue:
    """A taskcluster client made to keep `connections` connections open (tc.py); any other
    queue (a test's) as it is."""
    from taskcluster.client import BaseClient

    if isinstance(queue, BaseClient):
        from .tc import reuse_connections

        return reuse_connections(queue, connections)
    return queue


def _descendants(task_id: str, dependents: Mapping[str, list[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(dependents[task_id])
    while stack:
        child = stack.pop()
        if child not in found:
            found.add(child)
            stack.extend(dependents[child])
    return found


def _describe(error: BaseException) -> str:
    if isinstance(error, TaskclusterRestFailure | TaskclusterAuthFailure):
        code = error.body.get("code", "") if isinstance(error.body, dict) else ""
        lines = str(error).strip().splitlines()
        return f"{error.status_code} {code}: {lines[0] if lines else ''}"
    return str(error) or type(error).__name__
