"""What a decision puts in scope: the fleet narrowed by directives, environment and event (pure).

Rules (documented in the README):
- `no-ci` / `no-taskcluster-ci`, an environment the directives exclude (or do not include), or
  one the repository does not enable (`.environments.yml`), select nothing.
- `include keys` / `exclude keys` narrow the keys; `include pools` selects the keys that feed
  those pools, and of their targets only those that serve them (`ImageKey.serving_target`: the
  pool's platform and locations, its domain's resource group where a region has several, a
  target copying its image to a location no target is in).
- `include regions` / `exclude regions` narrow the targets; a pool stays in scope when one of its
  locations does.
- A pool is in scope when its key is, it survives the pool filters, and it keeps a location.
- A target on a cloud cib does not build machine images on (`BUILDABLE_PLATFORMS`: all three
  are built today), or on one the repository (`.platforms.yml`) or the environment
  (`platforms`) does not enable, gets no machine image; a pool that runs images of such a
  cloud is not deployed, even when it also runs images cib builds. Both are listed with the
  reason (`not_built`).
- A key's disk image is needed when one of its selected targets is on a platform that
  `image.base` does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config.model import Fleet, ImageKey, Pool, Target
from .directives import Directives

# The clouds cib builds machine images on: `cib image machine` has a builder for each. Targets on
# other clouds would be accepted and validated, and have digests, but get no machine-image task,
# and pools running their images no deploy (`select`). A new builder is added here.
BUILDABLE_PLATFORMS = frozenset({"amazon", "azure", "google"})


def not_built(platform: str, fleet: Fleet | None = None,
              environment: str | None = None) -> str | None:
    """Why no machine images are built on `platform`: the repository or the environment does
    not enable it (`Fleet.platform_disabled`), or cib has no builder for it; None when they
    are."""
    if fleet is not None and (reason := fleet.platform_disabled(platform, environment)):
        return reason
    if platform in BUILDABLE_PLATFORMS:
        return None
    return f"{platform} machine images are not built yet"


def pool_platforms(key: ImageKey, pool: Pool) -> frozenset[str]:
    """The clouds whose images `pool` runs: its `platform`, else (a pool naming none) those of
    the key's targets in its locations or copying their image there."""
    if pool.platform:
        return frozenset({pool.platform})
    places = set(pool.locations)
    return frozenset(t.platform for t in key.targets
                     if t.region in places or places & set(t.copies))


def pool_not_built(key: ImageKey, pool: Pool, fleet: Fleet | None = None,
                   environment: str | None = None) -> str | None:
    """Why `pool` is not deployed: it runs images of a cloud cib does not build on. A pool
    running images of such a cloud besides others is not deployed either: worker-manager would
    get a definition without those locations' launch configs (or with stale ones), so it keeps
    the one it has until every image it runs can be built. None when it can be deployed."""
    return next((reason for platform in sorted(pool_platforms(key, pool))
                 if (reason := not_built(platform, fleet, environment))), None)


def deployable_pools(key: ImageKey, fleet: Fleet | None = None,
                     environment: str | None = None) -> list[Pool]:
    """The key's pools a deploy may write (`pool_not_built` says why the others may not)."""
    return [pool for pool in key.pools if pool_not_built(key, pool, fleet, environment) is None]


@dataclass(frozen=True)
class KeySelection:
    """The parts of one key in scope. `unbuilt_targets` and `unbuilt_pools` would be in scope
    but are on clouds cib does not build on (target or pool id -> why): they get no task."""

    key: str
    disk_image: bool
    targets: tuple[str, ...]
    pools: tuple[str, ...]
    unbuilt_targets: dict[str, str] = field(default_factory=dict)
    unbuilt_pools: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """Everything in scope, plus why each thing left out was left out."""

    keys: dict[str, KeySelection] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.keys


def select(fleet: Fleet, directives: Directives, environment: str) -> Selection:
    """Apply the directives to the fleet for a decision running in `environment`."""
    if directives.skip_ci:
        flag = "no-ci" if directives.no_ci else "no-taskcluster-ci"
        return Selection(skipped={"*": f"`{flag}` in the commit message"})
    inc, exc = directives.include, directives.exclude
    if (inc.environments and environment not in inc.environments) or \
            environment in exc.environments:
        return Selection(skipped={"*": f"environment {environment} is excluded by the "
                                       "commit message"})
    if reason := fleet.environment_disabled(environment):
        return Selection(skipped={"*": reason})
    skipped: dict[str, str] = {}
    chosen: dict[str, KeySelection] = {}
    for key in fleet.keys.values():
        reason = _key_skipped(key, directives, fleet)
        if reason:
            skipped[key.name] = reason
            continue
        pools = [p for p in key.pools if _pool_wanted(p, directives, skipped)]
        targets = [t for t in key.targets if _target_wanted(t, key, pools, directives, skipped)]
        kept_pools = []
        for pool in pools:
            if not any(_region_in(loc, directives) for loc in pool.locations):
                skipped[pool.id] = "no location in the selected regions"
                continue
            kept_pools.append(pool)
        if not targets and not kept_pools:
            skipped[key.name] = "no target or pool left after the region filters"
            continue
        unbuilt_targets = {t.id: reason for t in targets
                           if (reason := not_built(t.platform, fleet, environment))}
        unbuilt_pools = {p.id: reason for p in kept_pools
                         if (reason := pool_not_built(key, p, fleet, environment))}
        skipped.update({f"{key.name} {target}": reason
                        for target, reason in unbuilt_targets.items()})
        skipped.update(unbuilt_pools)
        targets = [t for t in targets if t.id not in unbuilt_targets]
        base = key.image.get("base") or {}
        needs_disk = any(t.platform not in base for t in targets)
        chosen[key.name] = KeySelection(
            key.name, needs_disk, tuple(t.id for t in targets),
            tuple(p.id for p in kept_pools if p.id not in unbuilt_pools),
            unbuilt_targets, unbuilt_pools)
    return Selection(chosen, skipped)


def _key_skipped(key: ImageKey, directives: Directives, fleet: Fleet) -> str | None:
    inc, exc = directives.include, directives.exclude
    if inc.keys and key.name not in inc.keys:
        return "not in `include keys`"
    if key.name in exc.keys:
        return "in `exclude keys`"
    if inc.pools and not any(p.id in inc.pools for p in key.pools):
        return "feeds none of the pools in `include pools`"
    return None


def _pool_wanted(pool: Pool, directives: Directives, skipped: dict[str, str]) -> bool:
    inc, exc = directives.include, directives.exclude
    if inc.pools and pool.id not in inc.pools:
        skipped[pool.id] = "not in `include pools`"
        return False
    if pool.id in exc.pools:
        skipped[pool.id] = "in `exclude pools`"
        return False
    return True


def _region_in(region: str, directives: Directives) -> bool:
    inc, exc = directives.include, directives.exclude
    return (not inc.regions or region in inc.regions) and region not in exc.regions


def _target_wanted(target: Target, key: ImageKey, pools: list[Pool], directives: Directives,
                   skipped: dict[str, str]) -> bool:
    label = f"{key.name} {target.id}"
    if not _region_in(target.region, directives):
        skipped[label] = f"region {target.region} is filtered out"
        return False
    if directives.include.pools and not any(
            target in key.serving_targets(p) for p in pools):
        skipped[label] = "serves none of the pools in `include pools`"
        return False
    return True
