"""Cloud credentials from the level's `clouds` secret: read in a task without credentials of
its own (through the local Taskcluster), exported as boto3's and azure-identity's variables,
left alone everywhere else; `cib image|purge|gc` do it before they run."""

from __future__ import annotations

import boto3
import pytest
import slugid

import taskcluster
from cib_decision import cloudcreds
from cib_decision.cli import CLOUD_COMMANDS, main
from cib_decision.devtc.testing import new_task
from cib_decision.errors import CibError

from .graphs import cib_args, generator

AWS = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cr3t"}
AZURE = {"azure_tenant_id": "t", "azure_client_id": "c", "azure_client_secret": "x",
         "azure_subscription_id": "00000000-0000-0000-0000-000000000000"}
VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
             "AZURE_SUBSCRIPTION_ID", *cloudcreds.CREDENTIAL_VARIABLES)


def task_environ(dev, level: str = "3", scopes=("secrets:get:project/cib/level-3/clouds",)
                 ) -> dict[str, str]:
    """The environment of a task holding `scopes`, with its task credentials and no cloud
    credentials."""
    task_id = slugid.nice()
    taskcluster.Queue(dev.options()).createTask(task_id, new_task(
        taskQueueId=f"cib-{level}/images", scopes=list(scopes)))
    credentials = dev.task_credentials(task_id)["credentials"]
    return {"TASK_ID": task_id, "CIB_LEVEL": level, "TASKCLUSTER_ROOT_URL": dev.root_url,
            "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
            "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"],
            "TASKCLUSTER_CERTIFICATE": credentials["certificate"]}


@pytest.fixture
def clean(monkeypatch):
    """No cloud or task variables; whatever the test (or the code under test) sets in
    os.environ is undone afterwards."""
    for name in (*VARIABLES, "TASK_ID", "TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CERTIFICATE"):
        monkeypatch.setenv(name, "")  # recorded, so monkeypatch restores it at the end
        monkeypatch.delenv(name)
    return monkeypatch


def read_with(environ):
    """Read secrets with the task's credentials, as `tc.client_options` would in the task."""
    from cib_decision.secrets import read_secret

    options = {"rootUrl": environ["TASKCLUSTER_ROOT_URL"], "maxRetries": 0, "credentials": {
        "clientId": environ["TASKCLUSTER_CLIENT_ID"],
        "accessToken": environ["TASKCLUSTER_ACCESS_TOKEN"],
        "certificate": environ["TASKCLUSTER_CERTIFICATE"]}}
    return lambda name: read_secret(name, options)


def test_a_task_without_credentials_exports_both_clouds_from_its_levels_secret(
        dev_taskcluster):
    dev_taskcluster.set_secret("project/cib/level-3/clouds", {**AWS, **AZURE, "gcp": {}})
    environ, said = task_environ(dev_taskcluster), []
    exported = cloudcreds.ensure(environ, read_with(environ), said.append)
    assert exported == sorted(k.upper() for k in (*AWS, *AZURE))
    assert environ["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert environ["AZURE_SUBSCRIPTION_ID"] == AZURE["azure_subscription_id"]
    assert said == ["cloud credentials from secret project/cib/level-3/clouds: AWS, Azure"]


def test_a_pull_request_task_reads_level_1s_secret_only(dev_taskcluster):
    dev_taskcluster.set_secret("project/cib/level-1/clouds", AWS)
    dev_taskcluster.set_secret("project/cib/level-3/clouds", {**AWS, "aws_access_key_id": "L3"})
    environ = task_environ(dev_taskcluster, "1", ["secrets:get:project/cib/level-1/clouds"])
    cloudcreds.ensure(environ, read_with(environ), print)
    assert environ["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE" and "AZURE_CLIENT_ID" not in environ


@pytest.mark.parametrize("environ", [
    {"TASKCLUSTER_PROXY_URL": "http://taskcluster"},  # not in a task
    {"TASK_ID": "x"},  # in a task, nothing to read with
    {"TASK_ID": "x", "TASKCLUSTER_PROXY_URL": "http://taskcluster", "AWS_PROFILE": "dev"},
    {"TASK_ID": "x", "TASKCLUSTER_PROXY_URL": "http://taskcluster", "AZURE_CLIENT_ID": "c"},
])
def test_nothing_is_read_outside_a_task_or_when_credentials_are_there(environ):
    before = dict(environ)
    assert cloudcreds.ensure(environ, pytest.fail, pytest.fail) == []
    assert environ == before


def test_a_missing_secret_keeps_the_workers_own_credentials(dev_taskcluster):
    environ, said = task_environ(dev_taskcluster), []
    assert cloudcreds.ensure(environ, read_with(environ), said.append) == []
    assert said == ["no secret project/cib/level-3/clouds: using the worker's own cloud "
                    "credentials"]


def test_a_task_without_the_secrets_scope_is_an_error_naming_the_scope(dev_taskcluster):
    dev_taskcluster.set_secret("project/cib/level-3/clouds", AWS)
    environ = task_environ(dev_taskcluster, scopes=())
    with pytest.raises(CibError) as failure:
        cloudcreds.ensure(environ, read_with(environ), print)
    assert "the credentials lack secrets:get:project/cib/level-3/clouds" in str(failure.value)


@pytest.mark.parametrize("secret, problem", [
    ({"aws_access_key_id": "A"}, "AWS: aws_access_key_id without aws_secret_access_key"),
    ({"aws_session_token": "T"}, "without aws_access_key_id, aws_secret_access_key"),
    ({**AZURE, "azure_client_secret": ""}, "azure_client_secret: must be a non-empty string"),
    ({**AWS, "aws_secret_access_key": 7}, "aws_secret_access_key: must be a non-empty string"),
])
def test_an_incomplete_or_malformed_secret_is_an_error_and_exports_nothing(secret, problem):
    environ = {"TASK_ID": "x", "TASKCLUSTER_PROXY_URL": "http://taskcluster"}
    with pytest.raises(CibError) as failure:
        cloudcreds.ensure(environ, lambda name: secret, print)
    assert str(failure.value).startswith("secret project/cib/level-3/clouds is malformed:")
    assert problem in str(failure.value)
    assert set(environ) == {"TASK_ID", "TASKCLUSTER_PROXY_URL"}


def test_cloud_commands_get_the_credentials_before_they_run_and_boto3_uses_them(
        dev_taskcluster, clean, capsys):
    assert {"image", "purge", "gc"} <= set(CLOUD_COMMANDS)
    dev_taskcluster.set_secret("project/cib/level-3/clouds", AWS)
    for name, value in task_environ(dev_taskcluster).items():
        clean.setenv(name, value)
    # Fails on the missing config after the hook ran: the hook is before the command.
    assert main(["image", "tag", "--key", "k", "--config-dir", "/nonexistent"]) == 2
    assert "cloud credentials from secret project/cib/level-3/clouds: AWS" in \
        capsys.readouterr().err
    credentials = boto3.session.Session().get_credentials()
    assert (credentials.access_key, credentials.secret_key) == ("AKIAEXAMPLE", "s3cr3t")


def test_other_commands_never_read_the_secret(dev_taskcluster, clean, capsys):
    for name, value in task_environ(dev_taskcluster).items():
        clean.setenv(name, value)
    dev_taskcluster.set_secret("project/cib/level-3/clouds", AWS)
    main(["config", "check", "--config-dir", "/nonexistent"])
    assert "secrets.get" not in dev_taskcluster.stats()["requests"]


def _cib_command(task: dict) -> str:
    """The `cib` subcommand a task definition runs."""
    return cib_args(task)[0]


def test_every_task_allowed_the_clouds_secret_runs_a_command_that_reads_it():
    """A task carries the clouds secret's scope because its command calls a cloud; that
    command must be one the hook gives the credentials to (the graph's tasks and the
    `promote` action's task alike)."""
    tasks = [t.task for t in generator(
        "commit\n\npurge-taskcluster-resources").full_task_graph.tasks.values()]
    promote = generator(target_tasks_method="cib_promote", cib_promote={
        "key": "win2022-64", "from": "staging", "to": "production"}).target_task_graph
    tasks.extend(t.task for t in promote.tasks.values())
    readers = {_cib_command(t) for t in tasks
               if any(s.startswith("secrets:get:project/cib/level-") and s.endswith("/clouds")
                      for s in t["scopes"])}
    assert {"image", "purge", "promote"} <= readers
    assert readers <= set(CLOUD_COMMANDS)
