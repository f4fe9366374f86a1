"""`cib promote --key K --from staging --to production`: release in one environment the
images another environment built and verified, without building anything (orchestration).

1. **read** the source environment's pointer to the key's current release
   (`pointers.release_path`) and its record, anonymously from the source deployment, and
   verify it (seal and key);
2. **plan copies**: every location of the key's pools whose target has no image in the release
   (a region filtered out of the staging build, or whose build failed) gets a copy of a
   release image of the same platform and the same machine digest as the config gives that
   target (equal digests: the copy is what a build would make). A location with no such image
   is named and keeps the image it runs. A Google image (global to its project) is copied
   when the target environment keeps its Google images in a project of its own
   (`Environment.google_project`) and the release's image is in another one, the copy taking
   the place of that image in the promoted release;
3. **copy**, reusing a copy already there (same name and identity tags: a rerun copies
   nothing), and wait until each copy is available: AWS with `copy_image`, Azure by
   replicating a gallery version to the region or publishing a managed image as one
   (`promote_azure`), Google by an image insert from the source image into the
   environment's project (`promote_google`);
4. **seal** the promoted release: the same digests, config commit and `created`, the release's
   images and the copies; with no copy it is the source release itself (same sha256);
5. **record** it as `public/release.json` of this task, tag the new copies with its seal,
   **deploy** the key's pools in the target environment from it (`pools.apply`), append each
   pool's history and point the key's release at this task.

Nothing here launches a builder. A rerun finds the copies, seals the same record (the same
sha256), writes no pool and no pointer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import manifest, pools
from ..clouds.aws import EC2, tags_of
from ..config import Environment, Fleet, ImageKey, Target
from ..digests import KeyDigests
from ..errors import CibError
from ..images.aws_machine import IMAGE_DONE, IMAGE_FAILED, identity_tags, reusable_image
from ..images.progress import Progress
from ..manifest import Release, ReleaseImage
from ..selection import deployable_pools, pool_not_built
from ..tc import Index, Queue, WorkerManager
from ..tcschemas import SchemaStore
from . import pointers, promote_azure, promote_google

COPY_TIMEOUT = 2 * 3600.0
RELEASE_TAG = "cib:release-sha256"
COPIED = ("amazon", "azure", "google")  # the platforms whose images a promotion copies


@dataclass(frozen=True)
class Copy:
    """One image a promotion copies: from `source` into `region`, for `target`; a Google
    image into `project` (the target environment's; None: the source's own serves)."""

    source: ReleaseImage
    region: str
    target: Target
    project: str | None = None

    @property
    def entry_target(self) -> str:
        """The release entry's target: the target's own id in its region, else the copy's
        `<platform>/<region>` (as `pools.image_for` looks them up)."""
        own = self.target.region == self.region
        return self.target.id if own else f"{self.source.platform}/{self.region}"


@dataclass
class Plan:
    """What a promotion will copy, and the locations it cannot serve."""

    copies: list[Copy] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Promotion:
    """What a promotion did."""

    source: Release
    promoted: Release
    copies: dict[str, str]
    outcomes: list[pools.Outcome]


# --- pure decisions ---------------------------------------------------------------------------


def plan_copies(key: ImageKey, digests: KeyDigests, release: Release,
                fleet: Fleet | None = None, environment: str | None = None) -> Plan:
    """The copies the key's pools need from `release` (step 2): of the pools the fleet deploys
    in `environment` (`selection.deployable_pools`). A Google location whose image is in
    another project than the environment's own (`Environment.google_project`) gets a copy of
    it into that project."""
    plan, seen = Plan(), set()
    env = fleet.environments.get(environment) if fleet is not None and environment else None
    project = env.google_project if env is not None else None
    for pool in deployable_pools(key, fleet, environment):
        for region in sorted(set(pool.locations)):
            target = pools.pool_target(key, pool, region)
            if target is None or (target.id, region) in seen:
                continue
            seen.add((target.id, region))
            google = project if target.platform == "google" else None
            served = pools.image_for(target, region, release.images)
            if served is not None:
                if google and promote_google.image_path(
                        served.id, target.project)[0] != google:
                    plan.copies.append(Copy(served, region, target, google))
                continue
            wanted = digests.machines.get(target.id) if digests.disk == release.disk_digest \
                else None
            source = next((i for i in release.images if i.platform == target.platform
                           and i.machine_digest == wanted), None)
            if source is None or target.platform not in COPIED:
                why = ("the release has no image of its machine digest" if source is None
                       else f"copying {target.platform} images is not supported yet")
                plan.unserved.append(f"{pool.id} {target.platform}/{region}: {why}")
                continue
            plan.copies.append(Copy(source, region, target, google))
    return plan


def promoted_release(release: Release, copies: dict[tuple[str, str], str],
                     plan: Plan) -> Release:
    """The release extended with the copies (`{(entry target, region): image id}`), sealed;
    the release itself when there are none. A copy takes the place of the release's entry of
    its target and region (a Google copy into the environment's project replaces the image
    it copies: that one does not serve the environment); a Google copy keeps its source's
    validation and smoke tests (it is the same image)."""
    if not copies:
        return release
    added = [replace(c.source, region=c.region, target=c.entry_target,
                     id=copies[(c.entry_target, c.region)]) if c.source.platform == "google"
             else ReleaseImage(c.source.platform, c.region, c.entry_target,
                               copies[(c.entry_target, c.region)], c.source.name,
                               c.source.machine_digest, c.source.build_task_id)
             for c in plan.copies]
    taken = {(i.target, i.region) for i in added}
    return manifest.release_record(
        release.key, disk_digest=release.disk_digest, disk_sha256=release.disk_sha256,
        config_commit=release.config_commit, created=manifest.parse_time(release.created),
        images=[*(i for i in release.images if (i.target, i.region) not in taken), *added])


# --- I/O --------------------------------------------------------------------------------------


def read_source(index: Index, queue: Queue, environment: str, key: str,
                progress: Progress) -> tuple[pointers.Entry, Release]:
    """The source environment's current release of `key` and its verified record."""
    path = pointers.release_path(environment, key)
    entry = pointers.find(index, path)
    if entry is None:
        raise CibError(f"{environment} has no release of {key} ({path} is not in its index): "
                       f"deploy one there first")
    release = pointers.read_release(queue, entry.release)
    progress.say(f"{environment} runs release {release.sha256} of {key} (task "
                 f"{entry.release.task_id}, {entry.action} {entry.recorded}): "
                 f"{len(release.images)} images, config {release.config_commit[:12]}; it "
                 "verifies")
    return entry, release


def copy_images(plan: Plan, key: str, ec2_for: Callable[[str], EC2], progress: Progress,
                interval: float = 15.0) -> dict[tuple[str, str], str]:
    """Copy each planned image (reusing a copy already in its region) and wait for all."""
    copies: dict[tuple[str, str], str] = {}
    for copy in plan.copies:
        source, there = copy.source, ec2_for(copy.region)
        identity = identity_tags(key, source.machine_digest)
        found = reusable_image(i for i in there.images_tagged(identity)
                               if i.get("Name") == source.name)
        if found:
            image_id = found["ImageId"]
            progress.say(f"{copy.region} already has {source.name} as {image_id}")
        else:
            original = ec2_for(source.region).image(source.id)
            if original is None:
                raise CibError(f"release image {source.id} is not in {source.region}: cannot "
                               f"copy it to {copy.region}")
            image_id = there.copy_image(source.id, source.region, source.name,
                                        f"cib {source.name} (promoted copy of {source.id} "
                                        f"from {source.region})")
            own = {k: v for k, v in tags_of(original).items() if not k.startswith("aws:")}
            there.tag([image_id], {**own, **identity})
            progress.say(f"copying {source.id} {source.name} from {source.region} to "
                         f"{copy.region}: {image_id}")
        copies[(copy.entry_target, copy.region)] = image_id
    for copy in plan.copies:
        image_id, there = copies[(copy.entry_target, copy.region)], ec2_for(copy.region)
        progress.wait(f"image {image_id} in {copy.region} to become available",
                      lambda there=there, image_id=image_id: there.image_state(image_id),
                      done=IMAGE_DONE, failed=IMAGE_FAILED, timeout=COPY_TIMEOUT,
                      interval=interval)
    return copies


def tag_copies(copies: dict[tuple[str, str], str], release: Release,
               ec2_for: Callable[[str], EC2]) -> None:
    """Tag each AWS copy (and its snapshots) with the promoted release's seal."""
    for (_, region), image_id in copies.items():
        ec2_for(region).tag_image(image_id, {RELEASE_TAG: release.sha256})


def copy_all(plan: Plan, image_key: ImageKey, ec2_for: Callable[[str], EC2],
             azure: Callable[[], Any], google: Callable[[], Any], progress: Progress,
             interval: float) -> dict[str, dict[tuple[str, str], str]]:
    """The copies of the plan per platform (`{(entry target, region): image id}`); a cloud's
    adapter is asked for only when it has copies to make."""
    on = {p: [c for c in plan.copies if c.target.platform == p] for p in COPIED}
    return {
        "amazon": copy_images(Plan(on["amazon"]), image_key.name, ec2_for, progress, interval),
        "azure": promote_azure.copy_images(on["azure"], image_key, azure(), progress,
                                           interval) if on["azure"] else {},
        "google": promote_google.copy_images(on["google"], image_key.name, google(),
                                             progress, interval) if on["google"] else {}}


def _azure() -> Any:
    from ..clouds.azure import Azure

    return Azure.from_environment()


def _google() -> Any:
    from ..clouds.google import Google

    return Google.from_environment()


def promote(*, fleet: Fleet, key: str, source: Environment, target: Environment,
            source_index: Index, source_queue: Queue, index: Index, wm: WorkerManager,
            store: SchemaStore,
            ec2_for: Callable[[str], EC2], task_id: str | None, artifacts: Path,
            progress: Progress, digests: KeyDigests, dry_run: bool = False,
            interval: float = 15.0, azure: Callable[[], Any] = _azure,
            google: Callable[[], Any] = _google,
            check_source: Callable[[Release], None] | None = None,
            sign: Callable[[], Callable[[Release], Release] | None] | None = None
            ) -> Promotion:
    """Promote `key`'s current release from `source` to `target` (steps in the module
    docstring). `task_id` is the task whose `public/release.json` the pointers will name;
    `azure` and `google` give those clouds' adapters, asked for only when there are copies
    to make there;
    `check_source` checks the source release's signature where `source` signs; `sign` gives
    the signer of `target` (None where it does not sign), asked for only when not a dry run."""
    if source.name == target.name:
        raise CibError(f"--from and --to are both {source.name}")
    azure, google = functools.cache(azure), functools.cache(google)
    if key not in fleet.keys:
        raise CibError(f"no image key {key!r} in the config")
    image_key = fleet.keys[key]
    if not dry_run and not task_id:
        raise CibError("promote records the promoted release as an artifact of its task: "
                       "run it in a task (TASK_ID; the `promote` action), or with --dry-run")
    _, release = read_source(source_index, source_queue, source.name, key, progress)
    if check_source is not None:
        check_source(release)
    for pool in image_key.pools:
        if (reason := pool_not_built(image_key, pool, fleet, target.name)) is not None:
            progress.say(f"{pool.id}: not deployed ({reason}); it keeps what it runs")
    plan = plan_copies(image_key, digests, release, fleet, target.name)
    for line in plan.unserved:
        progress.say(f"cannot serve {line}; that location keeps the image it runs")
    for copy in plan.copies:
        progress.say(f"{'would copy' if dry_run else 'copy'} {copy.source.id} "
                     f"({copy.source.target}) to {copy.region}"
                     + (f" (project {copy.project})" if copy.project else "")
                     + f" for {copy.target.id}")
    if dry_run:
        for pool in deployable_pools(image_key, fleet, target.name):
            pools.apply(wm, pools.PoolRequest(image_key, pool, target), release.images, store,
                        progress.say, dry_run=True)
        return Promotion(release, release, {}, [])
    made = copy_all(plan, image_key, ec2_for, azure, google, progress, interval)
    aws_copies, azure_copies = made["amazon"], made["azure"]
    copied = {**aws_copies, **azure_copies, **made["google"]}
    promoted = promoted_release(release, copied, plan)
    signer = sign() if sign is not None else None
    if signer is not None:  # the target's key: its deploys check against its public key
        promoted = signer(promoted)
    tag_copies(aws_copies, promoted, ec2_for)
    sources = {c.source.id for c in plan.copies}
    published = [i for i in azure_copies.values() if i not in sources]  # of managed images
    if published:
        promote_azure.tag_copies(published, {RELEASE_TAG: promoted.sha256}, azure())
    google_copies = [i for i in made["google"].values() if i not in sources]
    if google_copies:
        promote_google.label_copies(google_copies, {RELEASE_TAG: promoted.sha256}, google(),
                                    progress, interval)
    progress.say(f"promoted release {promoted.sha256}" + (
        f" (release {release.sha256[:12]} and {len(copied)} copies)" if copied
        else " (the release itself: every location has its image)"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "release.json").write_text(manifest.dumps(promoted), encoding="utf-8")
    progress.say(f"wrote {manifest.RELEASE_ARTIFACT}")
    ref = pointers.ReleaseRef(key, promoted.sha256, task_id or "")
    outcomes = []
    for pool in deployable_pools(image_key, fleet, target.name):
        request = pools.PoolRequest(image_key, pool, target)
        _, outcome = pools.apply(wm, request, promoted.images, store, progress.say)
        outcomes.append(outcome)
        pointers.record_pool(index, target.name, pool.id, ref, "promote", progress.say)
    pointers.set_release(index, target.name, ref, "promote", progress.say)
    return Promotion(release, promoted, {region: image for (_, region), image in
                                         copied.items()}, outcomes)

