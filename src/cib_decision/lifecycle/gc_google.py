"""Garbage collection on Google: list the images of the config's Google projects that carry our
`cib-key` label, and delete those the plan deletes (adapter).

The projects are those of the config's Google targets (where builds capture their images) and
the environments' own (`google.project` in environments.yaml, where promotion copies them).
`list_images` reads every page of each project's images filtered on the label (a listing
that fails raises: the caller deletes nothing).

A Compute image is global to its project; what the plan calls its region is where it is
stored: its first `storageLocations` entry (`us-central1`, or a multi-region such as `us`),
`global` when it names none. The plan groups images per project (`gc.Image.account`) too, so
a project's newest `--keep` of a key stay whatever another project holds; `--region` keeps
only images stored there.

Labels are Google's spelling of cib's tags (`clouds.google.labels_of`); the plan reads them as
the tags they come from (`cib-key` -> `cib:key`, `name` -> `Name`), the build task id from the
image's description where its lower-case label matches (`google_purge.build_task`). Every
image has a creation time (`creationTimestamp`). A reference may name an image by its self
link, its `projects/<p>/global/images/<n>` path, its project-relative `global/images/<n>`,
or, for the newest available image of a family, by the family (`.../images/family/<f>`,
which boots it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from ..clouds.google import Google
from ..config import Fleet, normalise_region
from ..errors import CibError
from ..images.google_machine import image_link
from ..images.progress import Progress
from ..manifest import parse_time
from . import gc
from .google_purge import build_task
from .promote_google import image_path

CLOUD = "google"
OURS = "labels.cib-key:*"
GLOBAL = "global"
# Compute image statuses, as the plan sees them (anything else: failed).
STATES = {"READY": gc.AVAILABLE, "PENDING": gc.PENDING, "DELETING": gc.PENDING}
DELETE_TIMEOUT = 30 * 60.0


def projects(fleet: Fleet) -> list[str]:
    """The config's Google projects: its Google targets' and its environments' own."""
    found = {t.project for k in fleet.keys.values() for t in k.targets
             if t.platform == CLOUD and t.project}
    found.update(e.google_project for e in fleet.environments.values() if e.google_project)
    return sorted(found)


def tags_of(labels: dict[str, str]) -> dict[str, str]:
    """An image's labels under the names of the cib tags they come from (pure)."""
    names = {"name": "Name"}
    return {names.get(k, f"cib:{k[4:]}" if k.startswith("cib-") else k): v
            for k, v in labels.items()}


def location(image: dict[str, Any]) -> str:
    """Where an image is stored, as the plan's region (pure)."""
    stored = image.get("storageLocations") or ()
    return normalise_region(str(stored[0])) if stored else GLOBAL


def _time(text: Any) -> Any:
    try:
        return parse_time(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def family_heads(project: str, images: Iterable[dict[str, Any]]) -> dict[str, str]:
    """`{image name: family}` of the image each family of `images` boots (the newest READY
    one not deprecated), as `images.getFromFamily` picks it (pure)."""
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for image in images:
        if image.get("family") and image.get("status") == "READY" and (
                image.get("deprecated") or {}).get("state", "ACTIVE") == "ACTIVE":
            members[str(image["family"])].append(image)
    return {max(found, key=lambda i: (str(i.get("creationTimestamp", "")),
                                      str(i.get("name", ""))))["name"]: family
            for family, found in members.items()}


def image_of(project: str, image: dict[str, Any], family: str | None = None) -> gc.Image:
    """A Compute image as the plan sees it (`family`: the family whose newest it is)."""
    name = str(image["name"])
    tags = tags_of(dict(image.get("labels") or {}))
    task = build_task(image)
    if task:
        tags[gc.BUILD_TASK_TAG] = task
    aliases = [f"global/images/{name}"]
    if family:
        aliases += [f"projects/{project}/global/images/family/{family}",
                    f"global/images/family/{family}"]
    return gc.Image(CLOUD, location(image), image_link(project, name), name,
                    _time(image.get("creationTimestamp")), tuple(sorted(tags.items())),
                    STATES.get(str(image.get("status", "")), gc.FAILED), (), tuple(aliases),
                    project)


def list_images(google: Google, project_names: Iterable[str], regions: Iterable[str] = ()
                ) -> list[gc.Image]:
    """Every image labelled `cib-key` of `project_names` (stored in `regions`, when given)."""
    wanted = {normalise_region(r) for r in regions}
    found = []
    for project in project_names:
        listed = google.images(project, OURS)
        heads = family_heads(project, listed)
        found += [image for image in (image_of(project, i, heads.get(i["name"]))
                                      for i in listed)
                  if not wanted or image.region in wanted]
    return found


def delete_all(decisions: Iterable[gc.Decision], google: Google, log: Callable[[str], None],
               progress: Progress, interval: float = 15.0
               ) -> list[tuple[gc.Decision, CibError]]:
    """Delete the image of every decision, waiting for each operation; the failures, each
    with its error. An image already gone is fine."""
    failures = []
    for decision in decisions:
        image = decision.image
        project, name = image_path(image.id)
        what = f"the deletion of {name} in {project}"
        try:
            operation = google.delete_image(project, name)
            if operation is not None:
                progress.wait(what, lambda op=operation, w=what: google.operation_state(op, w),
                              done={"DONE"}, timeout=DELETE_TIMEOUT, interval=interval)
        except CibError as exc:
            log(f"could not delete {name} ({image.id}): {exc}")
            failures.append((decision, exc))
            continue
        log(f"{name} in {project} was already gone" if operation is None else
            f"deleted {name} in {project} (stored in {image.region})")
    return failures
