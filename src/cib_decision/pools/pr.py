"""Per-PR pools' end: `teardown` deletes a pull request's pools, `sweep` the expired ones; both
delete only pools of the per-PR domain."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..manifest import format_time
from ..naming import PR_POOL_DOMAIN, pr_pool_id
from ..tc import WorkerManager
from .definition import NULL_PROVIDER, Log, PoolError, expiry
from .deploy import list_pools, wm_call


def _is_pr_pool(pool_id: str) -> bool:
    return pool_id.startswith(f"{PR_POOL_DOMAIN}/")


def _delete(wm: WorkerManager, pool_id: str, log: Log) -> bool:
    if not _is_pr_pool(pool_id):  # never: callers only pass per-PR pools
        raise PoolError(f"refusing to delete {pool_id}: not a per-PR pool")
    if wm_call("delete", pool_id, lambda: wm.deleteWorkerPool(pool_id), allow=(404,)) == 404:
        log(f"{pool_id}: already gone")
        return False
    return True


def teardown(wm: WorkerManager, pull_request: int, pool_ids: Iterable[str], log: Log) -> list[str]:
    """Delete every per-PR pool of `pull_request`: the `naming.pr_pool_id` of each of
    `pool_ids` (the config's pools), and any pool of the per-PR domain named `...-pr<N>`.
    Pools already deleted (`null-provider`) are skipped. When the caller may not list pools,
    only the config's per-PR pools are deleted. Returns the pools deleted."""
    wanted = {pr_pool_id(pool, pull_request) for pool in pool_ids}
    suffix = f"-pr{pull_request}"
    try:
        listed = list_pools(wm)
    except PoolError as exc:
        if "(403)" not in str(exc):
            raise
        log(f"cannot list worker pools ({exc}); deleting the config's per-PR pools by id")
        candidates = sorted(wanted)
    else:
        candidates = []
        for pool in listed:
            pool_id = pool.get("workerPoolId", "")
            if pool_id in wanted or (_is_pr_pool(pool_id) and pool_id.endswith(suffix)):
                if pool.get("providerId") == NULL_PROVIDER:
                    log(f"{pool_id}: already deleted")
                else:
                    candidates.append(pool_id)
        candidates.sort()
    deleted = [pool_id for pool_id in candidates if _delete(wm, pool_id, log)]
    for pool_id in deleted:
        log(f"{pool_id}: deleted (pull request {pull_request})")
    if not candidates:
        log(f"pull request {pull_request} has no per-PR pools")
    return deleted


def sweep(wm: WorkerManager, now: datetime, log: Log) -> list[str]:
    """Delete the per-PR pools whose recorded `cib-expires` time is not after `now`. Pools
    outside the per-PR domain, pools without an expiry and deleted pools are left alone.
    Returns the pools deleted."""
    deleted = []
    for pool in sorted(list_pools(wm), key=lambda p: p.get("workerPoolId", "")):
        pool_id = pool.get("workerPoolId", "")
        if not _is_pr_pool(pool_id) or pool.get("providerId") == NULL_PROVIDER:
            continue
        expires = expiry(pool.get("description", ""))
        if expires is None:
            log(f"{pool_id}: no cib-expires recorded; left alone")
        elif expires > now:
            log(f"{pool_id}: expires {format_time(expires)}; kept")
        elif _delete(wm, pool_id, log):
            log(f"{pool_id}: expired {format_time(expires)}; deleted")
            deleted.append(pool_id)
    return deleted
