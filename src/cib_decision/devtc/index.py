"""The index service: tasks indexed at dotted paths, inserted by `insertTask` or, when a task
completes, at each of its routes `index.<path>` (`services/index/src/*.js`)."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any

import taskcluster

from . import dates
from .api import Call, Context, Handler, Reply
from .apierror import ApiError
from .auth import ANONYMOUS_SCOPES
from .expressions import grants
from .pagination import paginate, with_token
from .state import IndexEntry

NAMESPACE = re.compile(r"^([a-zA-Z0-9_!~*'()%-]+\.)*[a-zA-Z0-9_!~*'()%-]+$")


def _split(path: str) -> tuple[str, str]:
    namespace, _, name = path.rpartition(".")
    return namespace, name


def _live(ctx: Context, path: str) -> IndexEntry | None:
    entry = ctx.state.index.get(path)
    if entry is None or entry.expires <= ctx.clock():
        return None
    return entry


def insert(ctx: Context, path: str, task_id: str, rank: float, data: dict[str, Any],
           expires: datetime) -> IndexEntry:
    """Index `task_id` at `path` unless a task of higher rank is there already."""
    existing = ctx.state.index.get(path)
    if existing is not None and existing.rank > rank:
        return existing
    entry = IndexEntry(path, task_id, rank, copy.deepcopy(data), expires)
    ctx.state.index[path] = entry
    return entry


def index_completed_task(ctx: Context, task_id: str) -> list[str]:
    """What the index does when a task completes: index it at every `index.<path>` route,
    with `extra.index` {rank, expires, data} (defaults 0, the task's expires, {}). Returns
    the paths."""
    definition = ctx.state.tasks[task_id].definition
    paths = [r[len("index."):] for r in definition["routes"] if r.startswith("index.")]
    paths = [p for p in paths if NAMESPACE.match(p)]
    options = {"rank": 0, "expires": definition["expires"], "data": {},
               **(definition["extra"].get("index") or {})}
    if not isinstance(options["rank"], int | float) or not isinstance(options["data"], dict):
        return []
    for path in paths:
        insert(ctx, path, task_id, options["rank"], options["data"],
               dates.parse(options["expires"]))
    return paths


def find_task(call: Call) -> dict[str, Any]:
    """`index.findTask`."""
    entry = _live(call.ctx, call.params["indexPath"])
    if entry is None:
        raise ApiError("ResourceNotFound", "Indexed task not found")
    return entry.serialize()


def find_tasks_at_index(call: Call) -> dict[str, Any]:
    """`index.findTasksAtIndex`: the entries of the given paths that exist."""
    indexes = call.body["indexes"]
    call.authorize(indexPaths=indexes)
    found = [e for e in (_live(call.ctx, p) for p in dict.fromkeys(indexes)) if e is not None]
    page, token = paginate(found, call.query)
    return with_token({"tasks": [e.serialize() for e in page]}, token)


def list_tasks(call: Call) -> dict[str, Any]:
    """`index.listTasks`: the entries directly in a namespace, by name."""
    namespace = call.params.get("namespace", "")
    call.authorize(namespace=namespace)
    entries = sorted((e for e in call.ctx.state.index.values()
                      if _split(e.path)[0] == namespace and e.expires > call.ctx.clock()),
                     key=lambda e: e.path)
    page, token = paginate(entries, call.query)
    return with_token({"tasks": [e.serialize() for e in page]}, token)


def list_namespaces(call: Call) -> dict[str, Any]:
    """`index.listNamespaces`: the namespaces directly in a namespace."""
    namespace = call.params.get("namespace", "")
    call.authorize(namespace=namespace)
    children: dict[str, datetime] = {}
    prefix = f"{namespace}." if namespace else ""
    for entry in call.ctx.state.index.values():
        parent, _ = _split(entry.path)
        if parent == namespace or not (parent + ".").startswith(prefix):
            continue
        child = parent[len(prefix):].split(".")[0]
        children[child] = max(children.get(child, entry.expires), entry.expires)
    page, token = paginate(sorted(children.items()), call.query)
    return with_token({"namespaces": [
        {"namespace": prefix + name, "name": name, "expires": dates.to_json(expires)}
        for name, expires in page]}, token)


def insert_task(call: Call) -> dict[str, Any]:
    """`index.insertTask`: a lower rank does not replace a higher one."""
    namespace, body = call.params["namespace"], call.body
    call.authorize(namespace=namespace)
    return insert(call.ctx, namespace, body["taskId"], body["rank"], body["data"],
                  dates.parse(body["expires"])).serialize()


def delete_task(call: Call) -> dict[str, Any]:
    """`index.deleteTask`."""
    namespace = call.params["namespace"]
    call.authorize(namespace=namespace)
    call.ctx.state.index.pop(namespace, None)
    return {}


def find_artifact_from_task(call: Call) -> Reply:
    """`index.findArtifactFromTask`: a 303 to the queue's getLatestArtifact, signed (for 15
    minutes, with the index's own credentials) unless the artifact is public."""
    entry = _live(call.ctx, call.params["indexPath"])
    if entry is None:
        raise ApiError("ResourceNotFound", "Indexed task not found")
    name, ctx = call.params["name"], call.ctx
    queue = taskcluster.Queue({"rootUrl": ctx.root_url,
                               "credentials": ctx.index_client.credentials})
    if grants(ANONYMOUS_SCOPES, f"queue:get-artifact:{name}"):
        url = queue.buildUrl("getLatestArtifact", entry.task_id, name)
    else:
        url = queue.buildSignedUrl("getLatestArtifact", entry.task_id, name, expiration=15 * 60)
    return Reply(f"See Other. Redirecting to {url}", 303, {"location": url},
                 content_type="text/plain; charset=utf-8")


HANDLERS: dict[str, Handler] = {
    "index.findTask": find_task,
    "index.findTasksAtIndex": find_tasks_at_index,
    "index.listTasks": list_tasks,
    "index.listNamespaces": list_namespaces,
    "index.insertTask": insert_task,
    "index.deleteTask": delete_task,
    "index.findArtifactFromTask": find_artifact_from_task,
}
