"""The decision task fills cib's parameters from the head commit and its environment."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from taskgraph.config import load_graph_config

from cib_decision.directives import DirectiveError
from cib_decision.errors import CibError
from cib_decision.taskgraph.parameters import decision_parameters

from .conftest import CONFIG_DIR, ROOT


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "images"
    shutil.copytree(CONFIG_DIR, path / "config")
    (path / "taskcluster").mkdir()
    shutil.copy(ROOT / "taskcluster" / "config.yml", path / "taskcluster" / "config.yml")
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def commit(repo, message: str) -> str:
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                               "user.email=t@example.com", *args], check=True,
                              capture_output=True, text=True).stdout.strip()
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", message)
    return git("rev-parse", "HEAD")


def fill(repo, head_rev: str, tasks_for: str = "github-push") -> dict:
    parameters = {"head_rev": head_rev, "tasks_for": tasks_for}
    decision_parameters(load_graph_config(str(repo / "taskcluster")), parameters)
    return parameters


def test_directives_come_from_the_head_commit_message(repo, monkeypatch):
    monkeypatch.delenv("CIB_ENVIRONMENT", raising=False)
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", "42")
    monkeypatch.setenv("CIB_PULL_REQUEST_ACTION", "opened")
    head = commit(repo, "Rebuild\n\ninclude keys: WIN10-64\noverwrite-machine-image")
    parameters = fill(repo, head, "github-pull-request")
    assert parameters["cib_directives"]["include"]["keys"] == ["win10-64"]
    assert parameters["cib_directives"]["overwrite_machine_image"] is True
    assert parameters["cib_environment"] == "production"
    assert parameters["cib_pull_request"] == 42


def test_the_environment_follows_the_deployments_root_url(repo, monkeypatch):
    monkeypatch.delenv("CIB_ENVIRONMENT", raising=False)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", "https://tc-staging.example.com/")
    assert fill(repo, commit(repo, "x"))["cib_environment"] == "staging"
    monkeypatch.setenv("CIB_ENVIRONMENT", "production")
    assert fill(repo, commit(repo, "y"))["cib_environment"] == "production"


def test_a_bad_directive_fails_the_decision_naming_the_line(repo):
    head = commit(repo, "subject\n\nincude keys: win10-64")
    with pytest.raises(DirectiveError, match="commit message line 3"):
        fill(repo, head)


def test_a_pull_request_records_the_keys_it_changes(repo, monkeypatch):
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", "5")
    monkeypatch.setenv("CIB_PULL_REQUEST_ACTION", "synchronize")
    base = commit(repo, "base")
    path = repo / "config" / "win10-64.yaml"
    path.write_text(path.read_text().replace("edition: Professional", "edition: Enterprise"))
    head = commit(repo, "change win10")
    parameters = {"head_rev": head, "base_rev": base, "tasks_for": "github-pull-request"}
    decision_parameters(load_graph_config(str(repo / "taskcluster")), parameters)
    assert parameters["cib_changed_keys"] == ["win10-64"]
    assert parameters["cib_pull_request_action"] == "synchronize"


def test_a_pull_request_whose_base_is_missing_builds_every_key(repo, monkeypatch):
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", "5")
    head = commit(repo, "x")
    parameters = {"head_rev": head, "base_rev": "f" * 40, "tasks_for": "github-pull-request"}
    decision_parameters(load_graph_config(str(repo / "taskcluster")), parameters)
    assert parameters["cib_changed_keys"] is None


@pytest.mark.parametrize("tasks_for, number, message", [
    ("github-pull-request", "", "needs its pull request number"),
    ("github-pull-request", "0", "needs its pull request number"),
    ("github-pull-request", "-5", "needs its pull request number"),
    ("github-pull-request", "123456789012345678901", "needs its pull request number"),
    ("github-pull-request", "\u0661\u0662", "needs its pull request number"),  # Arabic 12
    ("github-push", "7", "given to a decision that is not for a pull request"),
    ("cron", "7", "given to a decision that is not for a pull request"),
])
def test_a_pull_request_number_that_does_not_fit_the_event_fails_closed(
        repo, monkeypatch, tasks_for, number, message):
    """A pull request decision without its number would target the real pools."""
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", number)
    with pytest.raises(CibError, match=message):
        fill(repo, commit(repo, "x"), tasks_for)


@pytest.mark.parametrize("edit", [
    # the pull request lets production take pull requests
    lambda text: text.replace("pull-requests: false", "pull-requests: true"),
    # the pull request gives production's URL to staging, which takes pull requests
    lambda text: text.replace("https://tc.example.com", "https://tc-x.example.com").replace(
        "https://tc-staging.example.com", "https://tc.example.com"),
])
def test_a_pull_request_cannot_change_what_it_may_do_in_its_own_environment(
        repo, monkeypatch, edit):
    """The environment and its pull-request policy come from the base revision."""
    monkeypatch.delenv("CIB_ENVIRONMENT", raising=False)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", "https://tc.example.com")
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", "5")
    base = commit(repo, "base")
    path = repo / "config" / "environments.yaml"
    path.write_text(edit(path.read_text()))
    head = commit(repo, "take over production")
    parameters = {"head_rev": head, "base_rev": base, "tasks_for": "github-pull-request"}
    decision_parameters(load_graph_config(str(repo / "taskcluster")), parameters)
    assert parameters["cib_environment"] == "production"
    assert parameters["cib_trusted_environments"]["production"]["pull-requests"] is False


def test_a_pull_request_whose_base_config_does_not_load_may_do_nothing(repo, monkeypatch):
    monkeypatch.setenv("CIB_PULL_REQUEST_NUMBER", "5")
    (repo / "config" / "environments.yaml").write_text("production: [\n")
    base = commit(repo, "broken base")
    shutil.copy(CONFIG_DIR / "environments.yaml", repo / "config" / "environments.yaml")
    head = commit(repo, "fixed")
    parameters = {"head_rev": head, "base_rev": base, "tasks_for": "github-pull-request"}
    decision_parameters(load_graph_config(str(repo / "taskcluster")), parameters)
    assert parameters["cib_trusted_environments"] == {}
