"""Deploying a definition to worker-manager as a diff: read the current pool, write only what
differs (create on 404, update on a create answered 409), name the launch configs added, kept
and archived."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..manifest import ReleaseImage
from ..tc import Queue, WorkerManager, call, pages
from ..tcschemas import SchemaStore
from .definition import (
    NULL_PROVIDER,
    Definition,
    Log,
    Outcome,
    PoolError,
    PoolRequest,
    comparable,
    image_of,
)
from .records import dependency_tasks
from .rendering import render, validate


def wm_call(what: str, pool_id: str, function: Callable[[], Any], *,
            allow: tuple[int, ...] = ()) -> Any:
    """`function()`, one call of worker-manager about `pool_id`: its refusals are PoolError
    (`tc.call`); a status in `allow` is returned as that number instead."""
    return call("worker-manager", f"{what} {pool_id}", function, allow=allow, refused=PoolError)


def read_pool(wm: WorkerManager, pool_id: str) -> dict[str, Any] | None:
    """The pool as worker-manager has it, or None when there is none (404)."""
    result = wm_call("read", pool_id, lambda: wm.workerPool(pool_id), allow=(404,))
    return None if result == 404 else result


def list_pools(wm: WorkerManager) -> list[dict[str, Any]]:
    """Every pool of the deployment (following `continuationToken`)."""
    return list(pages(lambda query: wm_call("list", "worker pools",
                                          lambda: wm.listWorkerPools(query=query)),
                      "workerPools"))


def _launch_config_ids(pool: dict[str, Any] | None) -> list[str]:
    if not pool or pool.get("providerId") == NULL_PROVIDER:
        return []
    return [(lc.get("workerManager") or {}).get("launchConfigId") or "(no id)"
            for lc in (pool.get("config") or {}).get("launchConfigs") or ()
            if isinstance(lc, dict)]


def changes(definition: Definition, current: dict[str, Any] | None) -> Outcome:
    """Which launch configs a write of `definition` over `current` adds, keeps and archives
    (worker-manager archives those missing from the new list)."""
    before = _launch_config_ids(current)
    after = [lc["workerManager"]["launchConfigId"] for lc in definition.launch_configs]
    return Outcome(definition.pool_id, "unchanged",
                   added=[i for i in after if i not in before],
                   kept=[i for i in after if i in before],
                   archived=[i for i in before if i not in after])


def write(wm: WorkerManager, definition: Definition, current: dict[str, Any] | None, log: Log,
          dry_run: bool = False) -> Outcome:
    """Write `definition` when it differs from `current`: create when there is no pool,
    update otherwise; a create answered with 409 (created meanwhile, or deleted and still
    listed) becomes an update, an update answered with 404 (removed meanwhile) a create.
    `dry_run` only says what it would do."""
    pool_id, body = definition.pool_id, definition.body
    outcome = changes(definition, current)
    for region, image in sorted(definition.images.items()):
        if image.kept:
            log(f"{pool_id}: {region} keeps the image it runs ({image.name or image.id}); "
                "no new image for it")
    for region in definition.missing:
        log(f"{pool_id}: {region} has no image: no launch config")
    if comparable(current) == body:
        log(f"{pool_id}: unchanged ({len(outcome.kept)} launch configs)")
        return outcome
    create = current is None
    if dry_run:
        outcome.action = "would create" if create else "would update"
        log(f"{pool_id}: {outcome.action}; launch configs: {_summary(definition, outcome)}")
        return outcome
    for _ in range(3):
        if create:
            result = wm_call("create", pool_id, lambda: wm.createWorkerPool(pool_id, body),
                           allow=(409,))
            outcome.action = "created"
        else:
            result = wm_call("update", pool_id, lambda: wm.updateWorkerPool(pool_id, body),
                           allow=(404,))
            outcome.action = "updated"
        if result not in (404, 409):
            break
        create = result == 404
    else:
        raise PoolError(f"{pool_id}: worker-manager kept answering 404 to updates and 409 to "
                        "creates; try again")
    log(f"{pool_id}: {outcome.action}; launch configs: {_summary(definition, outcome)}")
    return outcome


def _summary(definition: Definition, outcome: Outcome) -> str:
    region = {lc["workerManager"]["launchConfigId"]:
              getattr(image_of(definition.provider_type, lc), "region", "?")
              for lc in definition.launch_configs}
    added = ", ".join(f"{i} ({region[i]})" for i in outcome.added)
    archived = ", ".join(outcome.archived)
    return (f"{len(outcome.added)} added" + (f" [{added}]" if added else "") +
            f", {len(outcome.kept)} kept, {len(outcome.archived)} archived" +
            (f" [{archived}]" if archived else ""))


def apply(wm: WorkerManager, request: PoolRequest, images: Iterable[ReleaseImage],
          store: SchemaStore, log: Log, dry_run: bool = False, frozen: Iterable[str] = ()
          ) -> tuple[Definition, Outcome]:
    """Deploy `request`'s pool with `images`: read the current pool, render (keeping the
    images of locations not built, and the launch configs of `frozen` locations, whose build
    failed, as they are), validate against the genuine schemas, write if changed."""
    current = read_pool(wm, request.pool_id)
    definition = validate(render(request, images, current, frozen), store)
    return definition, write(wm, definition, current, log, dry_run)


def failed_build_regions(queue: Queue, task_id: str, request: PoolRequest) -> set[str]:
    """The pool's locations served by a target whose machine-image dependency of task
    `task_id` failed (a build task is named `machine-image-<key>-<target>` in its
    `tags.label`, as taskgraph tags it)."""
    failed = {(definition.get("tags") or {}).get("label") for definition, state
              in dependency_tasks(queue, task_id, "machine-image").values()
              if state in ("failed", "exception")}
    if not failed:
        return set()
    from ..taskgraph.items import machine_image_name  # the label rule lives with the graph

    key, pool = request.key, request.pool
    return {region for region in pool.locations
            if (target := key.serving_target(pool, region)) is not None
            and f"machine-image-{machine_image_name(key.name, target.id)}" in failed}
