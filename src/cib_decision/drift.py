"""Where the config, worker-manager, the release pointers and the clouds disagree (pure).

`cib drift` (cli/drift.py) reads them and hands each pool's view here:

- `not-deployed`: a pool of the config that worker-manager does not have. Fix: a push with
  `pool-deploy` and `include pools: <pool>`.
- `not-in-config`: a pool in one of the config's pool domains that no key of the config has
  (a key or pool removed while its pool still runs). Fix: delete it in worker-manager, or put
  it back in the config.
- `no-release`: a pool worker-manager has that no release pointer of the environment names
  (deployed by hand, or before cib recorded deploys). Fix: the same `pool-deploy` push.
- `hand-edited`: the pool's definition is not what its current release renders (edited in the
  UI or by hand). Fix: the same push, or `cib rollback --pool <pool> --to <sha256>`.
- `unreleased-image`: a launch config runs an image its current release does not name. Fix:
  the same push.
- `unbuilt-region`: a launch config runs an image of an earlier release in a region where its
  current release has no image (that region's build failed in the push that made the release,
  and the deploy kept the image the pool ran: `pools.failed_build_regions`). A deploy cannot
  fix it. Fix: mend what failed the build, then `include keys: <key>` (a failed build is never
  indexed, so only it runs again).
- `behind-key`: the pool runs an older release than its key's current one in the
  environment. Fix: the same push.

What the clouds have (drift_clouds.py reads it):

- `image-gone`: a launch config runs an image its cloud no longer has (gc deleted it, or a
  hand): new workers of that region cannot start. Fix: when the pool's release names the image,
  rebuild it (`rebuild`: `overwrite-machine-image` and `include keys: <key>`); otherwise the
  `pool-deploy` push puts the release's image back.
- `no-image`: a location of the pool (in the config) that no launch config serves. Fix: the
  `pool-deploy` push when the key's current release has an image there, else the rebuild.
- `release-image-gone`: the key's current release in the environment names an image for a
  region whose cloud no longer has it; the next deploy from that release would run it. Fix: the
  rebuild, or where the key reaches the environment by promotion, `cib promote` again.

A cloud `drift_clouds.READERS` has no reader for is not asked: nothing of it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import normalise_region
from .lifecycle.gc import normalise_id
from .manifest import Release
from .pools import DEFINITION_FIELDS, NULL_PROVIDER, Definition, comparable, image_of


@dataclass(frozen=True)
class Drift:
    """One difference: its kind, the pool or key it is about, what differs and the fix."""

    kind: str
    subject: str
    detail: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail,
                "fix": self.fix}


def redeploy(pool_id: str) -> str:
    """The commit message lines that deploy a pool again from its key's current release."""
    return f"push a commit whose message says `pool-deploy` and `include pools: {pool_id}`"


def undeployed(pool_id: str) -> Drift:
    return Drift("not-deployed", pool_id, "in the config, not in worker-manager",
                 redeploy(pool_id))


def stray(pool_id: str) -> Drift:
    return Drift("not-in-config", pool_id,
                 "in worker-manager, in a pool domain of the config, but no key has it",
                 "delete it in worker-manager (its workers go), or put its key back in the "
                 "config")


def unrecorded(pool_id: str) -> Drift:
    return Drift("no-release", pool_id, "deployed, but no release pointer names it (deployed "
                 "by hand, or before deploys were recorded)", redeploy(pool_id))


def changed_fields(expected: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Which caller-set fields of a pool differ (`config.<field>` within its config)."""
    changed = []
    for name in DEFINITION_FIELDS:
        if name == "config" and isinstance(live.get(name), dict):
            ours, theirs = expected.get(name) or {}, live[name]
            changed += [f"config.{k}" for k in sorted(set(ours) | set(theirs))
                        if ours.get(k) != theirs.get(k)]
        elif expected.get(name) != live.get(name):
            changed.append(name)
    return changed


def build_again(key: str) -> str:
    """The commit message line that runs a key's failed builds again (and only those)."""
    return (f"mend what failed the build, then push a commit whose message says "
            f"`include keys: {key}` (failed builds are not indexed: only they run again)")


def pool_drift(pool_id: str, expected: Definition, live: dict[str, Any],
               released: set[str], release: str, key_release: str | None,
               key: str = "", released_regions: frozenset[str] | None = None) -> list[Drift]:
    """The drift of one deployed pool: `expected` is what its current release (`release`,
    a sha256; its image ids `released`, in `released_regions`) renders over `live`, the pool
    as worker-manager has it; `key_release` is the sha256 of its key's current release (None:
    no pointer)."""
    found = []
    body = comparable(live) or {}
    changed = changed_fields(expected.body, body)
    if changed:
        found.append(Drift("hand-edited", pool_id,
                           f"differs from what release {release[:12]} renders in "
                           f"{', '.join(changed)}",
                           redeploy(pool_id) + f", or `cib rollback --pool {pool_id} --to "
                           f"{release}`"))
    if live.get("providerId") != NULL_PROVIDER:
        for launch_config in (live.get("config") or {}).get("launchConfigs") or ():
            image = image_of(expected.provider_type, launch_config)
            if image is None or image.id in released:
                continue
            if released_regions is not None and \
                    normalise_region(image.region) not in released_regions:
                found.append(Drift("unbuilt-region", pool_id,
                                   f"{image.region} keeps {image.id} of an earlier release: "
                                   f"release {release[:12]} has no image there (its build "
                                   "failed, or was left out of that push)",
                                   build_again(key or pool_id)))
            else:
                found.append(Drift("unreleased-image", pool_id,
                                   f"{image.region} runs {image.id}, which release "
                                   f"{release[:12]} does not name", redeploy(pool_id)))
    if key_release is not None and key_release != release:
        found.append(Drift("behind-key", pool_id,
                           f"runs release {release[:12]}; its key's current release is "
                           f"{key_release[:12]}", redeploy(pool_id)))
    return found


def rebuild(key: str) -> str:
    """The commit message lines that build the key's images again (new ids, same digests),
    tag a release and deploy its pools from it."""
    return (f"push a commit whose message says `overwrite-machine-image` and "
            f"`include keys: {key}`")


@dataclass(frozen=True)
class DeployedPool:
    """What the clouds are asked about one deployed pool: the images its launch configs run
    (`running`, by region), the ids its current release names (normalised,
    `gc.normalise_id`), the regions its key's current release has images for, and its
    config's locations that no launch config serves."""

    pool_id: str
    key: str
    platform: str
    running: tuple[tuple[str, str], ...]
    released: frozenset[str]
    key_release_regions: frozenset[str]
    unserved: tuple[str, ...]


def pool_cloud_drift(pool: DeployedPool, existing: dict[str, set[str]]) -> list[Drift]:
    """The drift of one deployed pool against its cloud (`existing`: per platform read, the
    normalised ids that exist; a platform not read reports nothing gone)."""
    found = []
    have = existing.get(pool.platform)
    for region, image_id in pool.running:
        wanted = normalise_id(image_id)
        if have is None or wanted in have:
            continue
        named = wanted in pool.released
        found.append(Drift(
            "image-gone", pool.pool_id,
            f"{region} runs {image_id}, which {pool.platform} no longer has: no new worker "
            "starts there",
            rebuild(pool.key) if named else redeploy(pool.pool_id)))
    for region in pool.unserved:
        found.append(Drift(
            "no-image", pool.pool_id, f"{region} is a location of the pool in the config, "
            "but no launch config runs an image there",
            redeploy(pool.pool_id) if region in pool.key_release_regions
            else rebuild(pool.key)))
    return found


def release_cloud_drift(key: str, environment: str, release: Release,
                        existing: dict[str, set[str]]) -> list[Drift]:
    """The images of `key`'s current release in `environment` its clouds no longer have."""
    found = []
    for image in release.images:
        have = existing.get(image.platform)
        if have is None or normalise_id(image.id) in have:
            continue
        found.append(Drift(
            "release-image-gone", key,
            f"release {release.sha256[:12]} (current in {environment}) names {image.id} in "
            f"{image.platform} {image.region}, which is gone: a deploy from it would run it",
            f"{rebuild(key)}; or, where {key} reaches {environment} by promotion, "
            f"`cib promote --key {key} --from <where it was verified> --to {environment}`"))
    return found
