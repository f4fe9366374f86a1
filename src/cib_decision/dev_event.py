"""`cib dev-event`: play Taskcluster's GitHub service and a decision worker against a local
Taskcluster (`cib dev-taskcluster`), so a push, a pull request or its close can be tried end to
end on a laptop.

For the repository's head commit it builds the GitHub webhook payload, renders the repository's
own `.taskcluster.yml` as the GitHub service does, creates the decision task with the scopes the
service uses (the repository's role for the event, `queue:route:checks`, its scheduler id), then
runs the task's command the way a worker would: in the repository, with
the task's environment, `TASK_ID`, and credentials holding exactly the task's scopes (which the
local Taskcluster hands out for a task, as a worker's claim does).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from . import github_events as events
from .bounds import PULL_REQUEST, int_argument
from .errors import CibError
from .gitrepo import commit_message, open_repo, resolve

EVENTS = {
    "push": ("github-push", None),
    "pull-request": ("github-pull-request", "opened"),
    "pull-request-synchronize": ("github-pull-request", "synchronize"),
    "pull-request-closed": ("github-pull-request", "closed"),
    "pull-request-untrusted": ("github-pull-request-untrusted", "opened"),
}


def add_parser(commands: Any) -> None:
    """Register `cib dev-event` on the `cib` subcommands."""
    parser = commands.add_parser(
        "dev-event", help="run the decision for a GitHub event against a local Taskcluster",
        description="Renders .taskcluster.yml for the event, creates the decision task as "
                    "the GitHub service does (the root credentials of `cib dev-taskcluster` "
                    "in $TASKCLUSTER_ROOT_URL, $TASKCLUSTER_CLIENT_ID and "
                    "$TASKCLUSTER_ACCESS_TOKEN, restricted to the repository role's scopes) "
                    "and runs its command with the task's own scopes.")
    parser.add_argument("event", choices=sorted(EVENTS))
    parser.add_argument("--rerun", metavar="TASK_ID",
                        help="run an existing decision task's command again (a Taskcluster "
                             "rerun: same task id) instead of creating a new one")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default: .)")
    parser.add_argument("--head", default="HEAD", help="pushed revision (default: HEAD)")
    parser.add_argument("--base", help="revision before the push (default: the head's parent)")
    parser.add_argument("--pull-request", type=PULL_REQUEST, default=1, metavar="N")
    parser.add_argument("--head-ref", default="refs/heads/main",
                        help="the pushed branch (default: refs/heads/main)")
    parser.add_argument("--repository", default="example/images",
                        help="GitHub owner/name the event claims (default: example/images)")
    parser.add_argument("--environment",
                        help="environment the local Taskcluster plays (sets CIB_ENVIRONMENT; "
                             "default: the one whose root URL matches, else the first)")
    parser.add_argument("--setup", default="", help="replace the command's setup step "
                        "(`./scripts/setup && ...`) by this; default: use the current Python")
    parser.set_defaults(func=cmd_dev_event)


def add_release_parser(commands: Any) -> None:
    """Register `cib dev-release` on the `cib` subcommands."""
    parser = commands.add_parser(
        "dev-release", help="print a stand-in release record of a key (for local pool deploys)",
        description="A sealed release record (public/release.json) of the key's current "
                    "digests, with image ids in each cloud's form but no cloud behind them: "
                    "what `cib pool apply --release FILE` needs to try a deploy locally.")
    parser.add_argument("--key", required=True)
    parser.add_argument("--config-dir", help="config directory (default: the repository's)")
    parser.add_argument("--build", type=int_argument(0, 1000), default=0,
                        help="another build's images (other digests and ids)")
    parser.set_defaults(func=cmd_dev_release)


def cmd_dev_release(args: argparse.Namespace) -> int:
    from . import manifest
    from .config import DirectorySource, load_fleet
    from .config.source import default_config_dir
    from .devtc.fake_images import key_images
    from .digests import fleet_digests

    args.config_dir = args.config_dir or default_config_dir()
    fleet = load_fleet(DirectorySource(Path(args.config_dir)))
    if args.key not in fleet.keys:
        raise CibError(f"no key {args.key!r} in {args.config_dir}")
    key = fleet.keys[args.key]
    release = manifest.release_record(
        key.name, disk_digest=fleet_digests(fleet)[key.name].disk, disk_sha256="0" * 64,
        config_commit="0" * 40, created=datetime(2026, 1, 1, tzinfo=UTC),
        images=key_images(fleet, key, build=args.build))
    sys.stdout.write(manifest.dumps(release))
    return 0


def _root_options() -> dict[str, Any]:
    try:
        return {"rootUrl": os.environ["TASKCLUSTER_ROOT_URL"],
                "credentials": {"clientId": os.environ["TASKCLUSTER_CLIENT_ID"],
                                "accessToken": os.environ["TASKCLUSTER_ACCESS_TOKEN"]}}
    except KeyError as missing:
        raise CibError(f"${missing.args[0]} is not set: export what `cib dev-taskcluster` "
                       "prints for the root client") from None


def render_event(repo_path: Path, event: str, head: str, base: str | None, number: int,
                 full_name: str, root_url: str, head_ref: str = "refs/heads/main"
                 ) -> list[dict[str, Any]]:
    """The decision tasks the GitHub service would create for `event` at `head`."""
    repo = open_repo(repo_path)
    head_commit = resolve(repo, head)
    base_sha = (resolve(repo, base).hexsha if base else
                head_commit.parents[0].hexsha if head_commit.parents else head_commit.hexsha)
    tasks_for, action = EVENTS[event]
    repository = events.repository(full_name)
    if tasks_for == "github-push":
        payload = events.push_event(repository, head_commit.hexsha, base_sha,
                                    commit_message(repo, head_commit.hexsha), ref=head_ref)
    else:
        fork = events.repository(f"someone/{full_name.split('/')[1]}")
        payload = events.pull_request_event(action or "opened", number, repository,
                                            head_commit.hexsha, base_sha, head_repo=fork)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    template_path = Path(repo.working_tree_dir or repo_path) / ".taskcluster.yml"
    try:
        template = yaml.safe_load(template_path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CibError(f"{template_path}: {error}") from error
    return events.render_tasks(template, events.github_context(tasks_for, payload, root_url, now))


def command_words(script: str, env: dict[str, str]) -> list[str]:
    """bash's reading of a command line whose only expansions are variables of the task's
    `env` inside double quotes (`"$CIB_HEAD_REF"`, as `.taskcluster.yml` writes them): split
    into words, then each variable replaced by its value, which stays within its word."""
    variable = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
    return [variable.sub(lambda m: str(env.get(m[1] or m[2], "")), word)
            for word in shlex.split(script)]


def worker_command(task: dict[str, Any], setup: str) -> list[str]:
    """The `cib ...` part of the decision task's command, to run in the repository."""
    script = task["payload"]["command"][0][-1]
    start = script.find(".venv/bin/cib ")
    if start < 0:
        raise CibError(f"the decision task does not run cib: {script!r}")
    command = command_words(script[start + len(".venv/bin/"):],
                            task["payload"].get("env", {}))
    return [*(shlex.split(setup) if setup else [sys.executable, "-m", "cib_decision"]),
            *command[1:]]


def service_scopes(event: str, full_name: str, head_ref: str = "refs/heads/main") -> list[str]:
    """The scopes Taskcluster's GitHub service creates an event's tasks with."""
    tasks_for, _ = EVENTS[event]
    if tasks_for == "github-push":
        role = f"branch:{head_ref.removeprefix('refs/heads/')}"
    else:
        role = tasks_for.removeprefix("github-")
    return [f"assume:repo:github.com/{full_name}:{role}", "queue:route:checks",
            "queue:scheduler-id:taskcluster-github"]


def cmd_dev_event(args: argparse.Namespace) -> int:
    import taskcluster

    root = _root_options()
    # The GitHub service creates the decision with the repository's role for the event, the
    # checks route and its own scheduler id, never with more (services/github/src/handlers).
    queue = taskcluster.Queue({**root, "authorizedScopes": service_scopes(
        args.event, args.repository, args.head_ref)})
    if args.rerun:
        tasks = [{**queue.task(args.rerun), "taskId": args.rerun}]
    else:
        tasks = render_event(args.repo, args.event, args.head, args.base, args.pull_request,
                             args.repository, root["rootUrl"], args.head_ref)
    if not tasks:
        print(f"{args.event}: .taskcluster.yml renders no task for this event")
        return 0
    status = 0
    for task in tasks:
        task_id = task.pop("taskId")
        if not args.rerun:
            queue.createTask(task_id, task)
        print(f"{'rerunning' if args.rerun else 'created'} {task['metadata']['name']}: "
              f"{task_id}", flush=True)
        response = requests.post(f"{root['rootUrl'].rstrip('/')}/dev/task-credentials/{task_id}",
                                 timeout=30)
        if response.status_code != 200:
            raise CibError(f"the Taskcluster at {root['rootUrl']} gives no task credentials "
                           f"(is it `cib dev-taskcluster`?): {response.status_code}")
        credentials = response.json()["credentials"]
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("TASKCLUSTER_")}
        env.update({key: str(value) for key, value in task["payload"].get("env", {}).items()})
        if args.environment:
            env["CIB_ENVIRONMENT"] = args.environment
        env.update({"TASK_ID": task_id, "TASKCLUSTER_ROOT_URL": root["rootUrl"],
                    "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
                    "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"]})
        if credentials.get("certificate"):
            env["TASKCLUSTER_CERTIFICATE"] = credentials["certificate"]
        command = worker_command(task, args.setup)
        print("running:", shlex.join(command), flush=True)
        status = subprocess.run(command, cwd=args.repo, env=env, check=False).returncode or status
    return status
