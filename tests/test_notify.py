"""Failures reach their owners (docs/notify.md): each key's tasks carry notify routes for its
owners on failed and exception, none in pull-request graphs unless the environment says so;
notify is config with file:line problems and no image input; the roles grant the routes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.model import NOTIFY_EVENTS
from cib_decision.digests import fleet_digests
from cib_decision.errors import ConfigError
from cib_decision.scopes import role_for_event, role_scopes, satisfies
from cib_decision.taskgraph import fleet as graph_fleet
from cib_decision.taskgraph.transforms.common import notify_routes

from .conftest import CONFIG_DIR, ROOT
from .graphs import generator, pr

OWNER = "relops-windows@example.com"
KEY_KINDS = ("disk-image", "machine-image", "test-image", "tag", "worker-pool", "verify")
ROLES = yaml.safe_load((ROOT / "taskcluster" / "roles.yml").read_text())


def key_tasks(tgg, key: str) -> dict[str, tuple[str, dict]]:
    """The tasks of `key`: label -> (kind, task definition)."""
    return {label: (task.kind, task.task) for label, task in tgg.target_task_graph.tasks.items()
            if task.attributes.get("cib-key") == key}


def notify_of(task: dict) -> list[str]:
    return [r for r in task.get("routes", []) if r.startswith("notify.")]


def insert_after(path: Path, anchor: str, text: str) -> int:
    """Insert `text` after the only line `anchor`; the line number `text` starts on."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    (index,) = [i for i, line in enumerate(lines) if line.rstrip("\n") == anchor]
    lines[index + 1:index + 1] = [text]
    path.write_text("".join(lines), encoding="utf-8")
    return index + 2


# --- config ----------------------------------------------------------------------------------


def test_a_key_without_notify_tells_its_pools_owners_on_failed_and_exception():
    fleet = load_fleet(DirectorySource(CONFIG_DIR))
    assert fleet.keys["win10-64"].notify.emails == (OWNER,)
    assert fleet.keys["win11-64"].notify.emails == (OWNER,)  # two pools, one owner
    assert fleet.keys["win10-64"].notify.events == NOTIFY_EVENTS == ("failed", "exception")
    assert not any(e.notify_pull_requests for e in fleet.environments.values())


def test_explicit_notify_replaces_the_owners_and_an_empty_list_tells_nobody(fleet_dir: Path):
    insert_after(fleet_dir / "win10-64.yaml", "---",
                 "notify:\n    email: [a@example.com, b.c@example.org]\n    on: [failed]\n")
    insert_after(fleet_dir / "win11-64.yaml", "---", "notify:\n    email: []\n")
    fleet = load_fleet(DirectorySource(fleet_dir))
    assert fleet.keys["win10-64"].notify.emails == ("a@example.com", "b.c@example.org")
    assert fleet.keys["win10-64"].notify.events == ("failed",)
    assert fleet.keys["win11-64"].notify.emails == ()


@pytest.mark.parametrize(("text", "line_offset", "message"), [
    ("notify:\n    email: [relops at example.com]\n", 1,
     "notify.email[0] 'relops at example.com' is not an email address"),
    ("notify:\n    email:\n        - ok@example.com\n        - 'x@y'\n", 3,
     "notify.email[1] 'x@y' is not an email address"),
    ("notify:\n    on: [failed, exeption]\n", 1,
     "invalid value 'exeption' for notify.on[1]: expected one of failed, exception; "
     "did you mean 'exception'?"),
    ("notify:\n    emails: [a@example.com]\n", 1, "unknown field 'emails' in notify"),
])
def test_malformed_notify_is_a_config_error_with_file_and_line(fleet_dir: Path, text: str,
                                                               line_offset: int, message: str):
    line = insert_after(fleet_dir / "win10-64.yaml", "---", text) + line_offset
    with pytest.raises(ConfigError) as info:
        load_fleet(DirectorySource(fleet_dir))
    found = [(Path(p.file).name, p.line, p.message) for p in info.value.problems]
    assert any((name, where) == ("win10-64.yaml", line) and text.startswith(message)
               for name, where, text in found), found


def test_a_non_boolean_notify_pull_requests_is_a_config_error(fleet_dir: Path):
    line = insert_after(fleet_dir / "environments.yaml", "    pull-requests: true",
                        "    notify-pull-requests: yes\n")
    with pytest.raises(ConfigError) as info:
        load_fleet(DirectorySource(fleet_dir))
    assert [(Path(p.file).name, p.line) for p in info.value.problems] == [
        ("environments.yaml", line)]


def test_notify_changes_no_digest(fleet_dir: Path):
    before = fleet_digests(load_fleet(DirectorySource(CONFIG_DIR)))
    insert_after(fleet_dir / "win10-64.yaml", "---",
                 "notify:\n    email: [someone@example.com]\n    on: [exception]\n")
    insert_after(fleet_dir / "win11-64.yaml", "---", "notify:\n    email: []\n")
    insert_after(fleet_dir / "environments.yaml", "    pull-requests: true",
                 "    notify-pull-requests: true\n")
    fleet = load_fleet(DirectorySource(fleet_dir))
    assert fleet.keys["win10-64"].notify.emails == ("someone@example.com",)
    assert fleet_digests(fleet) == before


# --- graph -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("graph_env")
def test_every_task_of_a_key_carries_its_owners_routes_on_failed_and_exception():
    tgg = generator()
    tasks = key_tasks(tgg, "win10-64")
    assert {kind for kind, _ in tasks.values()} == set(KEY_KINDS)
    for label, (_, task) in tasks.items():
        assert notify_of(task) == [f"notify.email.{OWNER}.on-failed",
                                   f"notify.email.{OWNER}.on-exception"], label
        subject = task["extra"]["notify"]["email"]["subject"]
        assert subject == f"cib: {label} of win10-64 ${{status.state}} at {'a' * 12}"
    # tasks of no key tell nobody
    others = [t.task for t in tgg.target_task_graph.tasks.values()
              if not t.attributes.get("cib-key")]
    assert others and not any(notify_of(t) for t in others)


@pytest.mark.usefixtures("graph_env")
def test_a_pull_request_graph_carries_no_notify_route():
    tgg = pr(changed=None)
    assert key_tasks(tgg, "win10-64")
    tasks = [t.task for t in tgg.target_task_graph.tasks.values()]
    assert not any(notify_of(t) for t in tasks)
    assert not any("notify" in t.get("extra", {}) for t in tasks)


def graph_config_of(repo: Path):
    """A stand-in graph config of a repository whose config dir is `repo/config`."""
    return SimpleNamespace(root_dir=str(repo / "taskcluster"), get=lambda name, default=None:
                           default)


@pytest.mark.parametrize(("at_base", "at_head", "pull_request", "expected"), [
    (False, False, 0, 2), (False, False, 17, 0), (True, True, 17, 2),
    # a pull request cannot switch its own notifications on: the base revision decides
    (False, True, 17, 0)])
def test_an_environment_may_notify_pull_requests(fleet_dir: Path, at_base: bool, at_head: bool,
                                                 pull_request: int, expected: int):
    from cib_decision.config import load_fleet
    from cib_decision.taskgraph.parameters import trusted_environments

    def flag() -> None:
        insert_after(fleet_dir / "environments.yaml", "    pull-requests: true",
                     "    notify-pull-requests: true\n")

    if at_base:
        flag()
    base = load_fleet(DirectorySource(fleet_dir))
    if at_head and not at_base:
        flag()
    config = SimpleNamespace(graph_config=graph_config_of(fleet_dir.parent),
                             params={"cib_pull_request": pull_request,
                                     "cib_environment": "staging",
                                     "cib_trusted_environments": trusted_environments(base)
                                     if pull_request else None})
    graph_fleet.load(fleet_dir, DirectorySource(fleet_dir))
    assert len(notify_routes(config, "win10-64")) == expected


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "granted"), [
    ("github-push", True), ("cron", True), ("github-pull-request", False),
    ("github-pull-request-untrusted", False)])
def test_only_main_and_cron_roles_grant_the_notify_routes(event: str, granted: bool):
    scopes = role_scopes(ROLES, role_for_event(event, cron_job="nightly"), project="images")
    route = f"queue:route:notify.email.{OWNER}.on-failed"
    assert satisfies(scopes, route) is granted
    notify = [s for s in scopes if s.startswith("queue:route:notify")]
    assert notify == (["queue:route:notify.email.*"] if granted else [])
