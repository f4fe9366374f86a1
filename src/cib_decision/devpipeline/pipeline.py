"""GitHub events played through the local deployment, and what became of their tasks.

`LocalPipeline.prepare` makes the repository (`repository.py`) and seeds the local clouds for
its fleet; `play` renders `.taskcluster.yml` for an event as Taskcluster's GitHub service does,
creates the decision task with exactly the service's scopes (the repository's role for the
event, `queue:route:checks`, its scheduler id), and waits until every task of the decision's
group is resolved or can no longer run. The decision and every task of its graph run on the
deployment's workers; nothing runs in this process.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import slugid
import yaml

import taskcluster

from .. import action_hooks
from .. import github_events as events
from ..config import DirectorySource, load_fleet
from ..dev_event import render_event, service_scopes
from ..devclouds.aws import pin_sources, seed_fleet
from ..errors import CibError
from . import repository
from .deployment import LocalDeployment, git_url_rewrites

CRON_JOB = "nightly"
DRIFT_JOB = "drift"  # .cron.yml
FORK_OWNER = "someone"  # whose fork a pull request comes from (github_events.pull_request_event)
PR_BRANCH = "change"
IMAGE_PR_BRANCH, IMAGE_PR_NUMBER = "image-change", 3

RESOLVED = ("completed", "failed", "exception")
POLL_SECONDS = 2.0
# how long pending tasks may wait on queues no worker serves before a run is called stalled
STALLED_SECONDS = 15.0


@dataclass
class TaskResult:
    """One task of a played event: how it ended (`state`: a resolution, or `pending`/
    `unscheduled`/`running` when it never could), and what Treeherder would show."""

    task_id: str
    label: str
    state: str
    reason: str
    platform: str
    symbol: str
    queue: str
    runs: int
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "completed"


@dataclass
class EventResult:
    """A played event: its decision task and every task of its group."""

    event: str
    head: str
    decision_task_id: str
    seconds: float
    tasks: list[TaskResult]

    @property
    def ok(self) -> bool:
        return bool(self.tasks) and all(t.ok for t in self.tasks)

    def by_label(self) -> dict[str, TaskResult]:
        return {t.label: t for t in self.tasks}


class LocalPipeline:
    """The repository `full_name` on the local deployment, playing the environment
    `environment` of its config."""

    def __init__(self, deployment: LocalDeployment, *, full_name: str = "example/images",
                 log: Callable[[str], None] | None = None):
        self.deployment = deployment
        self.full_name = full_name
        self.log = log or (lambda line: None)
        self.repo: Path | None = None
        self.environment = ""
        self.head = ""  # the prepared commit
        self.promotion: LocalPipeline | None = None  # the environment promoted to

    @property
    def tc(self):
        return self.deployment.tc

    def cloud_environment(self, level: str = "3") -> dict[str, str]:
        """The variables that point a process outside the workers (`cib drift` run by hand or
        by a test) at the local clouds: those the level's clouds secret gives a task."""
        from .. import cloudcreds
        from .deployment import clouds_secret_name

        name = clouds_secret_name(level)
        secret = taskcluster.Secrets({"rootUrl": self.tc.root_url,
                                      "credentials": self.tc.root_credentials}).get(name)
        return cloudcreds.variables(secret["secret"], name)

    def prepare(self, repo: Path, environment: str | None = None,
                promotion: LocalDeployment | None = None) -> str:
        """In the clone `repo` (`repository.clone`): point the environment the deployment
        plays at it (and, with `promotion`, the first other environment at that deployment:
        `self.promotion` plays it), pin the disk sources to the stand-ins seeded in the local
        clouds, and commit; the commit's sha."""
        work = self.deployment.work_dir
        config = repository.config_dir(repo)
        fleet = load_fleet(DirectorySource(str(config)))
        self.environment = environment or _default_environment(fleet)
        if self.environment not in fleet.environments:
            raise CibError(f"no environment {self.environment!r} in {config} (known: "
                           f"{', '.join(fleet.environments) or 'none'})")
        repository.point_environment_at(config, fleet.environments[self.environment],
                                        self.tc.root_url)
        if promotion is not None:
            others = [name for name in fleet.environments if name != self.environment]
            if not others:
                raise CibError(f"{config}: promotion needs a second environment to promote "
                               f"to; {self.environment} is the only one")
            self.promotion = LocalPipeline(promotion, full_name=self.full_name, log=self.log)
            self.promotion.repo, self.promotion.environment = repo, others[0]
            repository.point_environment_at(config, fleet.environments[others[0]],
                                            promotion.tc.root_url)
        # the deployment the fleet's repository runs against has a provider of each name its
        # pools give (cloud-image-builder's pools said `azure2`); the local ones stand in for it
        for deployment in (self.deployment, promotion):
            if deployment is not None:
                deployment.tc.providers.update(fleet_providers(fleet))
        seeded = seed_fleet(self.deployment.aws, fleet, work / "stand-ins")
        self.deployment.azure.fake.add_fleet(fleet)
        self.deployment.google.fake.add_fleet(fleet)
        pin_sources(config, seeded.pins())
        self.repo = repo
        played = " and ".join(p.environment for p in (self, self.promotion) if p is not None)
        sha = repository.commit_all(
            repo, f"Local pipeline: {played} played by local Taskclusters; disk sources "
                  "pinned to the local mirror's stand-ins", allow_empty=True)
        if self.promotion is not None:
            self.promotion.head = sha
        self.log(f"repository {self.full_name} at {repo} ({sha[:12]})")
        return sha

    def commit(self, message: str, branch: str = "main",
               change: Callable[[Path], None] | None = None) -> str:
        """A commit on `branch` (created from main when new) with `message`, after `change`
        edits the working tree; its sha."""
        repo = self._repo()
        exists = bool(repository.git(repo, "branch", "--list", branch))
        repository.git(repo, "checkout", "--quiet", *([branch] if exists else
                                                      ["-b", branch, "main"]))
        if change is not None:
            change(repo)
        sha = repository.commit_all(repo, message, allow_empty=True)
        repository.git(repo, "checkout", "--quiet", "main")
        return sha

    def play(self, event: str, head: str, *, base: str | None = None,
             pull_request: int = 1, timeout: float = 1800,
             cron_job: str = CRON_JOB) -> EventResult:
        """Play `event` (a GitHub event of `dev_event.EVENTS`, or `cron`: fxci's cron task
        for `cron_job`, by default `nightly`) at `head` and wait for its tasks (see the
        module's docstring)."""
        started = time.monotonic()
        if event == "cron":
            # fxci's cron task creates the decision through its proxy, with the scopes of
            # its hook's role: `assume:repo:<repository>:cron:<job>`
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            tasks = events.render_tasks(self._template(), events.cron_context(
                events.repository(self.full_name), head, cron_job, self.tc.root_url, now))
            scopes = [f"assume:repo:github.com/{self.full_name}:cron:{cron_job}"]
        else:
            tasks = render_event(self._repo(), event, head, base, pull_request,
                                 self.full_name, self.tc.root_url)
            scopes = service_scopes(event, self.full_name)
        if len(tasks) != 1:
            raise CibError(f"{event}: .taskcluster.yml renders {len(tasks)} tasks, not one "
                           "decision task")
        (task,) = tasks
        task_id = task.pop("taskId")
        queue = taskcluster.Queue({"rootUrl": self.tc.root_url,
                                   "credentials": self.tc.root_credentials,
                                   "authorizedScopes": scopes})
        queue.createTask(task_id, task)
        self.log(f"{event} at {head[:12]}: decision task {task_id}")
        self._wait(task_id, timeout)
        return EventResult(event, head, task_id, time.monotonic() - started,
                           self.results(task_id))

    def trigger_action(self, decided: EventResult, name: str, user_input: dict[str, Any], *,
                       timeout: float = 1800) -> EventResult:
        """Trigger action `name` of the decision of `decided` as Treeherder or the UI would
        (its hook from the decision's actions.json, rendered as fxci's in-tree action hook and
        the hooks service render it), and wait for the tasks it adds to the task group. The
        local Taskcluster has no hooks service: the action task is created with the scopes
        of the hook's role (`assume:repo:<repository>:action:<permission>`)."""
        started = time.monotonic()
        group = decided.decision_task_id
        actions = json.loads(self.artifact(group, "public/actions.json"))
        action = action_hooks.find_action(actions, name)
        permission = action.get("extra", {}).get("actionPerm", "generic")
        payload = action_hooks.trigger_payload(action, group, None, user_input)
        task_id = slugid.nice()
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        task = action_hooks.render_hook_task(
            action_hooks.hook_task_template(self._template(), permission), payload,
            "dev-up", now, task_id)
        if task is None:
            raise CibError(f"action {name}: .taskcluster.yml renders no task for it")
        before = {t.task_id for t in decided.tasks}
        queue = taskcluster.Queue({
            "rootUrl": self.tc.root_url, "credentials": self.tc.root_credentials,
            "authorizedScopes": [f"assume:repo:github.com/{self.full_name}:action:"
                                 f"{permission}"]})
        queue.createTask(task_id, task)
        self.log(f"action {name} on {group}: action task {task_id}")
        self._wait(group, timeout)
        return EventResult(f"action {name}", decided.head, task_id,
                           time.monotonic() - started,
                           self.results(group, decision_task_id=task_id, exclude=before))

    def artifact(self, task_id: str, name: str) -> bytes:
        """The content of a task's artifact as uploaded, gzip undone (generic-worker gzips
        most files); CibError when there is none."""
        found = self.tc.artifacts(task_id).get(name)
        if not found or found.get("content") is None:
            raise CibError(f"task {task_id} has no artifact {name}")
        content = found["content"]
        return gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content

    def _wait(self, task_group_id: str, timeout: float) -> None:
        """Until nothing of the group can run any more, `timeout` passes, or the group is
        stalled: nothing runs and what is pending waits on queues no worker will ever serve
        (a pool that was not deployed, or whose workers cannot start) for `STALLED_SECONDS`."""
        give_up = time.monotonic() + timeout
        stalled_since: float | None = None
        while True:
            try:
                self.tc.wait_for_task_group(task_group_id, timeout=POLL_SECONDS)
                return
            except TimeoutError:
                pass
            now = time.monotonic()
            if now >= give_up:
                self.log(f"task group {task_group_id}: gave up after {timeout:.0f} s")
                return
            states = [(s["state"], s["taskQueueId"]) for s in self.tc.statuses().values()
                      if s["taskGroupId"] == task_group_id]
            unserved = sorted({q for state, q in states
                               if state == "pending" and not self.deployment.serves(q)})
            if unserved and not any(state == "running" for state, _ in states):
                stalled_since = stalled_since or now
                if now - stalled_since >= STALLED_SECONDS:
                    self.log(f"task group {task_group_id}: stalled; no worker will serve "
                             f"{', '.join(unserved)}")
                    return
            else:
                stalled_since = None

    def results(self, task_group_id: str, decision_task_id: str | None = None,
                exclude: set[str] | frozenset[str] = frozenset()) -> list[TaskResult]:
        """Every task of the group but `exclude`, the decision (default: the task whose id
        is the group's) first, then by label."""
        decision = decision_task_id or task_group_id
        definitions = self.tc.tasks()
        statuses = self.tc.statuses()
        found = []
        for task_id, definition in definitions.items():
            if definition["taskGroupId"] != task_group_id or task_id in exclude:
                continue
            status = statuses[task_id]
            runs = status["runs"]
            treeherder = definition.get("extra", {}).get("treeherder", {})
            # a task without Treeherder metadata (an action's) shows by its label
            symbol = treeherder.get("symbol") or definition["metadata"]["name"]
            if treeherder.get("groupSymbol", "?") != "?":
                symbol = f"{treeherder['groupSymbol']}({symbol})"
            platform = (treeherder.get("machine") or {}).get("platform", "other")
            found.append(TaskResult(
                task_id=task_id, label=definition["metadata"]["name"],
                state=status["state"] if status["state"] in RESOLVED or not runs
                else runs[-1]["state"],
                reason=runs[-1].get("reasonResolved", "") if runs else "",
                platform="decision" if task_id == decision else platform,
                symbol="D" if task_id == decision else symbol,
                queue=definition["taskQueueId"], runs=len(runs),
                artifacts=self.tc.artifacts(task_id) if runs else {}))
        return sorted(found, key=lambda t: (t.task_id != decision, t.label))

    def _template(self) -> dict[str, Any]:
        path = self._repo() / ".taskcluster.yml"
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise CibError(f"{path}: {error}") from error

    def _repo(self) -> Path:
        if self.repo is None:
            raise RuntimeError("prepare() first")
        return self.repo


def _default_environment(fleet: Any) -> str:
    """The environment the local deployment plays: the first that takes pull requests (they
    build and deploy there), else the first."""
    for name, environment in fleet.environments.items():
        if environment.pull_requests:
            return name
    return next(iter(fleet.environments))


def bump_pool_capacity(repo: Path, config: Path | None = None) -> str:
    """A pool-only change for a pull request: the first pool (by key file name) that states
    a maximum capacity gets one more. Edits that line only (comments and YAML 1.1 words such
    as `on:` stay as written); the pool id."""
    config = config or repository.config_dir(repo)
    for path in sorted(config.glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        inside = False
        for number, line in enumerate(lines):
            if re.match(r"^\S", line) and not line.startswith("#"):
                inside = line.startswith("manager:")
                continue
            found = re.match(r"^(\s+maximum:\s*)(\d+)(.*)$", line, re.DOTALL)
            if inside and found:
                lines[number] = f"{found[1]}{int(found[2]) + 1}{found[3]}"
                path.write_text("".join(lines), encoding="utf-8")
                pool = (yaml.safe_load("".join(lines))["manager"]["pool"] or [{}])[0]
                return f"{pool.get('domain')}/{pool.get('variant')}"
    raise CibError(f"{config}: no pool states a maximum capacity to change")


def change_a_deployment_id(repo: Path, config: Path | None = None) -> str:
    """An image change for a pull request: in the first key (by file name) with a target cib
    builds whose tags name `deploymentId`, every `deploymentId` tag gets a new value (what a
    release engineer changes to rebuild a key's machine images; tags are an input of the
    machine digest). Edits those lines only; the key."""
    from ..selection import BUILDABLE_PLATFORMS

    config = config or repository.config_dir(repo)
    for path in sorted(config.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        targets = (yaml.safe_load(text) or {}).get("target") if "deploymentId" in text else None
        if not isinstance(targets, list) or not any(
                isinstance(t, dict) and t.get("platform") in BUILDABLE_PLATFORMS
                and any(isinstance(g, dict) and g.get("name") == "deploymentId"
                        for g in t.get("tag") or []) for t in targets):
            continue
        lines = text.splitlines(keepends=True)
        changed = False
        for number, line in enumerate(lines):
            if not re.match(r"^\s*-\s*name:\s*['\"]?deploymentId['\"]?\s*$", line):
                continue
            for later in range(number + 1, min(number + 3, len(lines))):
                found = re.match(r"^(\s+value:\s*)(\S.*?)(\s*)$", lines[later], re.DOTALL)
                if found:
                    old = found[2].strip("'\"")
                    lines[later] = f"{found[1]}'{old}-next'{found[3]}"
                    changed = True
                    break
        if changed:
            path.write_text("".join(lines), encoding="utf-8")
            return path.stem
    raise CibError(f"{config}: no key built here has a deploymentId tag (`- name: deploymentId` "
                   "then `value: ...`) to change")


def summary(result: EventResult) -> str:
    """A Treeherder-like text: a row per platform (one per key; the decision first), each
    task's symbol and, when it did not complete, its state; then the wall time."""
    rows: dict[str, list[str]] = {}
    for task in result.tasks:
        mark = "" if task.ok else f"={task.state}" + (f"/{task.reason}" if task.reason and
                                                       task.reason != task.state else "")
        rows.setdefault(task.platform, []).append(f"{task.symbol}{mark}")
    width = max((len(p) for p in rows), default=0)
    lines = [f"{result.event} at {result.head[:12]} (decision {result.decision_task_id})"]
    lines += [f"  {platform:<{width}}  {' '.join(symbols)}"
              for platform, symbols in rows.items()]
    done = sum(t.ok for t in result.tasks)
    lines.append(f"  {done}/{len(result.tasks)} tasks completed in {result.seconds:.0f} s"
                 + ("" if result.ok else "  FAILED: " + ", ".join(
                     t.label for t in result.tasks if not t.ok)))
    return "\n".join(lines)


def fleet_providers(fleet: Any) -> dict[str, str]:
    """worker-manager providers the fleet's pools name, with their types (`pools.provider_type`;
    a pool whose type cannot be told is left to its deploy task's error)."""
    from ..pools import PoolError, provider_type

    found = {}
    for key in fleet.keys.values():
        for pool in key.pools:
            try:
                found[pool.provider] = provider_type(key, pool)
            except PoolError:
                continue
    return found


def uv_cache_dir() -> str:
    """uv's cache on this machine, as uv finds it (`UV_CACHE_DIR`, `XDG_CACHE_HOME/uv`,
    `~/.cache/uv`)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "uv")


@contextmanager
def local_pipeline(source: Path, revision: str, work: Path, *,
                   environment: str | None = None, builders: int = 2,
                   full_name: str = "example/images",
                   log: Callable[[str], None] | None = None,
                   worker_log: Callable[[str], None] | None = None,
                   promotion: bool = False) -> Iterator[LocalPipeline]:
    """The local deployment started for `source` at `revision` (cloned into `work`), its
    clouds seeded and the repository prepared (`LocalPipeline.prepare`); stopped on exit.
    With `promotion`, a second deployment on the same clouds plays the environment promoted
    to (`LocalPipeline.promotion`)."""
    from ..devclouds.aws import STAND_IN_CONVERT_COMMAND
    from ..taskgraph.root import roles_file

    repo = repository.clone(source, revision, work / "github" / full_name)
    # the local deployment grants the repository what its roles file says, and nothing: the
    # repository's own taskcluster/roles.yml, else the one that ships with cib-decision
    roles = work / "roles.yml"
    roles.write_text(roles_file(repo).text, encoding="utf-8")
    name = full_name.split("/", 1)[1]
    machine_env = {
        # the worker image's /etc/gitconfig: the repository's GitHub URLs (its own and the
        # pull requests' fork) read the local clone
        "GIT_CONFIG_SYSTEM": str(git_url_rewrites(
            work / "machine" / "gitconfig", repo,
            [f"https://github.com/{full_name}", f"https://github.com/{FORK_OWNER}/{name}"])),
        # a pip cache the worker image keeps between tasks, the uv that scripts/uv installs
        # once into the image, and uv's download cache: this machine's own (scripts/setup
        # filled it), as a worker image built with the packages preloaded
        "PIP_CACHE_DIR": str(work / "machine" / "pip-cache"),
        "CIB_UV_DIR": str(work / "machine" / "uv"),
        "UV_CACHE_DIR": uv_cache_dir(),
        # the certificate authorities this machine trusts (a TLS-inspecting proxy's among
        # them), as the image's own trust store
        **{name: os.environ[name] for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
           if os.environ.get(name)},
        # the image builders' ISO-to-disk converter (a Windows installer run in a real worker
        # image; a qemu-img stand-in here, docs/images.md)
        "CIB_CONVERT_COMMAND": STAND_IN_CONVERT_COMMAND,
    }
    deployment = LocalDeployment(work / "deployment", roles_file=roles, builders=builders,
                                 machine_env=machine_env, log=worker_log)
    with contextlib.ExitStack() as stack:
        stack.enter_context(deployment)
        second = None
        if promotion:
            second = stack.enter_context(LocalDeployment(
                work / "promotion", roles_file=roles, builders=builders,
                machine_env=machine_env, log=worker_log,
                clouds=(deployment.aws, deployment.azure), google=deployment.google))
        pipeline = LocalPipeline(deployment, full_name=full_name, log=log)
        pipeline.head = pipeline.prepare(repo, environment, second)
        yield pipeline


def play_scenarios(pipeline: LocalPipeline, scenarios: list[str],
                   timeout: float) -> Iterator[EventResult]:
    """Play each scenario in order (see `cli.SCENARIOS`); each event's result as it ends."""
    head = pipeline.head
    pr_head = head
    for scenario in scenarios:
        if scenario == "push":
            yield pipeline.play("push", head, timeout=timeout)
        elif scenario == "pull-request":
            pr_head = pipeline.commit("Try one more worker in a pool", branch=PR_BRANCH,
                                      change=bump_pool_capacity)
            yield pipeline.play("pull-request", pr_head, base=head, timeout=timeout)
        elif scenario == "pull-request-untrusted":
            pr_head = pr_head if pr_head != head else pipeline.commit(
                "Try one more worker in a pool", branch=PR_BRANCH, change=bump_pool_capacity)
            yield pipeline.play("pull-request-untrusted", pr_head, base=head, timeout=timeout)
        elif scenario == "pull-request-image":
            changed = pipeline.commit("Rebuild one key's machine images", branch=IMAGE_PR_BRANCH,
                                      change=change_a_deployment_id)
            yield pipeline.play("pull-request", changed, base=head,
                                pull_request=IMAGE_PR_NUMBER, timeout=timeout)
        elif scenario == "pull-request-closed":
            yield pipeline.play("pull-request-closed", pr_head, base=head, timeout=timeout)
        elif scenario == "promote":  # the prepared fleet, whatever was pushed since
            yield from _promote(pipeline, timeout)
        elif scenario == "cron":
            yield pipeline.play("cron", head, timeout=timeout)
        elif scenario == "cron-drift":  # .cron.yml's daily job: `cib drift` on a worker
            yield pipeline.play("cron", head, timeout=timeout, cron_job=DRIFT_JOB)
        elif scenario == "pool-deploy":
            head = pipeline.commit("Redeploy the worker pools\n\npool-deploy")
            yield pipeline.play("push", head, timeout=timeout)
        else:
            raise CibError(f"unknown scenario {scenario!r}")


def _promote(pipeline: LocalPipeline, timeout: float) -> Iterator[EventResult]:
    """The other environment's push (its own decision, whose actions.json offers `promote`),
    then the `promote` action on it for the key the push released, from the played
    environment. The push names that key (`include keys`: the first key of the fleet with a
    target), so the other environment builds one key's images, not the fleet's."""
    target = pipeline.promotion
    if target is None:
        raise CibError("promote needs the deployment started with promotion=True")
    fleet = load_fleet(DirectorySource(str(repository.config_dir(pipeline._repo()))))
    key = next((name for name, k in sorted(fleet.keys.items()) if k.targets), None)
    if key is None:
        raise CibError("the fleet has no key with a target to promote")
    narrowed = pipeline.commit(f"Release {key} in {target.environment} to promote it\n\n"
                               f"include keys: {key}")
    pushed = target.play("push", narrowed, timeout=timeout)
    yield pushed
    released = sorted(t.label.removeprefix("tag-") for t in pushed.tasks
                      if t.label.startswith("tag-") and t.ok)
    if not released:
        raise CibError(f"the {target.environment} push released no key to promote")
    yield target.trigger_action(pushed, "promote", {
        "key": released[0], "from": pipeline.environment, "to": target.environment},
        timeout=timeout)
