"""Garbage collection on AWS: list this account's AMIs per region, and delete those the plan
deletes (deregister the AMI, then delete its snapshots) (adapter).

`list_images` reads every image the account owns (`describe_images`, every page) with its
tags, state and snapshots; a region that cannot be listed raises, and the caller deletes
nothing. Deletion goes on past a failure and reports every failure at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..clouds.aws import EC2, snapshots_of, tags_of
from ..config import Fleet
from ..errors import CibError
from ..manifest import parse_time
from . import gc

CLOUD = "amazon"
# EC2 image states, as the plan sees them.
STATES = {"available": gc.AVAILABLE, "pending": gc.PENDING, "transient": gc.PENDING}
GONE = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound")


def regions(fleet: Fleet) -> list[str]:
    """Every region of the fleet's AWS targets and of their `copies`."""
    return gc.target_regions(fleet, CLOUD)


def image_of(region: str, described: dict[str, Any]) -> gc.Image:
    """A described AMI as the plan sees it."""
    created = described.get("CreationDate")
    try:
        when = parse_time(created) if created else None
    except ValueError:
        when = None
    return gc.Image(CLOUD, region, described["ImageId"], described.get("Name", ""), when,
                    tuple(sorted(tags_of(described).items())),
                    STATES.get(described.get("State", ""), gc.FAILED),
                    tuple(snapshots_of(described)))


def list_images(ec2: EC2) -> list[gc.Image]:
    """Every AMI this account owns in `ec2`'s region."""
    return [image_of(ec2.region, i) for i in ec2.listing(
        "describe_images", "Images", f"listing the images of this account in {ec2.region}",
        Owners=["self"])]


def delete(decision: gc.Decision, ec2: EC2, log: Callable[[str], None]) -> None:
    """Deregister the decision's AMI, then delete the snapshots that go with it. An image or
    snapshot already gone is fine; other refusals raise (cib's errors)."""
    image = decision.image
    if not ec2.deregister_image(image.id):
        log(f"{image.id} in {image.region} was already deregistered")
    for snapshot in decision.snapshots:
        ec2.delete_snapshot(snapshot)
    log(f"deleted {image.id} {image.name} in {image.region}"
        + (f" and its snapshot{'s' if len(decision.snapshots) > 1 else ''} "
           f"{', '.join(decision.snapshots)}" if decision.snapshots else ""))


def delete_all(decisions: Iterable[gc.Decision], ec2_for: Callable[[str], EC2],
               log: Callable[[str], None]) -> list[tuple[gc.Decision, CibError]]:
    """Delete every image of `decisions`; the failures, each with its error."""
    failures = []
    for decision in decisions:
        try:
            delete(decision, ec2_for(decision.image.region), log)
        except CibError as exc:
            log(f"could not delete {decision.image.id} in {decision.image.region}: {exc}")
            failures.append((decision, exc))
    return failures
