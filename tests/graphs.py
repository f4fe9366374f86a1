"""Generating our task graphs in tests: parameters per event and a fake index (test helper)."""

from __future__ import annotations

import json
import shlex

import responses
from taskgraph.config import load_graph_config
from taskgraph.generator import TaskGraphGenerator
from taskgraph.parameters import Parameters

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import Vocabulary, parse_directives
from cib_decision.taskgraph.transforms.common import CIB_COMMAND

from .conftest import CONFIG_DIR, FAKE_ROOT_URL, ROOT

TASKCLUSTER = str(ROOT / "taskcluster")
FLEET = load_fleet(DirectorySource(CONFIG_DIR))
DECISION_TASK_ID = "VDUz1QL7RvC8TrIzTf-qXg"


def cib_args(definition: dict) -> list[str]:
    """The `cib` arguments a task definition's command runs (none for a task that runs no
    `cib`, such as a verify task)."""
    script = str(definition["payload"].get("command", [[""]])[0][-1])
    _, found, args = script.partition(f"{CIB_COMMAND} ")
    return shlex.split(args) if found else []




class FakeIndex:
    """The index and queue status calls that index-search optimization makes, answered from
    a dict of index path -> task id (all tasks completed). Request shapes are the real API's."""

    def __init__(self, mock: responses.RequestsMock):
        self.indexed: dict[str, str] = {}
        self.asked: list[str] = []
        mock.add_callback(responses.POST, f"{FAKE_ROOT_URL}/api/index/v1/tasks/indexes",
                          callback=self._find, content_type="application/json")
        mock.add_callback(responses.POST, f"{FAKE_ROOT_URL}/api/queue/v1/tasks/status",
                          callback=self._statuses, content_type="application/json")

    def _find(self, request):
        paths = json.loads(request.body)["indexes"]
        self.asked += paths
        tasks = [{"namespace": p, "taskId": self.indexed[p], "rank": 0, "data": {},
                  "expires": "2099-01-01T00:00:00.000Z"} for p in paths if p in self.indexed]
        return 200, {}, json.dumps({"tasks": tasks})

    def _statuses(self, request):
        ids = json.loads(request.body)["taskIds"]
        statuses = [{"taskId": i, "status": {"taskId": i, "state": "completed",
                                             "expires": "2099-01-01T00:00:00.000Z"}}
                    for i in ids]
        return 200, {}, json.dumps({"statuses": statuses})


def generator(message: str = "commit", environment: str = "production",
              **overrides) -> TaskGraphGenerator:
    load_graph_config(TASKCLUSTER).register()
    directives = parse_directives(message, Vocabulary.from_fleet(FLEET)).to_json()
    values = {"head_repository": "https://github.com/example/images", "head_rev": "a" * 40,
              "base_repository": "https://github.com/example/images",
              "base_rev": "b" * 40, "project": "images", "tasks_for": "github-push",
              "level": "3", "target_tasks_method": "cib", "cib_directives": directives,
              "cib_environment": environment, **overrides}
    return TaskGraphGenerator(root_dir=TASKCLUSTER, parameters=Parameters(strict=False, **values))


def target(message: str = "commit", **kw) -> set[str]:
    return set(generator(message, **kw).target_task_graph.tasks)


def of_kind(labels: set[str], kind: str) -> set[str]:
    return {label for label in labels if label.startswith(f"{kind}-")}


HOSTILE = ("Take over\n\npurge-taskcluster-resources\ninclude environments: production\n"
           "pool-deploy\ndisable-cleanup\noverwrite-machine-image")


def pr(message: str = "commit", environment: str = "staging", action: str = "opened",
       changed: list[str] | None = None, number: int = 17, base=FLEET):
    """A pull request graph; `base` is the fleet at its base revision (trusted policy)."""
    from cib_decision.taskgraph.parameters import trusted_environments

    return generator(message, environment=environment, level="1",
                     tasks_for="github-pull-request", head_ref="feature",
                     cib_pull_request=number, cib_pull_request_action=action,
                     cib_changed_keys=changed,
                     cib_trusted_environments=trusted_environments(base))


