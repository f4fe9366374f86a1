"""`cib dev-up`: a push of the repository's fleet, played end to end through the local
deployment (the local Taskcluster, moto, the Azure fake, workers following generic-worker's
rules), then a pull request with its per-PR pools, its close, a cron decision and a
`pool-deploy` push."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CibError

if TYPE_CHECKING:  # the deployment imports moto and the cloud SDKs: only when it runs
    from .deployment import LocalDeployment
    from .pipeline import EventResult

SCENARIOS = ("push", "pull-request", "pull-request-untrusted", "pull-request-closed",
             "pull-request-image", "cron", "cron-drift", "pool-deploy", "promote")


def _scenarios(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(SCENARIOS)}")
    if chosen[0] != "push":
        chosen.insert(0, "push")  # the others start from the images a push built
    return chosen


def add_parser(commands: Any) -> None:
    """Register `cib dev-up` on the `cib` subcommands."""
    parser = commands.add_parser(
        "dev-up", help="play a push (and a pull request, its close, a pool-deploy push) of "
                       "the repository end to end through a local deployment",
        description="Starts the local Taskcluster, a local AWS (moto) and Azure (the ARM/Blob "
                    "fake), clones the repository, seeds the clouds for its fleet, then plays "
                    "GitHub events: the decision task and every task of its graph run on "
                    "local workers that follow generic-worker's rules. Prints a "
                    "Treeherder-like summary per event; exits 1 when a task did not "
                    "complete. Needs qemu-img (Debian: qemu-utils) and PyPI (the decision "
                    "and the task environment pip-install the package).")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default: .)")
    parser.add_argument("--revision", default="HEAD", help="revision to push (default: HEAD)")
    parser.add_argument("--scenarios", type=_scenarios, default=list(SCENARIOS),
                        metavar="LIST", help=f"comma-separated, from {', '.join(SCENARIOS)} "
                        "(default: all; push always comes first)")
    parser.add_argument("--environment", help="environment the local Taskcluster plays "
                        "(default: the first that builds pull requests, else the first)")
    parser.add_argument("--work-dir", type=Path, help="where the deployment keeps its files "
                        "(default: a temporary directory, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                        help="give up on an event's tasks after this (default: 1800)")
    parser.add_argument("--builders", type=int, default=2, metavar="N",
                        help="workers per builder queue (default: 2)")
    parser.add_argument("--verbose", action="store_true", help="log every worker event")
    parser.set_defaults(func=cmd_dev_up)


def cmd_dev_up(args: argparse.Namespace) -> int:
    """Run the scenarios; 0 when every task of every event completed."""
    from .repository import commit_of

    commit_of(args.repo, args.revision)  # bad input fails before anything starts
    if args.builders < 1:
        raise CibError("--builders must be at least 1")
    if shutil.which("qemu-img") is None:
        raise CibError("qemu-img is not installed (Debian: qemu-utils): the local clouds' "
                       "disk sources are made with it")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="cib-dev-up-"))
    try:
        results = run(args.repo, args.revision, work, args.scenarios, args.environment,
                      args.timeout, args.builders, verbose=args.verbose)
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(source: Path, revision: str, work: Path, scenarios: list[str],
        environment: str | None, timeout: float, builders: int = 2, *,
        verbose: bool = False) -> list[EventResult]:
    """Play `scenarios` of `source` at `revision` in `work`, printing each event's summary;
    each event's result."""
    from .pipeline import local_pipeline, play_scenarios, summary

    started = time.monotonic()
    results: list[EventResult] = []
    with local_pipeline(source, revision, work, environment=environment, builders=builders,
                        log=_log, worker_log=_log if verbose else None,
                        promotion="promote" in scenarios) as pipeline:
        for result in play_scenarios(pipeline, scenarios, timeout):
            results.append(result)
            print(summary(result), flush=True)
        print(pools_summary(pipeline.deployment), flush=True)
        if pipeline.promotion is not None:
            print(f"{pipeline.promotion.environment} " + pools_summary(
                pipeline.promotion.deployment), flush=True)
    print(f"{len(results)} events in {time.monotonic() - started:.0f} s: "
          f"{'all tasks completed' if all(r.ok for r in results) else 'FAILED'}")
    return results


def pools_summary(deployment: LocalDeployment) -> str:
    """The worker pools worker-manager holds, and why a provider could not start a worker."""
    lines = ["worker pools:"]
    for pool_id in sorted(deployment.tc.worker_pools()):
        workers = len(deployment.workers.get(pool_id, []))
        problem = "; ".join(deployment.problems.get(pool_id, []))
        lines.append(f"  {pool_id}: " + (f"{workers} worker(s) started" if workers else
                                          f"no worker: {problem or 'no task asked for one'}"))
    return "\n".join(lines)
