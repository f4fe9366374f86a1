"""`cib image machine --key K --target google/<region>`: a Compute Engine image for one Google
target, in the target's `project`.

Steps, each one line (or one line per state change) in the task log:

1. **reuse**: an image of the project labelled with this key and machine digest (Google's
   labels: `cib-key`, `cib-machine-digest`, see "Google labels" in docs/images.md) is reused as
   it is (`--overwrite` builds a new one under the next free name, `<key>-r<N>-<digest>`);
2. **base**: the builder boots from `image.base.google`: the newest image of `family` in
   `project` (Google's getFromFamily: the newest not deprecated), or the image `image` there;
   keys with a disk image instead import it: the disk-image task's raw disk (in S3, or already
   in Cloud Storage) is written as Google's import format (a gzipped tar holding `disk.raw`)
   to the target's `bucket` and created as an image from that `rawDisk.source`; a disk image
   imported before (labelled with its SHA-256) is reused;
3. **launch** a builder instance in the target's `zone` (machine type `machine.type`, boot
   disk from `disk`), its `startup-script` metadata item the target's bootstrap (a bash script;
   `windows-startup-script-ps1` on Windows) and the target's `tag`s as metadata attributes
   (which the bootstrap reads from the metadata server), labelled as a builder;
4. **wait** until the bootstrap powers the instance off (`TERMINATED`, at most
   `--bootstrap-timeout`; on time-out the build fails with exit 3 and everything is cleaned
   up), publish its serial port output as `public/builder.log` and match the key's validation
   rules against the script's lines (the guest agent's prefix taken off): a missed rule fails
   the build (exit 3) before anything is captured;
5. **capture** the boot disk as an image named `naming.image_name(key, machine digest)` in the
   key's image family (the key's name; pull-request builds in none), its storage location the
   key's Google regions (one region, or the multi-region holding them all), labelled with the
   key, both digests, the config commit, the build task and the environment, and wait until it
   is `READY`. Compute images are global: a target's `copies` need no copy;
6. **clean up** the instance and its disks, on success and on failure, unless
   `--keep-resources` (`disable-cleanup`) asks to keep them;
7. **record** the image (`projects/<project>/global/images/<name>`) in
   `public/machine-image.json`.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import manifest
from ..clouds.google import Google, label_value, labels_of
from ..config import Target, normalise_region
from ..errors import CibError
from ..naming import _slug
from .bootstrap import bash_script, is_windows, powershell
from .context import BuildContext
from .identity import (
    TAG_PREFIX,
    builder_resources,
    builder_tags,
    identity_tags,
    image_tags,
    next_name,
    revision,
)
from .validation import CollectedLog, check_builder

IMAGE_DONE, IMAGE_FAILED = {"READY"}, {"FAILED", "DELETING", "missing"}
OPERATION_DONE = {"DONE"}
# what Google's guest agent writes before each line of a startup script on the serial port
_AGENT_PREFIX = re.compile(r"^.*?google_metadata_script_runner(?:\[\d+\])?:\s*"
                           r"(?:startup-script|windows-startup-script-ps1):\s?", re.MULTILINE)
# Google's multi-regions by the first word of a region's name
MULTI_REGIONS = {"us": "us", "northamerica": "us", "southamerica": "us", "europe": "eu",
                 "asia": "asia", "australia": "asia", "me": "asia"}


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the waits, in seconds, and the polling interval."""

    bootstrap: float = 3 * 3600
    image: float = 2 * 3600
    operation: float = 30 * 60
    interval: float = 15.0


# --- pure decisions --------------------------------------------------------------------------


def identity_labels(key: str, machine_digest: str) -> dict[str, str]:
    """The labels that identify an image of `key` for one machine digest."""
    return labels_of(identity_tags(key, machine_digest))


def reusable_image(images: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Of the images labelled with this digest, the newest READY or PENDING one."""
    usable = [i for i in images if i.get("status") in ("READY", "PENDING")
              and (i.get("deprecated") or {}).get("state", "ACTIVE") == "ACTIVE"]
    return max(usable, key=lambda i: (i.get("creationTimestamp", ""),
                                      revision(i.get("name", "")), i.get("name", "")),
               default=None)


def image_family(key: str, pull_request: int | None) -> str | None:
    """The image family of a key's images (its name as Google spells names); pull-request
    images join none, so a pool naming the family never runs one."""
    return None if pull_request else _slug(key)[:63].rstrip("-")


def storage_locations(regions: Iterable[str]) -> list[str]:
    """Where an image is stored: the one region, or the multi-region holding every region
    (`us`, `eu`, `asia`); none (Google's default: near the source) when they span several."""
    found = sorted({normalise_region(r) for r in regions})
    if len(found) == 1:
        return found
    multis = {MULTI_REGIONS.get(r.split("-", 1)[0]) for r in found}
    return [multis.pop()] if len(multis) == 1 and None not in multis else []


def key_regions(target: Target, targets: Iterable[Target]) -> list[str]:
    """The key's Google regions: every Google target's region and copies."""
    regions = [target.region, *target.copies]
    for other in targets:
        if other.platform == "google":
            regions += [other.region, *other.copies]
    return regions


def script_lines(serial: str) -> str:
    """The startup script's own lines of a serial port output (the agent's prefix taken off;
    lines of the boot and the agent kept as they are)."""
    return _AGENT_PREFIX.sub("", serial)


def startup_metadata(image: dict[str, Any], target: Target, *,
                     script: str | None = None) -> list[dict[str, str]]:
    """The builder's metadata items: its startup script (the bootstrap, or `script`) and the
    target's tags as attributes the bootstrap reads from the metadata server."""
    windows = is_windows(image)
    if script is None:
        executions = target.bootstrap_executions
        script = powershell(executions) if windows else bash_script(executions)
    if windows:  # Google runs the script as it is: no EC2Launch tags
        script = "\n".join(line for line in script.splitlines()
                           if line.strip() not in ("<powershell>", "</powershell>",
                                                   "<persist>false</persist>")) + "\n"
    items = [{"key": "windows-startup-script-ps1" if windows else "startup-script",
              "value": script}]
    items += [{"key": name, "value": value} for name, value in target.tags.items()]
    return items


def instance_name(image_name: str, task_id: str) -> str:
    """A builder's instance name: unique per image and task, at most 63 characters."""
    suffix = hashlib.sha256(task_id.encode()).hexdigest()[:8]
    return f"cib-{image_name[:49].rstrip('-')}-{suffix}"


def instance_body(target: Target, name: str, base_link: str, metadata: list[dict[str, str]],
                  labels: dict[str, str], description: str) -> dict[str, Any]:
    """The builder instance as Compute's `instances.insert` takes it (pure)."""
    zone = target.zone
    machine_type = target.builder_machine_size
    disks: list[dict[str, Any]] = []
    specs = list(target.disks) or [{"os": True}]
    specs.sort(key=lambda d: not d.get("os"))
    for index, disk in enumerate(specs):
        # named, so clean-up knows what to delete (Google names them otherwise)
        params: dict[str, Any] = {
            "diskName": name if index == 0 else f"{name}-{index}",
            "diskType": f"zones/{zone}/diskTypes/{target.disk_type(disk)}",
            "labels": labels}
        if disk.get("size"):
            params["diskSizeGb"] = str(int(disk["size"]))
        if index == 0:
            params["sourceImage"] = base_link
        disks.append({"boot": index == 0, "autoDelete": True, "initializeParams": params})
    return {"name": name, "description": description,
            "machineType": f"zones/{zone}/machineTypes/{machine_type}",
            "disks": disks, "metadata": {"items": metadata}, "labels": labels,
            "networkInterfaces": [{"network": "global/networks/default",
                                   "accessConfigs": [{"type": "ONE_TO_ONE_NAT",
                                                      "name": "External NAT"}]}],
            "scheduling": {"automaticRestart": False, "onHostMaintenance": "TERMINATE"}}


def image_link(project: str, name: str) -> str:
    """The image id cib records: `projects/<project>/global/images/<name>`."""
    return f"projects/{project}/global/images/{name}"


# --- the build --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Builder resources created so far, cleaned up in reverse."""

    project: str
    zone: str
    instance: str | None = None
    disks: list[str] = field(default_factory=list)

    def held(self) -> list[str]:
        """What `--keep-resources` leaves, as the log names it."""
        return [x for x in (self.instance, *self.disks) if x]


@dataclass
class GoogleBuild:
    """Everything a Google machine-image build needs besides the context."""

    google: Google
    target: Target
    overwrite: bool = False
    disk_record: manifest.DiskImageRecord | None = None
    s3: Any = None  # clouds.aws.S3, to read a disk image in S3
    timeouts: Timeouts = field(default_factory=Timeouts)
    work_dir: Path | None = None
    on_launch: Callable[[Google, str], None] | None = None  # tests: stand in for the bootstrap

    @property
    def project(self) -> str:
        return str(self.target.project)

    @property
    def zone(self) -> str:
        return str(self.target.zone)


def wait_operation(ctx: BuildContext, build: GoogleBuild, operation: Any, what: str) -> None:
    """Wait (bounded) until a Compute operation is done; its error raised as cib's."""
    ctx.progress.wait(what, lambda: build.google.operation_state(operation, what),
                      done=OPERATION_DONE, timeout=build.timeouts.operation,
                      interval=build.timeouts.interval)


def _wait_image(ctx: BuildContext, build: GoogleBuild, name: str) -> None:
    def status() -> str:
        found = build.google.image(build.project, name)
        return str(found.get("status")) if found else "missing"

    ctx.progress.wait(f"image {name} to become READY", status, done=IMAGE_DONE,
                      failed=IMAGE_FAILED, timeout=build.timeouts.image,
                      interval=build.timeouts.interval)


def base_image(ctx: BuildContext, build: GoogleBuild) -> str:
    """The self link of the image the builder boots: the configured base or the imported
    disk image."""
    base = (ctx.key.image.get("base") or {}).get("google")
    if base:
        project = base["project"]
        if base.get("image"):
            found = build.google.image(project, base["image"])
            if found is None:
                raise CibError(f"base image {base['image']} does not exist in {project}")
            ctx.progress.say(f"base image: {found['selfLink']} (explicit image)")
            return str(found["selfLink"])
        if not base.get("family"):
            raise CibError(f"{ctx.key.name}: image.base.google needs `family` or `image`")
        found = build.google.image_from_family(project, base["family"])
        if found is None:
            raise CibError(f"image family {base['family']} of {project} has no image")
        ctx.progress.say(f"base image: {found['name']} (newest of family {base['family']} in "
                         f"{project}, created {found.get('creationTimestamp', '?')})")
        return str(found["selfLink"])
    return imported_image(ctx, build)


def raw_disk_archive(source: Any, size: int, destination: Path) -> Path:
    """Write `size` bytes of a raw disk read from `source` (`read(n)`) as Google's import
    format: a gzipped tar (GNU format) holding `disk.raw`."""
    with gzip.open(destination, "wb", compresslevel=6) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("disk.raw")
        info.size = size
        archive.addfile(info, source)
    return destination


def imported_image(ctx: BuildContext, build: GoogleBuild) -> str:
    """The disk image as an image of the target's project (reused when imported before):
    the raw disk packed for Google into the target's bucket, then `images.insert` from it."""
    record = build.disk_record
    if record is None:
        raise CibError(f"{ctx.key.name} has no image.base.google: give the disk image record "
                       "(CIB_DISK_IMAGE_TASK_ID in the task, or --disk-image FILE)")
    google, project = build.google, build.project
    sha_label = {"cib-disk-sha256": label_value(record.sha256)}
    existing = reusable_image(google.images_labelled(project, sha_label))
    if existing:
        ctx.progress.say(f"disk image {record.name} was imported before as {existing['name']}")
        if existing.get("status") != "READY":
            _wait_image(ctx, build, existing["name"])
        return str(existing["selfLink"])
    if record.location.startswith("gs://"):
        bucket, _, key = record.location.removeprefix("gs://").partition("/")
        source = f"https://storage.googleapis.com/{bucket}/{key}"
    elif record.location.startswith("s3://"):
        source = _carry_from_s3(ctx, build, record)
    else:
        raise CibError(f"disk image {record.location} is neither in S3 nor in Cloud Storage")
    tags = {"Name": record.name, f"{TAG_PREFIX}key": ctx.key.name,
            f"{TAG_PREFIX}disk-digest": record.disk_digest,
            f"{TAG_PREFIX}disk-sha256": record.sha256,
            f"{TAG_PREFIX}build-task-id": ctx.task_id}
    operation = google.insert_image(project, {
        "name": record.name, "description": f"cib disk image {record.name} (task "
                                            f"{ctx.task_id})",
        "rawDisk": {"source": source, "containerType": "TAR"}, "labels": labels_of(tags),
        "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}, {"type": "VIRTIO_SCSI_MULTIQUEUE"}]})
    ctx.progress.say(f"importing {source} as image {record.name}: {operation.name}")
    wait_operation(ctx, build, operation, f"the import of {record.name}")
    _wait_image(ctx, build, record.name)
    found = google.image(project, record.name)
    return str((found or {}).get("selfLink") or image_link(project, record.name))


def _carry_from_s3(ctx: BuildContext, build: GoogleBuild,
                   record: manifest.DiskImageRecord) -> str:
    """Pack the S3 disk image for Google and upload it to the target's bucket; its URL."""
    if record.image_format.lower() != "raw":
        raise CibError(f"disk image {record.location} is {record.image_format}: Google imports "
                       "raw disks only (image.format: RAW)")
    bucket = build.target.bucket
    if not bucket:
        raise CibError(f"{build.target.id} has no `bucket`: a Google target importing a disk "
                       "image needs a Cloud Storage bucket to import it from")
    if build.s3 is None:
        raise CibError("no S3 client to read the disk image with")
    name = f"{record.name}.tar.gz"
    if build.google.object_exists(bucket, name):
        ctx.progress.say(f"gs://{bucket}/{name} is there already")
        return _object_source(build, bucket, name)
    s3_bucket, _, key = record.location.removeprefix("s3://").partition("/")
    work = Path(tempfile.mkdtemp(prefix="cib-gce-", dir=build.work_dir))
    try:
        stream = build.s3.open(s3_bucket, key)
        hashing = _Hashing(stream)
        try:
            archive = raw_disk_archive(hashing, stream.size, work / name)
        finally:
            stream.close()
        if hashing.digest.hexdigest() != record.sha256 or stream.size != record.size:
            raise CibError(f"{record.location} is not the recorded disk image (sha256 "
                           f"{hashing.digest.hexdigest()}, {stream.size} bytes; the record "
                           f"says {record.sha256}, {record.size} bytes): nothing uploaded")
        ctx.progress.say(f"packed {record.location} as {name} ({archive.stat().st_size} "
                         "bytes)")
        with archive.open("rb") as handle:
            url = build.google.upload_object(bucket, name, handle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ctx.progress.say(f"uploaded gs://{bucket}/{name}")
    return url


class _Hashing:
    """A reader that hashes what is read through it (SHA-256)."""

    def __init__(self, source: Any):
        self.source, self.digest = source, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


def _object_source(build: GoogleBuild, bucket: str, name: str) -> str:
    from ..clouds.google import object_url

    return object_url(build.google.endpoints, bucket, name)


def launch(ctx: BuildContext, build: GoogleBuild, ledger: Ledger, base: str, name: str,
           script: str | None = None) -> str:
    """Launch the builder (with `script` as its startup script instead of the target's
    bootstrap: an image's smoke tests); the instance name."""
    target = build.target
    instance = instance_name(name, ctx.task_id)
    labels = labels_of(builder_tags(ctx, target, name))
    what = "smoke tests" if script is not None else f"bootstrap of {target.id}"
    body = instance_body(target, instance, base, startup_metadata(
        ctx.key.image, target, script=script), labels,
        f"cib {'tester' if script is not None else 'builder'} of {name} (task {ctx.task_id})")
    operation = build.google.insert_instance(build.project, build.zone, body)
    ledger.instance = instance
    ledger.disks = [d["initializeParams"]["diskName"] for d in body["disks"]]
    wait_operation(ctx, build, operation, f"instance {instance} to be created")
    ctx.progress.say(f"launched {'tester' if script is not None else 'builder'} {instance} "
                     f"({body['machineType'].rsplit('/', 1)[-1]}) in {build.zone} from "
                     f"{base.rsplit('/', 1)[-1]} with the {what} as its startup script")
    return instance


def clean_up(ctx: BuildContext, build: GoogleBuild, ledger: Ledger) -> None:
    """Delete the builder's instance and any of its disks left; problems are reported, not
    raised (purge tasks catch what is left)."""
    google, project, zone = build.google, ledger.project, ledger.zone
    steps: list[tuple[str, Callable[[], Any]]] = []
    if ledger.instance:
        steps.append((f"instance {ledger.instance}",
                      lambda: google.delete_instance(project, zone, ledger.instance)))
    for disk in ledger.disks:  # auto-deleted with the instance, unless it was kept
        steps.append((f"disk {disk}", lambda d=disk: google.delete_disk(project, zone, d)))
    for what, delete in steps:
        try:
            operation = delete()
            if operation is None:
                ctx.progress.say(f"{what} is gone already")
                continue
            wait_operation(ctx, build, operation, f"{what} to be deleted")
            ctx.progress.say(f"cleaned up {what}")
        except CibError as exc:
            ctx.progress.say(f"warning: could not clean up {what}: {exc}")


def wait_for_stop(ctx: BuildContext, build: GoogleBuild, instance: str, what: str,
                  timeout: float) -> CollectedLog:
    """Wait until the instance is TERMINATED; its serial port output."""
    ctx.progress.wait(what, lambda: build.google.instance_status(
        build.project, build.zone, instance), done={"TERMINATED"},
        failed={"missing", "SUSPENDED"}, timeout=timeout, interval=build.timeouts.interval)
    serial, _ = build.google.serial_output(build.project, build.zone, instance)
    return CollectedLog(script_lines(serial), (f"the serial port output of {instance}",))


def build_machine_image(ctx: BuildContext, build: GoogleBuild) -> manifest.MachineImageRecord:
    """Build (or reuse) the image of one Google target; write and return its record."""
    target, google, project = build.target, build.google, build.project
    if target.platform != "google":
        raise CibError(f"{target.id} is not a Google target")
    for needed, value in (("project", target.project), ("zone", target.zone)):
        if not value:
            raise CibError(f"{target.id} has no `{needed}`: Google targets need one")
    machine = ctx.digests.machines[target.id]
    ctx.progress.say(f"machine image of {ctx.key.name} for {target.id} in {project} (machine "
                     f"digest {machine}, disk digest {ctx.digests.disk})")
    existing = [i for i in google.images_labelled(project, identity_labels(ctx.key.name,
                                                                          machine))
                if (ctx.pull_request is None) == ("-pr" not in i.get("name", ""))]
    found = reusable_image(existing)
    validated = None
    if found and not build.overwrite:
        name = found["name"]
        ctx.progress.say(f"reusing {name}: built for this digest by task "
                         f"{(found.get('labels') or {}).get('cib-build-task-id', '?')}")
        if found.get("status") != "READY":
            _wait_image(ctx, build, name)
    else:
        if found:
            ctx.progress.say(f"--overwrite: building a new image; {found['name']} stays as "
                             "it is")
        name = next_name(ctx.key.name, machine, (i.get("name", "") for i in existing),
                         ctx.pull_request)
        validated = build_new(ctx, build, name)
    record = manifest.machine_image_record(
        ctx.key.name, target, image_id=image_link(project, name), machine_digest=machine,
        disk_digest=ctx.digests.disk, config_commit=ctx.config_commit,
        build_task_id=ctx.task_id, created=ctx.now(), pull_request=ctx.pull_request)
    if record.image_name != name:  # a revision (-r<N>) of an overwritten image
        record = manifest.parse_machine_image({**record.to_json(), "image_name": name})
    if validated is not None:
        record = manifest.with_validation(record, validated)
    ctx.write_artifact("machine-image.json", manifest.dumps(record))
    return record


def build_new(ctx: BuildContext, build: GoogleBuild, name: str) -> dict[str, Any] | None:
    """Launch, bootstrap, check the validation rules, capture and clean up; what the record
    says of the rules (`validation.check_builder`)."""
    ledger = Ledger(build.project, build.zone)
    target = build.target
    with builder_resources(ctx, ledger.held, lambda: clean_up(ctx, build, ledger)):
        base = base_image(ctx, build)
        instance = launch(ctx, build, ledger, base, name)
        if build.on_launch is not None:
            build.on_launch(build.google, instance)
        log = wait_for_stop(ctx, build, instance, f"the bootstrap to stop builder {instance}",
                            build.timeouts.bootstrap)
        validated = check_builder(ctx, target.id, log)
        regions = storage_locations(key_regions(target, ctx.key.targets))
        body: dict[str, Any] = {
            "name": name, "labels": labels_of(image_tags(ctx, target, name)),
            "description": f"cib {name} for {target.id} (build task {ctx.task_id})",
            "sourceDisk": f"projects/{build.project}/zones/{build.zone}/disks/{instance}"}
        family = image_family(ctx.key.name, ctx.pull_request)
        if family:
            body["family"] = family
        if regions:
            body["storageLocations"] = regions
        operation = build.google.insert_image(build.project, body)
        ctx.progress.say(f"capturing the boot disk of {instance} as image {name}"
                         + (f" in family {family}" if family else "")
                         + (f", stored in {', '.join(regions)}" if regions else ""))
        wait_operation(ctx, build, operation, f"the capture of {name}")
        _wait_image(ctx, build, name)
        return validated
