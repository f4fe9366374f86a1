"""The step every kind shares (transforms/cib_task.py): a kind declares its item, `cib` command,
digest cache, notify and Treeherder place, and the step makes the label, attributes, worker,
index routes, notify routes and Treeherder fields the same way for every kind."""

from __future__ import annotations

import pytest
import yaml
from taskgraph.config import load_graph_config
from taskgraph.parameters import Parameters
from taskgraph.transforms.base import TransformConfig
from taskgraph.util.schema import SchemaValidationError

from cib_decision.errors import TransientError
from cib_decision.taskgraph.task_env import USES_ENV
from cib_decision.taskgraph.transforms.cib_task import cib_task
from cib_decision.taskgraph.transforms.common import MAX_SYMBOL

from .conftest import ROOT
from .graphs import TASKCLUSTER, cib_args, generator, pr

KINDS = sorted(p.parent.name for p in (ROOT / "taskcluster" / "kinds").glob("*/kind.yml"))
SHARED = "cib_decision.taskgraph.transforms.cib_task:transforms"
DISK_ITEM = {"name": "win10-64", "key": "win10-64", "cache-name": "win10-64",
             "digest": "d" * 64}


def transform_config(kind: str = "disk-image", **params) -> TransformConfig:
    graph_config = load_graph_config(TASKCLUSTER)
    values = {"head_repository": "https://github.com/example/images", "head_rev": "a" * 40,
              "project": "images", "level": "3", "tasks_for": "github-push",
              "build_date": 1700000000, "cib_environment": "production",
              "cib_pull_request": 0, **params}
    return TransformConfig(kind, f"{TASKCLUSTER}/kinds/{kind}", {}, Parameters(strict=False,
                           **values), {}, graph_config, write_artifacts=False)


def shared(description: dict, config: TransformConfig | None = None) -> dict:
    """The task description the shared step makes of one cib task description."""
    return next(cib_task(config or transform_config(), iter([description])))


def disk_task(**fields) -> dict:
    return {"cib-item": DISK_ITEM, "description": "Build a disk image",
            "cib-run": {"args": ["image", "disk", "--key", "win10-64"]},
            "cib-treeherder": {"group": "D", "symbol": "disk", "platform": "win10-64"},
            **fields}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_runs_the_shared_step_just_before_taskgraphs_task_transforms(kind):
    listed = yaml.safe_load((ROOT / "taskcluster/kinds" / kind / "kind.yml").read_text())
    transforms = listed["transforms"]
    assert transforms.count(SHARED) == 1
    assert transforms[transforms.index(SHARED) + 1] == "taskgraph.transforms.task:transforms"


def test_the_label_is_the_kind_and_the_item_name_and_the_item_gives_the_attributes():
    item = {"name": "gecko-t-win10-64-azure", "key": "win10-64", "pool": "gecko-t/win10-64-azure",
            "platform": "azure", "region": "", "targets": ["azure/eastus2"]}
    task = shared(disk_task(**{"cib-item": item, "attributes": {"cib-deploy-pool": "x/y"}}),
                  transform_config("worker-pool"))
    assert task["label"] == "worker-pool-gecko-t-win10-64-azure"
    # an empty field gives no attribute; fields other than ITEM_ATTRIBUTES give none
    assert task["attributes"] == {"cib-kind": "worker-pool", "cib-key": "win10-64",
                                  "cib-pool": "gecko-t/win10-64-azure", "cib-platform": "azure",
                                  "cib-deploy-pool": "x/y", USES_ENV: True}


def test_a_cib_run_runs_cib_from_the_task_environment_and_retries_on_the_transient_status():
    task = shared(disk_task(**{"cib-run": {
        "args": ["image", "disk", "--key", "win10-64"], "artifacts": True,
        "max-run-time": 7200, "env": {"CIB_DISK_IMAGE_TASK_ID": {"task-reference": "<d>"}}}}))
    worker = task["worker"]
    assert cib_args({"payload": worker}) == ["image", "disk", "--key", "win10-64"]
    assert worker["retry-exit-status"] == [TransientError.exit_code]
    assert worker["max-run-time"] == 7200
    assert worker["env"]["CIB_DISK_IMAGE_TASK_ID"] == {"task-reference": "<d>"}
    assert worker["env"]["CIB_HEAD_REV"] == "a" * 40
    assert worker["artifacts"] == [{"type": "directory", "path": "src/artifacts",
                                    "name": "public"}]
    assert task["attributes"][USES_ENV] is True
    assert task["worker-type"] == "b-linux"


def test_a_task_with_its_own_worker_runs_no_cib_and_does_not_mount_the_environment():
    worker = {"command": [["true"]], "max-run-time": 60, "env": {}, "chain-of-trust": False}
    description = disk_task(worker=worker, **{"worker-type": "images"})
    del description["cib-run"]
    task = shared(description)
    assert task["worker"] == worker and task["worker-type"] == "images"
    assert USES_ENV not in task["attributes"]


@pytest.mark.parametrize("rebuild", [False, True])
def test_a_cached_task_is_indexed_by_its_items_digest_and_rebuild_keeps_only_the_routes(rebuild):
    task = shared(disk_task(**{"cib-cache": {"type": "disk-image", "rebuild": rebuild}}))
    route = f"index.cib.v2.cib-decision.cache.level-3.disk-image.win10-64.hash.{'d' * 64}"
    assert route in task["routes"]
    assert task["attributes"]["cib-digest"] == "d" * 64
    assert task["attributes"]["cached_task"] == {"type": "disk-image", "name": "win10-64",
                                                 "digest": "d" * 64}
    assert ("optimization" in task) is not rebuild


def test_notify_routes_follow_the_index_routes_and_name_the_key():
    task = shared(disk_task(**{"cib-cache": {"type": "disk-image"}, "cib-notify": True}))
    notify = [r for r in task["routes"] if r.startswith("notify.")]
    assert notify and task["routes"][-len(notify):] == notify
    assert "of win10-64" in task["extra"]["notify"]["email"]["subject"]
    assert "routes" not in shared(disk_task())


def test_the_treeherder_symbol_is_always_a_valid_one():
    long_pool = "gecko-t/a-very-long-pool-name-of-many-words"
    task = shared(disk_task(**{"cib-treeherder": {"group": "W", "symbol": long_pool,
                                                  "platform": "win10 64", "kind": "build"}}))
    symbol = task["treeherder"]["symbol"]
    assert symbol.startswith("W(") and len(symbol[2:-1]) <= MAX_SYMBOL and "/" not in symbol
    assert task["treeherder"] == {"symbol": symbol, "platform": "win10-64/opt", "kind": "build",
                                  "tier": 1}


@pytest.mark.parametrize("change", [
    {"label": "disk-image-x"},  # the step makes the label: a kind cannot set its own
    {"treeherder": {"symbol": "D(x)"}},
    {"cib-cache": {"type": "disk-image", "rebiuld": True}},
    {"worker": {"command": [["true"]]}},  # a worker and a cib-run
    {"cib-run": None},  # neither
])
def test_a_cib_task_description_with_a_wrong_field_fails_naming_the_kind_and_item(change):
    description = {k: v for k, v in {**disk_task(), **change}.items() if v is not None}
    with pytest.raises(SchemaValidationError, match="In disk-image kind item 'win10-64':"):
        shared(description)


@pytest.mark.parametrize("make", [lambda: generator("commit"), lambda: pr(action="closed")],
                         ids=["push", "pull-request"])
def test_every_task_that_runs_cib_mounts_the_environment_and_retries_on_the_transient_status(
        make):
    tasks = make().full_task_graph.tasks.values()
    runs_cib = {t.label for t in tasks if cib_args(t.task)}
    assert runs_cib and {t.kind for t in tasks if t.label not in runs_cib} == {"task-env",
                                                                             "verify"}
    for task in tasks:
        assert task.label.startswith(f"{task.kind}-")
        assert task.attributes["cib-kind"] == task.kind
        assert bool(task.attributes.get(USES_ENV)) == (task.label in runs_cib)
        retry = task.task["payload"].get("onExitStatus", {}).get("retry")
        assert (retry == [TransientError.exit_code]) == (task.label in runs_cib)
