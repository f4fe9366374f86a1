"""The step every cib kind shares: a cib task description in, taskgraph's task description out.

Each kind's own transform says only what is its own: the description, scopes, dependencies,
and declaratively the shared parts (`CibTask`): the item the task is made from, the `cib`
command it runs (`cib-run`), how it is cached by digest (`cib-cache`), whether the owners of
its key hear of a failure (`cib-notify`) and its Treeherder place (`cib-treeherder`). This step,
listed in every kind.yml between the kind's transforms and taskgraph's task transforms, turns
them into the label, the attributes, the worker, the index routes and optimization, the notify
routes and the Treeherder fields, the same way for every kind:

- the label is `<kind>-<item name>`; the item's key, target, pool, platform, region and
  environment are the `cib-*` attributes target tasks select by, with `cib-kind`;
- a task that runs `cib` runs it from the task environment (`USES_ENV`) and is run again by the
  queue when `cib` exits 75 (errors.TransientError), whatever the command;
- a cached task is indexed under its item's digest (also its `cib-digest` attribute);
- a Treeherder symbol is always a valid one (`common.th_symbol`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec
from taskgraph.transforms.base import TransformSequence
from taskgraph.util.cached_tasks import add_optimization
from taskgraph.util.schema import Schema, SchemaValidationError, validate_schema

from ..task_env import USES_ENV
from .common import notify_owners, run_cib, th_platform, th_symbol

# `cib` exits 75 (errors.TransientError) on quota, capacity, throttling and service errors: the
# worker resolves the run as an exception and the queue retries the task.
TRANSIENT_EXIT_STATUS = 75

# The item fields that become attributes (`cib-<field>`): what target tasks, `cib plan` and the
# check run select and report by.
ITEM_ATTRIBUTES = ("key", "target", "pool", "platform", "region", "environment")

# small Linux tasks (taskcluster/config.yml `workers.aliases`)
DEFAULT_WORKER_TYPE = "b-linux"


class CibRun(Schema):
    """The `cib` command the task runs from the task environment (`common.run_cib`)."""

    # the arguments after `cib`
    args: list[str]
    # publish the command's `artifacts/` directory as `public/` (only commands that write it)
    artifacts: bool = False
    max_run_time: int | None = None  # None: `run_cib`'s
    # more environment variables (task references among them)
    env: dict[str, Any] = msgspec.field(default_factory=dict)


class CibCache(Schema):
    """Index the task under its item's digest (`cache-name`, `digest`) so that the optimizer
    replaces it by an earlier task with the same digest (taskgraph's cached tasks: level 3
    tasks are reused by every graph, pull-request tasks only by pull requests). A task whose
    dependency runs runs too."""

    # the cache type: the index namespace of the kind's tasks
    type: str
    # keep the index routes but always run (an overwrite or redeploy directive)
    rebuild: bool = False


class CibTreeherder(Schema):
    """Where the task shows on Treeherder: `group(symbol)` on the platform's row."""

    group: str
    symbol: str
    platform: str
    kind: Literal["build", "test", "other"] = "other"


class CibTask(Schema):
    """What a kind's own transform yields: the shared parts declared (`cib-*`), and the
    fields of taskgraph's task description that are the kind's own, passed through."""

    # the item the task is made from: its name makes the label (`<kind>-<name>`)
    cib_item: dict[str, Any]
    cib_treeherder: CibTreeherder
    description: str
    cib_run: CibRun | None = None
    cib_cache: CibCache | None = None
    # the owners of the item's key hear of a failure (docs/notify.md)
    cib_notify: bool = False
    worker_type: str = DEFAULT_WORKER_TYPE
    # the worker of a task that runs no `cib`; a task has either this or `cib-run`
    worker: dict[str, Any] | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    scopes: list[str] = msgspec.field(default_factory=list)
    dependencies: dict[str, str] = msgspec.field(default_factory=dict)
    soft_dependencies: list[str] = msgspec.field(default_factory=list)
    requires: Literal["all-completed", "all-resolved"] | None = None
    priority: str | None = None
    expires_after: str | None = None


transforms = TransformSequence()


@transforms.add
def cib_task(config, tasks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each cib task description as taskgraph's task description."""
    for task in tasks:
        item = task.get("cib-item") or {}
        where = f"In {config.kind} kind item {item.get('name')!r}:"
        validate_schema(CibTask, task, where)
        if ("worker" in task) == ("cib-run" in task):
            raise SchemaValidationError(f"{where} give either cib-run or worker")
        yield describe(config, task)


def describe(config, cib: dict[str, Any]) -> dict[str, Any]:
    """The task description of one cib task description (`CibTask`)."""
    task = dict(cib)
    item = task.pop("cib-item")
    run, cache = task.pop("cib-run", None), task.pop("cib-cache", None)
    notify, place = task.pop("cib-notify", False), task.pop("cib-treeherder")
    task["label"] = f"{config.kind}-{item['name']}"
    task["attributes"] = {**item_attributes(item), "cib-kind": config.kind,
                          **task.get("attributes", {})}
    task.setdefault("worker-type", DEFAULT_WORKER_TYPE)
    if run is not None:
        task["worker"] = cib_worker(config.params, run)
        task["attributes"][USES_ENV] = True
    if cache is not None:
        task["attributes"]["cib-digest"] = item["digest"]
        add_optimization(config, task, cache_type=cache["type"], cache_name=item["cache-name"],
                         digest=item["digest"])
        if cache.get("rebuild"):
            task.pop("optimization")
    if notify:
        notify_owners(config, item["key"], task)
    task["treeherder"] = treeherder(**place)
    return task


def item_attributes(item: dict[str, Any]) -> dict[str, Any]:
    """The attributes an item gives its task (`ITEM_ATTRIBUTES`, those it has)."""
    return {f"cib-{name}": item[name] for name in ITEM_ATTRIBUTES if item.get(name)}


def cib_worker(params, run: dict[str, Any]) -> dict[str, Any]:
    """The generic-worker payload of a `cib-run`: `common.run_cib`, run again by the queue when
    `cib` exits with the transient status."""
    worker = run_cib(params, *run["args"], artifacts=run.get("artifacts", False))
    worker["max-run-time"] = run.get("max-run-time") or worker["max-run-time"]
    worker["env"].update(run.get("env", {}))
    worker["retry-exit-status"] = [TRANSIENT_EXIT_STATUS]
    return worker


def treeherder(group: str, symbol: str, platform: str, kind: str = "other") -> dict[str, Any]:
    """taskgraph's `treeherder` field of a task: the symbol made valid (`th_symbol`), the
    platform a Treeherder machine platform (`th_platform`)."""
    return {"symbol": f"{group}({th_symbol(symbol)})", "platform": th_platform(platform),
            "kind": kind, "tier": 1}
