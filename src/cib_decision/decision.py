"""`cib decision`: generate the graph, check all of it, then submit it.

The steps, in order, each finished before the next starts:
1. generate the graph with taskgraph (our register(), parameters from the event and the head
   commit), task ids derived from the decision task id and each label (taskids.py);
2. write taskgraph's usual artifacts (parameters, full and optimized graphs, label to task id,
   the actions);
3. complete every definition as the queue will see it (task group, scheduler id, the decision
   dependency, timestamps) and check all of them: the genuine createTask schema, and the scopes
   each needs against the repository role of the event (taskcluster/roles.yml);
4. only when every task passes, submit (submit.py).
A failed check submits nothing; a decision run again submits only what is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .errors import CibError
from .scopes import create_task_requirements, missing_scopes, role_for_event, role_scopes
from .submit import ATTEMPTS, PendingTask, Progress, SubmitReport, Submitter
from .taskgraph.root import (
    ROLES,
    ROOT_DIR,
    GraphRoot,
    RolesFile,
    graph_root,
    kinds_root,
    roles_file,
    version,
)
from .taskgraph.task_ids import deterministic_task_ids
from .tc import Queue, retrying
from .tcschemas import CREATE_TASK, SchemaStore

log = logging.getLogger(__name__)

ROLES_FILE = f"{ROOT_DIR}/{ROLES}"


def timestamp_paths(value: Any, path: tuple[str | int, ...] = ()
                    ) -> Iterator[tuple[str | int, ...]]:
    """The paths of `{"relative-datestamp": ...}` values in an unresolved definition."""
    if isinstance(value, dict):
        if set(value) == {"relative-datestamp"}:
            yield path
            return
        for key, item in value.items():
            yield from timestamp_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from timestamp_paths(item, (*path, index))


def complete_definitions(graph: Any, label_to_taskid: Mapping[str, str], decision_task_id: str,
                         scheduler_id: str, now: datetime) -> list[PendingTask]:
    """Every task of the optimized graph as the queue will receive it (what taskgraph's
    `create_tasks` adds, and timestamps resolved against `now`)."""
    from taskgraph.util.parameterization import resolve_timestamps
    label_of = {task_id: label for label, task_id in label_to_taskid.items()}
    pending = []
    for task_id in graph.graph.nodes:
        definition = dict(graph.tasks[task_id].task)
        dependencies = list(definition.get("dependencies", []))
        # Root tasks wait for the decision task, so a half-submitted graph never starts.
        if not any(d in graph.tasks for d in dependencies):
            dependencies.append(decision_task_id)
        definition["dependencies"] = dependencies
        definition["taskGroupId"] = decision_task_id
        definition["schedulerId"] = scheduler_id
        paths = frozenset(timestamp_paths(definition))
        pending.append(PendingTask(task_id, label_of[task_id],
                                   resolve_timestamps(now, definition), paths))
    return pending


def check(pending: list[PendingTask], schemas: SchemaStore, granted: list[str]) -> list[str]:
    """Every problem with the graph: schema errors and scopes the role does not grant."""
    problems = []
    for task in sorted(pending, key=lambda t: t.label):
        problems += [f"{task.label}: {error}" for error in schemas.errors(CREATE_TASK,
                                                                            task.definition)]
        problems += [f"{task.label}: needs scope {scope}, which the role does not grant"
                     for scope in missing_scopes(task.definition, granted)]
    return problems


@dataclass
class DecisionRequest:
    """What `cib decision` was asked to do."""

    options: dict[str, Any]  # taskgraph decision options (project, level, tasks_for, revs...)
    decision_task_id: str
    root: Path = Path(".")
    artifacts: Path = Path("artifacts")
    cron_job: str = ""
    action_permission: str = ""
    dry_run: bool = False
    concurrency: int = 50
    # told when the repository has no taskcluster/ folder and the packaged kinds plan it
    notify: Callable[[str], None] | None = None


@dataclass
class DecisionResult:
    label_to_taskid: dict[str, str]
    pending: list[PendingTask]
    report: SubmitReport | None = None
    role: str = ""
    problems: list[str] = field(default_factory=list)


def _role_scopes(request: DecisionRequest, root: Path) -> tuple[str, list[str]]:
    """The event's role and its scopes, from the roles file (taskgraph/root.py: the
    repository's taskcluster/roles.yml, else the one that ships with cib-decision). A pull
    request's graph is checked against the roles file of its base revision: the pull
    request's own could grant itself anything."""
    role, scopes, _ = _roles(request, root)
    return role, scopes


def _roles(request: DecisionRequest, root: Path) -> tuple[str, list[str], RolesFile]:
    """`_role_scopes`, and the roles file they come from."""
    from .gitrepo import open_repo, resolve

    role = role_for_event(request.options["tasks_for"], request.cron_job,
                          request.action_permission)
    base = request.options.get("base_rev")
    commit = None
    if str(request.options["tasks_for"]).startswith("github-pull-request"):
        if not base:
            raise CibError("a pull request decision needs its base revision: its graph is "
                           "checked against the base revision's roles file")
        try:
            commit = resolve(open_repo(root), base)
        except CibError as error:
            raise CibError(f"no readable {ROLES_FILE} at the base revision {base[:12]}: a "
                           f"pull request's graph is checked against it ({error})") from None
    found = roles_file(root, commit)
    try:
        roles = yaml.safe_load(found.text) or {}
    except yaml.YAMLError as error:
        raise CibError(f"{found.where}: cannot read the roles file: {error}") from error
    if not isinstance(roles, dict):
        raise CibError(f"{found.where}: the roles file is not a mapping of roles")
    return role, role_scopes(roles, role, project=request.options["project"]), found


def roles_advice(pending: list[PendingTask], granted: list[str], role: str,
                 found: RolesFile) -> str:
    """What a repository planned with cib-decision's roles file adds when its graph needs
    scopes that file does not grant (its pools' domains are not ours): its own
    taskcluster/roles.yml, and in it exactly the scopes missing. Empty for a repository's
    own roles file (it says what its deployment grants)."""
    if not found.packaged:
        return ""
    missing = sorted({requirement.any_of[0] for task in pending
                      for requirement in create_task_requirements(task.definition)
                      if not requirement.met_by(granted)})
    if not missing:
        return ""
    scopes = "\n".join(f"      - {scope}" for scope in missing)
    return (f"\nThe {role} role's scopes come from {found.where}, which grants what "
            "cib-decision's own deployment grants. Say what this repository's deployment "
            "grants it in a taskcluster/roles.yml of the repository (it replaces "
            "cib-decision's whole; the kinds of cib-decision stay in use): copy "
            f"taskcluster/roles.yml of cib-decision {version()} and add to the entry of "
            f"{role}:\n{scopes}")


def _write_artifacts(tgg: Any, label_to_taskid: dict[str, str], artifacts: Path,
                     decision_task_id: str) -> None:
    from taskgraph.actions import render_actions_json
    from taskgraph.decision import full_task_graph_to_runnable_tasks
    from taskgraph.util import json as tg_json

    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "parameters.yml").write_text(
        yaml.safe_dump(dict(tgg.parameters), default_flow_style=False, sort_keys=True))
    full_task_graph = tgg.full_task_graph.to_json()
    outputs = {
        "full-task-graph.json": full_task_graph,
        # what Treeherder's "add new jobs" offers (taskgraph's decision writes it too)
        "runnable-jobs.json": full_task_graph_to_runnable_tasks(full_task_graph),
        "target-tasks.json": list(tgg.target_task_set.tasks.keys()),
        "task-graph.json": tgg.morphed_task_graph.to_json(),
        "label-to-taskid.json": label_to_taskid,
        # what Treeherder and the Taskcluster UI offer as actions on this task group
        "actions.json": render_actions_json(tgg.parameters, tgg.graph_config, decision_task_id),
    }
    for name, data in outputs.items():
        (artifacts / name).write_text(tg_json.dumps(data, sort_keys=True, indent=2))


def _write_check_run_text(tgg: Any, artifacts: Path) -> None:
    """The plan as the decision's GitHub check run shows it (`checkrun.plan_markdown`): what
    runs and why (the config paths changed since the base revision), what the index gave
    from earlier builds, what was skipped, the directives."""
    from .changes import compute_changes
    from .checkrun import plan_markdown
    from .checkrun_errors import TEXT_ARTIFACT
    from .directives import Directives
    from .plan import plan_of_graph, skipped_tasks
    from .taskgraph import fleet as graph_fleet
    from .taskgraph.parameters import base_fleet

    parameters = dict(tgg.parameters)
    config_dir = graph_fleet.config_dir(tgg.graph_config)
    fleet = graph_fleet.load(config_dir).fleet
    # asked as the parameters asked (base_fleet is cached): the base is read once
    base = base_fleet(graph_fleet.repo_root(tgg.graph_config), config_dir,
                      parameters.get("base_rev"))
    report = compute_changes(base, fleet, parameters.get("base_rev") or "",
                             parameters["head_rev"])
    directives = Directives.from_json(parameters["cib_directives"])
    plan = plan_of_graph(tgg, directives, report,
                         "built earlier: the index has a task of the same digest")
    plan.skipped = skipped_tasks(fleet, directives, parameters)
    path = artifacts / TEXT_ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_markdown(plan), encoding="utf-8")


def generate(request: DecisionRequest, root: GraphRoot) -> Any:
    """The taskgraph generator for the decision, run to its morphed graph, from `root` (the
    repository's own taskcluster/ folder or the packaged one: taskgraph/root.py)."""
    from taskgraph.config import load_graph_config
    from taskgraph.decision import get_decision_parameters
    from taskgraph.generator import TaskGraphGenerator

    def parameters(config: Any) -> Any:
        # taskgraph reads the commit and the files changed from the working directory's
        # repository, which the kinds' root (a scratch copy) may not be
        with contextlib.chdir(root.repository):
            return get_decision_parameters(config, request.options)

    graph_config = load_graph_config(str(root.taskcluster))
    graph_config.register()
    with deterministic_task_ids(request.decision_task_id), kinds_root(root) as root_dir:
        tgg = TaskGraphGenerator(root_dir=root_dir, decision_task_id=request.decision_task_id,
                                 parameters=parameters)
        tgg.morphed_task_graph  # noqa: B018 (runs every phase inside the context)
    return tgg


def stable_pushdate(request: DecisionRequest, queue: Queue,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Without a push date, taskgraph dates the build (index ranks, dated routes) by the clock,
    so a rerun would build a different graph. Use the decision task's creation time instead:
    the same on every run of the task. A decision task the queue does not know (a run by hand
    with --task-id) keeps the clock; one it cannot read is an error, never a different graph."""
    if int(request.options.get("pushdate") or 0) or queue is None:
        return
    from taskcluster.exceptions import TaskclusterFailure, TaskclusterRestFailure

    try:
        created = retrying(lambda: queue.task(request.decision_task_id), attempts=ATTEMPTS,
                           sleep=sleep)["created"]
    except TaskclusterRestFailure as error:
        if error.status_code != 404:
            raise CibError(f"cannot read the decision task {request.decision_task_id}: "
                           f"{error}") from None
        log.warning("the queue has no task %s; the build date is the clock's",
                    request.decision_task_id)
        return
    except TaskclusterFailure as error:
        raise CibError(f"cannot read the decision task {request.decision_task_id}: "
                       f"{error}") from None
    request.options["pushdate"] = int(datetime.fromisoformat(created.replace("Z", "+00:00"))
                                      .timestamp())


def run_decision(request: DecisionRequest, queue: Queue, schemas: SchemaStore,
                 progress: Progress | None = None) -> DecisionResult:
    """Generate, write artifacts, check, and (unless a dry run) submit."""
    role, granted, found = _roles(request, request.root)
    stable_pushdate(request, queue)
    # the graph's readers find the repository through the root while it is prepared
    with graph_root(request.root, notify=request.notify) as root:
        tgg = generate(request, root)
        label_to_taskid = dict(tgg.label_to_taskid)
        graph = tgg.morphed_task_graph
        for task_id, task in graph.tasks.items():  # morphs (index tasks) name theirs at random
            label_to_taskid[task.label] = task_id
        _write_artifacts(tgg, label_to_taskid, request.artifacts, request.decision_task_id)
        _write_check_run_text(tgg, request.artifacts)
    scheduler_id = f"{tgg.graph_config['trust-domain']}-level-{tgg.parameters['level']}"
    pending = complete_definitions(graph, label_to_taskid, request.decision_task_id,
                                   scheduler_id, datetime.now(UTC))
    result = DecisionResult(label_to_taskid, pending, role=role)
    result.problems = check(pending, schemas, granted)
    if result.problems:
        shown = "\n  ".join(result.problems[:50])
        more = len(result.problems) - 50
        raise CibError(f"the graph fails its checks; nothing was submitted:\n  {shown}"
                       + (f"\n  ... and {more} more" if more > 0 else "")
                       + roles_advice(pending, granted, role, found))
    log.info("%d tasks pass the createTask schema and the %s role's scopes",
             len(pending), role)
    if request.dry_run:
        return result
    result.report = Submitter(queue, concurrency=request.concurrency).submit(pending, progress)
    if not result.report.ok:
        failed = "\n  ".join(f"{label}: {why}" for label, why in
                             sorted(result.report.failed.items())[:50])
        raise CibError(f"{len(result.report.failed)} tasks failed to submit and "
                       f"{len(result.report.not_attempted)} were not attempted; run the "
                       f"decision again to complete the graph:\n  {failed}")
    return result


def decision_task_id(explicit: str | None = None) -> str:
    """The decision task's own id: `--task-id`, else `$TASK_ID` (set by the worker)."""
    task_id = explicit or os.environ.get("TASK_ID")
    if not task_id:
        raise CibError("no decision task id: run inside a task (TASK_ID) or give --task-id")
    return task_id
