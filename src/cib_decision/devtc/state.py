"""What the local Taskcluster remembers: tasks and their runs, task groups, artifacts, objects,
index entries, worker pools and their launch configs, secrets. Records only; the services' rules
live in `queue.py`, `runs.py`, `claims.py`, `artifacts.py`, `objects.py`, `index.py`,
`workermanager.py` and `secrets.py`."""

from __future__ import annotations

import copy
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import dates


@dataclass
class TaskRecord:
    """A task: its definition (as `queue.task` returns it) and its status fields."""

    task_id: str
    definition: dict[str, Any]
    retries_left: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    blocked_by: set[str] = field(default_factory=set)
    queued: int = 0  # when its latest pending run entered the pending queue (a sequence number)

    def state(self) -> str:
        """The state of the latest run, or `unscheduled` without runs."""
        return self.runs[-1]["state"] if self.runs else "unscheduled"

    def status(self) -> dict[str, Any]:
        """The task status structure (`task-status.json`)."""
        d = self.definition
        return {
            "taskId": self.task_id,
            "provisionerId": d["provisionerId"],
            "workerType": d["workerType"],
            "taskQueueId": d["taskQueueId"],
            "schedulerId": d["schedulerId"],
            "projectId": d["projectId"],
            "taskGroupId": d["taskGroupId"],
            "priority": d["priority"],
            "deadline": d["deadline"],
            "expires": d["expires"],
            "retriesLeft": self.retries_left,
            "state": self.state(),
            "runs": copy.deepcopy(self.runs),
        }


@dataclass
class TaskGroup:
    """A task group: one schedulerId for all its tasks."""

    task_group_id: str
    scheduler_id: str
    expires: datetime


@dataclass
class Artifact:
    """An artifact of one run, as the queue's `queue_artifacts` table holds it. `details` are
    the storage type's (`{"bucket", "prefix"}` for s3, `{"uploadId"}` for an unfinished object,
    `{"url"}`, `{"artifact"}`, `{"reason", "message"}`); `content` is what was put at an s3
    artifact's URL (the local Taskcluster is its S3)."""

    name: str
    storage_type: str
    content_type: str
    expires: datetime
    details: dict[str, Any] = field(default_factory=dict)
    present: bool = True
    content_length: int | None = None
    content: bytes | None = None
    content_encoding: str | None = None  # as the PUT of the data gave it (S3 keeps it)

    def serialize(self) -> dict[str, Any]:
        """The `artifact-response.json` shape (`artifactUtils.serialize`)."""
        body: dict[str, Any] = {"storageType": self.storage_type, "name": self.name,
                                "expires": dates.to_json(self.expires),
                                "contentType": self.content_type}
        if self.content_length is not None:
            body["contentLength"] = self.content_length
        return body


@dataclass
class StoredObject:
    """An object of the object service: its row (`upload_id` is None once the upload is
    finished), its hashes, and what its backend holds (`content`, None until uploaded).
    `put_signed` is what the last `putUrl` was signed for: content type, length, expiry."""

    name: str
    project_id: str
    upload_id: str | None
    upload_expires: datetime | None
    expires: datetime
    hashes: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    content_type: str = "application/binary"
    content_encoding: str | None = None
    put_signed: tuple[str, int, datetime] | None = None


@dataclass
class IndexEntry:
    """A task indexed at a path (`namespace.name`)."""

    path: str
    task_id: str
    rank: float
    data: dict[str, Any]
    expires: datetime

    def serialize(self) -> dict[str, Any]:
        """The `indexed-task-response.json` shape."""
        return {"namespace": self.path, "taskId": self.task_id, "rank": self.rank,
                "data": copy.deepcopy(self.data), "expires": dates.to_json(self.expires)}


@dataclass
class LaunchConfig:
    """One launch config of a worker pool, kept (archived) when it leaves the pool's config."""

    launch_config_id: str
    configuration: Any
    is_archived: bool
    created: datetime
    last_modified: datetime


@dataclass
class WorkerPool:
    """A worker pool; `config` is stored without `launchConfigs`, which live in
    `launch_configs` (as worker-manager's database keeps them)."""

    worker_pool_id: str
    provider_id: str
    description: str
    config: dict[str, Any]
    owner: str
    email_on_error: bool
    created: datetime
    last_modified: datetime
    previous_provider_ids: list[str] = field(default_factory=list)
    launch_configs: dict[str, LaunchConfig] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def served_config(self) -> dict[str, Any]:
        """The config as worker-manager serves it: the active launch configs put back, each
        with its `workerManager.launchConfigId`."""
        config = copy.deepcopy(self.config)
        active = [self.launch_configs[i] for i in self.order
                  if not self.launch_configs[i].is_archived]
        if active:
            served = []
            for lc in active:
                item = copy.deepcopy(lc.configuration)
                if isinstance(item, dict):
                    item["workerManager"] = {**item.get("workerManager", {}),
                                             "launchConfigId": lc.launch_config_id}
                served.append(item)
            config["launchConfigs"] = served
        return config

    def serialize(self) -> dict[str, Any]:
        """The `worker-pool-full.json` shape (no workers here, so every count is 0)."""
        counts = ("currentCapacity", "requestedCount", "runningCount", "stoppingCount",
                  "stoppedCount", "requestedCapacity", "runningCapacity", "stoppingCapacity",
                  "stoppedCapacity")
        return {
            "workerPoolId": self.worker_pool_id,
            "providerId": self.provider_id,
            "description": self.description,
            "created": dates.to_json(self.created),
            "lastModified": dates.to_json(self.last_modified),
            "config": self.served_config(),
            "owner": self.owner,
            "emailOnError": self.email_on_error,
            **dict.fromkeys(counts, 0),
        }


@dataclass(frozen=True)
class Secret:
    """A secret of the secrets service: its value (a JSON object) and when it stops being
    readable."""

    name: str
    value: dict[str, Any]
    expires: datetime

    def serialize(self) -> dict[str, Any]:
        """The `secret.json` shape `secrets.get` answers."""
        return {"secret": copy.deepcopy(self.value), "expires": dates.to_json(self.expires)}


class State:
    """Everything the services remember; hold `lock` while reading or changing it. `changed`
    (on `lock`) is notified whenever a run is added or resolved: long-polling `claimWork` and
    waiting harnesses wait on it without holding the lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.sequence = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self.tasks: dict[str, TaskRecord] = {}
            self.dependents: dict[str, list[str]] = {}
            self.groups: dict[str, TaskGroup] = {}
            self.artifacts: dict[tuple[str, int, str], Artifact] = {}
            self.objects: dict[str, StoredObject] = {}
            self.index: dict[str, IndexEntry] = {}
            self.pools: dict[str, WorkerPool] = {}
            self.secrets: dict[str, Secret] = {}
            # messages the notify service would send, in order (notify.py)
            self.notifications: list[dict[str, Any]] = []
