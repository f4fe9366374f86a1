"""Google copies for `cib promote`: a release's Google image made available to the target
environment's Google pools, never rebuilt (no instance is involved).

A Compute image is global to its project: every region of the project can boot it. So a
Google location needs a copy only when the target environment keeps its Google images in a
project of its own (`google.project` in environments.yaml, `Environment.google_project`) and
the release's image is in another one. The copy is an image insert in that project whose
`sourceImage` is the release image (same name, the source's labels, family and storage
locations, plus the identity labels), its operation waited on and the image waited on until
`READY`. A copy already there (same name and identity labels `cib-key`,
`cib-machine-digest`) is reused: a rerun inserts nothing. Where the environment names no
project, or the image is already in it, the release image itself serves the location: no call
is made.

After the promoted release is sealed, each copy made here is labelled `cib-release-sha256`
with its seal (the labels merged and written with the image's `labelFingerprint`); a copy that
already carries it is not written again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..clouds.google import Google, label_key, label_value
from ..errors import BuildError, CibError
from ..images.google_machine import identity_labels, image_link, reusable_image
from ..images.progress import Progress

COPY_TIMEOUT = 2 * 3600.0
OPERATION_TIMEOUT = 30 * 60.0
IMAGE_DONE, IMAGE_FAILED = {"READY"}, {"FAILED", "missing"}
_IMAGE_PATH = re.compile(r"(?:^|/)projects/(?P<project>[^/]+)/global/images/(?P<name>[^/]+)$")


def image_path(image_id: str, default_project: str | None = None) -> tuple[str, str]:
    """`(project, name)` of a Google image id: `projects/<p>/global/images/<n>`, its self link,
    or (in `default_project`) `global/images/<n>` or a bare name; CibError otherwise."""
    match = _IMAGE_PATH.search(image_id)
    if match:
        return match.group("project"), match.group("name")
    name = image_id.rsplit("/", 1)[-1]
    if default_project and re.fullmatch(r"(?:global/images/)?[a-z][-a-z0-9]*", image_id):
        return default_project, name
    raise CibError(f"{image_id!r} is not a Google image id (projects/<project>/global/images/"
                   "<name>)")


def copy_project(source_id: str, target_project: str | None, home: str | None) -> str:
    """The project whose image serves the target environment (pure): its own project when it
    names one, else the source image's (`home`: the target's project, for an id without
    one)."""
    return target_project or image_path(source_id, home)[0]


def _wait(google: Google, progress: Progress, project: str, name: str, operation: Any,
          what: str, interval: float) -> None:
    if operation is not None:
        progress.wait(what, lambda: google.operation_state(operation, what), done={"DONE"},
                      timeout=OPERATION_TIMEOUT, interval=interval)

    def status() -> str:
        found = google.image(project, name)
        return str(found.get("status")) if found else "missing"

    progress.wait(f"image {name} in {project} to become READY", status, done=IMAGE_DONE,
                  failed=IMAGE_FAILED, timeout=COPY_TIMEOUT, interval=interval)


def copy_image(google: Google, key: str, source_id: str, machine_digest: str, project: str,
               home: str | None, progress: Progress, interval: float) -> str:
    """The id of the image in `project` that is `source_id`: the source itself, a copy found
    from before, or one made now (waited on until READY)."""
    source_project, name = image_path(source_id, home)
    if source_project == project:
        return source_id
    identity = identity_labels(key, machine_digest)
    found = reusable_image(i for i in google.images_labelled(project, identity)
                           if i.get("name") == name)
    if found:
        progress.say(f"{project} already has {name} (a copy of {source_id})")
        if found.get("status") != "READY":
            _wait(google, progress, project, name, None, "", interval)
        return image_link(project, name)
    there = google.image(project, name)
    if there is not None:
        labels = there.get("labels") or {}
        if any(labels.get(k) != v for k, v in identity.items()):
            raise CibError(f"{project} has an image named {name} without the labels "
                           f"{identity}: it is not a copy of {source_id}; delete or rename it")
        state = (there.get("deprecated") or {}).get("state") or there.get("status")
        raise CibError(f"the copy of {source_id} in {project} is {state}: it cannot serve; "
                       "delete it and promote again")
    original = google.image(source_project, name)
    if original is None:
        raise CibError(f"release image {source_id} does not exist (any more): cannot copy it "
                       f"to {project}")
    body: dict[str, Any] = {
        "name": name, "sourceImage": image_link(source_project, name),
        "labels": {**(original.get("labels") or {}), **identity},
        "description": f"cib {name} (promoted copy of {image_link(source_project, name)})"}
    for carried in ("family", "storageLocations", "guestOsFeatures"):
        if original.get(carried):
            body[carried] = original[carried]
    operation = google.insert_image(project, body)
    progress.say(f"copying {source_id} to {project} as {name}")
    _wait(google, progress, project, name, operation, f"the copy of {name} into {project}",
          interval)
    return image_link(project, name)


def copy_images(copies: Iterable[Any], key: str, google: Google, progress: Progress,
                interval: float = 15.0) -> dict[tuple[str, str], str]:
    """Make each planned Google copy (`promote.Copy`, its `project` the target
    environment's): `{(entry target, region): image id}`. One image per source and project,
    whatever the number of regions it serves."""
    made: dict[tuple[str, str], str] = {}
    done: dict[tuple[str, str], str] = {}
    for copy in copies:
        home = copy.target.project
        project = copy_project(copy.source.id, copy.project, home)
        where = (copy.source.id, project)
        if where not in done:
            done[where] = copy_image(google, key, copy.source.id,
                                     copy.source.machine_digest, project, home, progress,
                                     interval)
        made[(copy.entry_target, copy.region)] = done[where]
    return made


def label_copies(image_ids: Iterable[str], labels: dict[str, str], google: Google,
                 progress: Progress, interval: float = 15.0) -> None:
    """Add cib's `labels` (tag names, mapped as Google labels) to each copy, waited on; not
    written where they are already there."""
    wanted = {label_key(k): label_value(v) for k, v in labels.items()}
    for image_id in dict.fromkeys(image_ids):
        project, name = image_path(image_id)
        image = google.image(project, name)
        if image is None:
            raise BuildError(f"copy {image_id} disappeared before it was labelled")
        current = dict(image.get("labels") or {})
        if all(current.get(k) == v for k, v in wanted.items()):
            continue
        what = f"the labels of {name} in {project}"
        operation = google.set_image_labels(project, name, {**current, **wanted},
                                            str(image.get("labelFingerprint") or ""))
        progress.wait(what, lambda op=operation, w=what: google.operation_state(op, w),
                      done={"DONE"}, timeout=OPERATION_TIMEOUT, interval=interval)

