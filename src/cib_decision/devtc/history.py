"""A past for the local Taskcluster: tasks whose runs happened at chosen times (tests and demos
of `cib stats`).

The queue only records runs as they happen, on its own clock; a history of months cannot be
played through it. `seed` writes finished tasks straight into the state the services serve
(the same `TaskRecord`, task group, s3 artifact and index records, indexed by the index's own
`index_completed_task`), so everything read back goes through the genuine API handlers.
`generate` makes a random but reproducible history of decisions from task templates (the
definitions `cib plan --format json` prints).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import dates
from .artifacts import store_s3
from .harness import DevTaskcluster
from .index import index_completed_task
from .state import TaskGroup, TaskRecord

DECISION_QUEUE = "cib-3/decision"


@dataclass
class SeededTask:
    """A task as it should stand: its definition (a createTask body; `taskGroupId`, `created`,
    `deadline` and `expires` included), its runs (`queue.status` run objects, dates as text)
    and the JSON artifacts of its latest run."""

    task_id: str
    definition: dict[str, Any]
    runs: list[dict[str, Any]]
    artifacts: dict[str, Any] = field(default_factory=dict)


def _full_definition(body: dict[str, Any]) -> dict[str, Any]:
    """The definition as the queue stores it (defaults filled in, dates normalised)."""
    d = copy.deepcopy(body)
    if "taskQueueId" in d:
        d["provisionerId"], d["workerType"] = d["taskQueueId"].split("/", 1)
    else:
        d["taskQueueId"] = f"{d['provisionerId']}/{d['workerType']}"
    # a plan's definitions leave the scheduler to the decision (`cib-level-<level>`)
    for key, default in (("schedulerId", "cib-level-3"), ("projectId", "none"),
                         ("dependencies", []),
                         ("requires", "all-completed"), ("routes", []), ("priority", "lowest"),
                         ("retries", 5), ("scopes", []), ("payload", {}), ("tags", {}),
                         ("extra", {})):
        d.setdefault(key, default)
    for key in ("created", "deadline", "expires"):
        d[key] = dates.normalise(d[key])
    return d


def seed(tc: DevTaskcluster, tasks: Iterable[SeededTask]) -> None:
    """Store `tasks` in the running local Taskcluster as the queue would hold them once their
    runs were over: task groups, runs, the latest run's artifacts (s3), and the index entries
    of completed tasks. Replaces tasks of the same id."""
    ctx = tc.ctx
    if ctx is None:
        raise RuntimeError("the local Taskcluster is not running")
    with ctx.state.lock:
        for task in tasks:
            definition = _full_definition(task.definition)
            group_id, expires = definition["taskGroupId"], dates.parse(definition["expires"])
            group = ctx.state.groups.setdefault(
                group_id, TaskGroup(group_id, definition["schedulerId"], expires))
            group.expires = max(group.expires, expires)
            record = TaskRecord(task.task_id, definition, retries_left=max(
                0, definition["retries"] - sum(r["reasonCreated"] != "scheduled"
                                               for r in task.runs)),
                runs=copy.deepcopy(task.runs))
            ctx.state.tasks[task.task_id] = record
            for name, content in task.artifacts.items():
                store_s3(ctx, record, len(task.runs) - 1, name,
                         json.dumps(content).encode(), "application/json")
            if record.state() == "completed":
                index_completed_task(ctx, task.task_id)


# --- a random history ------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """How the generated builds behave: minutes a build takes per OS family (`win` keys are
    the Windows ones), by how much they grow per week, the failure rate per region (`default`
    for the rest), the share of builds that need a retry, and how long runs wait."""

    minutes: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "win": (70.0, 25.0), "other": (18.0, 6.0), "disk": (12.0, 4.0)})
    growth_per_week: float = 0.06
    failure_rates: dict[str, float] = field(default_factory=lambda: {
        "azure/westus2": 0.25, "amazon/us-east-1": 0.04, "default": 0.08})
    retry_rate: float = 0.1
    wait_minutes: tuple[float, float] = (0.5, 6.0)
    copy_minutes: tuple[float, float] = (4.0, 15.0)


def _stamp(value: datetime) -> str:
    return dates.to_json(value)


def _slug(rng: random.Random) -> str:
    import base64

    raw = bytearray(rng.getrandbits(8) for _ in range(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    raw[0] &= 0x7F  # slugid.nice: never starting with `-`
    return base64.urlsafe_b64encode(bytes(raw)).decode()[:22]


def decision_definition(project: str, revision: str, created: datetime) -> dict[str, Any]:
    """A push decision task's definition as `.taskcluster.yml` renders it (the fields the
    history needs: queue, routes, tags, times)."""
    return {
        "taskQueueId": DECISION_QUEUE, "schedulerId": "cib-level-3",
        "created": _stamp(created), "deadline": _stamp(created + timedelta(days=1)),
        "expires": _stamp(created + timedelta(days=366)), "priority": "very-low",
        "retries": 5,
        "routes": ["checks", f"index.cib.v2.{project}.latest.taskgraph.decision",
                   f"index.cib.v2.{project}.revision.{revision}.taskgraph.decision"],
        "tags": {"kind": "decision-task"},
        "metadata": {"name": "Decision task (github-push)", "owner": "dev@example.com",
                     "description": f"cib-decision for {project} at {revision}",
                     "source": f"https://github.com/example/{project}/raw/{revision}/"
                               ".taskcluster.yml"},
        "payload": {},
    }


def _family(template: dict[str, Any]) -> str:
    if template["tags"].get("kind") == "disk-image":
        return "disk"
    return "win" if "win" in template["tags"].get("label", "") else "other"


def _target_of(template: dict[str, Any]) -> str:
    from ..stats import key_and_target

    found = key_and_target(template)
    return found[2] if found else ""


def _runs(rng: random.Random, model: Model, start: datetime, minutes: float, region: str
          ) -> list[dict[str, Any]]:
    """A build's runs from `start`: a retried exception first with the model's retry rate,
    then a final run that fails with the region's failure rate or completes."""
    runs: list[dict[str, Any]] = []
    scheduled = start
    if rng.random() < model.retry_rate:
        started = scheduled + timedelta(minutes=rng.uniform(*model.wait_minutes))
        resolved = started + timedelta(minutes=rng.uniform(1, minutes / 2))
        reason = rng.choice(("worker-shutdown", "intermittent-task"))
        runs.append({"runId": 0, "state": "exception", "reasonCreated": "scheduled",
                     "reasonResolved": reason, "scheduled": _stamp(scheduled),
                     "started": _stamp(started), "resolved": _stamp(resolved),
                     "workerGroup": "dev", "workerId": "w1", "takenUntil": _stamp(resolved)})
        scheduled = resolved
    fails = rng.random() < model.failure_rates.get(region, model.failure_rates["default"])
    started = scheduled + timedelta(minutes=rng.uniform(*model.wait_minutes))
    took = timedelta(minutes=minutes * (rng.uniform(0.2, 0.8) if fails else 1))
    resolved = started + took
    retry_reason = {"worker-shutdown": "retry", "intermittent-task": "task-retry"}
    runs.append({"runId": len(runs), "state": "failed" if fails else "completed",
                 "reasonCreated": retry_reason[runs[0]["reasonResolved"]] if runs
                 else "scheduled",
                 "reasonResolved": "failed" if fails else "completed",
                 "scheduled": _stamp(scheduled), "started": _stamp(started),
                 "resolved": _stamp(resolved), "workerGroup": "dev", "workerId": "w1",
                 "takenUntil": _stamp(resolved)})
    return runs


def generate(templates: Sequence[dict[str, Any]], decisions: int, end: datetime,
             project: str = "images", seed_value: int = 1, days: int = 70,
             model: Model | None = None) -> list[SeededTask]:
    """A reproducible history of `decisions` push decisions spread over the `days` before
    `end`, each with a random selection of the build tasks in `templates` (disk-image and
    machine-image definitions) whose runs follow `model`. Every few decisions one build never
    starts (behind a failed disk image, it ends `deadline-exceeded`)."""
    model = model or Model()
    rng = random.Random(seed_value)
    builds = sorted((t for t in templates
                     if t["tags"].get("kind") in ("disk-image", "machine-image")),
                    key=lambda t: t["tags"].get("label", ""))
    first = end - timedelta(days=days)
    step = timedelta(days=days) / decisions
    history: list[SeededTask] = []
    for number in range(decisions):
        created = first + step * number + timedelta(minutes=rng.uniform(0, 30))
        revision = hashlib.sha1(f"{seed_value}-{number}".encode()).hexdigest()
        decision_id = _slug(rng)
        decided = created + timedelta(minutes=2)
        history.append(SeededTask(decision_id, {
            **decision_definition(project, revision, created), "taskGroupId": decision_id},
            [{"runId": 0, "state": "completed", "reasonCreated": "scheduled",
              "reasonResolved": "completed", "scheduled": _stamp(created),
              "started": _stamp(created + timedelta(seconds=20)), "resolved": _stamp(decided),
              "workerGroup": "dev", "workerId": "decision", "takenUntil": _stamp(decided)}]))
        weeks = (created - first).days / 7
        for template in rng.sample(builds, rng.randint(1, min(4, len(builds)))):
            mean, spread = model.minutes[_family(template)]
            minutes = max(1.0, rng.gauss(mean, spread)) * (1 + model.growth_per_week * weeks)
            task_id = _slug(rng)
            definition = copy.deepcopy(template)
            definition.update(taskGroupId=decision_id, dependencies=[decision_id],
                              created=_stamp(created), deadline=_stamp(created + timedelta(
                                  days=1)), expires=_stamp(created + timedelta(days=366)))
            target = _target_of(template)
            if number % 25 == 24:  # never started: resolved at its deadline
                deadline = created + timedelta(days=1, minutes=1)
                runs = [{"runId": 0, "state": "exception", "reasonCreated": "exception",
                         "reasonResolved": "deadline-exceeded", "resolved": _stamp(deadline),
                         "scheduled": _stamp(deadline)}]
                history.append(SeededTask(task_id, definition, runs))
                continue
            runs = _runs(rng, model, decided, minutes, target)
            artifacts: dict[str, Any] = {}
            if runs[-1]["state"] == "completed" and template["tags"]["kind"] == "machine-image":
                record: dict[str, Any] = {"key": template["tags"].get("label", ""),
                                          "target": target}
                if target.startswith("amazon/"):
                    record["copy_seconds"] = {
                        region: round(rng.uniform(*model.copy_minutes) * 60, 1)
                        for region in ("eu-central-1", "us-west-2") if region not in target}
                artifacts["public/machine-image.json"] = record
            history.append(SeededTask(task_id, definition, runs, artifacts))
    return history
