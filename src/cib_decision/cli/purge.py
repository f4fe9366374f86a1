"""`cib purge --cloud amazon|azure|google --region R`: remove what image builds left behind in
one cloud region (what the purge tasks run). See `lifecycle.purge` for what counts as ours,
orphaned and settled, and docs/lifecycle.md ("Purge").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import DirectorySource, Fleet, load_fleet, normalise_region
from ..errors import CibError
from ..images.progress import Progress
from ..lifecycle import purge
from . import DEFAULT_CONFIG_DIR

DEFAULT_MIN_AGE = "8 hours"
CLOUDS = {"amazon": "amazon", "aws": "amazon", "azure": "azure", "google": "google"}

EXIT_STATUSES = """exit statuses:
  0   purged (some removals may have failed: see the table; the next purge tries again)
  2   bad input: unknown cloud, bad --min-age, bad config, missing credentials
  3   every removal failed (e.g. the credentials may list but not delete)
  75  transient cloud or queue error (throttling, a service error): the task is retried
"""


def min_age(text: str) -> timedelta:
    """`--min-age`: a duration such as `8 hours` or `90 minutes` (`0` for none)."""
    import taskcluster

    if text.strip() == "0":
        return timedelta(0)
    anchor = datetime(2000, 1, 1, tzinfo=UTC)
    try:
        age = taskcluster.fromNow(text, anchor) - anchor
    except ValueError:
        raise CibError(f"--min-age {text!r} is not a duration such as '8 hours'") from None
    if age < timedelta(0):
        raise CibError(f"--min-age {text!r} must not be negative")
    return age


def owned_groups(fleet: Fleet, region: str) -> frozenset[str]:
    """The resource groups of the config's Azure targets in `region`."""
    region = normalise_region(region)
    return frozenset(t.group for k in fleet.keys.values() for t in k.targets
                     if t.platform == "azure" and t.group
                     and normalise_region(t.region) == region)


def worker_manager_groups(fleet: Fleet, region: str) -> frozenset[str]:
    """The resource groups the Azure worker pools' launch configs place workers in, in
    `region` (the group of the target each location runs the image of: `pools.pool_target`)."""
    from ..pools import PoolError, pool_target, provider_type

    region = normalise_region(region)
    groups = set()
    for key in fleet.keys.values():
        for pool in key.pools:
            try:
                azure = provider_type(key, pool) == "azure"
            except PoolError:
                continue
            target = pool_target(key, pool, region) if azure and region in pool.locations \
                else None
            if target is not None and target.group:
                groups.add(target.group)
    return frozenset(groups)


def task_states(task_ids: Iterable[str], say: Callable[[str], None]) -> dict[str, str]:
    """The queue's state of each build task (`missing` when the queue no longer knows it);
    empty, with a warning, when no Taskcluster is configured (then only ages count)."""
    import taskcluster

    from ..tc import call, client_options

    ids = sorted(set(task_ids))
    if not ids:
        return {}
    try:
        queue = taskcluster.Queue(client_options())
    except CibError as exc:
        say(f"warning: build task states unknown, only ages count ({exc})")
        return {}
    states = {}
    for task_id in ids:
        # a lost connection or a 5xx is transient (exit 75); another refusal (not a task id
        # the queue accepts) leaves the state unknown
        answer = call("queue", f"give the state of build task {task_id}",
                      lambda t=task_id: queue.status(t), allow=tuple(range(400, 500)))
        states[task_id] = ("missing" if answer == 404 else "unknown" if isinstance(answer, int)
                           else answer["status"]["state"])
    return states


def rules(fleet: Fleet, cloud: str, region: str, *, age: timedelta, now: datetime,
          include_worker_manager: bool, states: dict[str, str] | None = None) -> purge.Rules:
    """The purge's rules for one cloud region of `fleet`."""
    azure = cloud == "azure"
    return purge.Rules(
        now=now, min_age=age,
        owned_groups=owned_groups(fleet, region) if azure else frozenset(),
        worker_manager_groups=(worker_manager_groups(fleet, region)
                               if azure and include_worker_manager else frozenset()),
        task_states=states or {})


def run(args: argparse.Namespace, cloud: str, adapter: Any, resources: list[purge.Resource],
        fleet: Fleet, progress: Progress) -> int:
    """Select, remove (or list, with --dry-run) and end the log with the table."""
    tasks = {r.build_task for r in resources if r.build_task}
    chosen = rules(fleet, cloud, args.region, age=min_age(args.min_age), now=datetime.now(UTC),
                   include_worker_manager=args.include_worker_manager,
                   states=task_states(tasks, progress.say))
    verdicts = purge.select(resources, chosen)
    progress.say(f"{len(resources)} resources listed, {sum(v.remove for v in verdicts)} to "
                 f"remove" + (" (dry run: nothing is removed)" if args.dry_run else ""))
    outcomes = purge.carry_out(verdicts, adapter, dry_run=args.dry_run, say=progress.say)
    progress.say(f"done: {purge.summary(outcomes)}")
    purge.table(outcomes, sys.stdout, title=f"purge of {cloud} {args.region}"
                + (" (dry run)" if args.dry_run else ""))
    purge.check_outcomes(outcomes)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    cloud = CLOUDS.get(args.cloud)
    if cloud is None:
        raise CibError(f"--cloud {args.cloud}: purging is supported on "
                       f"{', '.join(sorted(CLOUDS))}")
    fleet = load_fleet(DirectorySource(args.config_dir))
    min_age(args.min_age)  # a bad duration fails before the cloud is asked anything
    progress = Progress()
    if cloud == "amazon":
        from ..clouds.aws import EC2
        from ..images.aws_machine import Timeouts
        from ..lifecycle.aws_purge import AwsPurge, list_resources

        ec2 = EC2(args.region)
        progress.say(f"listing the builders' resources in {args.region}")
        return run(args, cloud, AwsPurge(ec2, progress, Timeouts(interval=args.poll_interval)),
                   list_resources(ec2), fleet, progress)
    if cloud == "google":
        from ..lifecycle.google_purge import GooglePurge, places

        where = places(fleet, args.region)
        if not where:
            raise CibError(f"--region {args.region}: the config has no Google target there "
                           "(a Google purge covers the project and zone of each)")
        google = GooglePurge.from_environment(progress, interval=args.poll_interval)
        progress.say("listing the builders' instances and disks in "
                     + ", ".join(f"{project} {zone}" for project, zone in where))
        return run(args, cloud, google, google.list_resources(where), fleet, progress)
    from ..lifecycle.azure_purge import AzurePurge

    adapter = AzurePurge.from_environment(progress, interval=args.poll_interval)
    groups = sorted(owned_groups(fleet, args.region) | (
        worker_manager_groups(fleet, args.region) if args.include_worker_manager
        else frozenset()))
    progress.say(f"listing resources in {', '.join(groups) or 'no resource group'}")
    return run(args, cloud, adapter, adapter.list_resources(groups), fleet, progress)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib purge` on the `cib` command."""
    parser = commands.add_parser(
        "purge", help="remove orphaned build resources in one cloud region (purge tasks)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A resource is removed" + (purge.__doc__ or "").split(
            "A resource is removed", 1)[-1].rstrip(), epilog=EXIT_STATUSES)
    parser.add_argument("--cloud", required=True, metavar="CLOUD",
                        help="amazon (or aws), azure or google")
    parser.add_argument("--region", required=True,
                        help="AWS region, Azure location (e.g. centralus), or Google region "
                             "(e.g. us-central1: the zones of the config's Google targets "
                             "there)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed; remove nothing")
    parser.add_argument("--min-age", default=DEFAULT_MIN_AGE, metavar="DURATION",
                        help="leave resources younger than this (default: 8 hours, longer than "
                             "a machine-image task may run)")
    parser.add_argument("--include-worker-manager", action="store_true",
                        help="Azure: also purge the resource groups of the worker pools' "
                             "launch configs, and resources worker-manager manages "
                             "(purge-taskcluster-resources)")
    parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                        help="config directory (default: config)")
    parser.add_argument("--poll-interval", type=float, default=15.0, metavar="SECONDS",
                        help="how often waits for a removal ask the cloud (default: 15)")
    parser.set_defaults(func=cmd_purge)
