"""`cib pool render|apply|teardown|sweep`: worker pool definitions, rendered and deployed.

`render` is offline: it prints the definitions of the pools whose images are given by
`--release` files (release or machine-image records) and never invents image ids. `apply`
runs inside a worker-pool task: it reads the records its dependency tasks left, then deploys
the pool as a diff. `teardown` deletes a pull request's per-PR pools, `sweep` the expired ones.
See docs/pools.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import yaml

import taskcluster

from .. import pools
from ..bounds import PULL_REQUEST
from ..config import DirectorySource, Environment, Fleet, load_fleet
from ..errors import CibError, ConfigError
from ..images.context import read_json_file
from ..lifecycle import pointers
from ..manifest import Release, format_time, parse_time
from ..signing import check_releases
from ..tc import Index, client_options
from ..tcschemas import SchemaStore
from . import DEFAULT_CONFIG_DIR

DEFAULT_PR_TTL = "7 days"  # as `cib.pr-pool-ttl` in taskcluster/config.yml


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _environment(fleet: Fleet, name: str | None) -> Environment:
    name = name or os.environ.get("CIB_ENVIRONMENT") or next(iter(fleet.environments))
    if name not in fleet.environments:
        raise CibError(f"no environment {name!r}; the config has "
                       f"{', '.join(fleet.environments)}")
    return fleet.environments[name]


def _expires(ttl: str, anchor: datetime) -> datetime:
    try:
        expires = taskcluster.fromNow(ttl, anchor)
    except ValueError:
        raise CibError(f"--ttl {ttl!r} is not a duration such as '7 days' or '12 hours'") from None
    if expires <= anchor:
        raise CibError(f"--ttl {ttl!r} must be a positive duration")
    return expires


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text)
    except ValueError:
        raise CibError(f"--now {text!r} is not an ISO 8601 time with a time zone "
                       "(e.g. 2026-11-21T13:00:00Z)") from None


def _file_records(files: list[str]) -> list[pools.Record]:
    return [pools.parse_record(read_json_file(path), path) for path in files]


def _request(fleet: Fleet, pool_id: str, args: argparse.Namespace, anchor: datetime
             ) -> pools.PoolRequest:
    key, pool = pools.find_pool(fleet, pool_id)
    number = args.pull_request or None
    return pools.PoolRequest(key, pool, _environment(fleet, args.environment), number,
                             _expires(args.ttl, anchor) if number else None)


def _print(definitions: dict[str, dict[str, Any]], form: str) -> None:
    if form == "yaml":
        print(yaml.safe_dump(definitions, sort_keys=False, width=100), end="")
    else:
        print(json.dumps(definitions, indent=2))


def _store(root_url: str | None = None) -> SchemaStore:
    try:
        return SchemaStore.default(root_url)
    except LookupError as exc:
        raise CibError(str(exc)) from None


def cmd_render(args: argparse.Namespace) -> int:
    """Print the definitions of the pools the given records have images for."""
    fleet = load_fleet(DirectorySource(args.config_dir))
    records = _file_records(args.release)
    if not records:
        raise CibError("give --release FILE (release or machine-image records): a definition "
                       "needs the image ids, and render prints no placeholders")
    keys = {r.key for r in records}
    chosen = args.pool or sorted(p for p in fleet.pools if pools.find_pool(fleet, p)[0].name
                                 in keys)
    store, now, result = _store(), datetime.now(UTC), {}
    for pool_id in chosen:
        request = _request(fleet, pool_id, args, now)
        images = pools.collect_images(records, request.key.name, _log)
        if not args.pool and not images:
            continue
        try:
            definition = pools.validate(pools.render(request, images), store)
        except pools.PoolError as exc:
            if args.pool:
                raise
            _log(f"skipping {pool_id}: {exc}")
            continue
        result[definition.pool_id] = definition.body
    if not result:
        raise CibError("no pool has an image in the given records")
    _print(result, args.format)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Deploy one pool (or its per-PR pool) from the images of this task's dependencies."""
    fleet = load_fleet(DirectorySource(args.config_dir))
    records = _file_records(args.release)
    options = client_options()
    anchor = datetime.now(UTC)
    task_id = os.environ.get("TASK_ID")
    sources: list[tuple[str, pools.Record]] = []
    if task_id:
        sources, created = pools.dependency_record_sources(taskcluster.Queue(options), task_id,
                                                           _log)
        records += [record for _, record in sources]
        anchor = parse_time(created)  # a rerun of the task records the same expiry
    request = _request(fleet, args.pool, args, anchor)
    # Where this graph's build failed, the launch config stays exactly as it is.
    frozen = pools.failed_build_regions(taskcluster.Queue(options), task_id, request) \
        if task_id else set()
    if frozen:
        _log(f"{request.pool_id}: {', '.join(sorted(frozen))} keep their launch configs as "
             "they are: their builds failed in this graph")
    # An environment that signs its releases deploys no release whose signature fails.
    check_releases(records, request.environment, args.config_dir, request.key.name, _log)
    # A key with smoke tests deploys only released images that passed them.
    tested = bool(request.key.image_tests(request.environment))
    if tested:
        records = pools.tested_records(records, request.key.name, _log)
    images = pools.collect_images(records, request.key.name, _log)
    if not images and not args.release:
        # `pool-deploy`, or a pull request that changes only a pool (its images are not
        # rebuilt, so no dependency leaves a record): the key's current release in the
        # environment. A per-PR pool has no current definition to keep images from.
        sources = _current_release(options, request)
        check_releases([r for _, r in sources], request.environment, args.config_dir,
                       request.key.name, _log)
        current = [r for _, r in sources]
        if tested:
            current = pools.tested_records(current, request.key.name, _log)
        images = pools.collect_images(current, request.key.name, _log)
    if not images:
        _log(f"{request.pool_id}: no new images given: every location keeps the image it runs")
    wm = taskcluster.WorkerManager(options)
    store = _store(os.environ.get("TASKCLUSTER_ROOT_URL") or options["rootUrl"])
    definition, _ = pools.apply(wm, request, images, store, _log, dry_run=args.dry_run,
                                frozen=frozen)
    if args.dry_run:
        _print({definition.pool_id: definition.body}, "json")
    elif not request.pull_request:  # per-PR pools are never pointed at
        record_deploy(taskcluster.Index(options), request, sources)
    return 0


def _current_release(options: dict[str, Any], request: pools.PoolRequest
                     ) -> list[tuple[str, Release]]:
    """The key's current release in the environment (`release.<key>.latest` of its index:
    the newest images released, by a deploy or a promotion), as a (task, record) source;
    none when the key was never released there."""
    environment = request.environment.name
    current = pointers.find(taskcluster.Index(options),
                            pointers.release_path(environment, request.key.name))
    if current is None:
        _log(f"{request.pool_id}: {request.key.name} has no current release in {environment}")
        return []
    release = pointers.read_release(taskcluster.Queue(options), current.release)
    _log(f"{request.pool_id}: deploying {request.key.name}'s current release in {environment}, "
         f"{release.sha256[:12]} (task {current.release.task_id}, {current.action} "
         f"{current.recorded})")
    return [(current.release.task_id, release)]


def record_deploy(index: Index, request: pools.PoolRequest,
                  sources: list[tuple[str, pools.Record]]) -> None:
    """Record the deploy in the environment's pointers: the pool's history and the key's
    current release name the newest release record of the key the dependencies left (a
    deploy from machine-image records alone, or keeping every image, records nothing)."""
    releases = [(task, record) for task, record in sources
                if isinstance(record, Release) and record.key == request.key.name]
    if not releases:
        _log(f"{request.pool_id}: no release record of {request.key.name} among the "
             "dependencies: no release pointer recorded")
        return
    task, release = max(releases, key=lambda found: parse_time(found[1].created))
    ref = pointers.ReleaseRef(release.key, release.sha256, task)
    environment = request.environment.name
    pointers.record_pool(index, environment, request.pool_id, ref, "deploy", _log)
    pointers.set_release(index, environment, ref, "deploy", _log)


def cmd_teardown(args: argparse.Namespace) -> int:
    """Delete the per-PR pools of a pull request."""
    if args.pull_request <= 0:
        raise CibError(f"--pull-request {args.pull_request}: not a pull request number")
    try:
        pool_ids = sorted(load_fleet(DirectorySource(args.config_dir)).pools)
    except ConfigError as exc:  # a broken config must not keep a closed PR's pools alive
        _log(f"warning: {exc}\nwarning: deleting by the per-PR naming rule alone")
        pool_ids = []
    wm = taskcluster.WorkerManager(client_options())
    pools.teardown(wm, args.pull_request, pool_ids, _log)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Delete the per-PR pools whose recorded expiry has passed."""
    now = _now(args.now)
    wm = taskcluster.WorkerManager(client_options())
    deleted = pools.sweep(wm, now, _log)
    _log(f"swept {len(deleted)} expired per-PR pool{'s' if len(deleted) != 1 else ''} "
         f"at {format_time(now)}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                        help="config directory (default: config)")
    parser.add_argument("--release", action="extend", nargs="+", default=[], metavar="FILE",
                        help="release (public/release.json) or machine-image record files "
                             "giving image ids; releases must verify")
    parser.add_argument("--environment", help="environment to deploy for (default: "
                                              "$CIB_ENVIRONMENT, else the first configured)")
    parser.add_argument("--pull-request", type=PULL_REQUEST, metavar="N",
                        help="deploy the pull request's per-PR pool instead")
    parser.add_argument("--ttl", default=DEFAULT_PR_TTL, metavar="DURATION",
                        help="how long a per-PR pool lives (default: 7 days), from the task's "
                             "creation inside a task, else from now")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib pool ...` on the `cib` command."""
    pool = commands.add_parser("pool", help="render and deploy worker pool definitions")
    sub = pool.add_subparsers(dest="pool_command", required=True, metavar="SUBCOMMAND")

    render = sub.add_parser(
        "render", help="print pool definitions for the images of release records (offline)",
        description="Prints the worker-manager definition of each pool whose key has images "
                    "in the --release records (or of each --pool), validated against the "
                    "genuine schemas. No credentials, no network.")
    _common(render)
    render.add_argument("--pool", action="append", metavar="ID",
                        help="only this pool (repeatable); an error when it has no image")
    render.add_argument("--format", choices=("json", "yaml"), default="json")
    render.set_defaults(func=cmd_render)

    apply = sub.add_parser(
        "apply", help="deploy one pool to worker-manager (inside its worker-pool task)",
        description="Reads the release or machine-image records the dependencies of $TASK_ID "
                    "left (and --release files), renders the pool keeping the images of "
                    "locations not built, validates it and writes it only when it changed.")
    _common(apply)
    apply.add_argument("--pool", required=True, metavar="ID", help="the pool, as in the config")
    apply.add_argument("--dry-run", action="store_true",
                       help="read the current pool and say what would change; write nothing")
    apply.set_defaults(func=cmd_apply)

    teardown = sub.add_parser("teardown", help="delete the per-PR pools of a pull request")
    teardown.add_argument("--pull-request", type=PULL_REQUEST, required=True, metavar="N")
    teardown.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR)
    teardown.set_defaults(func=cmd_teardown)

    sweep = sub.add_parser("sweep", help="delete per-PR pools whose time to live has passed")
    sweep.add_argument("--now", metavar="ISO", help="the time to compare expiries with "
                                                   "(default: now)")
    sweep.set_defaults(func=cmd_sweep)
