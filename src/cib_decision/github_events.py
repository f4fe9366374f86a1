"""What Taskcluster's GitHub service does with an event: build the json-e context and render
`.taskcluster.yml` into decision tasks (pure; used by `cib dev-event` and the tests).

The event payloads have the fields of GitHub's webhook payloads that the service and our
`.taskcluster.yml` read; the context is the service's (`tasks_for`, `event`, `now`,
`taskcluster_root_url`, `as_slugid`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsone
import slugid


def repository(full_name: str) -> dict[str, Any]:
    """A GitHub repository object for `owner/name`."""
    url = f"https://github.com/{full_name}"
    return {"name": full_name.split("/", 1)[1], "full_name": full_name, "html_url": url,
            "clone_url": f"{url}.git", "default_branch": "main"}


def push_event(repo: dict[str, Any], head: str, base: str, message: str,
               ref: str = "refs/heads/main") -> dict[str, Any]:
    """A `push` webhook payload."""
    return {"ref": ref, "before": base, "after": head, "created": False, "deleted": False,
            "forced": False, "repository": repo,
            "pusher": {"name": "dev", "email": "dev@example.com"},
            "sender": {"login": "dev", "id": 1, "type": "User"},
            "head_commit": {"id": head, "message": message}}


def pull_request_event(action: str, number: int, repo: dict[str, Any], head: str, base: str,
                       head_repo: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `pull_request` webhook payload (`head_repo` is the fork, default: the same repo)."""
    head_repo = head_repo or repo
    return {"action": action, "number": number,
            "pull_request": {
                "number": number, "state": "closed" if action == "closed" else "open",
                "title": "Change images", "user": {"login": "someone"},
                "head": {"ref": "change", "sha": head, "repo": head_repo,
                         "label": f"{head_repo['full_name'].split('/')[0]}:change"},
                "base": {"ref": "main", "sha": base, "repo": repo,
                         "label": f"{repo['full_name'].split('/')[0]}:main"},
                "merged": False},
            "repository": repo, "sender": {"login": "someone", "id": 2, "type": "User"}}


def github_context(tasks_for: str, event: dict[str, Any], root_url: str, now: str,
                   as_slugid: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The json-e context the GitHub service renders `.taskcluster.yml` with."""
    ids: dict[str, str] = {}
    return {"tasks_for": tasks_for, "event": event, "now": now,
            "taskcluster_root_url": root_url,
            "as_slugid": as_slugid or (lambda name: ids.setdefault(name, slugid.nice()))}


def render_tasks(template: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks `.taskcluster.yml` renders for `context` (the service creates each one with
    the `taskId` it carries)."""
    return jsone.render(copy.deepcopy(template), context).get("tasks", [])


def cron_context(repo: dict[str, Any], revision: str, job_name: str, root_url: str, now: str,
                 level: str = "3", cron_task_id: str | None = None) -> dict[str, Any]:
    """The json-e context fxci's cron task (`build-decision`'s `cron`) renders
    `.taskcluster.yml` with for a git repository's job: a push with no base revision, pushlog
    or pushdate, owner `cron`; no `event` and no `as_slugid`."""
    cron_task_id = cron_task_id or slugid.nice()
    return {"tasks_for": "cron", "taskcluster_root_url": root_url, "now": now,
            "ownTaskId": slugid.nice(),
            "repository": {"url": repo["html_url"], "project": repo["name"], "level": level,
                           "type": "git"},
            "push": {"branch": repo.get("default_branch", "main"), "revision": revision,
                     "owner": "cron"},
            "cron": {"task_id": cron_task_id, "job_name": job_name, "job_symbol": job_name,
                     "quoted_args": "", "input": {}}}
