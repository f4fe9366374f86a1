"""`cib promote` and `cib rollback`: move an environment's release pointers and redeploy.

`promote` releases in one environment (production) the key's current release of another
(staging), copying images to regions that lack them, never building (lifecycle/promote.py).
`rollback` points a pool back at an earlier release of its history and redeploys it
(lifecycle/rollback.py). Both write to the deployment of `TASKCLUSTER_ROOT_URL` (or the
task's proxy) and read the source environment anonymously. See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import taskcluster

from ..config import DirectorySource, Environment, Fleet, load_fleet
from ..digests import key_digests
from ..errors import CibError
from ..images.progress import Progress
from ..lifecycle import pointers, rollback
from ..signing import check_releases, tag_signer
from ..tc import client_options
from ..tcschemas import SchemaStore
from . import DEFAULT_ARTIFACTS, DEFAULT_CONFIG_DIR

if TYPE_CHECKING:
    from ..clouds.aws import EC2


def _environment(fleet: Fleet, name: str | None, option: str) -> Environment:
    name = name or os.environ.get("CIB_ENVIRONMENT")
    if not name:
        raise CibError(f"give {option} (or set CIB_ENVIRONMENT)")
    if name not in fleet.environments:
        raise CibError(f"{option} {name!r}: no such environment; the config has "
                       f"{', '.join(fleet.environments)}")
    return fleet.environments[name]


def _store(options: dict) -> SchemaStore:
    try:
        return SchemaStore.default(os.environ.get("TASKCLUSTER_ROOT_URL") or options["rootUrl"])
    except LookupError as exc:
        raise CibError(str(exc)) from None


def _ec2_factory() -> Callable[[str], EC2]:
    from ..clouds.aws import EC2  # boto3: only where a command calls AWS

    sessions: dict[str, EC2] = {}

    def ec2_for(region: str) -> EC2:
        if region not in sessions:
            sessions[region] = EC2(region)
        return sessions[region]
    return ec2_for


def cmd_promote(args: argparse.Namespace) -> int:
    """Promote a key's current release from one environment to another."""
    from ..lifecycle import promote  # the clouds' SDKs: not on every `cib` command's start

    fleet = load_fleet(DirectorySource(args.config_dir))
    source = _environment(fleet, args.source, "--from")
    target = _environment(fleet, args.target, "--to")
    if args.key not in fleet.keys:
        raise CibError(f"no image key {args.key!r} in {args.config_dir}")
    source_options = {"rootUrl": args.from_root_url or source.root_url}
    options = client_options()
    progress = Progress(sys.stderr)
    progress.say(f"promoting {args.key} from {source.name} ({source_options['rootUrl']}) to "
                 f"{target.name} ({options['rootUrl']})" + (" (dry run)" if args.dry_run
                                                            else ""))
    result = promote.promote(
        fleet=fleet, key=args.key, source=source, target=target,
        source_index=taskcluster.Index(source_options),
        source_queue=taskcluster.Queue(source_options), index=taskcluster.Index(options),
        wm=taskcluster.WorkerManager(options), store=_store(options),
        ec2_for=_ec2_factory(), task_id=os.environ.get("TASK_ID"),
        artifacts=Path(args.artifacts), progress=progress,
        digests=key_digests(fleet.keys[args.key], fleet.shared), dry_run=args.dry_run,
        check_source=lambda release: check_releases(
            [release], source, args.config_dir, args.key, progress.say),
        sign=lambda: tag_signer(fleet, target.name, args.config_dir, progress.say))
    if not args.dry_run:
        for region, image_id in sorted(result.copies.items()):
            progress.say(f"copied to {region}: {image_id}")
        progress.say(f"{target.name} now runs release {result.promoted.sha256} of "
                     f"{args.key}: " + ", ".join(f"{o.pool_id} {o.action}"
                                                  for o in result.outcomes))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Roll a pool back to an earlier release of its history."""
    fleet = load_fleet(DirectorySource(args.config_dir))
    environment = _environment(fleet, args.environment, "--environment")
    options = client_options()
    if args.list:
        for entry in pointers.history(taskcluster.Index(options), environment.name, args.pool):
            print(f"{entry.sequence:>4}  {entry.recorded}  {entry.action:<8}  "
                  f"{entry.release.sha256}  {entry.release.task_id}")
        return 0
    progress = Progress(sys.stderr)
    result = rollback.rollback(
        fleet=fleet, environment=environment, pool_id=args.pool, to=args.to,
        index=taskcluster.Index(options), queue=taskcluster.Queue(options),
        wm=taskcluster.WorkerManager(options), store=_store(options), log=progress.say,
        config_dir=args.config_dir, dry_run=args.dry_run)
    verb = "would run" if args.dry_run else "runs"
    progress.say(f"{result.pool_id} {verb} release {result.chosen.release.sha256[:12]} "
                 f"again (was {result.current.release.sha256[:12]}; pool "
                 f"{result.outcome.action})")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib promote` and `cib rollback` on the `cib` command."""
    promote_parser = commands.add_parser(
        "promote", help="release another environment's current release of a key here",
        description="Reads the --from environment's current release of --key, verifies it, "
                    "copies its AWS and Azure images to regions of the key's pools that lack "
                    "them, writes the promoted public/release.json, deploys the key's pools in "
                    "--to and points --to at it. Never builds; a rerun changes nothing.")
    promote_parser.add_argument("--key", required=True, metavar="K")
    promote_parser.add_argument("--from", dest="source", required=True, metavar="ENV")
    promote_parser.add_argument("--to", dest="target", required=True, metavar="ENV")
    promote_parser.add_argument("--from-root-url", metavar="URL",
                                help="read the --from environment at this root URL instead of "
                                     "the config's (e.g. a local Taskcluster)")
    promote_parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
    promote_parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS,
                                help="directory published as public/ (default: artifacts)")
    promote_parser.add_argument("--dry-run", action="store_true",
                                help="say what would be copied and deployed; change nothing")
    promote_parser.set_defaults(func=cmd_promote)

    rollback_parser = commands.add_parser(
        "rollback", help="redeploy a pool from an earlier release of its history",
        description="Reads the pool's release history in the environment, picks the "
                    "previous release (or --to), verifies it, redeploys the pool from it and "
                    "records the rollback in the history.")
    rollback_parser.add_argument("--pool", required=True, metavar="ID")
    rollback_parser.add_argument("--to", metavar="RELEASE",
                                 help="a release sha256 (12 hex digits or more) or the id of "
                                      "the task holding it; it must be in the history")
    rollback_parser.add_argument("--environment", metavar="ENV",
                                 help="default: $CIB_ENVIRONMENT")
    rollback_parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
    rollback_parser.add_argument("--dry-run", action="store_true",
                                 help="say what would change; write nothing")
    rollback_parser.add_argument("--list", action="store_true",
                                 help="print the pool's release history (oldest first: "
                                      "entry, time, action, sha256, task) and change nothing")
    rollback_parser.set_defaults(func=cmd_rollback)
