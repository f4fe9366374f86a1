"""`cib purge`: what is removed of the resources builds left behind, and the table that says so.

The decisions are pure: the cloud adapters (`aws_purge`, `azure_purge`, `google_purge`) list
resources as
`Resource`s, `select` returns a `Verdict` for each one that is ours and orphaned, and `carry_out`
removes them through the adapter in waves (a builder first, then what it used), returning one
`Outcome` per verdict for `table`.

A resource is removed only when all of these hold:
- it is **ours**: on AWS it carries the builders' `cib:builder=true` tag, on Google their
  `cib-builder=true` label; on Azure it lives in a resource group the config owns (an Azure
  target's `group`), and when worker-manager manages it (tag `managed-by=taskcluster`) only in
  a worker-manager group given `--include-worker-manager`;
- it is **orphaned**: in an orphan state of its kind (`ORPHAN_STATES`: a stopped builder, an
  available volume, a deallocated VM, a NIC attached to no VM, ...) or used only by resources
  removed in the same run (a stopped builder's security group and key pair);
- it is **settled**: the build task named by its `cib:build-task-id` tag is not unscheduled,
  pending or running, and it is at least `min_age` old; a resource the cloud gives no creation
  time for (security groups, NICs, public IPs) is settled only when its build task is resolved
  or gone from the queue, or when everything that used it goes in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TextIO

from ..errors import BuildError, CibError, TransientError
from ..images.progress import duration

BUILDER_TAG = "cib:builder"          # images.aws_machine.builder_tags
# The clouds whose builder resources are told by a tag (a label on Google: `clouds.google.
# labels_of`) and not by their resource group: cloud -> (tag, value, how the table says it).
BUILDER_MARKS = {"amazon": (BUILDER_TAG, "true", "tagged"),
                 "google": ("cib-builder", "true", "labelled")}
TASK_TAG = "cib:build-task-id"
WORKER_MANAGER_TAG = ("managed-by", "taskcluster")  # worker-manager tags the VMs it creates
DEFAULT_MIN_AGE = timedelta(hours=8)  # longer than a machine-image task may run (6 hours)

ACTIVE_TASK_STATES = frozenset({"unscheduled", "pending", "running"})
SETTLED_TASK_STATES = frozenset({"completed", "failed", "exception", "missing"})

# (cloud, kind) -> the states in which a resource of that kind is left over, and why.
ORPHAN_STATES: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("amazon", "instance"): (frozenset({"stopped"}), "stopped builder"),
    ("amazon", "volume"): (frozenset({"available"}), "volume attached to nothing"),
    ("amazon", "key-pair"): (frozenset({"unused"}), "builder key pair no instance uses"),
    ("amazon", "security-group"): (frozenset({"unused"}),
                                   "builder security group nothing uses"),
    ("azure", "vm"): (frozenset({"deallocated"}), "deallocated VM"),
    ("azure", "nic"): (frozenset({"unattached"}), "NIC attached to no VM"),
    ("azure", "public-ip"): (frozenset({"no-address"}), "public IP with no address"),
    ("azure", "disk"): (frozenset({"unattached"}), "disk attached to no VM"),
    ("google", "instance"): (frozenset({"terminated"}), "stopped builder"),
    ("google", "disk"): (frozenset({"unattached"}), "disk attached to no instance"),
}


@dataclass(frozen=True)
class Resource:
    """One cloud resource as the purge sees it. `where` is the region (AWS), the resource
    group (Azure) or `<project>/<zone>` (Google); `used_by` names what uses it (instances,
    VMs, NICs): it is never removed while one of those stays. Azure's ids are ARM ids in lower
    case (ARM compares them so)."""

    cloud: str
    kind: str
    id: str
    where: str
    state: str
    tags: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    used_by: tuple[str, ...] = ()
    name: str = ""  # what the table shows when the id is long (Azure's ARM ids)

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def build_task(self) -> str | None:
        return self.tags.get(TASK_TAG) or None


@dataclass(frozen=True)
class Rules:
    """What makes a resource ours and settled. Group names compare case-insensitively (Azure's
    resource group names do)."""

    now: datetime
    min_age: timedelta = DEFAULT_MIN_AGE
    owned_groups: frozenset[str] = frozenset()
    worker_manager_groups: frozenset[str] = frozenset()
    task_states: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """What becomes of one of our orphaned resources: removed (after the resources in `after`
    are gone) or kept, and why."""

    resource: Resource
    remove: bool
    reason: str
    after: tuple[str, ...] = ()


# --- pure decisions --------------------------------------------------------------------------


def ownership(resource: Resource, rules: Rules) -> str | None:
    """Why `resource` is ours (a few words), or None when it is not and must not be touched."""
    if resource.cloud in BUILDER_MARKS:
        tag, value, word = BUILDER_MARKS[resource.cloud]
        return f"{word} {tag}" if resource.tags.get(tag) == value else None
    group = resource.where.lower()
    managed = resource.tags.get(WORKER_MANAGER_TAG[0]) == WORKER_MANAGER_TAG[1]
    if group in {g.lower() for g in rules.worker_manager_groups}:
        return "worker-manager group"
    if group in {g.lower() for g in rules.owned_groups} and not managed:
        return "owned group"
    return None


def unsettled(resource: Resource, rules: Rules, vouched: bool = False) -> str | None:
    """Why `resource` may still belong to a build in progress, or None when it is settled.
    `vouched`: every user of the resource is removed (so settled); then a missing creation
    time does not keep it."""
    task = resource.build_task
    state = rules.task_states.get(task) if task else None
    if state in ACTIVE_TASK_STATES:
        return f"build task {task} is {state}"
    if resource.created is not None:
        age = rules.now - resource.created
        if age < rules.min_age:
            return f"{duration(max(age.total_seconds(), 0))} old, younger than --min-age"
        return None
    if vouched or state in SETTLED_TASK_STATES:
        return None
    return ("no creation time and " + (f"build task {task} is {state or 'unknown'}" if task
                                       else "no build task tag"))


def select(resources: Iterable[Resource], rules: Rules) -> list[Verdict]:
    """A verdict for each of `resources` that is ours and orphaned (others are left out:
    they are not the purge's business). Sorted by cloud, kind order of `ORPHAN_STATES` and id."""
    ours = {r.id: r for r in resources if ownership(r, rules)}
    removed: dict[str, tuple[str, ...]] = {}
    changed = True
    while changed:  # a resource whose users all go is removed after them (fixpoint)
        changed = False
        for rid, resource in ours.items():
            if rid in removed or not _orphaned(resource, removed):
                continue
            if unsettled(resource, rules, vouched=bool(resource.used_by)):
                continue
            removed[rid] = tuple(u for u in resource.used_by if u in removed)
            changed = True
    verdicts = []
    for rid, resource in ours.items():
        orphan_states, what = ORPHAN_STATES.get((resource.cloud, resource.kind),
                                                (frozenset(), resource.kind))
        why = f"{what} ({ownership(resource, rules)})"
        if rid in removed:
            after = removed[rid]
            reason = (f"used only by {_labels(after, ours)}, removed first" if after
                      and resource.state not in orphan_states else why)
            verdicts.append(Verdict(resource, True, reason, after))
        elif resource.state in orphan_states or any(u in removed for u in resource.used_by):
            users = _labels([u for u in resource.used_by if u not in removed], ours)
            kept = f"in use by {users}" if users else unsettled(
                resource, rules, vouched=bool(resource.used_by))
            verdicts.append(Verdict(resource, False, f"{why}; kept: {kept}"))
    order = {kind: i for i, kind in enumerate(ORPHAN_STATES)}
    return sorted(verdicts, key=lambda v: (v.resource.cloud, order.get(
        (v.resource.cloud, v.resource.kind), 99), v.resource.where, v.resource.id))


def _labels(ids: Iterable[str], known: Mapping[str, Resource]) -> str:
    """Resources by the names the table shows (an ARM id by its last part)."""
    return ", ".join(known[i].label if i in known else i.rsplit("/", 1)[-1] for i in ids)


def _orphaned(resource: Resource, removed: Mapping[str, object]) -> bool:
    orphan_states, _ = ORPHAN_STATES.get((resource.cloud, resource.kind), (frozenset(), ""))
    if resource.used_by:
        return all(u in removed for u in resource.used_by)
    return resource.state in orphan_states


def waves(verdicts: Sequence[Verdict]) -> list[list[Verdict]]:
    """The removals in order: each wave only after the waves before it are gone."""
    pending = [v for v in verdicts if v.remove]
    done: set[str] = set()
    result = []
    while pending:
        wave = [v for v in pending if all(a in done for a in v.after)]
        if not wave:  # a cycle cannot come from `select`; never loop forever on one
            wave = pending
        result.append(wave)
        done.update(v.resource.id for v in wave)
        pending = [v for v in pending if v not in wave]
    return result


# --- carrying it out --------------------------------------------------------------------------


class Cloud(Protocol):
    """What `carry_out` needs of a cloud adapter."""

    def remove(self, resource: Resource) -> None:
        """Start removing `resource` (raises CibError on failure)."""

    def wait_removed(self, resources: Sequence[Resource]) -> Mapping[str, CibError]:
        """Wait until `resources`, whose removal has started, are gone; the error of each
        one that is not, by id."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one verdict's resource: `removed`, `would remove`, `kept` or
    `failed: <why>`; `error` is the failure."""

    verdict: Verdict
    action: str
    error: CibError | None = None


def carry_out(verdicts: Sequence[Verdict], cloud: Cloud, *, dry_run: bool,
              say: Callable[[str], None]) -> list[Outcome]:
    """Remove what the verdicts say, wave by wave (a dependent waits until what used it is
    gone; it is skipped when that failed). Failures are outcomes, not raised."""
    outcomes: dict[str, Outcome] = {v.resource.id: Outcome(v, "kept") for v in verdicts
                                    if not v.remove}
    for wave in waves(verdicts):
        started = []
        for verdict in wave:
            resource = verdict.resource
            failed = [outcomes[a].verdict.resource.label for a in verdict.after
                      if outcomes[a].error is not None]
            if failed:
                outcomes[resource.id] = Outcome(
                    verdict, f"skipped: {', '.join(failed)} was not removed",
                    CibError("prerequisite failed"))
                continue
            if dry_run:
                outcomes[resource.id] = Outcome(verdict, "would remove")
                continue
            try:
                cloud.remove(resource)
            except CibError as exc:
                say(f"warning: could not remove {resource.kind} {resource.label}: {exc}")
                outcomes[resource.id] = Outcome(verdict, f"failed: {exc}", exc)
                continue
            say(f"removing {resource.kind} {resource.label} ({verdict.reason})")
            outcomes[resource.id] = Outcome(verdict, "removed")
            started.append(resource)
        if not started:
            continue
        try:  # gone before the next wave starts, and before the table says "removed"
            failures = cloud.wait_removed(started)
        except CibError as exc:
            failures = {r.id: exc for r in started}
        for rid, exc in failures.items():
            say(f"warning: {outcomes[rid].verdict.resource.kind} "
                f"{outcomes[rid].verdict.resource.label} was not removed: {exc}")
            outcomes[rid] = Outcome(outcomes[rid].verdict, f"failed: {exc}", exc)
    return [outcomes[v.resource.id] for v in verdicts]


def check_outcomes(outcomes: Sequence[Outcome]) -> None:
    """Raise when every attempted removal failed (none is an error): TransientError when one
    of the failures was transient, else BuildError. Some failures among removals are warnings
    in the table only: the next purge tries again."""
    attempted = [o for o in outcomes if o.verdict.remove and not o.action.startswith("skipped")]
    failures = [o.error for o in attempted if o.error is not None]
    if not attempted or len(failures) < len(attempted):
        return
    first = failures[0]
    message = f"every removal failed ({len(failures)}), first: {first}"
    if any(isinstance(e, TransientError) for e in failures):
        raise TransientError(message)
    raise BuildError(message)


def table(outcomes: Sequence[Outcome], stream: TextIO, *, title: str) -> None:
    """The closing table of the task log: resource, id, where, reason, action (rich; plain
    text when `stream` is not a terminal)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    tty = stream.isatty() if hasattr(stream, "isatty") else False
    grid = Table(title=title, title_justify="left", box=box.HEAVY_HEAD if tty else box.ASCII)
    for column in ("resource", "id", "where", "reason", "action"):
        grid.add_column(column, overflow="fold")
    for outcome in outcomes:
        r = outcome.verdict.resource
        grid.add_row(f"{r.cloud} {r.kind}", r.label, r.where, outcome.verdict.reason,
                     outcome.action)
    if not outcomes:
        grid.add_row("-", "-", "-", "nothing of ours is orphaned", "-")
    Console(file=stream, width=None if tty else 200, no_color=not tty,
            highlight=False).print(grid)


def summary(outcomes: Sequence[Outcome]) -> str:
    """`3 removed, 1 failed, 2 kept` (each count when not zero)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        word = outcome.action.split(":")[0]
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {word}" for word, n in counts.items()) or "nothing to purge"
