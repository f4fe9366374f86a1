"""`cib decision`: the command `.taskcluster.yml` runs in the decision task."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..bounds import int_argument
from ..errors import CibError
from ..submit import LogProgress, Progress, SubmitReport

OPTION_NAMES = ("project", "pushlog_id", "pushdate", "owner", "level", "target_tasks_method",
                "repository_type", "base_repository", "base_ref", "base_rev", "head_repository",
                "head_ref", "head_rev", "head_tag", "tasks_for")


def add_parser(commands: Any) -> None:
    """Register `cib decision` on the `cib` subcommands."""
    parser = commands.add_parser(
        "decision", help="generate, check and submit the task graph (the decision task)",
        description="Generates the graph with taskgraph, writes its artifacts, checks every task "
                    "against the createTask schema and the event's role, then submits it. Task "
                    "ids derive from the decision task id and the label, so running it again "
                    "completes the same graph. The options are those of `taskgraph decision`.")
    parser.add_argument("--project", required=True)
    parser.add_argument("--pushlog-id", dest="pushlog_id", default="0")
    parser.add_argument("--pushdate", type=int_argument(0, 2**53), default=0)
    parser.add_argument("--owner", required=True, help="email address of who owns this graph")
    parser.add_argument("--level", required=True, choices=("1", "2", "3"))
    parser.add_argument("--target-tasks-method")
    parser.add_argument("--repository-type", default="git", choices=("git",))
    parser.add_argument("--base-repository", required=True)
    parser.add_argument("--base-ref", default="")
    parser.add_argument("--base-rev", default="")
    parser.add_argument("--head-repository", required=True)
    parser.add_argument("--head-ref", required=True)
    parser.add_argument("--head-rev", required=True)
    parser.add_argument("--head-tag", default="")
    parser.add_argument("--tasks-for", required=True,
                        choices=("github-push", "github-pull-request", "cron", "action"))
    parser.add_argument("--task-id", help="the decision task's id (default: $TASK_ID)")
    parser.add_argument("--cron-job", default=os.environ.get("CIB_CRON_JOB", ""),
                        help="cron job name, for the cron role (default: $CIB_CRON_JOB)")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"),
                        help="where the graph artifacts are written (default: artifacts)")
    parser.add_argument("--concurrency", type=int_argument(1, 1000), default=50)
    parser.add_argument("--dry-run", action="store_true",
                        help="generate, write artifacts and check, but submit nothing")
    parser.set_defaults(func=cmd_decision)
    callback = commands.add_parser(
        "action-callback", help="run an action's callback (the action task's command)",
        description="`taskgraph action-callback` (ACTION_* variables, the decision's "
                    "parameters) with the taskcluster/ folder the repository uses: its own, "
                    "or the one that ships with cib-decision when it has none.")
    callback.set_defaults(func=cmd_action_callback)


class RichProgress:
    """A progress bar for a terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress("submitting", BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), transient=False)
        self._task: Any = None

    def start(self, total: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task("tasks", total=total)

    def advance(self, label: str, outcome: str) -> None:
        if outcome == "failed":
            self._bar.console.print(f"[red]failed[/red] {label}")
        self._bar.advance(self._task)

    def finish(self, report: SubmitReport) -> None:
        self._bar.stop()
        LogProgress().finish(report)


def progress_display() -> Progress:
    """A progress bar on a terminal, plain log lines otherwise (CI logs)."""
    return RichProgress() if sys.stderr.isatty() else LogProgress()


def cmd_decision(args: argparse.Namespace) -> int:
    import taskcluster

    from ..checkrun_errors import write_error_report
    from ..decision import DecisionRequest, decision_task_id, run_decision
    from ..tc import client_options
    from ..tcschemas import SchemaStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = {name: getattr(args, name) for name in OPTION_NAMES}
    request = DecisionRequest(options=options, decision_task_id=decision_task_id(args.task_id),
                              artifacts=args.artifacts, cron_job=args.cron_job,
                              dry_run=args.dry_run, concurrency=args.concurrency,
                              notify=lambda line: print(line, file=sys.stderr, flush=True))
    client = client_options()
    try:
        # Schemas come from the deployment itself (the proxy serves only the APIs).
        schemas = SchemaStore.default(os.environ.get("TASKCLUSTER_ROOT_URL") or
                                      client["rootUrl"])
    except LookupError as error:
        raise CibError(str(error)) from error
    queue = taskcluster.Queue({**client, "maxRetries": 0})
    try:
        result = run_decision(request, queue, schemas, progress_display())
    except CibError as error:
        # the check run shows it: config problems as annotations on their lines
        write_error_report(error, args.artifacts, Path.cwd())
        raise
    if result.report is None:
        print(f"dry run: {len(result.pending)} tasks checked, nothing submitted")
    return 0


def cmd_action_callback(args: argparse.Namespace) -> int:
    from taskgraph.main import action_callback

    from ..taskgraph.root import graph_root, kinds_root

    with graph_root(Path.cwd(), notify=lambda line: print(line, file=sys.stderr, flush=True)
                    ) as root, kinds_root(root) as root_dir:
        return action_callback({"root": root_dir}) or 0
