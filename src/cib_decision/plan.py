"""`cib plan`: the release engineer's offline view of a decision.

It runs the same taskgraph generation as the decision task (our kinds, transforms and target
method) on the repository at `--head` (or its working tree), with parameters built from the
command line instead of the event, and an offline optimization: images whose digest was built at
`--base` count as built. No credentials, no network. Config files parsed and validated before
are taken from a cache keyed by their content (config/cache.py; `CIB_CACHE_DIR=` turns it off).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import git

from .changes import ChangeReport, compute_changes
from .config import DirectorySource, Fleet, load_fleet
from .config.cache import ParsedCache
from .digests import fleet_digests
from .directives import Directives, Vocabulary, parse_directives
from .errors import CibError, ConfigError
from .gitrepo import GitTreeSource, commit_message, open_repo, resolve
from .memory import gc_paused
from .taskgraph import fleet as graph_fleet
from .taskgraph.root import GraphRoot, graph_root, kinds_root

TASKS_FOR = ("github-push", "github-pull-request", "github-pull-request-untrusted", "cron",
             "action")


@dataclass
class PlanRequest:
    """What `cib plan` was asked for."""

    repo: Path = Path(".")
    head: str | None = None  # None: the working tree
    base: str | None = None  # None: the head's parent (HEAD for the working tree)
    no_base: bool = False  # nothing counts as built
    message: str | None = None  # None: the head commit's message
    tasks_for: str = "github-push"
    pull_request: int = 0
    pull_request_action: str = "opened"
    environment: str | None = None  # None: the first environment of the config


@dataclass
class PlannedTask:
    label: str
    kind: str
    symbol: str
    dependencies: list[str]
    reason: str
    task: dict[str, Any]
    # taskgraph's attributes of the task (`cib-key`, `cib-target`, `cib-pool`, ...): the
    # definition in `task` does not name the image key it belongs to
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    directives: Directives
    parameters: dict[str, Any]
    tasks: dict[str, PlannedTask] = field(default_factory=dict)
    built: dict[str, str] = field(default_factory=dict)  # label -> why it is not run
    # label -> why the graph has no such task (a cloud cib does not build machine images on)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"directives": self.directives.to_json(), "parameters": self.parameters,
                "tasks": {label: {"kind": t.kind, "reason": t.reason, "task": t.task}
                          for label, t in self.tasks.items()},
                "skipped": self.skipped}


def _git_config(commit: git.Commit, config_name: str) -> GitTreeSource:
    source = GitTreeSource(commit, config_name)
    if not source.exists:
        raise CibError(f"config directory not found: {config_name} at {commit.hexsha[:12]}")
    return source


def _config_dir_name(taskcluster_dir: Path) -> str:
    from taskgraph.config import load_graph_config

    return (load_graph_config(str(taskcluster_dir)).get("cib") or {}).get("config-dir", "config")


def make_plan(request: PlanRequest, notify: Callable[[str], None] | None = None) -> Plan:
    """Generate the graph a decision would create for `request`, offline. `notify` is told
    when the repository has no taskcluster/ folder of its own and the kinds that ship with
    cib-decision plan it (taskgraph/root.py).

    The plan is what the command prints before it exits, so the objects it is made of are
    frozen for the garbage collector (see memory.gc_paused).
    """
    with gc_paused(freeze=True):
        return _make_plan(request, notify)


def _make_plan(request: PlanRequest, notify: Callable[[str], None] | None) -> Plan:
    if request.tasks_for not in TASKS_FOR:
        raise CibError(f"unknown --tasks-for {request.tasks_for!r}; one of {', '.join(TASKS_FOR)}")
    repo = open_repo(request.repo)
    if request.head is None:
        if repo.bare or not repo.working_tree_dir:
            raise CibError("a bare repository has no working tree: give --head REV")
        head_commit = resolve(repo, "HEAD")
    else:
        head_commit = resolve(repo, request.head)
    repository = Path(repo.working_tree_dir or repo.git_dir)
    # The working tree's own taskcluster/ in place, else a scratch copy: of the revision's
    # own folder (`--head REV`), or of the one that ships with cib-decision.
    with graph_root(repository, None if request.head is None else head_commit,
                    notify) as root:
        config_name = _config_dir_name(root.taskcluster)
        # The config is read straight from git objects (no files written); the graph's kinds
        # find the fleet loaded here under the directory they look in.
        source = (DirectorySource(root.repository / config_name) if request.head is None
                  else _git_config(head_commit, config_name))
        cache = ParsedCache.from_environment()
        head = graph_fleet.load(root.repository / config_name, source, cache)
        head_fleet = head.fleet
        base_fleet, base_rev = _base(repo, request, head_commit, config_name, cache)
        message = request.message
        if message is None:
            message = commit_message(repo, head_commit.hexsha)
        directives = parse_directives(message, Vocabulary.from_fleet(head_fleet))

        def report_of(keys: Collection[str] | None = None) -> ChangeReport:
            """What changed since the base, for `keys` (None: every key)."""
            return compute_changes(_only(base_fleet, keys), _only(head_fleet, keys),
                                   base_rev or "", head_commit.hexsha,
                                   "nothing counts as built (--no-base)" if request.no_base
                                   else None)

        # A pull request's parameters name its changed keys: its whole report comes first. A
        # push's report only says why the tasks that run do: it is made for their keys once
        # the graph is known (a push changing one key of 1000 compares one key, not 1000).
        report = report_of() if request.tasks_for.startswith("github-pull-request") else None
        parameters = _parameters(request, head, base_fleet, report, directives,
                                 head_commit.hexsha, base_rev)
        plan = _generate(root, parameters, directives, report or report_of)
        plan.skipped = _skipped(head_fleet, directives, parameters)
        return plan


def _only(fleet: Fleet | None, keys: Collection[str] | None) -> Fleet | None:
    """`fleet` with only the image keys named in `keys` (all of them when None)."""
    if fleet is None or keys is None:
        return fleet
    return replace(fleet, keys={name: key for name, key in fleet.keys.items() if name in keys})


def _base(repo: git.Repo, request: PlanRequest, head: git.Commit, config_name: str,
          cache: ParsedCache | None) -> tuple[Fleet | None, str | None]:
    if request.no_base:
        return None, None
    if request.base is not None:
        commit = resolve(repo, request.base)
    elif request.head is None:
        commit = head
    elif head.parents:
        commit = head.parents[0]
    else:
        return None, None
    source = GitTreeSource(commit, config_name)
    if not source.exists:
        return None, commit.hexsha
    try:
        return load_fleet(source, cache), commit.hexsha
    except ConfigError:
        return None, commit.hexsha  # nothing counts as built at a broken base


def _parameters(request: PlanRequest, head: graph_fleet.GraphFleet, base: Fleet | None,
                report: ChangeReport | None, directives: Directives, head_rev: str,
                base_rev: str | None) -> dict[str, Any]:
    """The decision's parameters for `request` (`report`: the whole change report, which a
    pull request's parameters need; None for other events)."""
    from .taskgraph.items import built_tasks
    from .taskgraph.parameters import trusted_environments

    fleet = head.fleet
    pull_request = request.tasks_for.startswith("github-pull-request")
    number = (request.pull_request or 1) if pull_request else 0
    environment = request.environment or next(iter(fleet.environments))
    if environment not in fleet.environments:
        raise CibError(f"unknown --environment {environment!r}; the config has "
                       f"{', '.join(fleet.environments)}")
    now = int(time.time())
    return {
        "base_repository": "https://github.com/example/images", "base_ref": "refs/heads/main",
        "base_rev": base_rev or head_rev, "build_date": now, "build_number": 1,
        "do_not_optimize": [], "enable_always_target": False, "existing_tasks": {},
        "files_changed": [], "filters": ["target_tasks_method"],
        "head_ref": "refs/heads/plan" if pull_request else "refs/heads/main",
        "head_repository": "https://github.com/example/images", "head_rev": head_rev,
        "head_tag": "", "level": "1" if pull_request else "3",
        "moz_build_date": time.strftime("%Y%m%d%H%M%S", time.gmtime(now)),
        "next_version": None, "optimize_strategies": "cib_decision.taskgraph.offline:strategies",
        "optimize_target_tasks": True, "owner": "plan@example.com", "project": "images",
        "pushdate": now, "pushlog_id": "0", "repository_type": "git",
        "target_tasks_method": "cib", "tasks_for": request.tasks_for, "version": None,
        "cib_directives": directives.to_json(), "cib_environment": environment,
        "cib_pull_request": number,
        "cib_pull_request_action": request.pull_request_action if pull_request else "",
        "cib_changed_keys": report.changed_keys() if pull_request and report else None,
        # what the base's graph for the same event and environment would have built
        "cib_built_tasks": built_tasks(base, fleet_digests(base, (fleet, head.digests)), {
            "cib_pull_request": number, "cib_environment": environment}) if base else [],
        "cib_trusted_environments": trusted_environments(base) if pull_request else None,
    }


@contextmanager
def _kinds_in_this_process() -> Iterator[None]:
    """Load the kinds one after the other in this process (taskgraph's TASKGRAPH_SERIAL).

    Our kinds form a chain (disk images, machine images, tags, pools, verification), so forking
    a process per kind runs little at the same time and sends every task back through a pipe:
    on 2 cores, 1000 keys, that made generation about 0.5 s slower.
    """
    previous = os.environ.get("TASKGRAPH_SERIAL")
    os.environ["TASKGRAPH_SERIAL"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TASKGRAPH_SERIAL"]
        else:
            os.environ["TASKGRAPH_SERIAL"] = previous


def _generate(root: GraphRoot, values: dict[str, Any], directives: Directives,
              report: ChangeReport | Callable[[Collection[str]], ChangeReport]) -> Plan:
    """Generate the graph of `values` and make its plan; `report` is the change report, or
    makes it for the image keys of the tasks that run."""
    from taskgraph.config import load_graph_config
    from taskgraph.generator import TaskGraphGenerator
    from taskgraph.parameters import Parameters

    load_graph_config(str(root.taskcluster)).register()
    parameters = Parameters(strict=True, **values)
    with _kinds_in_this_process(), kinds_root(root) as root_dir:
        # taskgraph's verifications (about 0.3 s of 2 at 1000 keys) are left to the decision,
        # which runs them all on the graph it submits (decision.generate): the plan is a
        # preview, and what they refuse the decision refuses before creating anything.
        tgg = TaskGraphGenerator(root_dir=root_dir, parameters=parameters,
                                 enable_verifications=False)
        tgg.optimized_task_graph  # noqa: B018 - generated while the kinds are in place
    if callable(report):
        report = report({task.attributes["cib-key"]
                         for task in tgg.optimized_task_graph.tasks.values()
                         if "cib-key" in task.attributes})
    return plan_of_graph(tgg, directives, report,
                         "done at the base revision with the same digest")


def plan_of_graph(tgg: Any, directives: Directives, report: ChangeReport,
                  reused_because: str) -> Plan:
    """The plan of a generated graph (taskgraph's `TaskGraphGenerator`, run to its
    optimized graph): each task that runs and why (`report`: what changed since the base
    revision), and the target tasks optimization replaced, as `reused_because`."""
    optimized = tgg.optimized_task_graph
    label_of = {task_id: label for label, task_id in tgg.label_to_taskid.items()}
    reasons = _Reasons(report, directives, set(optimized.tasks))
    plan = Plan(directives, dict(tgg.parameters))
    for task in sorted(optimized.tasks.values(), key=lambda t: t.label):
        th = task.task.get("extra", {}).get("treeherder", {})
        symbol = f"{th.get('groupSymbol', '?')}({th.get('symbol', '')})" if th else ""
        plan.tasks[task.label] = PlannedTask(
            task.label, task.kind, symbol,
            sorted(label_of.get(d, d) for d in task.dependencies.values()),
            reasons.why(task), task.task, dict(task.attributes))
    for label in sorted(set(tgg.target_task_graph.tasks) - set(plan.tasks)):
        plan.built[label] = reused_because
    return plan


def skipped_tasks(fleet: Fleet, directives: Directives,
                  parameters: dict[str, Any]) -> dict[str, str]:
    """The tasks the graph leaves out because cib does not build on their cloud, and why."""
    return _skipped(fleet, directives, parameters)


def _skipped(fleet: Fleet, directives: Directives, parameters: dict[str, Any]) -> dict[str, str]:
    """The tasks the graph leaves out because cib does not build on their cloud, and why."""
    from .taskgraph.target_tasks import scope, unbuilt_tasks

    selection = scope(fleet, directives, parameters)
    return dict(sorted(unbuilt_tasks(fleet, selection, directives).items()))


class _Reasons:
    """One line per task saying why it runs."""

    def __init__(self, report: ChangeReport, directives: Directives,
                 running: Collection[str] = frozenset()):
        self.directives, self.running = directives, running  # running: the graph's task ids
        self.keys = {k.key: k for k in report.keys}

    def why(self, task) -> str:
        attrs, kind = task.attributes, task.kind
        key = self.keys.get(attrs.get("cib-key", ""))
        if kind == "lint":
            return "config check"
        if kind == "task-env":
            return "cib's code or dependencies changed (built once per digest)"
        if kind == "purge":
            return "remove resources builds left behind"
        if kind == "pr-teardown":
            return "pull request closed"
        if kind == "disk-image" and key:
            if self.directives.overwrite_disk_image:
                return "overwrite-disk-image"
            return "; ".join(key.disk_image.because) or "not built before"
        if kind == "machine-image" and key:
            if self.directives.overwrite_machine_image:
                return "overwrite-machine-image"
            target = next((t for t in key.targets if t.target == attrs.get("cib-target")), None)
            because = target.machine_image.because if target else []
            return "; ".join(because) or "disk image rebuilt or not built before"
        if kind == "test-image" and key:
            if task.dependencies.get("machine-image") in self.running:
                return "smoke-test the new image"
            # tests are not an image input: changed tests run again on the image there is
            return "smoke tests changed or never ran on this image (the image is reused)"
        if kind == "tag":
            return "tag the new images"
        if kind == "worker-pool" and key:
            if self.directives.pool_deploy:
                return "pool-deploy: newest existing images"
            pool = next((p for p in key.pools if p.pool == attrs.get("cib-pool")), None)
            if pool and pool.update:
                return "deploy: " + "; ".join(pool.because)
            return "deploy the new images"
        if kind == "verify":
            return f"claim a task on {attrs.get('cib-deploy-pool')}"
        return ""

