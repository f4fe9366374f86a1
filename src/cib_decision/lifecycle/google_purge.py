"""The Google side of `cib purge`: list the builders' instances and disks in the zones of the
config's Google targets in one region as `Resource`s, and delete what `purge.select` chose.

Google builders (`images.google_machine`, and the smoke-test runner that launches the same way)
label their instance and its disks with the builders' labels (`labels_of(builder_tags)`:
`cib-builder=true`, `cib-key`, `cib-build-task-id`). Listing asks Compute only for what carries
`cib-builder=true` (`filter`, every page) in each `(project, zone)` the purge covers: the
`project` and `zone` of each Google target of the config in the region. `purge.select` checks
the label again; nothing else is touched.

Labels are lower case, and a Taskcluster task id is not: the build task's id is read back from
the instance's description (`cib builder of <name> (task <id>)`), which keeps it as it is, when
it matches the label; a disk takes the task of the instance using it. A resource whose task
cannot be told that way is judged by its age alone (Compute gives every instance and disk a
creation time).

A `TERMINATED` builder is orphaned (the bootstrap powers the builder off when it is done); its
disks are used by it and go after it. An instance deletion takes its auto-delete disks with
it, so a disk already gone is fine. Deletions are waited on through their operations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..clouds.google import Google, Operation
from ..config import Fleet, normalise_region
from ..errors import CibError
from ..images.progress import Progress
from ..manifest import parse_time
from .purge import BUILDER_MARKS, TASK_TAG, Resource

CLOUD = "google"
BUILDER_LABEL = BUILDER_MARKS[CLOUD][0]  # label_key("cib:builder")
TASK_LABEL = "cib-build-task-id"       # label_key("cib:build-task-id")
OURS = f'labels.{BUILDER_LABEL} = "true"'
DELETE_TIMEOUT = 30 * 60.0
_TASK_IN_DESCRIPTION = re.compile(r"\((?:build )?task ([A-Za-z0-9_-]{22})\)")
_PATH = re.compile(r"projects/([^/]+)/zones/([^/]+)/(instances|disks)/([^/]+)$")


def places(fleet: Fleet, region: str) -> list[tuple[str, str]]:
    """The `(project, zone)` of each Google target of the config in `region` (a target
    without a project or zone builds nowhere: `google_machine` refuses it)."""
    wanted = normalise_region(region)
    return sorted({(t.project, t.zone) for k in fleet.keys.values() for t in k.targets
                   if t.platform == CLOUD and normalise_region(t.region) == wanted
                   and t.project and t.zone})


def _created(item: dict[str, Any]) -> datetime | None:
    try:
        return parse_time(str(item.get("creationTimestamp") or ""))
    except ValueError:
        return None


def path_of(link: str) -> str | None:
    """`projects/<p>/zones/<z>/<instances|disks>/<name>` of a self link (or of that path)."""
    match = _PATH.search(link or "")
    return "/".join(("projects", match.group(1), "zones", match.group(2), match.group(3),
                     match.group(4))) if match else None


def build_task(item: dict[str, Any]) -> str | None:
    """The build task of an instance or image: the task id of its description (`... (task
    <id>)`, `... (build task <id>)`) that its `cib-build-task-id` label is the lower case of
    (pure)."""
    labelled = (item.get("labels") or {}).get(TASK_LABEL)
    match = _TASK_IN_DESCRIPTION.search(str(item.get("description") or ""))
    return match.group(1) if match and labelled and match.group(1).lower() == labelled \
        else None


def _tags(item: dict[str, Any], task: str | None) -> dict[str, str]:
    tags = dict(item.get("labels") or {})
    if task:
        tags[TASK_TAG] = task
    return tags


def list_zone(google: Google, project: str, zone: str) -> list[Resource]:
    """The builders' instances (with their status) and disks (with their users) of a zone."""
    where = f"{project}/{zone}"
    resources, tasks = [], {}
    for instance in google.instances(project, zone, OURS):
        rid = f"projects/{project}/zones/{zone}/instances/{instance['name']}"
        tasks[rid] = build_task(instance)
        resources.append(Resource(CLOUD, "instance", rid, where,
                                  str(instance.get("status") or "").lower(),
                                  _tags(instance, tasks[rid]), _created(instance),
                                  name=instance["name"]))
    for disk in google.disks(project, zone, OURS):
        users = tuple(sorted({p for p in map(path_of, disk.get("users") or ()) if p}))
        task = next((tasks[u] for u in users if tasks.get(u)), None)
        resources.append(Resource(CLOUD, "disk", f"projects/{project}/zones/{zone}/disks/"
                                  f"{disk['name']}", where,
                                  "attached" if users else "unattached", _tags(disk, task),
                                  _created(disk), users, disk["name"]))
    return resources


class GooglePurge:
    """Lists and removes builder instances and disks (`purge.Cloud`)."""

    def __init__(self, google: Google, progress: Progress, *, interval: float = 15.0,
                 timeout: float = DELETE_TIMEOUT):
        self.google, self.progress = google, progress
        self.interval, self.timeout = interval, timeout
        self.operations: dict[str, Operation | None] = {}

    @classmethod
    def from_environment(cls, progress: Progress, **options: Any) -> GooglePurge:
        """With the credentials and endpoints of the environment (`Google.from_environment`)."""
        return cls(Google.from_environment(), progress, **options)

    def list_resources(self, where: Iterable[tuple[str, str]]) -> list[Resource]:
        return [r for project, zone in where for r in list_zone(self.google, project, zone)]

    def remove(self, resource: Resource) -> None:
        match = _PATH.search(resource.id)
        if match is None or resource.kind not in ("instance", "disk"):
            raise CibError(f"cannot remove a {resource.kind} on Google")
        project, zone, _, name = match.groups()
        if resource.kind == "instance":
            self.operations[resource.id] = self.google.delete_instance(project, zone, name)
        elif self.google.disk(project, zone, name) is None:
            self.operations[resource.id] = None  # gone with its instance (autoDelete)
        else:
            self.operations[resource.id] = self.google.delete_disk(project, zone, name)

    def wait_removed(self, resources: Sequence[Resource]) -> dict[str, CibError]:
        """Step each deletion's operation to its end; Compute's error of each one that
        failed."""
        failures: dict[str, CibError] = {}
        for resource in resources:
            operation = self.operations.pop(resource.id, None)
            if operation is None:
                continue
            what = f"deletion of {resource.kind} {resource.label}"
            try:
                self.progress.wait(what, lambda op=operation, w=what:
                                   self.google.operation_state(op, w), done={"DONE"},
                                   timeout=self.timeout, interval=self.interval)
            except CibError as exc:
                failures[resource.id] = exc
        return failures
