"""`cib changes` and `cib plan`: what a push would rebuild, and the task graph a decision would
create, both offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..bounds import PULL_REQUEST
from ..errors import CibError, ConfigError
from . import DEFAULT_CONFIG_DIR


def add_parser(commands: Any) -> None:
    """Add `changes` and `plan` to `commands`."""
    from ..plan import TASKS_FOR

    changes = commands.add_parser(
        "changes", help="which images must be rebuilt between two revisions, and why")
    changes.add_argument("--repo", default=".", help="git repository (default: .)")
    changes.add_argument("--base", required=True, help="revision the images were built from")
    changes.add_argument("--head", default="HEAD", help="revision to build (default: HEAD)")
    changes.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                         help="config directory inside the repository (default: config)")
    changes.add_argument("--format", choices=("table", "json"), default="table")
    changes.set_defaults(func=cmd_changes)
    plan = commands.add_parser(
        "plan", help="the task graph a decision would create, offline (no credentials)",
        description="Runs the decision's own taskgraph generation on the repository, treating "
                    "images whose digest was built at --base as already built.")
    plan.add_argument("--repo", default=".", help="git repository (default: .)")
    plan.add_argument("--head", help="revision to plan (default: the working tree)")
    plan.add_argument("--base", help="revision whose images count as built (default: the "
                                     "head's parent, or HEAD for the working tree)")
    plan.add_argument("--no-base", action="store_true",
                      help="treat nothing as built: the whole graph")
    plan.add_argument("--message", help="commit message to read directives from (default: "
                                         "the head commit's; @FILE reads a file)")
    plan.add_argument("--tasks-for", default="github-push", choices=TASKS_FOR)
    plan.add_argument("--pull-request", type=PULL_REQUEST, metavar="N",
                      help="pull request number (with --tasks-for github-pull-request)")
    plan.add_argument("--pull-request-action", default="opened",
                      choices=("opened", "synchronize", "reopened", "closed"))
    plan.add_argument("--environment", help="environment the decision runs for "
                                            "(default: the first in environments.yaml)")
    plan.add_argument("--format", choices=("table", "json", "dot", "mermaid", "markdown"),
                      default="table")
    plan.set_defaults(func=cmd_plan)


def cmd_changes(args: argparse.Namespace) -> int:
    from ..changes import compute_changes
    from ..config import load_fleet
    from ..gitrepo import GitTreeSource, open_repo, resolve
    from .render import changes_table

    repo = open_repo(args.repo)
    base_commit, head_commit = resolve(repo, args.base), resolve(repo, args.head)
    head_source = GitTreeSource(head_commit, args.config_dir)
    if not head_source.exists:
        raise CibError(f"{args.head} has no {args.config_dir}/ directory")
    head = load_fleet(head_source)
    base_source = GitTreeSource(base_commit, args.config_dir)
    base, base_problem = None, None
    if base_source.exists:
        try:
            base = load_fleet(base_source)
        except ConfigError as exc:
            base_problem = f"config at base does not load ({exc.problems[0]})"
            print(f"warning: {exc}\nwarning: treating every image as changed",
                  file=sys.stderr)
    report = compute_changes(base, head, base_commit.hexsha, head_commit.hexsha, base_problem)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        changes_table(report, sys.stdout)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..checkrun import plan_markdown, plan_mermaid
    from ..plan import PlanRequest, make_plan
    from .render import plan_dot, plan_json_bytes, plan_table, write_bytes

    message = args.message
    if message is not None and message.startswith("@"):
        try:
            message = Path(message[1:]).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CibError(f"cannot read {message[1:]}: {exc.strerror}") from None
    if args.pull_request and not args.tasks_for.startswith("github-pull-request"):
        raise CibError(f"--pull-request {args.pull_request} plans a pull request: give "
                       "--tasks-for github-pull-request too (the default is a push)")
    plan = make_plan(PlanRequest(
        repo=Path(args.repo), head=args.head, base=args.base, no_base=args.no_base,
        message=message,
        tasks_for=args.tasks_for, pull_request=args.pull_request or 0,
        pull_request_action=args.pull_request_action, environment=args.environment),
        notify=lambda line: print(line, file=sys.stderr))
    if args.format == "json":
        write_bytes(plan_json_bytes(plan))
    elif args.format == "dot":
        print(plan_dot(plan))
    elif args.format == "mermaid":
        print(plan_mermaid(plan))
    elif args.format == "markdown":  # the decision's check run text
        print(plan_markdown(plan))
    else:
        plan_table(plan, sys.stdout)
    return 0
