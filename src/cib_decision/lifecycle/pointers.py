"""Release pointers in the Taskcluster index: which release each environment runs (adapter).

The one module that names, writes and reads pointers. Every environment (a Taskcluster
deployment) keeps its own in its own index, under `POINTER_ROOT.<environment>`:

- `...release.<key>.latest`: the key's current release in the environment (the last one its
  pools were deployed from, or promoted to it);
- `...pool.<pool>.history.<sequence>`: every release the pool was deployed from, rolled back
  to or promoted to, in order (`sequence` zero-padded from 1; append-only);
- `...pool.<pool>.latest`: the newest history entry (the release the pool runs).

Each entry points at the task that holds the release record (`public/release.json`: the tag
task, or the promote task that wrote the promoted record) and carries in its `data` the
release's `key` and `sha256`, so listing never needs the artifacts, and what recorded it
(`action`: `deploy`, `promote`, `rollback`), the pool and the sequence number. Anyone can read
pointers (the index's reads are anonymous); writing needs `index:insert-task:<namespace>`.

Names are pure functions; every I/O goes through a `taskcluster.Index` client given by the
caller. A listing that fails raises: a partial answer would make the garbage collector delete
images a pointer still needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from taskcluster.exceptions import TaskclusterFailure

from ..errors import CibError
from ..manifest import RELEASE_ARTIFACT, Release, format_time, parse_release, verify
from ..tc import Index, Queue, call, failure, read_artifact

POINTER_ROOT = "cib.v2.cib-decision.pointers"
LATEST = "latest"
HISTORY = "history"
SEQUENCE_DIGITS = 8
# Pointers outlive the tasks they name (level-3 artifacts live a year); a pointer to a task
# whose release record has expired fails loudly when read.
POINTER_LIFETIME = timedelta(days=5 * 365)
DEFAULT_KEEP_HISTORY = 2  # releases kept for rollback besides the current one
ACTIONS = ("deploy", "promote", "rollback")

Log = Callable[[str], None]


class PointerError(CibError):
    """A pointer that cannot be read or written; the message says which and why."""


# --- names (pure) -----------------------------------------------------------------------------


def part(text: str) -> str:
    """`text` as one namespace component: characters other than letters, digits, `_` and `-`
    percent-encoded (a pool's `/` becomes `%2F`, a `.` `%2E`), so components never split."""
    return quote(text, safe="").replace(".", "%2E").replace("~", "%7E")


def unpart(component: str) -> str:
    """The text a namespace component encodes (`part`'s inverse)."""
    return unquote(component)


def environment_namespace(environment: str) -> str:
    """`<root>.<environment>`: every pointer of one environment."""
    return f"{POINTER_ROOT}.{part(environment)}"


def release_namespace(environment: str, key: str) -> str:
    """The namespace of key `key`'s release pointer in `environment`."""
    return f"{environment_namespace(environment)}.release.{part(key)}"


def release_path(environment: str, key: str) -> str:
    """The index path of key `key`'s current release in `environment`."""
    return f"{release_namespace(environment, key)}.{LATEST}"


def pool_namespace(environment: str, pool_id: str) -> str:
    """The namespace of pool `pool_id`'s pointers in `environment`."""
    return f"{environment_namespace(environment)}.pool.{part(pool_id)}"


def pool_path(environment: str, pool_id: str) -> str:
    """The index path of the release pool `pool_id` runs in `environment`."""
    return f"{pool_namespace(environment, pool_id)}.{LATEST}"


def history_namespace(environment: str, pool_id: str) -> str:
    """The namespace of pool `pool_id`'s history entries in `environment`."""
    return f"{pool_namespace(environment, pool_id)}.{HISTORY}"


def history_path(environment: str, pool_id: str, sequence: int) -> str:
    """The index path of history entry `sequence` (from 1) of pool `pool_id`."""
    return f"{history_namespace(environment, pool_id)}.{sequence:0{SEQUENCE_DIGITS}d}"


def insert_scopes(environment: str, key: str, pool_id: str | None = None) -> list[str]:
    """The scopes a task needs to record a deploy of `pool_id` (and the key's release)."""
    scopes = [f"index:insert-task:{release_namespace(environment, key)}.*"]
    if pool_id is not None:
        scopes.append(f"index:insert-task:{pool_namespace(environment, pool_id)}.*")
    return scopes


# --- what pointers say ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseRef:
    """A release by its seal, and the task that holds its record (`public/release.json`)."""

    key: str
    sha256: str
    task_id: str


@dataclass(frozen=True)
class Entry:
    """One pointer as the index has it: where, which release, and what recorded it."""

    path: str
    release: ReleaseRef
    action: str = "deploy"
    pool: str | None = None
    sequence: int = 0
    recorded: str = ""

    def data(self) -> dict[str, Any]:
        """The entry's index `data`."""
        data: dict[str, Any] = {"key": self.release.key, "sha256": self.release.sha256,
                                "action": self.action, "recorded": self.recorded}
        if self.pool is not None:
            data.update(pool=self.pool, sequence=self.sequence)
        return data


@dataclass(frozen=True)
class Reference:
    """A release a pointer needs kept: the current release of a key or pool, or one of a
    pool's rollback spares (`why` says which), in `environment`."""

    environment: str
    key: str
    sha256: str
    task_id: str
    path: str
    why: str


def parse_entry(found: dict[str, Any]) -> Entry:
    """An Entry from an index answer (`{namespace, taskId, rank, data, expires}`);
    PointerError when its data is not a pointer's."""
    data, path = found.get("data") or {}, found.get("namespace", "?")
    key, sha256, task_id = data.get("key"), data.get("sha256"), found.get("taskId")
    if not all(isinstance(v, str) and v for v in (key, sha256, task_id)):
        raise PointerError(f"index entry {path} is not a release pointer (its data has no "
                           "key and sha256)")
    sequence = data.get("sequence", 0)
    return Entry(path, ReleaseRef(key, sha256, task_id), str(data.get("action", "deploy")),
                 data.get("pool"), sequence if isinstance(sequence, int) else 0,
                 str(data.get("recorded", "")))


def previous_release(history: list[Entry], current: Entry | None = None) -> Entry | None:
    """The entry a rollback returns to: walking back from the newest entry, the first whose
    release is neither the current one nor one a rollback replaced (so a second rollback
    goes further back instead of undoing the first). None when there is none."""
    if not history:
        return None
    current = current or history[-1]
    replaced = {history[i - 1].release.sha256 for i in range(1, len(history))
                if history[i].action == "rollback"}
    for entry in reversed(history):
        if entry.release.sha256 != current.release.sha256 and (
                entry.release.sha256 not in replaced):
            return entry
    return None


def spares(history: list[Entry], keep: int) -> list[Entry]:
    """The newest `keep` distinct releases of `history` other than its newest entry's: those
    a rollback may still return to."""
    if not history:
        return []
    current = history[-1].release.sha256
    chosen: dict[str, Entry] = {}
    for entry in reversed(history):
        if len(chosen) >= keep:
            break
        if entry.release.sha256 != current and entry.release.sha256 not in chosen:
            chosen[entry.release.sha256] = entry
    return list(chosen.values())


# --- index I/O --------------------------------------------------------------------------------


def _fail(doing: str, exc: TaskclusterFailure) -> CibError:
    return failure("the index", doing, exc, PointerError)


def find(index: Index, path: str) -> Entry | None:
    """The pointer at `path`, or None when there is none."""
    found = call("the index", f"find {path}", lambda: index.findTask(path), allow=(404,),
                 refused=PointerError)
    return None if found == 404 else parse_entry(found)


def _pages(call: Callable[[dict[str, Any]], dict[str, Any]], field: str, doing: str
           ) -> Iterator[dict[str, Any]]:
    from ..tc import pages

    return pages(call, field, fail=lambda exc, _: _fail(doing, exc))


def list_entries(index: Index, namespace: str) -> list[dict[str, Any]]:
    """Every index entry directly in `namespace` (all pages); raises on any failure."""
    return list(_pages(lambda q: index.listTasks(namespace, query=q), "tasks",
                       f"list {namespace}"))


def list_names(index: Index, namespace: str) -> list[str]:
    """The names of the namespaces directly in `namespace` (all pages), decoded."""
    return [unpart(n["name"]) for n in _pages(
        lambda q: index.listNamespaces(namespace, query=q), "namespaces",
        f"list {namespace}")]


def history(index: Index, environment: str, pool_id: str) -> list[Entry]:
    """Pool `pool_id`'s history in `environment`, oldest first."""
    entries = [parse_entry(e) for e in list_entries(index, history_namespace(environment,
                                                                             pool_id))]
    return sorted(entries, key=lambda e: (e.sequence, e.path))


def _insert(index: Index, path: str, entry: Entry, rank: int, now: datetime) -> None:
    body = {"taskId": entry.release.task_id, "rank": rank, "data": entry.data(),
            "expires": format_time(now + POINTER_LIFETIME)}
    call("the index", f"write {path}", lambda: index.insertTask(path, body),
         refused=PointerError)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def set_release(index: Index, environment: str, release: ReleaseRef, action: str,
                log: Log, now: datetime | None = None) -> Entry:
    """Point key `release.key`'s current release in `environment` at `release` (nothing
    written when it already names that release, through whichever task)."""
    path = release_path(environment, release.key)
    current = find(index, path)
    if current is not None and current.release.sha256 == release.sha256:
        log(f"{path}: already {release.sha256[:12]} (task {release.task_id})")
        return current
    moment = _now(now)
    entry = Entry(path, release, action, recorded=format_time(moment))
    _insert(index, path, entry, int(moment.timestamp()), moment)
    log(f"{path}: {_was(current)} -> {release.sha256[:12]} (task {release.task_id}, "
        f"{action})")
    return entry


def _was(entry: Entry | None) -> str:
    return entry.release.sha256[:12] if entry else "none"


def record_pool(index: Index, environment: str, pool_id: str, release: ReleaseRef, action: str,
                log: Log, now: datetime | None = None) -> Entry:
    """Append `release` to pool `pool_id`'s history in `environment` and point its `latest`
    at it; nothing is written when the newest entry already names that release (a rerun,
    or another task holding the same record)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    entries = history(index, environment, pool_id)
    if entries and entries[-1].release.sha256 == release.sha256:
        log(f"{pool_id}: history entry {entries[-1].sequence} already records release "
            f"{release.sha256[:12]}")
        _repair_latest(index, environment, pool_id, entries[-1], now)
        return entries[-1]
    sequence = (entries[-1].sequence if entries else 0) + 1
    moment = _now(now)
    entry = Entry(history_path(environment, pool_id, sequence), release, action, pool_id,
                  sequence, format_time(moment))
    _insert(index, entry.path, entry, sequence, moment)
    _insert(index, pool_path(environment, pool_id), entry, sequence, moment)
    log(f"{pool_id}: history entry {sequence} ({action}): "
        f"{_was(entries[-1] if entries else None)} -> {release.sha256[:12]} "
        f"(task {release.task_id})")
    return entry


def _repair_latest(index: Index, environment: str, pool_id: str, newest: Entry,
                   now: datetime | None) -> None:
    """Point `latest` at the newest history entry when an interrupted write left it behind."""
    path = pool_path(environment, pool_id)
    latest = find(index, path)
    if latest is None or latest.sequence != newest.sequence:
        _insert(index, path, newest, newest.sequence, _now(now))


def pools(index: Index, environment: str) -> list[str]:
    """The pools that have pointers in `environment`."""
    return sorted(list_names(index, f"{environment_namespace(environment)}.pool"))


def keys(index: Index, environment: str) -> list[str]:
    """The keys that have a release pointer in `environment`."""
    return sorted(list_names(index, f"{environment_namespace(environment)}.release"))


def referenced_releases(index: Index, environments: Iterable[str],
                        keep_history: int = DEFAULT_KEEP_HISTORY) -> list[Reference]:
    """Every release a pointer of `environments` refers to: each key's current release, each
    pool's current release and its newest `keep_history` other releases (the rollback
    spares). `index` is the index of the deployment those environments' pointers are in.
    A listing or read that fails raises (CibError or TransientError): never a partial list."""
    found: list[Reference] = []
    for environment in environments:
        for key in keys(index, environment):
            entry = find(index, release_path(environment, key))
            if entry is not None:
                found.append(_reference(environment, entry, "current release of the key"))
        for pool_id in pools(index, environment):
            entries = history(index, environment, pool_id)
            latest = find(index, pool_path(environment, pool_id))
            if latest is not None:
                found.append(_reference(environment, latest, f"current release of {pool_id}"))
            if entries and (latest is None or latest.release.sha256
                            != entries[-1].release.sha256):  # `latest` left behind
                found.append(_reference(environment, entries[-1],
                                        f"newest history entry of {pool_id}"))
            found += [_reference(environment, e, f"rollback spare of {pool_id}")
                      for e in spares(entries, keep_history)]
    return found


def _reference(environment: str, entry: Entry, why: str) -> Reference:
    return Reference(environment, entry.release.key, entry.release.sha256,
                     entry.release.task_id, entry.path, why)


def read_release(queue: Queue, release: ReleaseRef) -> Release:
    """The release record a pointer names (`public/release.json` of its task), verified and
    checked to be the key and seal the pointer says; PointerError when it is gone or is
    another release."""

    source = f"task {release.task_id} {RELEASE_ARTIFACT}"
    data = read_artifact(queue, release.task_id, RELEASE_ARTIFACT)
    if data is None:
        raise PointerError(f"{source} is gone (expired, or the task never wrote it): cannot "
                           f"read release {release.sha256[:12]} of {release.key}")
    record = verify(parse_release(data, source))
    if (record.key, record.sha256) != (release.key, release.sha256):
        raise PointerError(f"{source} is release {record.sha256[:12]} of {record.key}, not "
                           f"{release.sha256[:12]} of {release.key} as its pointer says")
    return record
