"""`cib drift`: what differs between the config, worker-manager, the release pointers and the
images in the clouds of one environment (drift.py says what each difference is and what fixes
it; drift_clouds.py asks the clouds). Read-only: every listing is read whole, and a read that
fails fails the command (exit 2, or 75 when the service may answer later) instead of
reporting a partial picture. Exit 1 when there is drift."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import drift, drift_clouds, pools
from ..checkrun_errors import MAX_TEXT, TEXT_ARTIFACT
from ..config import DirectorySource, Fleet, load_fleet, normalise_region
from ..config.model import ImageKey, Pool
from ..config.source import default_config_dir
from ..errors import CibError
from ..lifecycle import pointers
from ..lifecycle.gc import normalise_id
from ..manifest import Release
from ..naming import PR_POOL_DOMAIN
from ..selection import pool_not_built
from ..signing import environment_named
from ..tc import Index, Queue, WorkerManager

DRIFT_EXIT = 1


def find_drift(fleet: Fleet, environment: str, wm: WorkerManager, index: Index, queue: Queue,
               log: pools.Log = lambda line: None,
               readers: dict[str, Callable[[], drift_clouds.Reader]] | None = None
               ) -> list[drift.Drift]:
    """Every difference between `fleet`'s pools in `environment`, the pools `wm` has, the
    release pointers of `index` (whose releases `queue` holds) and the images the clouds have
    (`readers`, default `drift_clouds.READERS`), by subject."""
    env = environment_named(fleet, environment)
    live = {p["workerPoolId"]: p for p in pools.list_pools(wm)}
    log(f"worker-manager has {len(live)} pools; the config has {len(fleet.pools)}")
    found: list[drift.Drift] = []
    key_releases: dict[str, Release | None] = {}
    deployed: list[drift.DeployedPool] = []
    domains = set()
    for key in fleet.keys.values():
        for pool in key.pools:
            domains.add(pool.domain)
            if pool_not_built(key, pool, fleet, env.name):
                continue  # cib does not deploy it (docs: unbuilt clouds)
            if key.name not in key_releases:  # what the next deploy of its pools would run
                key_entry = pointers.find(index, pointers.release_path(env.name, key.name))
                key_releases[key.name] = (pointers.read_release(queue, key_entry.release)
                                          if key_entry else None)
            key_release = key_releases[key.name]
            current = live.get(pool.id)
            if current is None:
                found.append(drift.undeployed(pool.id))
                continue
            entry = pointers.find(index, pointers.pool_path(env.name, pool.id))
            if entry is None:
                found.append(drift.unrecorded(pool.id))
                released: set[str] = set()
            else:
                release = pointers.read_release(queue, entry.release)
                images = pools.collect_images([release], key.name, log)
                released = {i.id for i in images}
                expected = pools.render(pools.PoolRequest(key, pool, env), images, current)
                found += drift.pool_drift(
                    pool.id, expected, current, released, release.sha256,
                    key_release.sha256 if key_release else None, key.name,
                    frozenset(normalise_region(i.region) for i in images))
            deployed.append(_deployed(key, pool, current, released, key_release))
    for pool_id in sorted(live):
        domain = pool_id.split("/", 1)[0]
        if pool_id not in fleet.pools and domain in domains and domain != PR_POOL_DOMAIN:
            found.append(drift.stray(pool_id))
    existing = drift_clouds.existing(_wanted(deployed, key_releases.values()), log, readers)
    for view in deployed:
        found += drift.pool_cloud_drift(view, existing)
    for key_name, key_release in sorted(key_releases.items()):
        if key_release is not None:
            found += drift.release_cloud_drift(key_name, env.name, key_release, existing)
    return sorted(found, key=lambda d: (d.subject, d.kind, d.detail))


def _deployed(key: ImageKey, pool: Pool, current: dict[str, Any], released: set[str],
              key_release: Release | None) -> drift.DeployedPool:
    """What the clouds are asked about one deployed pool (`drift.DeployedPool`)."""
    provider = pools.provider_type(key, pool)
    running = []
    deleted = current.get("providerId") == pools.NULL_PROVIDER  # being deleted: no workers
    if not deleted:
        for launch_config in (current.get("config") or {}).get("launchConfigs") or ():
            image = pools.image_of(provider, launch_config) \
                if isinstance(launch_config, dict) else None
            if image is not None:
                running.append((image.region, image.id))
    served = {region for region, _ in running}
    return drift.DeployedPool(
        pool.id, key.name, drift_clouds.PROVIDER_PLATFORMS[provider],
        tuple(running), frozenset(normalise_id(i) for i in released),
        frozenset(i.region for i in key_release.images) if key_release else frozenset(),
        () if deleted else tuple(sorted(set(pool.locations) - served)))


def _wanted(deployed: Iterable[drift.DeployedPool], releases: Iterable[Release | None]
            ) -> list[drift_clouds.Wanted]:
    """Every image a deployed pool runs or a key's current release names."""
    wanted = {drift_clouds.Wanted(view.platform, region, image_id)
              for view in deployed for region, image_id in view.running}
    wanted |= {drift_clouds.Wanted(image.platform, image.region, image.id)
               for release in releases if release is not None for image in release.images}
    return sorted(wanted, key=lambda w: (w.platform, w.region, w.id))


NO_DRIFT = ("no drift: worker-manager runs what the config and the release pointers say, "
            "and the clouds have every image they name")


def table(found: list[drift.Drift]) -> str:
    """One block per difference: the pool, the kind, what differs and the fix."""
    if not found:
        return NO_DRIFT + "\n"
    lines = [f"{len(found)} difference{'s' if len(found) != 1 else ''}:"]
    for item in found:
        lines += [f"  {item.subject}  {item.kind}: {item.detail}", f"      fix: {item.fix}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def check_run_text(found: list[drift.Drift], environment: str) -> str:
    """The result as the drift task's GitHub check run text (markdown within
    `checkrun_errors.MAX_TEXT`): a headline, then one table row per difference with its fix;
    rows that do not fit are counted in a last line."""
    if not found:
        return f"### No drift in {environment}\n\n{NO_DRIFT}.\n"
    head = [f"### {len(found)} difference{'s' if len(found) != 1 else ''} in {environment}",
            "", "`cib drift` exits 1: this task fails until each is fixed.", "",
            "| subject | kind | what differs | fix |", "| --- | --- | --- | --- |"]
    rows = [f"| `{_cell(d.subject)}` | {d.kind} | {_cell(d.detail)} | {_cell(d.fix)} |"
            for d in found]
    kept, size = [], sum(len(line) + 1 for line in head) + 200
    for row in rows:
        if size + len(row) + 1 > MAX_TEXT:
            break
        kept.append(row)
        size += len(row) + 1
    more = [f"\n... and {len(rows) - len(kept)} more (`cib drift --format json` lists them "
            "all; so does this task's `public/drift.json`)"] if len(kept) < len(rows) else []
    return "\n".join([*head, *kept, *more]) + "\n"


def error_text(error: CibError, environment: str) -> str:
    """The check run text of a drift task whose reads failed: nothing was compared."""
    return (f"### cib drift could not read {environment}\n\nNothing was compared: every "
            f"listing must be whole.\n\n```\n{str(error)[:MAX_TEXT - 500]}\n```\n")


def write_artifacts(directory: Path, text: str, result: dict[str, Any] | None) -> None:
    """The check run text (`public/github/customCheckRunText.md` once published) and, when
    the reads succeeded, the result as JSON (`drift.json`)."""
    path = directory / TEXT_ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if result is not None:
        (directory / "drift.json").write_text(json.dumps(result, indent=2), encoding="utf-8")


def cmd_drift(args: argparse.Namespace) -> int:
    """Print the drift of the environment; exit 1 when there is any."""
    import taskcluster

    from ..tc import client_options

    fleet = load_fleet(DirectorySource(args.config_dir or default_config_dir()))
    name = environment_named(fleet, args.environment).name
    options = client_options()
    try:
        found = find_drift(fleet, name, taskcluster.WorkerManager(options),
                           taskcluster.Index(options), taskcluster.Queue(options),
                           lambda line: print(line, file=sys.stderr))
    except CibError as error:
        if args.artifacts:
            write_artifacts(args.artifacts, error_text(error, name), None)
        raise
    result = {"environment": name, "drift": [d.to_json() for d in found]}
    if args.artifacts:
        write_artifacts(args.artifacts, check_run_text(found, name), result)
    if args.format == "json":
        print(json.dumps(result, indent=2))
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
    parser.add_argument("--artifacts", type=Path, metavar="DIR",
                        help="also write the result as a check run text "
                             "(DIR/github/customCheckRunText.md) and DIR/drift.json (the "
                             "drift task's artifacts)")
    parser.set_defaults(func=cmd_drift)
