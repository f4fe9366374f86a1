"""`cib drift`: what differs between the config, worker-manager and the release pointers of
one environment (drift.py says what each difference is and what fixes it). Read-only: every
listing is read whole, and a read that fails fails the command (exit 2, or 75 when the service
may answer later) instead of reporting a partial picture. Exit 1 when there is drift."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import drift, pools
from .config import DirectorySource, Fleet, load_fleet
from .config.source import default_config_dir
from .lifecycle import pointers
from .naming import PR_POOL_DOMAIN
from .selection import pool_not_built
from .signing import environment_named

DRIFT_EXIT = 1


def find_drift(fleet: Fleet, environment: str, wm: Any, index: Any, queue: Any,
               log: pools.Log = lambda line: None) -> list[drift.Drift]:
    """Every difference between `fleet`'s pools in `environment`, the pools `wm` has and the
    release pointers of `index` (whose releases `queue` holds), by pool id."""
    env = environment_named(fleet, environment)
    live = {p["workerPoolId"]: p for p in pools.list_pools(wm)}
    log(f"worker-manager has {len(live)} pools; the config has {len(fleet.pools)}")
    found: list[drift.Drift] = []
    key_releases: dict[str, str | None] = {}
    domains = set()
    for key in fleet.keys.values():
        for pool in key.pools:
            domains.add(pool.domain)
            if pool_not_built(key, pool, fleet, env.name):
                continue  # cib does not deploy it (docs: unbuilt clouds)
            current = live.get(pool.id)
            if current is None:
                found.append(drift.undeployed(pool.id))
                continue
            entry = pointers.find(index, pointers.pool_path(env.name, pool.id))
            if entry is None:
                found.append(drift.unrecorded(pool.id))
                continue
            release = pointers.read_release(queue, entry.release)
            images = pools.collect_images([release], key.name, log)
            expected = pools.render(pools.PoolRequest(key, pool, env), images, current)
            if key.name not in key_releases:
                key_entry = pointers.find(index, pointers.release_path(env.name, key.name))
                key_releases[key.name] = key_entry.release.sha256 if key_entry else None
            found += drift.pool_drift(pool.id, expected, current, {i.id for i in images},
                                      release.sha256, key_releases[key.name])
    for pool_id in sorted(live):
        domain = pool_id.split("/", 1)[0]
        if pool_id not in fleet.pools and domain in domains and domain != PR_POOL_DOMAIN:
            found.append(drift.stray(pool_id))
    return sorted(found, key=lambda d: (d.subject, d.kind))


def table(found: list[drift.Drift]) -> str:
    """One block per difference: the pool, the kind, what differs and the fix."""
    if not found:
        return "no drift: worker-manager runs what the config and the release pointers say\n"
    lines = [f"{len(found)} difference{'s' if len(found) != 1 else ''}:"]
    for item in found:
        lines += [f"  {item.subject}  {item.kind}: {item.detail}", f"      fix: {item.fix}"]
    return "\n".join(lines) + "\n"


def cmd_drift(args: argparse.Namespace) -> int:
    """Print the drift of the environment; exit 1 when there is any."""
    import taskcluster

    from .tc import client_options

    fleet = load_fleet(DirectorySource(args.config_dir or default_config_dir()))
    options = client_options()
    found = find_drift(fleet, args.environment, taskcluster.WorkerManager(options),
                       taskcluster.Index(options), taskcluster.Queue(options),
                       lambda line: print(line, file=sys.stderr))
    if args.format == "json":
        print(json.dumps({"environment": environment_named(fleet, args.environment).name,
                          "drift": [d.to_json() for d in found]}, indent=2))
    else:
        print(table(found), end="")
    return DRIFT_EXIT if found else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `cib drift`."""
    parser = commands.add_parser(
        "drift", help="what differs between the config, worker-manager and the release "
                      "pointers (exit 1 when something does)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(drift.__doc__ or "") + "\nExit 0: no drift; 1: drift; 2: bad input or "
                                           "a refused read; 75: a service to ask again later.")
    parser.add_argument("--environment", default="",
                        help="the environment whose pointers to read (default: the config's "
                             "first)")
    parser.add_argument("--config-dir", help="config directory (default: config)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=cmd_drift)
