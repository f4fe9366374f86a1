"""Garbage collection on Azure: list the managed images and Compute Gallery image versions of
the config's Azure resource groups, and delete those the plan deletes (adapter).

Images live in the resource group of the target that built them (`target.group`): managed
images directly, gallery image versions under the target's `gallery` and the key's image
definition. `list_images` reads every managed image and every version of every gallery image
of those groups located in the regions collected; a listing that fails raises (the caller
deletes nothing). Image definitions and galleries are never deleted: they hold no image
data. A managed image has no creation time in ARM (unless `systemData.createdAt` is given);
the caller fills it in from the image's build task (`cib:build-task-id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..clouds.azure import Azure
from ..config import Fleet, normalise_region
from ..errors import CibError
from ..manifest import parse_time
from . import gc

CLOUD = "azure"
# ARM provisioning states, as the plan sees them (anything else: failed).
STATES = {"succeeded": gc.AVAILABLE, "creating": gc.PENDING, "updating": gc.PENDING,
          "migrating": gc.PENDING, "deleting": gc.PENDING}


def groups(fleet: Fleet, regions: Iterable[str]) -> list[str]:
    """The resource groups of the config's Azure targets in `regions`."""
    wanted = {normalise_region(r) for r in regions}
    return sorted({t.group for k in fleet.keys.values() for t in k.targets
                   if t.platform == CLOUD and t.group and normalise_region(t.region) in wanted})


def _time(text: Any) -> Any:
    try:
        return parse_time(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def image_of(resource: dict[str, Any]) -> gc.Image:
    """A managed image or gallery image version (ARM JSON) as the plan sees it."""
    props = resource.get("properties") or {}
    created = (_time((resource.get("systemData") or {}).get("createdAt"))
               or _time((props.get("publishingProfile") or {}).get("publishedDate")))
    tags = resource.get("tags") or {}
    state = STATES.get(str(props.get("provisioningState", "")).lower(), gc.FAILED)
    return gc.Image(CLOUD, normalise_region(resource.get("location", "")), resource["id"],
                    tags.get("Name") or resource.get("name", ""), created,
                    tuple(sorted(tags.items())), state)


def list_images(azure: Azure, group_names: Iterable[str], regions: Iterable[str]
                ) -> list[gc.Image]:
    """Every managed image and gallery image version of `group_names` located in `regions`."""
    wanted = {normalise_region(r) for r in regions}
    found = []
    for group in group_names:
        resources = azure.list("image", group)
        for gallery in azure.list("gallery", group):
            for definition in azure.list("gallery-image", group, gallery["name"]):
                resources += azure.list("gallery-image-version", group, gallery["name"],
                                        definition["name"])
        found += [image_of(r) for r in resources
                  if normalise_region(r.get("location", "")) in wanted]
    return found


def delete_all(decisions: Iterable[gc.Decision], azure: Azure, log: Callable[[str], None]
               ) -> list[tuple[gc.Decision, CibError]]:
    """Delete the image of every decision (waiting for ARM each time); the failures, each
    with its error. An image already gone is fine."""
    failures = []
    for decision in decisions:
        image = decision.image
        try:
            gone = not azure.delete_id(image.id)
        except CibError as exc:
            log(f"could not delete {image.name} ({image.id}): {exc}")
            failures.append((decision, exc))
            continue
        log(f"{image.name} in {image.region} was already gone" if gone else
            f"deleted {image.name} in {image.region} ({image.id})")
    return failures
