"""Azure copies for `cib promote`: a release image made available in the regions the key's
pools lack, never rebuilt (no VM is involved).

- A **gallery image version** is replicated further: the missing regions are added to its
  `publishingProfile.targetRegions` (ARM's PATCH of the version, waited on). The version's id
  serves every region, so the copy is the version itself.
- A **managed image** cannot be copied between regions by ARM: an image captured from a VM
  exposes no snapshot (its `osDisk.managedDisk` names the builder's disk, deleted after the
  capture). Azure's documented way to use it in other regions is a Compute Gallery: the image
  is published as a version of the key's image definition in the gallery `cibpromoted` of its
  own resource group (gallery and definition created when missing), sourced from the image
  (`storageProfile.source.id`), replicated to the image's region and the missing ones, and
  tagged like the source image plus the identity tags (as AWS copies are).

Either way the version's replication status (`$expand=ReplicationStatus`) must say
`Completed` in every wanted region, else exit 3. A rerun finds the regions already there, or
the version published before (by its `Name` and identity tags), and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from ..clouds.azure import Azure, Operation, parse_id
from ..config import ImageKey, normalise_region
from ..errors import BuildError, CibError
from ..images.azure_machine import (
    ensure_gallery_image,
    image_definition,
    reusable_image,
    version_name,
)
from ..images.bootstrap import is_windows
from ..images.identity import identity_tags
from ..images.progress import Progress

PROMOTION_GALLERY = "cibpromoted"
REPLICATION_TIMEOUT = 4 * 3600.0
VERSION = "gallery-image-version"


def target_regions(version: dict[str, Any]) -> list[dict[str, Any]]:
    """A version's `publishingProfile.targetRegions`."""
    profile = (version.get("properties") or {}).get("publishingProfile") or {}
    return list(profile.get("targetRegions") or ())


def missing_regions(version: dict[str, Any], regions: Iterable[str]) -> list[str]:
    """Of `regions`, those the version is not replicated to (pure)."""
    have = {normalise_region(r.get("name", "")) for r in target_regions(version)}
    return [r for r in dict.fromkeys(normalise_region(r) for r in regions) if r not in have]


def replication_problems(version: dict[str, Any], regions: Iterable[str]) -> list[str]:
    """`region: state` for each of `regions` whose replica is not `Completed` in a version
    read with its replication status (pure)."""
    summary = {normalise_region(s.get("region", "")): s for s in
               ((version.get("properties") or {}).get("replicationStatus") or {}).get(
                   "summary") or ()}
    problems = []
    for region in regions:
        entry = summary.get(normalise_region(region)) or {}
        state = entry.get("state") or "not replicated"
        if state != "Completed":
            problems.append(f"{region}: {state}" + (f" ({entry['details']})"
                                                   if entry.get("details") else ""))
    return problems


def _step(progress: Progress, what: str, operation: Operation, interval: float) -> None:
    progress.wait(what, operation.state, done={"Succeeded"}, failed={"Failed", "Canceled"},
                  timeout=REPLICATION_TIMEOUT, interval=interval)
    operation.result()


def replicate(azure: Azure, version_id: str, regions: list[str], label: str,
              progress: Progress, interval: float) -> None:
    """Add the regions the version lacks to its target regions, wait, and check that it is
    replicated to every one of `regions`."""
    _, group, names = parse_id(version_id)
    version = azure.get(VERSION, group, *names)
    if version is None:
        raise CibError(f"release image {version_id} does not exist (any more): cannot "
                       f"replicate it to {', '.join(regions)}")
    state = version["properties"].get("provisioningState")
    if state != "Succeeded":
        progress.wait(f"{label} to be created", lambda: (azure.get(VERSION, group, *names) or {
            "properties": {"provisioningState": "missing"}})["properties"]["provisioningState"],
                      done={"Succeeded"}, failed={"Failed", "Canceled", "missing"},
                      timeout=REPLICATION_TIMEOUT, interval=interval)
    missing = missing_regions(version, regions)
    if missing:
        progress.say(f"adding {', '.join(missing)} to the regions of {label}")
        regions_body = [*target_regions(version),
                        *({"name": r, "regionalReplicaCount": 1} for r in missing)]
        operation = azure.begin_update(VERSION, group, *names, body={
            "properties": {"publishingProfile": {"targetRegions": regions_body}}})
        _step(progress, f"{label} to replicate to {', '.join(missing)}", operation, interval)
    else:
        progress.say(f"{label} is already replicated to {', '.join(regions)}")
    seen = azure.get(VERSION, group, *names, expand="ReplicationStatus") or {}
    problems = replication_problems(seen, regions)
    if problems:
        raise BuildError(f"{label} did not replicate: {'; '.join(problems)}")
    progress.say(f"{label} is replicated to {', '.join(regions)}")


def publish(azure: Azure, key: ImageKey, image_id: str, name: str, machine_digest: str,
            regions: list[str], progress: Progress, interval: float,
            now: Callable[[], datetime]) -> str:
    """The gallery version of a managed image replicated to `regions` (published now, or
    found from before); its id."""
    _, group, names = parse_id(image_id)
    image = azure.get("image", group, *names)
    if image is None:
        raise CibError(f"release image {image_id} does not exist (any more): cannot copy it "
                       f"to {', '.join(regions)}")
    home = normalise_region(image["location"])
    definition = image_definition(key.name)
    identity = identity_tags(key.name, machine_digest)
    found = reusable_image(azure.tagged(VERSION, group, {**identity, "Name": name},
                                        PROMOTION_GALLERY, definition))
    if found:
        label = f"{PROMOTION_GALLERY}/{definition} version {found['name']} ({name})"
        progress.say(f"image {name} was published as {label} before")
        replicate(azure, found["id"], [home, *regions], label, progress, interval)
        return str(found["id"])
    ensure_gallery_image(azure, group, home, PROMOTION_GALLERY, definition,
                         os_type="Windows" if is_windows(key.image) else "Linux",
                         generation=str(image["properties"].get("hyperVGeneration") or "V1"),
                         say=progress.say)
    version = version_name(now())
    label = f"{PROMOTION_GALLERY}/{definition} version {version} ({name})"
    everywhere = list(dict.fromkeys([home, *(normalise_region(r) for r in regions)]))
    own = dict(image.get("tags") or {})
    operation = azure.begin_create(VERSION, group, PROMOTION_GALLERY, definition, version, body={
        "location": home, "tags": {**own, **identity}, "properties": {
            "publishingProfile": {"targetRegions": [{"name": r, "regionalReplicaCount": 1}
                                                    for r in everywhere]},
            "storageProfile": {"source": {"id": image_id}}}})
    progress.say(f"publishing image {name} ({image_id}) as {label}, replicated to "
                 f"{', '.join(everywhere)}")
    _step(progress, f"{label} to replicate to {len(everywhere)} regions", operation, interval)
    version_id = azure.id_of(VERSION, group, PROMOTION_GALLERY, definition, version)
    replicate(azure, version_id, everywhere, label, progress, interval)
    return version_id


def copy_images(copies: Iterable[Any], key: ImageKey, azure: Azure, progress: Progress,
                interval: float = 15.0, now: Callable[[], datetime] = lambda: datetime.now(UTC)
                ) -> dict[tuple[str, str], str]:
    """Make each planned Azure copy (`promote.Copy`): `{(entry target, region): image id}`."""
    by_source: dict[str, list[Any]] = {}
    for copy in copies:
        by_source.setdefault(copy.source.id, []).append(copy)
    made: dict[tuple[str, str], str] = {}
    for source_id, planned in by_source.items():
        source, regions = planned[0].source, [c.region for c in planned]
        kind, _, names = parse_id(source_id)
        if kind == VERSION:
            label = f"{names[0]}/{names[1]} version {names[2]} ({source.name})"
            replicate(azure, source_id, regions, label, progress, interval)
            image_id = source_id
        elif kind == "image":
            image_id = publish(azure, key, source_id, source.name, source.machine_digest,
                               regions, progress, interval, now)
        else:
            raise CibError(f"release image {source_id} is a {kind}: only managed images and "
                           "gallery image versions are promoted")
        for copy in planned:
            made[(copy.entry_target, copy.region)] = image_id
    return made


def tag_copies(copies: Iterable[str], tags: dict[str, str], azure: Azure) -> None:
    """Add `tags` to each published version (once, and not when they are already there)."""
    for version_id in dict.fromkeys(copies):
        kind, group, names = parse_id(version_id)
        current = (azure.get(kind, group, *names) or {}).get("tags") or {}
        if any(current.get(k) != v for k, v in tags.items()):
            azure.set_tags(kind, group, *names, tags=tags)
