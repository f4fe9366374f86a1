"""`.taskcluster.yml` renders exactly one valid decision task for every event we handle."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cib_decision import github_events as events
from cib_decision.github_events import repository

from .taskcluster_yml_support import HEAD, NOW, REPO, TEMPLATE, hook_context, render
from .tcschemas import validator

FORK = repository("someone/images")
BASE = "d" * 40
ROOT_URL = "https://tc.example.com"


def push_event(ref: str = "refs/heads/main") -> dict[str, Any]:
    return events.push_event(REPO, HEAD, BASE, "Rebuild\n\ninclude keys: win10-64", ref=ref)


def pr_event(action: str, head_repo: dict = FORK) -> dict[str, Any]:
    return events.pull_request_event(action, 17, REPO, HEAD, BASE, head_repo=head_repo)


def github_context(tasks_for: str, event: dict) -> dict[str, Any]:
    return events.github_context(tasks_for, event, ROOT_URL, NOW)


CRON = hook_context("cron", cron={"job_name": "nightly", "quoted_args": ""})
ACTION = hook_context(
    "action", taskId=None, taskGroupId="Z3vQ2ZlJRwuyMDszZzR4Gg", input={"key": "win10-64"},
    action={"name": "rebuild", "title": "Rebuild an image", "cb_name": "rebuild",
            "action_perm": "generic", "taskGroupId": "Z3vQ2ZlJRwuyMDszZzR4Gg",
            "repo_scope": "assume:repo:github.com/example/images:action:generic"})


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
    assert (env["CIB_TASKS_FOR"], env["CIB_LEVEL"]) == ("github-pull-request", "1")
    assert '--tasks-for="$CIB_TASKS_FOR"' in task["payload"]["command"][0][-1]
    assert '--level="$CIB_LEVEL"' in task["payload"]["command"][0][-1]


def test_the_decision_builds_the_pushed_revision():
    (task,) = render(EVENTS["push-main"])
    assert task["payload"]["env"]["CIB_HEAD_REV"] == HEAD
    assert '--head-rev="$CIB_HEAD_REV"' in task["payload"]["command"][0][-1]


@pytest.mark.parametrize("context", [
    github_context("github-push", push_event("refs/heads/feature")),
    github_context("github-pull-request", pr_event("edited")),
    github_context("github-pull-request", pr_event("labeled")),
])
def test_other_events_render_no_task(context):
    assert render(context) == []


GIT_STAND_IN = """
import json, os, pathlib, sys
if sys.argv[1:2] == ["clone"]:  # the clone: a checkout whose setup and cib record their argv
    src = pathlib.Path(sys.argv[-1])
    for name in ("scripts/setup", ".venv/bin/cib", ".venv/bin/taskgraph"):
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!{sys.executable}\\nimport json, os, sys\\n"
                        "with open(os.environ['RECORD'], 'a') as out:\\n"
                        "    out.write(json.dumps(sys.argv) + '\\\\n')\\n")
        path.chmod(0o755)
"""


def run_command(task: dict[str, Any], tmp_path) -> list[list[str]]:
    """Run the task's command as generic-worker does (argv as given, the payload's env and a
    task directory), with a stand-in git whose clone holds recording stand-ins of
    `scripts/setup` and the cib and taskgraph commands; the argv of each, in order."""
    import os
    import subprocess
    import sys

    bin_dir, work = tmp_path / "bin", tmp_path / "task"
    bin_dir.mkdir()
    work.mkdir()
    git = bin_dir / "git"
    git.write_text(f"#!{sys.executable}\n{GIT_STAND_IN}")
    git.chmod(0o755)
    record = tmp_path / "record.jsonl"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(work),
           **task["payload"]["env"], "RECORD": str(record)}
    for command in task["payload"]["command"]:
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_the_decision_task_runs_cib_decision_with_arguments_it_accepts(event, tmp_path):
    from cib_decision.cli import build_parser

    (task,) = render(EVENTS[event])
    setup, run = run_command(task, tmp_path)
    assert setup[0].endswith("scripts/setup")
    args = build_parser().parse_args(run[1:])
    if event == "action":  # taskgraph's callback, with the folder the repository uses
        assert run[0].endswith(".venv/bin/cib") and run[1:] == ["action-callback"]
        return
    if event == "pr-untrusted":
        assert run[1:3] == ["config", "check"]
        return
    assert args.command == "decision"
    assert args.tasks_for == task["extra"]["tasks_for"]
    assert args.head_rev == HEAD


HOSTILE = ["x';touch pwned;'", 'x";touch pwned;"', "$(touch pwned)", "`touch pwned`",
           "a b\nc", "--level=3"]


@pytest.mark.parametrize("value", HOSTILE)
def test_event_fields_reach_the_decision_as_single_arguments_never_as_shell(value, tmp_path):
    """Branch names, logins and emails are anyone's text: the rendered command holds none of
    it; it reaches cib through the task's env, each value one argument, as it was."""
    from cib_decision.cli import build_parser

    event = pr_event("opened")
    event["pull_request"]["head"]["ref"] = value
    event["pull_request"]["user"]["login"] = value
    (task,) = render(github_context("github-pull-request", event))
    assert all(value not in part for command in task["payload"]["command"]
               for part in command)
    _, run = run_command(task, tmp_path)
    args = build_parser().parse_args(run[1:])
    assert args.head_ref == value and args.owner == f"{value}@users.noreply.github.com"
    assert args.level == "1"
    assert not list(tmp_path.rglob("pwned"))


def test_cron_decisions_know_their_job_for_the_cron_role():
    (task,) = render(EVENTS["cron"])
    assert task["payload"]["env"]["CIB_CRON_JOB"] == "nightly"
