"""`.taskcluster.yml` renders exactly one valid decision task for every event we handle."""

from __future__ import annotations

from typing import Any

import pytest
import slugid
import yaml

from cib_decision import github_events as events
from cib_decision.github_events import repository

from .conftest import ROOT
from .tcschemas import validator

TEMPLATE = yaml.safe_load((ROOT / ".taskcluster.yml").read_text())
REPO = repository("example/images")
FORK = repository("someone/images")
HEAD, BASE = "c" * 40, "d" * 40
NOW = "2026-11-21T12:00:00.000Z"
ROOT_URL = "https://tc.example.com"


def push_event(ref: str = "refs/heads/main") -> dict[str, Any]:
    return events.push_event(REPO, HEAD, BASE, "Rebuild\n\ninclude keys: win10-64", ref=ref)


def pr_event(action: str, head_repo: dict = FORK) -> dict[str, Any]:
    return events.pull_request_event(action, 17, REPO, HEAD, BASE, head_repo=head_repo)


def github_context(tasks_for: str, event: dict) -> dict[str, Any]:
    return events.github_context(tasks_for, event, ROOT_URL, NOW)


def hook_context(tasks_for: str, **extra: Any) -> dict[str, Any]:
    return {"tasks_for": tasks_for, "now": NOW, "ownTaskId": slugid.nice(),
            "taskcluster_root_url": "https://tc.example.com",
            "repository": {"url": REPO["html_url"], "project": "images", "level": "3"},
            # as fxci's build-decision sends a git push (no base revision, no pushlog)
            "push": {"branch": "main", "revision": HEAD, "owner": "cron"}, **extra}


CRON = hook_context("cron", cron={"job_name": "nightly", "quoted_args": ""})
ACTION = hook_context(
    "action", taskId=None, taskGroupId="Z3vQ2ZlJRwuyMDszZzR4Gg", input={"key": "win10-64"},
    action={"name": "rebuild", "title": "Rebuild an image", "cb_name": "rebuild",
            "action_perm": "generic", "taskGroupId": "Z3vQ2ZlJRwuyMDszZzR4Gg",
            "repo_scope": "assume:repo:github.com/example/images:action:generic"})


def render(context: dict[str, Any]) -> list[dict[str, Any]]:
    return events.render_tasks(TEMPLATE, context)


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
    assert command.endswith("cib config check --artifacts artifacts")  # its check run report
    assert "cib decision" not in command


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


@pytest.mark.parametrize("event", ["push-main", "pr-opened", "pr-closed", "cron"])
def test_the_decision_task_runs_cib_decision_with_arguments_it_accepts(event):
    import shlex

    from cib_decision.cli import build_parser

    (task,) = render(EVENTS[event])
    command = task["payload"]["command"][0][-1]
    decision = command[command.index(".venv/bin/cib decision"):]
    args = build_parser().parse_args(shlex.split(decision)[1:])
    assert args.command == "decision"
    assert args.tasks_for == task["extra"]["tasks_for"]
    assert args.head_rev == HEAD


def test_cron_decisions_know_their_job_for_the_cron_role():
    (task,) = render(EVENTS["cron"])
    assert task["payload"]["env"]["CIB_CRON_JOB"] == "nightly"
