"""`.taskcluster.yml` renders exactly one valid decision task for every event we handle."""

from __future__ import annotations

import copy
from typing import Any

import jsone
import pytest
import slugid
import yaml

from .conftest import ROOT
from .tcschemas import validator

TEMPLATE = yaml.safe_load((ROOT / ".taskcluster.yml").read_text())
REPO = {"name": "images", "full_name": "example/images",
        "html_url": "https://github.com/example/images",
        "clone_url": "https://github.com/example/images.git", "default_branch": "main"}
FORK = {"name": "images", "full_name": "someone/images",
        "html_url": "https://github.com/someone/images",
        "clone_url": "https://github.com/someone/images.git", "default_branch": "main"}
HEAD, BASE = "c" * 40, "d" * 40
NOW = "2026-11-21T12:00:00.000Z"


def push_event(ref: str = "refs/heads/main") -> dict[str, Any]:
    return {"ref": ref, "before": BASE, "after": HEAD, "created": False, "deleted": False,
            "forced": False, "repository": REPO,
            "pusher": {"name": "dev", "email": "dev@example.com"},
            "sender": {"login": "dev", "id": 1, "type": "User"},
            "head_commit": {"id": HEAD, "message": "Rebuild\n\ninclude keys: win10-64"}}


def pr_event(action: str, head_repo: dict = FORK) -> dict[str, Any]:
    return {"action": action, "number": 17,
            "pull_request": {
                "number": 17, "state": "closed" if action == "closed" else "open",
                "title": "New image", "user": {"login": "someone"},
                "head": {"ref": "new-image", "sha": HEAD, "repo": head_repo,
                         "label": "someone:new-image"},
                "base": {"ref": "main", "sha": BASE, "repo": REPO, "label": "example:main"},
                "merged": False},
            "repository": REPO, "sender": {"login": "someone", "id": 2, "type": "User"}}


def github_context(tasks_for: str, event: dict) -> dict[str, Any]:
    ids: dict[str, str] = {}
    return {"tasks_for": tasks_for, "event": event, "now": NOW,
            "taskcluster_root_url": "https://tc.example.com",
            "as_slugid": lambda name: ids.setdefault(name, slugid.nice())}


def hook_context(tasks_for: str, **extra: Any) -> dict[str, Any]:
    return {"tasks_for": tasks_for, "now": NOW, "ownTaskId": slugid.nice(),
            "taskcluster_root_url": "https://tc.example.com",
            "repository": {"url": REPO["html_url"], "project": "images", "level": "3"},
            "push": {"revision": HEAD, "base_revision": BASE, "owner": "cron@example.com",
                     "pushlog_id": "0"}, **extra}


CRON = hook_context("cron", cron={"job_name": "nightly", "quoted_args": ""})
ACTION = hook_context(
    "action", taskId=None, taskGroupId="Z3vQ2ZlJRwuyMDszZzR4Gg", input={"key": "win10-64"},
    action={"name": "rebuild", "title": "Rebuild an image", "cb_name": "rebuild",
            "action_perm": "generic", "taskGroupId": "Z3vQ2ZlJRwuyMDszZzR4Gg",
            "repo_scope": "assume:repo:github.com/example/images:action:generic"})


def render(context: dict[str, Any]) -> list[dict[str, Any]]:
    return jsone.render(copy.deepcopy(TEMPLATE), context)["tasks"]


EVENTS = {
    "push-main": github_context("github-push", push_event()),
    "pr-opened": github_context("github-pull-request", pr_event("opened", REPO)),
    "pr-synchronize": github_context("github-pull-request", pr_event("synchronize")),
    "pr-reopened": github_context("github-pull-request", pr_event("reopened")),
    "pr-closed": github_context("github-pull-request", pr_event("closed")),
    "pr-untrusted": github_context("github-pull-request-untrusted", pr_event("opened")),
    "cron": CRON,
    "action": ACTION,
}


def test_the_file_validates_against_the_genuine_version_1_schema():
    check = validator("/schemas/github/v1/taskcluster-github-config.v1.json")
    errors = list(check.iter_errors(TEMPLATE))
    assert not errors, errors[0].message
    assert TEMPLATE["version"] == 1


@pytest.mark.parametrize("event", EVENTS)
def test_each_event_renders_exactly_one_valid_decision_task(event):
    check = validator("/schemas/queue/v1/create-task-request.json")
    tasks = render(EVENTS[event])
    assert len(tasks) == 1
    task = {k: v for k, v in tasks[0].items() if k != "taskId"}
    errors = sorted(check.iter_errors(task), key=str)
    assert not errors, errors[0].message
    assert task["taskGroupId"]


@pytest.mark.parametrize(("event", "level", "scope"), [
    ("push-main", "3", "assume:repo:github.com/example/images:branch:main"),
    ("pr-opened", "1", "assume:repo:github.com/example/images:pull-request"),
    ("pr-untrusted", "1", "assume:repo:github.com/example/images:pull-request-untrusted"),
    ("cron", "3", "assume:repo:github.com/example/images:cron:nightly"),
    ("action", "3", "assume:repo:github.com/example/images:action:generic"),
])
def test_level_and_role_follow_the_event(event, level, scope):
    (task,) = render(EVENTS[event])
    assert task["schedulerId"] == f"cib-level-{level}"
    assert task["provisionerId"] == f"cib-{level}"
    assert task["scopes"] == [scope]


def test_untrusted_pull_requests_only_check_the_config():
    (task,) = render(EVENTS["pr-untrusted"])
    command = task["payload"]["command"][0][-1]
    assert command.endswith("cib config check")
    assert "taskgraph decision" not in command


def test_pull_requests_carry_their_number_and_action_to_the_decision():
    (task,) = render(EVENTS["pr-closed"])
    env = task["payload"]["env"]
    assert (env["CIB_PULL_REQUEST_NUMBER"], env["CIB_PULL_REQUEST_ACTION"]) == ("17", "closed")
    assert "--tasks-for='github-pull-request'" in task["payload"]["command"][0][-1]
    assert "--level='1'" in task["payload"]["command"][0][-1]


def test_the_decision_builds_the_pushed_revision():
    (task,) = render(EVENTS["push-main"])
    assert task["payload"]["env"]["CIB_HEAD_REV"] == HEAD
    assert f"--head-rev='{HEAD}'" in task["payload"]["command"][0][-1]


@pytest.mark.parametrize("context", [
    github_context("github-push", push_event("refs/heads/feature")),
    github_context("github-pull-request", pr_event("edited")),
    github_context("github-pull-request", pr_event("labeled")),
])
def test_other_events_render_no_task(context):
    assert render(context) == []
