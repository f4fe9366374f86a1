"""A worker's writable directory caches (`workers/generic-worker/mounts_feature.go`:
`WritableDirectoryCache`, `AcquireCache`, `newPoolEntry`, `Evict`).

A cache is a directory that outlives the task that mounted it. Each name has a pool of
entries on the worker: a task mounting the name takes a free entry (moved into its task
directory, so two tasks running at once never share one) or, when every entry is in use, a
new entry is created, with the mount's `content` extracted into it only then. When the task
ends the directory is moved back and the entry is free again, unless the task was aborted or
its last exit status is listed in `onExitStatus.purgeCaches`: then the entry is evicted (its
directory deleted), as generic-worker does with a cache a task may have left half-written.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CacheEntry:
    """One directory of a cache's pool; `location` is where it rests between tasks."""

    name: str
    location: Path
    in_use: bool = True


class DirectoryCaches:
    """The pools of one worker, kept under `root` (generic-worker's `cachesDir`)."""

    def __init__(self, root: Path):
        self.root = root
        self._pools: dict[str, list[CacheEntry]] = {}
        self._created = 0
        self._lock = threading.Lock()

    def acquire(self, name: str) -> CacheEntry | None:
        """A free entry of `name`'s pool, now in use; None when there is none."""
        with self._lock:
            for entry in self._pools.get(name, []):
                if not entry.in_use:
                    entry.in_use = True
                    return entry
        return None

    def create(self, name: str) -> CacheEntry:
        """A new entry of `name`'s pool, in use; its directory is the task's to fill."""
        with self._lock:
            self._created += 1
            entry = CacheEntry(name, self.root / f"cache{self._created}")
            self._pools.setdefault(name, []).append(entry)
        self.root.mkdir(parents=True, exist_ok=True)
        return entry

    def release(self, entry: CacheEntry, directory: Path) -> None:
        """Move the task's `directory` back to the entry's location and free the entry."""
        shutil.rmtree(entry.location, ignore_errors=True)
        try:
            directory.rename(entry.location)
        except OSError:
            self.evict(entry, directory)
            raise
        with self._lock:
            entry.in_use = False

    def evict(self, entry: CacheEntry, directory: Path | None = None) -> None:
        """Delete the entry and its directory (wherever it is now)."""
        with self._lock:
            pool = self._pools.get(entry.name, [])
            if entry in pool:
                pool.remove(entry)
            if not pool:
                self._pools.pop(entry.name, None)
        for path in (directory, entry.location):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    def names(self) -> dict[str, int]:
        """Each cache name and how many entries its pool holds."""
        with self._lock:
            return {name: len(pool) for name, pool in sorted(self._pools.items())}
