"""`cib gc --cloud C [--keep N] [--dry-run]`: delete old machine images nothing refers to.

Steps, each one line in the log, then a table of every image kept (with its reason) and
deleted:

1. **references**: every worker pool's current definition of every configured environment,
   and the releases its pointers and rollback spares name; any listing that fails stops
   here, having deleted nothing;
2. **images**: every image of this account in the cloud's regions (`--region`, default every
   region of the config's targets of that cloud and their copies; Azure: in the resource
   groups of the config's targets there; Google: every image labelled `cib-key` of the
   config's Google projects, its region where it is stored); a listing that fails stops here
   too. An image without a creation time (Azure managed images) gets its build task's;
3. **plan** (`lifecycle.gc.plan`): keep what is referenced, still being made, among the newest
   `--keep` of its key, environment and region, or younger than `--min-age`; delete the rest
   of our images; never touch images without our tags;
4. **delete** (not with `--dry-run`): AWS deregisters the AMI and deletes its snapshots; Azure
   deletes the managed image or gallery image version; Google deletes the image.

Exit statuses: 0 done; 2 bad input, or a listing refused for good (e.g. missing scopes); 3 the
cloud refused a deletion (the others went ahead); 75 a listing or deletion failed for a
reason that may pass (a server error, a lost connection): run it again. See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from taskcluster.exceptions import TaskclusterFailure

import taskcluster

from ..bounds import int_argument
from ..config import DirectorySource, Environment, Fleet, load_fleet, normalise_region
from ..errors import BuildError, CibError, TransientError
from ..images.progress import Progress
from ..lifecycle import gc, pointers
from ..lifecycle.references import (
    ReferenceSource,
    gather,
    pointer_source,
    worker_pool_source,
)
from ..manifest import parse_time
from ..tc import client_options
from . import DEFAULT_CONFIG_DIR

DEFAULT_KEEP = 3
DEFAULT_MIN_AGE = "1 day"
CLOUDS = {"amazon": "amazon", "aws": "amazon", "azure": "azure", "google": "google"}

Lister = Callable[[], list[gc.Image]]
Deleter = Callable[[list[gc.Decision], Callable[[str], None]],
                   list[tuple[gc.Decision, CibError]]]


def environment_options(environment: Environment) -> dict[str, Any]:
    """Client options for reading one environment: the caller's credentials when it is the
    deployment they are for (`TASKCLUSTER_ROOT_URL`, or the task's proxy), otherwise none
    (pools, the index and public artifacts are readable without)."""
    own = (os.environ.get("TASKCLUSTER_ROOT_URL") or "").rstrip("/")
    if own and own == environment.root_url.rstrip("/"):
        return client_options()
    return {"rootUrl": environment.root_url}


def reference_sources(environments: Iterable[Environment], *,
                      keep_history: int = pointers.DEFAULT_KEEP_HISTORY,
                      page_size: int | None = None) -> list[ReferenceSource]:
    """The reference sources of every environment: its worker pools, then its release
    pointers and rollback spares."""
    sources = []
    for env in environments:
        options = environment_options(env)
        sources += [worker_pool_source(taskcluster.WorkerManager(options), env.name, page_size),
                    pointer_source(taskcluster.Index(options), taskcluster.Queue(options),
                                   env.name, keep_history)]
    return sources


def _parse_age(text: str) -> timedelta:
    now = datetime.now(UTC)
    try:
        later = taskcluster.fromNow(text, now)
    except ValueError:
        raise CibError(f"--min-age {text!r} is not a duration such as '1 day' or "
                       "'12 hours'") from None
    if later < now:
        raise CibError(f"--min-age {text!r} must not be negative")
    return later - now


def _nothing_deleted(read: Callable[[], Any], needs: str) -> Any:
    """`read()`; its failure says nothing was deleted: exit 75 when it may pass, else 2."""
    try:
        return read()
    except CibError as exc:
        kind = TransientError if isinstance(exc, TransientError) else CibError
        raise kind(f"{exc}\nnothing was deleted: garbage collection needs {needs}") from None


def run(sources: Iterable[ReferenceSource], list_images: Lister, delete: Deleter, *,
        keep: int, min_age: timedelta, now: datetime, dry_run: bool, progress: Progress,
        environments: Collection[str] | None = None) -> gc.Plan:
    """Gather every reference, list the images, plan and (unless `dry_run`) delete. Raises
    before deleting anything when a reference source or a listing fails; after deleting,
    raises when some deletion failed (the rest went ahead). `environments` narrows the
    images collected (see `gc.plan`)."""
    progress.say("reading what refers to images (worker pools, pointers, rollback spares)")
    references = _nothing_deleted(lambda: gather(sources), "every reference")
    progress.say(f"{len(references)} reference{'s' if len(references) != 1 else ''} to "
                 f"{len({gc.normalise_id(r.image_id) for r in references})} images")
    images = _nothing_deleted(list_images, "every image listed")
    plan = gc.plan(images, references, keep=keep, now=now, min_age=min_age,
                   environments=environments)
    progress.say(f"{len(images)} images: {len(plan.kept)} kept, {len(plan.deleted)} to "
                 f"delete, {len(plan.of(gc.IGNORE))} left alone")
    if dry_run:
        for decision in plan.deleted:
            progress.say(f"would delete {decision.image.id} {decision.image.name} in "
                         f"{decision.image.region}: {decision.reason}")
        return plan
    failures = delete(plan.deleted, progress.say)
    if failures:
        lines = [f"  {d.image.id} in {d.image.region}: {exc}" for d, exc in failures]
        kind = (TransientError if all(isinstance(e, TransientError) for _, e in failures)
                else BuildError)
        raise kind("\n".join([f"{len(failures)} of {len(plan.deleted)} deletions failed:",
                              *lines]))
    return plan


def print_table(plan: gc.Plan, out: TextIO, dry_run: bool) -> None:
    """The images kept, with their reason, and those deleted (or to delete)."""
    from rich.console import Console
    from rich.table import Table

    # In a task log, one line per image however long its reasons (no wrapping).
    console = Console(file=out, width=None if out.isatty() else 10_000)
    table = Table("action", "region", "image", "name", "key", "environment", "created",
                  "reason", box=None, pad_edge=False)
    gone = "would delete" if dry_run else "deleted"
    for decision in plan.decisions:
        if decision.action == gc.IGNORE:
            continue
        image = decision.image
        created = image.created.strftime("%Y-%m-%dT%H:%MZ") if image.created else "?"
        table.add_row(gone if decision.action == gc.DELETE else "kept",
                      f"{image.cloud}/{image.region}", image.id, image.name, image.key or "",
                      image.environment, created, decision.reason)
    console.print(table)
    foreign = sum(not d.image.ours for d in plan.of(gc.IGNORE))
    others = len(plan.of(gc.IGNORE)) - foreign
    console.print(f"{len(plan.kept)} kept, {len(plan.deleted)} {gone}, {foreign} not ours "
                  "(never touched)" + (f", {others} of other environments" if others else ""))


def _environments(fleet: Fleet, names: list[str] | None) -> list[Environment]:
    unknown = sorted(set(names or ()) - set(fleet.environments))
    if unknown:
        raise CibError(f"no environment {', '.join(unknown)}; the config has "
                       f"{', '.join(fleet.environments)}")
    return list(fleet.environments.values())


Cloud = tuple[Lister, Deleter, list[str]]


def _aws(fleet: Fleet, regions: list[str]) -> Cloud:
    from ..clouds.aws import EC2
    from ..lifecycle import gc_aws

    chosen = regions or gc_aws.regions(fleet)
    clients: dict[str, EC2] = {}

    def ec2_for(region: str) -> EC2:
        if region not in clients:  # one session: botocore reads EC2's model once
            clients[region] = next(iter(clients.values())).in_region(region) if clients \
                else EC2(region)
        return clients[region]

    def list_images() -> list[gc.Image]:
        return [image for region in chosen for image in gc_aws.list_images(ec2_for(region))]

    return list_images, lambda decisions, log: gc_aws.delete_all(decisions, ec2_for, log), chosen


def _azure(fleet: Fleet, regions: list[str]) -> Cloud:
    from ..clouds.azure import Azure
    from ..lifecycle import gc_azure

    chosen = regions or gc.target_regions(fleet, gc_azure.CLOUD)
    groups = gc_azure.groups(fleet, chosen)
    azure = Azure.from_environment()
    return (lambda: gc_azure.list_images(azure, groups, chosen),
            lambda decisions, log: gc_azure.delete_all(decisions, azure, log), chosen)


def _google(fleet: Fleet, regions: list[str]) -> Cloud:
    from ..clouds.google import Google
    from ..lifecycle import gc_google

    projects = gc_google.projects(fleet)
    if not projects:
        raise CibError("the config has no Google project (no Google target, no environment "
                       "with google.project)")
    google, progress = Google.from_environment(), Progress()
    where = [f"{p}" + (f" stored in {', '.join(regions)}" if regions else "")
             for p in projects]
    return (lambda: gc_google.list_images(google, projects, regions),
            lambda decisions, log: gc_google.delete_all(decisions, google, log, progress),
            where)


CLOUD_FACTORIES: dict[str, Callable[[Fleet, list[str]], Cloud]] = {
    "amazon": _aws, "azure": _azure, "google": _google}


def build_task_created(environments: Iterable[Environment]
                       ) -> Callable[[gc.Image], datetime | None]:
    """When an image's build task (`cib:build-task-id`) was created, read from the queue of
    the image's environment; None when that cannot be told (the image is then kept)."""
    queues = {env.name: taskcluster.Queue(environment_options(env)) for env in environments}

    def created(image: gc.Image) -> datetime | None:
        queue, task_id = queues.get(image.environment), image.tag.get(gc.BUILD_TASK_TAG)
        if queue is None or not task_id:
            return None
        try:
            return parse_time(queue.task(task_id)["created"])
        except (TaskclusterFailure, KeyError, TypeError, ValueError):
            return None
    return created


def cmd_gc(args: argparse.Namespace) -> int:
    """Delete the old images of one cloud that nothing refers to."""
    min_age = _parse_age(args.min_age)
    fleet = load_fleet(DirectorySource(args.config_dir))
    cloud = CLOUDS[args.cloud]
    environments = _environments(fleet, args.environment)
    wanted = sorted({normalise_region(r) for r in args.region or ()})
    list_cloud, delete, regions = CLOUD_FACTORIES[cloud](fleet, wanted)
    if not regions:
        raise CibError(f"the config has no {cloud} targets: give --region")
    progress = Progress()
    progress.say(f"garbage collection of {cloud} images in {', '.join(regions)}; keeping the "
                 f"newest {args.keep} of each key, environment and region"
                 + (f", only images of {', '.join(args.environment)}" if args.environment
                    else "") + (" (dry run: nothing is deleted)" if args.dry_run else ""))
    created = build_task_created(environments)

    def list_images() -> list[gc.Image]:
        return gc.with_created(list_cloud(), created)

    plan = run(reference_sources(environments, keep_history=args.rollback_spares),
               list_images, delete, keep=args.keep, min_age=min_age, now=datetime.now(UTC),
               dry_run=args.dry_run, progress=progress, environments=args.environment)
    print_table(plan, sys.stdout, args.dry_run)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib gc` on the `cib` command."""
    parser = commands.add_parser(
        "gc", help="delete old machine images that no pool, pointer or rollback spare uses",
        description="Reads every worker pool of every configured environment, lists the "
                    "cloud's images and deletes ours that nothing refers to, keeping the "
                    "newest --keep of each key, environment and region. Deletes nothing when "
                    "any listing fails. See docs/lifecycle.md.")
    parser.add_argument("--cloud", required=True, choices=sorted(CLOUDS),
                        help="the cloud whose images to collect (aws is amazon)")
    parser.add_argument("--keep", type=int_argument(0, 10_000), default=DEFAULT_KEEP, metavar="N",
                        help=f"newest images kept per key, environment and region, referenced "
                             f"or not (default: {DEFAULT_KEEP})")
    parser.add_argument("--min-age", default=DEFAULT_MIN_AGE, metavar="DURATION",
                        help=f"never delete images younger than this (default: "
                             f"{DEFAULT_MIN_AGE}): a graph may be about to deploy them")
    parser.add_argument("--rollback-spares", type=int_argument(0, 10_000),
                        default=pointers.DEFAULT_KEEP_HISTORY, metavar="N",
                        help="releases of each pool's history kept for rollback besides the "
                             f"current one (default: {pointers.DEFAULT_KEEP_HISTORY})")
    parser.add_argument("--environment", action="append", metavar="ENV",
                        help="only images built for this environment (repeatable); the pools "
                             "of every environment are read all the same")
    parser.add_argument("--region", action="append", metavar="REGION",
                        help="only this region (repeatable; default: every region of the "
                             "config's targets of the cloud and their copies; Google: only "
                             "images stored there, default every image of its projects)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be deleted; delete nothing")
    parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                        help="config directory (default: config)")
    parser.set_defaults(func=cmd_gc)
