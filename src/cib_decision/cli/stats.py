"""`cib stats`: build durations, queue waits, failure and retry rates and region copy times of
an environment's image builds, from the history of its decision tasks (stats.py computes,
stats_html.py draws; docs/stats.md).

Reading: every push decision is indexed at `<trust domain>.v2.<project>.revision.<revision>.
taskgraph.decision` (.taskcluster.yml); the revisions are listed with `index.listNamespaces`,
each decision found with `index.findTask` and dated by its definition (`queue.task`); the
chosen decisions' task groups are read with `queue.listTaskGroup` (definitions and statuses),
and the `public/machine-image.json` of each completed machine-image task gives its region copy
times. Read-only; every read is complete or the command fails (exit 2, 75 when the service
may answer later).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import stats
from ..errors import CibError
from ..tc import Index, Queue, call

TRUST_DOMAIN = "cib"
DEFAULT_LAST = 100
READERS = 16  # concurrent reads (the index and queue answer each read on its own)
MACHINE_IMAGE_ARTIFACT = "public/machine-image.json"

Log = Callable[[str], None]


def revision_namespace(project: str) -> str:
    """Where the push decisions of `project` are indexed, one namespace per revision."""
    return f"{TRUST_DOMAIN}.v2.{project}.revision"


def _reading(doing: str, service: str = "index") -> Callable[[Exception], CibError]:
    from ..tc import failure

    return lambda exc: failure(service, doing, exc)


def _pages(call: Callable[[dict[str, Any]], dict[str, Any]], field: str, doing: str,
           service: str) -> Iterable[dict[str, Any]]:
    from ..tc import pages

    return pages(call, field, fail=lambda exc, _: _reading(doing, service)(exc))


def _concurrently(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return list(pool.map(function, items))


def find_decisions(index: Index, queue: Queue, project: str, log: Log) -> list[stats.Decision]:
    """Every push decision of `project` the index knows, with its creation time."""

    namespace = revision_namespace(project)
    revisions = [n["namespace"] for n in _pages(
        lambda q: index.listNamespaces(namespace, query=q), "namespaces",
        f"list namespace {namespace}", "index")]
    log(f"{len(revisions)} revisions indexed under {namespace}")

    def decision_of(revision: str) -> stats.Decision | None:
        path = f"{revision}.taskgraph.decision"
        found = call("index", f"find {path}", lambda: index.findTask(path), allow=(404,))
        if found == 404:
            return None  # a revision namespace without a decision (expired)
        task_id = found["taskId"]
        task = call("queue", f"give task {task_id}", lambda: queue.task(task_id), allow=(404,))
        if task == 404:
            return None  # the decision task expired before its index entry
        return stats.Decision(task_id, stats.parse_time(task["created"]))

    return [d for d in _concurrently(decision_of, revisions) if d is not None]


def read_builds(queue: Queue, decisions: list[stats.Decision], environment: str, log: Log
                ) -> list[stats.Build]:
    """The build tasks of the decisions' task groups, with the region copy times of completed
    machine images."""
    from ..tc import read_artifact

    def group(decision: stats.Decision) -> list[stats.Build]:
        members = _pages(lambda q: queue.listTaskGroup(decision.task_id, query=q), "tasks",
                         f"list task group {decision.task_id}", "queue")
        return [b for b in (stats.build_of(m, decision.task_id, environment) for m in members)
                if b is not None]

    builds = [b for found in _concurrently(group, decisions) for b in found]
    log(f"{len(builds)} build tasks in {len(decisions)} decisions")

    def with_copies(build: stats.Build) -> stats.Build:
        if build.kind != "machine-image" or build.state != "completed":
            return build
        record = read_artifact(queue, build.task_id, MACHINE_IMAGE_ARTIFACT)
        copies = stats.copy_seconds_of(record)
        return stats.Build(**{**build.__dict__, "copy_seconds": copies}) if copies else build

    return _concurrently(with_copies, builds)


def project_name(given: str | None) -> str:
    """The project (repository name) whose decisions to read: `--project`, else
    `$CIB_PROJECT`, else the name of `$CIB_HEAD_REPOSITORY`."""
    name = given or os.environ.get("CIB_PROJECT") or os.environ.get(
        "CIB_HEAD_REPOSITORY", "").rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if not name:
        raise stats.StatsError("give --project: the repository name the decision tasks are "
                               f"indexed under ({revision_namespace('<project>')}...), or set "
                               "CIB_PROJECT")
    return name


def client_options(root_url: str) -> dict[str, Any]:
    """Credentials from the environment when there are any (tc.client_options), else anonymous
    reads of the environment's deployment `root_url` (the index and the queue's reads are
    public)."""
    from ..tc import client_options as from_environment

    if os.environ.get("TASKCLUSTER_PROXY_URL") or os.environ.get("TASKCLUSTER_ROOT_URL"):
        return from_environment()
    return {"rootUrl": root_url}


def gather(args: argparse.Namespace, log: Log) -> stats.Report:
    """Read the history the options choose and compute its report."""
    import taskcluster

    from ..config import DirectorySource, load_fleet
    from ..config.source import default_config_dir
    from ..signing import environment_named
    from ..tc import reuse_connections

    if args.last is not None and (args.since or args.until):
        raise stats.StatsError("give --last N or --since/--until, not both")
    if args.last is not None and args.last < 1:
        raise stats.StatsError(f"--last {args.last}: give a number of decisions above 0")
    since = stats.parse_day(args.since, "--since") if args.since else None
    until = stats.parse_day(args.until, "--until", end=True) if args.until else None
    if since and until and since >= until:
        raise stats.StatsError(f"--since {args.since} is not before --until {args.until}")
    per = stats.parse_per(args.per)
    project = project_name(args.project)
    fleet = load_fleet(DirectorySource(args.config_dir or default_config_dir()))
    environment = environment_named(fleet, args.environment
                                    or os.environ.get("CIB_ENVIRONMENT", ""))
    options = client_options(environment.root_url)
    index = reuse_connections(taskcluster.Index(options), READERS)
    queue = reuse_connections(taskcluster.Queue(options), READERS)
    found = find_decisions(index, queue, project, log)
    last = args.last if args.last is not None or since or until else DEFAULT_LAST
    chosen = stats.select_decisions(found, last, since, until)
    log(f"reading {len(chosen)} of {len(found)} decisions")
    builds = read_builds(queue, chosen, environment.name, log)
    return stats.report(environment.name, project, chosen, builds, per,
                        generated=datetime.now(UTC))


def render(report: stats.Report, form: str) -> str:
    """The report as `table`, `json` or `html` text."""
    if form == "json":
        return json.dumps(report.to_json(), indent=2) + "\n"
    if form == "html":
        from ..stats_html import html

        return html(report)
    from ..stats_table import table

    return table(report)


def cmd_stats(args: argparse.Namespace) -> int:
    """Print (or write) the build statistics of the environment's decisions."""
    report = gather(args, lambda line: print(line, file=sys.stderr))
    if args.artifacts:
        folder = Path(args.artifacts)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stats.html").write_text(render(report, "html"))
        (folder / "stats.json").write_text(render(report, "json"))
    text = render(report, args.format)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib stats`."""
    parser = commands.add_parser(
        "stats", help="build durations, queue waits, failure and retry rates and copy times "
                      "of the environment's image builds, and their trends",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__)
    parser.add_argument("--environment", default="",
                        help="whose builds (default: $CIB_ENVIRONMENT, else the config's "
                             "first); its deployment is read unless TASKCLUSTER_ROOT_URL is set")
    parser.add_argument("--project", help="the repository name the decisions are indexed "
                                          "under (default: $CIB_PROJECT)")
    parser.add_argument("--config-dir", help="config directory (default: config)")
    parser.add_argument("--last", type=int, metavar="N",
                        help=f"the newest N decisions (default: {DEFAULT_LAST} when no dates "
                             "are given)")
    parser.add_argument("--since", metavar="DATE", help="decisions created on or after DATE "
                                                        "(YYYY-MM-DD, UTC)")
    parser.add_argument("--until", metavar="DATE", help="decisions created on or before DATE")
    parser.add_argument("--per", default=stats.WEEK, metavar="week|N",
                        help="trend periods: weeks (default) or every N decisions")
    parser.add_argument("--format", choices=("table", "json", "html"), default="table")
    parser.add_argument("--output", metavar="FILE", help="write there instead of printing")
    parser.add_argument("--artifacts", metavar="DIR",
                        help="also write DIR/stats.html and DIR/stats.json (the cron task)")
    parser.set_defaults(func=cmd_stats)
