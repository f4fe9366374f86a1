"""`cib rollback --pool P [--to RELEASE]`: point a pool back at an earlier release and
redeploy it (orchestration).

1. **read** the pool's pointer history in the environment (`pointers.history`);
2. **choose** the release: the one `--to` names (a sha256, at least 12 hex digits of one, or the
   id of the task holding it), which must be in the history, else the previous one
   (`pointers.previous_release`: a second rollback goes further back);
3. **verify** its record (`public/release.json` of the task the entry names: seal, key, and
   its signature when the environment signs its releases, as every pool deploy checks);
4. **deploy** the pool from its images (`pools.apply`: a diff; locations the release has no
   image for keep the one they run);
5. **record** a `rollback` entry in the history (append-only) and point the pool at it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import pools
from ..config import Environment, Fleet
from ..errors import CibError
from ..manifest import Release
from ..signing import check_releases
from ..tc import Index, Queue, WorkerManager
from ..tcschemas import SchemaStore
from . import pointers

_HEX = re.compile(r"[0-9a-f]{12,64}")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: from which release to which, and the pool's deploy."""

    pool_id: str
    current: pointers.Entry
    chosen: pointers.Entry
    release: Release
    outcome: pools.Outcome
    recorded: pointers.Entry | None


def choose(history: list[pointers.Entry], to: str | None, pool_id: str) -> pointers.Entry:
    """The history entry to return to: the one `to` names (sha256, a prefix of at least 12
    hex digits, or a task id), else the previous release. CibError when there is none."""
    if not history:
        raise CibError(f"{pool_id} has no release history in this environment: nothing to "
                       "roll back to")
    if to is None:
        entry = pointers.previous_release(history)
        if entry is None:
            raise CibError(f"{pool_id} has run only release "
                           f"{history[-1].release.sha256[:12]}: no earlier release to roll "
                           "back to")
        return entry
    wanted = to.strip().lower() if _HEX.fullmatch(to.strip().lower()) else to.strip()
    matches = {e.release: e for e in history
               if e.release.sha256.startswith(wanted) or e.release.task_id == wanted}
    if not matches:
        known = ", ".join(dict.fromkeys(e.release.sha256[:12] for e in reversed(history)))
        raise CibError(f"release {to!r} is not in the history of {pool_id} (its releases, "
                       f"newest first: {known})")
    if len({r.sha256 for r in matches}) > 1:
        raise CibError(f"{to!r} names more than one release of {pool_id}; give more digits")
    return max(matches.values(), key=lambda e: e.sequence)


def rollback(*, fleet: Fleet, environment: Environment, pool_id: str, to: str | None,
             index: Index, queue: Queue, wm: WorkerManager, store: SchemaStore, log: Log,
             config_dir: str | Path, dry_run: bool = False) -> Rollback:
    """Roll pool `pool_id` back in `environment` (steps in the module docstring)."""
    key, pool = pools.find_pool(fleet, pool_id)
    history = pointers.history(index, environment.name, pool_id)
    chosen = choose(history, to, pool_id)
    current = history[-1]
    log(f"{pool_id} in {environment.name}: runs release {current.release.sha256[:12]} "
        f"(history entry {current.sequence}, {current.action}); rolling back to "
        f"{chosen.release.sha256[:12]} (entry {chosen.sequence}, task "
        f"{chosen.release.task_id})")
    release = pointers.read_release(queue, chosen.release)
    if release.key != key.name:
        raise CibError(f"release {release.sha256[:12]} is of key {release.key}; {pool_id} "
                       f"runs images of {key.name}")
    check_releases([release], environment, config_dir, key.name, log)
    log(f"release {release.sha256[:12]} verifies: {len(release.images)} images, config "
        f"{release.config_commit[:12]}, created {release.created}")
    request = pools.PoolRequest(key, pool, environment)
    _, outcome = pools.apply(wm, request, release.images, store, log, dry_run=dry_run)
    recorded = None
    if not dry_run:
        recorded = pointers.record_pool(index, environment.name, pool_id, chosen.release,
                                        "rollback", log)
    return Rollback(pool_id, current, chosen, release, outcome, recorded)
