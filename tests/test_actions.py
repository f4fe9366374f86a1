"""The `promote` action: the decision's actions.json offers it behind its own permission, its
hook renders an action decision task under the `action:promote` role, and its callback
generates the promote kind's graph (loader, transforms) and creates its one task, valid and
within that role."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from taskgraph import create
from taskgraph.actions.registry import trigger_action_callback
from taskgraph.config import GraphConfig, load_graph_config
from taskgraph.util import taskcluster as tg_taskcluster
from taskgraph.util.taskcluster import get_root_url, get_taskcluster_client

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.errors import CibError
from cib_decision.scopes import missing_scopes, role_scopes
from cib_decision.taskgraph import task_env
from cib_decision.taskgraph.actions import built_task_env, promote_graph
from cib_decision.taskgraph.transforms.promote import scopes as promote_scopes

from .conftest import ROOT
from .decision_support import dev_event
from .graphs import cib_args
from .repos import fleet_repo
from .taskcluster_yml_support import hook_context, render
from .tcschemas import validator

ROLES = yaml.safe_load((ROOT / "taskcluster" / "roles.yml").read_text())
GROUP = "Z3vQ2ZlJRwuyMDszZzR4Gg"
ENV = "Rb6OA0yyRhm4YuMNDnAQdw"  # a task environment's task id
INPUT = {"key": "win2022-64", "from": "staging", "to": "production"}


@pytest.fixture(scope="module")
def decided(tmp_path_factory, _dev_taskcluster_server):
    """A push's decision against the local Taskcluster: the repository and its artifacts."""
    _dev_taskcluster_server.reset()
    repo = fleet_repo(tmp_path_factory.mktemp("actions") / "images")
    result = dev_event(_dev_taskcluster_server, repo, "push", "--environment", "production")
    assert result.returncode == 0, result.stderr
    return repo


def artifact(repo: Path, name: str):
    text = (repo / "artifacts" / name).read_text()
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def promote_of(actions: dict) -> dict:
    (found,) = [a for a in actions["actions"] if a["name"] == "promote"]
    return found


def test_the_decision_offers_promote_behind_its_own_permission(decided):
    actions = artifact(decided, "actions.json")
    assert actions["version"] == 1
    promote = promote_of(actions)
    assert promote["kind"] == "hook" and promote["hookGroupId"] == "project-cib"
    assert promote["hookId"].startswith("in-tree-action-3-promote/")
    assert promote["extra"] == {"actionPerm": "promote"} and promote["context"] == []
    assert promote["hookPayload"]["decision"]["action"]["cb_name"] == "promote"
    jsonschema.Draft7Validator.check_schema(promote["schema"])
    check = jsonschema.Draft7Validator(promote["schema"])
    assert not list(check.iter_errors(INPUT))
    assert list(check.iter_errors({"key": "win2022-64"}))
    assert list(check.iter_errors({**INPUT, "force": True}))


def test_the_hook_renders_an_action_decision_task_under_the_promote_role(decided):
    payload = promote_of(artifact(decided, "actions.json"))["hookPayload"]
    action = {**payload["decision"]["action"], "action_perm": "promote"}
    (task,) = render(hook_context("action", taskId=None, taskGroupId=GROUP, input=INPUT,
                                  action=action))
    assert task["scopes"] == ["assume:repo:github.com/example/images:action:promote"]
    assert task["payload"]["command"][0][-1].endswith("cib action-callback")
    assert json.loads(task["payload"]["env"]["ACTION_INPUT"]) == INPUT
    assert task["payload"]["env"]["ACTION_CALLBACK"] == "promote"


@pytest.fixture
def graph_root(monkeypatch, tmp_path):
    """taskgraph's once-per-process globals put back after the test: test mode, the
    registered graph root (taskgraph refuses a second one) and the artifacts an action writes
    to its working directory."""
    monkeypatch.setattr(create, "testing", False)
    monkeypatch.setattr(tg_taskcluster, "testing", False)
    monkeypatch.setattr(GraphConfig, "_PATH_MODIFIED", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)


def promote_definition(repo: Path, parameters: dict, input: dict) -> dict:
    """The definition of the one task of the promote graph for `input`."""
    generated = promote_graph(parameters, load_graph_config(str(repo / "taskcluster")), input)
    (task,) = generated.target_task_graph.tasks.values()
    return task.task


def test_the_callback_creates_one_valid_promote_task_within_the_role(
        decided, graph_root, monkeypatch, capsys, _dev_taskcluster_server):
    parameters = artifact(decided, "parameters.yml")
    # the push's graph built the task environment: the promote task mounts that one
    env_task_id = artifact(decided, "label-to-taskid.json")["task-env-cib"]
    _dev_taskcluster_server.resolve_task(env_task_id)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", _dev_taskcluster_server.root_url)
    get_taskcluster_client.cache_clear()
    get_root_url.cache_clear()
    trigger_action_callback(GROUP, None, INPUT, "promote", parameters,
                            str(decided / "taskcluster"), test=True)
    _, definition = json.loads(capsys.readouterr().out)
    assert definition["metadata"]["name"] == "promote-win2022-64"
    assert definition["tags"]["kind"] == "promote"  # made by the promote kind's transforms
    assert definition["taskGroupId"] == GROUP and definition["schedulerId"] == "cib-level-3"
    assert cib_args(definition) == ["promote", "--key", "win2022-64", "--from", "staging",
                                    "--to", "production"]
    # after the task environment and the decision, as taskgraph creates an action's tasks
    assert definition["dependencies"] == [env_task_id, GROUP]
    assert definition["payload"]["mounts"] == [task_env.mount(env_task_id, "cib", "3")]
    assert definition["payload"]["onExitStatus"] == {"retry": [75]}
    assert "generic-worker:cache:cib-level-3-*" in definition["scopes"]
    check = validator("/schemas/queue/v1/create-task-request.json")
    assert not list(check.iter_errors(definition))
    granted = role_scopes(ROLES, "action:promote", project="images")
    assert missing_scopes(definition, granted) == []
    assert "index:insert-task:cib.v2.cib-decision.pointers.production.pool.gecko-1%2F" \
           "win2022-64-aws.*" in definition["scopes"]


def test_the_promote_kind_has_no_task_in_a_push_graph(decided):
    labels = artifact(decided, "full-task-graph.json")
    assert labels and not [label for label in labels if label.startswith("promote-")]


def test_the_callback_promotes_only_to_the_decisions_own_environment(decided, graph_root):
    parameters = artifact(decided, "parameters.yml")
    with pytest.raises(CibError, match="runs for production"):
        promote_definition(decided, parameters, {**INPUT, "to": "staging"})
    with pytest.raises(CibError, match="no image key"):
        promote_definition(decided, parameters, {**INPUT, "key": "nope"})
    with pytest.raises(CibError, match="no environment 'qa'"):
        promote_definition(decided, parameters, {**INPUT, "from": "qa"})
    definition = promote_definition(decided, parameters, INPUT)
    assert definition["payload"]["env"]["CIB_ENVIRONMENT"] == "production"


def test_a_promote_task_into_a_signing_environment_may_read_its_signing_secret(
        decided, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(decided / "config", config)
    environments = yaml.safe_load((config / "environments.yaml").read_text())
    environments["production"]["signing"] = {
        "secret": "project/cib/level-{level}/release-signing",
        "public-key": "keys/release-level-{level}.asc"}
    (config / "environments.yaml").write_text(yaml.safe_dump(environments))
    signed = promote_scopes(load_fleet(DirectorySource(config)), INPUT["key"], "production", "3")
    assert "secrets:get:project/cib/level-3/release-signing" in signed
    granted = role_scopes(ROLES, "action:promote", project="images")
    assert missing_scopes({"scopes": signed, "schedulerId": "cib-level-3",
                           "provisionerId": "cib-3", "workerType": "b-linux"}, granted) == []
    unsigned = promote_scopes(load_fleet(DirectorySource(decided / "config")), INPUT["key"],
                              "production", "3")
    assert not any("release-signing" in scope for scope in unsigned)


def test_the_callback_fails_clearly_when_no_task_environment_was_built(
        decided, monkeypatch, _dev_taskcluster_server):
    _dev_taskcluster_server.reset()  # nothing built, nothing indexed
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", _dev_taskcluster_server.root_url)
    get_taskcluster_client.cache_clear()
    get_root_url.cache_clear()
    parameters = artifact(decided, "parameters.yml")
    with pytest.raises(CibError, match="no task environment was built"):
        built_task_env(parameters, load_graph_config(str(decided / "taskcluster")))


def test_the_hook_as_fxci_generates_it_and_the_hooks_service_renders_it(decided):
    """`action_hooks`: the trigger payload from actions.json, fxci's in-tree hook template
    around .taskcluster.yml, and the hooks service's rendering give a valid action task for
    the decision's task group, under the hook role's scopes."""
    from cib_decision import action_hooks

    action = action_hooks.find_action(artifact(decided, "actions.json"), "promote")
    payload = action_hooks.trigger_payload(action, GROUP, None, INPUT)
    assert payload["user"] == {"input": INPUT, "taskId": None, "taskGroupId": GROUP}
    tcyml = yaml.safe_load((decided / ".taskcluster.yml").read_text())
    template = action_hooks.hook_task_template(tcyml, action["extra"]["actionPerm"])
    task = action_hooks.render_hook_task(template, payload, "mozilla-auth0/ad|someone",
                                         "2026-12-06T00:00:00.000Z", "fRkMcrpwTmCzJhOaQ6gBVA")
    # in the group of the decision whose actions.json offered it
    assert "taskId" not in task
    assert task["taskGroupId"] == payload["decision"]["action"]["taskGroupId"]
    assert task["scopes"] == ["assume:repo:github.com/example/images:action:promote"]
    assert task["payload"]["env"]["ACTION_CALLBACK"] == "promote"
    assert json.loads(task["payload"]["env"]["ACTION_INPUT"]) == INPUT
    assert task["extra"]["action"]["context"]["clientId"] == "mozilla-auth0/ad|someone"
    assert not list(validator("/schemas/queue/v1/create-task-request.json").iter_errors(task))
    with pytest.raises(CibError, match="offers no action 'nope'"):
        action_hooks.find_action(artifact(decided, "actions.json"), "nope")
