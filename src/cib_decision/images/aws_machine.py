"""`cib image machine --key K --target amazon/<region>`: an AMI for one AWS target.

Steps, each one line (or one line per state change) in the task log:

1. **reuse**: an AMI of this account tagged with this key and machine digest is reused as it
   is (`--overwrite` builds a new one under the next free name, `<key>-r<N>-<digest>`; the
   existing image is never touched);
2. **base**: the builder boots from `image.base.amazon`: an explicit `id`, or the newest
   available image of `owner` whose name matches `name`; keys with a disk image instead
   import it (`import-snapshot` from the disk-image task's S3 object, then `register-image`);
3. **launch** a builder instance (instance type `machine.type`, disks from `disk`, the target's
   `tag`s readable through instance metadata) in a fresh security group with a fresh key pair,
   its user data the target's bootstrap (PowerShell on Windows, cloud-init on Linux);
4. **wait** until the bootstrap stops the instance (at most `--bootstrap-timeout`; on time-out
   the build fails with exit 3 and everything is cleaned up), publish its console output as
   `public/builder.log` and match the key's validation rules against it (images/
   validation.py): a missed rule fails the build (exit 3) before anything is captured;
5. **capture** the stopped instance as an AMI named `naming.image_name(key, machine digest)`,
   tagged with the key, both digests, the config commit, the build task and the environment,
   and wait until it is available;
6. **copy** it to the target's `copies` regions (tagged the same) and wait for every copy;
7. **clean up** the instance, its volumes, the security group and the key pair, on success
   and on failure, unless `--keep-resources` (`disable-cleanup`) asks to keep them;
8. **record** the image in `public/machine-image.json`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import manifest
from ..clouds.aws import EC2, tags_of
from ..config import Target, normalise_region
from ..errors import CibError
from .bootstrap import is_windows, user_data
from .context import BuildContext
from .identity import (  # noqa: F401  (shared with the Azure build; imported from here too)
    TAG_PREFIX,
    builder_resources,
    builder_tags,
    identity_tags,
    image_tags,
    machine_image_tags,
    next_name,
    revision,
)
from .validation import CollectedLog, check_builder

IMAGE_DONE, IMAGE_FAILED = {"available"}, {"failed", "invalid", "error", "deregistered",
                                            "missing"}


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the waits, in seconds, and the polling interval."""

    bootstrap: float = 3 * 3600
    image: float = 2 * 3600
    import_snapshot: float = 2 * 3600
    terminate: float = 15 * 60
    interval: float = 15.0


# --- pure decisions --------------------------------------------------------------------------


def newest_image(images: Iterable[dict[str, Any]], pattern: str) -> dict[str, Any] | None:
    """The newest (by `CreationDate`) of `images` whose name matches `pattern`."""
    matching = [i for i in images if fnmatch.fnmatchcase(i.get("Name", ""), pattern)]
    return max(matching, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]), default=None)


def reusable_image(images: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Of the images already tagged with this digest, the newest one that is available or on
    its way (pending); failed ones are ignored."""
    usable = [i for i in images if i.get("State") in ("available", "pending")]
    return max(usable, key=lambda i: (i.get("CreationDate", ""), revision(i.get("Name", "")),
                                      i["ImageId"]), default=None)


def copy_regions(target: Target, targets: Iterable[Target] = ()) -> tuple[str, ...]:
    """The regions the target's image is copied to (its `copies`), without its own region and
    those where another of `targets` on its platform builds its own image."""
    built = {normalise_region(t.region) for t in targets if t.platform == target.platform}
    built.add(normalise_region(target.region))
    regions = iter(target.copies)
    return tuple(dict.fromkeys(r for r in regions if r not in built))


def block_devices(target: Target) -> list[dict[str, Any]]:
    """EBS mappings from the target's `disk` list: the os disk at /dev/sda1, others at
    /dev/sdb, /dev/sdc, ..."""
    mappings, letters = [], iter("bcdefghijklmnop")
    for disk in target.disks:
        device = "/dev/sda1" if disk.get("os") else f"/dev/sd{next(letters)}"
        ebs: dict[str, Any] = {"DeleteOnTermination": True,
                               "VolumeType": target.disk_type(disk)}
        if disk.get("size"):
            ebs["VolumeSize"] = int(disk["size"])
        mappings.append({"DeviceName": device, "Ebs": ebs})
    return mappings


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", text)[:200]


# --- the build --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Builder resources created so far, cleaned up in reverse."""

    ec2: EC2
    instance: str | None = None
    volumes: list[str] = field(default_factory=list)
    security_group: str | None = None
    key_pair: str | None = None

    def held(self) -> list[str]:
        """What `--keep-resources` leaves, as the log names it."""
        return [x for x in (self.instance, self.security_group, self.key_pair) if x]


@dataclass
class AwsBuild:
    """Everything an AWS machine-image build needs besides the context."""

    ec2: EC2
    target: Target
    overwrite: bool = False
    disk_record: manifest.DiskImageRecord | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    on_launch: Callable[[EC2, str], None] | None = None  # tests: stand in for the bootstrap


def _wait_image(ctx: BuildContext, ec2: EC2, image_id: str, timeouts: Timeouts) -> None:
    ctx.progress.wait(f"image {image_id} in {ec2.region} to become available",
                      lambda: ec2.image_state(image_id), done=IMAGE_DONE, failed=IMAGE_FAILED,
                      timeout=timeouts.image, interval=timeouts.interval)


def base_image(ctx: BuildContext, build: AwsBuild) -> str:
    """The AMI the builder boots: the configured base image or the imported disk image."""
    base = (ctx.key.image.get("base") or {}).get("amazon")
    ec2 = build.ec2
    if base and base.get("id"):
        ctx.progress.say(f"base image: {base['id']} (explicit id)")
        if ec2.image(base["id"]) is None:
            raise CibError(f"base image {base['id']} does not exist in {ec2.region}")
        return base["id"]
    if base:
        found = newest_image(ec2.find_images(base["owner"], base["name"]), base["name"])
        if found is None:
            raise CibError(f"no available image of owner {base['owner']} matches "
                           f"{base['name']!r} in {ec2.region}")
        ctx.progress.say(f"base image: {found['ImageId']} {found['Name']} (newest of "
                         f"{base['owner']} matching {base['name']!r}, created "
                         f"{found.get('CreationDate', '?')})")
        return found["ImageId"]
    return imported_image(ctx, build)


def imported_image(ctx: BuildContext, build: AwsBuild) -> str:
    """Import the disk image (import-snapshot, register-image) in the bucket's region and
    copy it to the target's region when they differ; reused when imported before."""
    record = build.disk_record
    if record is None:
        raise CibError(f"{ctx.key.name} has no image.base.amazon: give the disk image record "
                       "(CIB_DISK_IMAGE_TASK_ID in the task, or --disk-image FILE)")
    if not record.location.startswith("s3://"):
        raise CibError(f"disk image {record.location} is not in S3: AWS imports from S3 only")
    home = build.ec2.in_region(record.region)
    tags = {"Name": record.name, f"{TAG_PREFIX}key": ctx.key.name,
            f"{TAG_PREFIX}disk-digest": record.disk_digest,
            f"{TAG_PREFIX}disk-sha256": record.sha256,
            f"{TAG_PREFIX}build-task-id": ctx.task_id}
    identity = {f"{TAG_PREFIX}disk-sha256": record.sha256}
    existing = reusable_image(home.images_tagged(identity))
    if existing:
        image_id = existing["ImageId"]
        ctx.progress.say(f"disk image {record.name} was imported before as {image_id}")
    else:
        bucket, _, key = record.location.removeprefix("s3://").partition("/")
        task = home.import_snapshot(bucket, key, record.image_format, record.name, tags)
        ctx.progress.say(f"importing {record.location} as a snapshot: import task {task}")
        details: dict[str, Any] = {}

        def poll() -> str:
            details.clear()
            details.update(home.import_snapshot_task(task))
            message = details.get("StatusMessage")
            return f"{details.get('Status')}" + (f" ({message})" if message else "")

        ctx.progress.wait(f"import task {task}", poll, done={"completed"},
                          failed={"deleted", "deleting", "missing"},
                          timeout=build.timeouts.import_snapshot,
                          interval=build.timeouts.interval)
        snapshot = details["SnapshotId"]
        image_id = home.register_image(record.name, snapshot, f"cib disk image {record.name}",
                                       tags)
        ctx.progress.say(f"registered snapshot {snapshot} as image {image_id}")
        _wait_image(ctx, home, image_id, build.timeouts)
    if home.region == build.ec2.region:
        return image_id
    copy = build.ec2.copy_image(image_id, home.region, record.name, record.name)
    ctx.progress.say(f"copying {image_id} from {home.region}: {copy}")
    _wait_image(ctx, build.ec2, copy, build.timeouts)
    build.ec2.tag([copy], tags | identity)
    return copy


def launch(ctx: BuildContext, build: AwsBuild, ledger: Ledger, base: str, name: str,
           script: str | None = None) -> str:
    """Create the key pair and security group and launch the builder (with `script` as its
    user data instead of the target's bootstrap: an image's smoke tests); the instance id."""
    ec2, target = build.ec2, build.target
    tags = builder_tags(ctx, target, name)
    unique = _safe(f"cib-{name}-{ctx.task_id}")
    ledger.key_pair = ec2.create_key_pair(unique, tags)
    ledger.security_group = ec2.create_security_group(
        unique, f"cib builder of {name} (task {ctx.task_id})", tags)
    ctx.progress.say(f"created key pair {ledger.key_pair} and security group "
                     f"{ledger.security_group}")
    instance_type = target.builder_machine_size
    arguments: dict[str, Any] = {
        "ImageId": base, "InstanceType": instance_type, "KeyName": ledger.key_pair,
        "SecurityGroupIds": [ledger.security_group],
        "UserData": script if script is not None else user_data(
            ctx.key.image, target.bootstrap_executions),
        "InstanceInitiatedShutdownBehavior": "stop",
        "MetadataOptions": {"HttpTokens": "required", "InstanceMetadataTags": "enabled"},
        "TagSpecifications": [{"ResourceType": kind,
                               "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
                              for kind in ("instance", "volume")],
    }
    devices = block_devices(target)
    if devices:
        arguments["BlockDeviceMappings"] = devices
    ledger.instance = ec2.run_instance(**arguments)
    ledger.volumes = ec2.instance_volumes(ledger.instance)
    kind = "PowerShell" if is_windows(ctx.key.image) else "cloud-init"
    what = "smoke tests" if script is not None else f"bootstrap of {target.id}"
    ctx.progress.say(f"launched {'tester' if script is not None else 'builder'} "
                     f"{ledger.instance} ({instance_type}) from {base} with the {kind} {what}")
    return ledger.instance


def clean_up(ctx: BuildContext, ledger: Ledger, timeouts: Timeouts) -> None:
    """Delete the builder's resources; problems are reported, not raised (purge tasks catch
    what is left)."""
    ec2 = ledger.ec2
    steps: list[tuple[str, Callable[[], None]]] = []
    if ledger.instance:
        def terminate() -> None:
            ec2.terminate_instance(ledger.instance)
            ctx.progress.wait(f"builder {ledger.instance} to terminate",
                              lambda: ec2.instance_state(ledger.instance),
                              done={"terminated", "missing"}, timeout=timeouts.terminate,
                              interval=timeouts.interval)
        steps.append((f"instance {ledger.instance}", terminate))
    for volume in ledger.volumes:
        steps.append((f"volume {volume}", lambda v=volume: ec2.volume_exists(v)
                      and ec2.delete_volume(v)))
    if ledger.security_group:
        steps.append((f"security group {ledger.security_group}",
                      lambda: ec2.delete_security_group(ledger.security_group)))
    if ledger.key_pair:
        steps.append((f"key pair {ledger.key_pair}", lambda: ec2.delete_key_pair(
            ledger.key_pair)))
    for what, step in steps:
        try:
            step()
            ctx.progress.say(f"cleaned up {what}")
        except CibError as exc:
            ctx.progress.say(f"warning: could not clean up {what}: {exc}")


def copy_to_regions(ctx: BuildContext, build: AwsBuild, image_id: str, name: str,
                    tags: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    """Copy the image to the target's `copies` regions (reusing copies tagged with this
    digest there) and wait for all of them; `{region: image id}`, and the seconds from
    starting each new copy until it was seen available (the copies run at once; they are
    waited for in turn, so a time is at most that much late)."""
    regions = copy_regions(build.target, ctx.key.targets)
    copies: dict[str, str] = {}
    started: dict[str, float] = {}
    identity = identity_tags(ctx.key.name, ctx.digests.machines[build.target.id])
    for region in regions:
        there = build.ec2.in_region(region)
        existing = [i for i in there.images_tagged(identity) if i.get("Name") == name]
        found = reusable_image(existing)
        if found:
            copies[region] = found["ImageId"]
            ctx.progress.say(f"{region} already has {name} as {found['ImageId']}")
            continue
        started[region] = ctx.progress.clock()
        copies[region] = there.copy_image(image_id, build.ec2.region, name,
                                          f"cib {name} (copy from {build.ec2.region})")
        there.tag([copies[region]], tags)
        ctx.progress.say(f"copying {image_id} to {region}: {copies[region]}")
    seconds: dict[str, float] = {}
    for region, copy in copies.items():
        _wait_image(ctx, build.ec2.in_region(region), copy, build.timeouts)
        if region in started:
            seconds[region] = ctx.progress.clock() - started[region]
    return copies, seconds


def build_machine_image(ctx: BuildContext, build: AwsBuild) -> manifest.MachineImageRecord:
    """Build (or reuse) the AMI of one AWS target; write and return its record."""
    target, ec2 = build.target, build.ec2
    if target.platform != "amazon":
        raise CibError(f"{target.id} is not an AWS target")
    machine = ctx.digests.machines[target.id]
    identity = identity_tags(ctx.key.name, machine)
    ctx.progress.say(f"machine image of {ctx.key.name} for {target.id} (machine digest "
                     f"{machine}, disk digest {ctx.digests.disk})")
    existing = [i for i in ec2.images_tagged(identity)
                if (ctx.pull_request is None) == ("-pr" not in i.get("Name", ""))]
    found = reusable_image(existing)
    validated = None  # a reused image passed the rules when it was built
    if found and not build.overwrite:
        image_id, name = found["ImageId"], found["Name"]
        ctx.progress.say(f"reusing {image_id} {name}: built for this digest by task "
                         f"{tags_of(found).get(f'{TAG_PREFIX}build-task-id', '?')}")
        if found["State"] != "available":
            _wait_image(ctx, ec2, image_id, build.timeouts)
    else:
        if found:
            ctx.progress.say(f"--overwrite: building a new image; {found['ImageId']} "
                             f"{found['Name']} stays as it is")
        name = next_name(ctx.key.name, machine, (i.get("Name", "") for i in existing),
                         ctx.pull_request)
        image_id, validated = build_new(ctx, build, name)
    copies, copy_seconds = copy_to_regions(ctx, build, image_id, name,
                                           image_tags(ctx, target, name))
    record = manifest.machine_image_record(
        ctx.key.name, target, image_id=image_id, machine_digest=machine,
        disk_digest=ctx.digests.disk, config_commit=ctx.config_commit,
        build_task_id=ctx.task_id, created=ctx.now(), pull_request=ctx.pull_request)
    if record.image_name != name:  # a revision (-r<N>) of an overwritten image
        record = manifest.parse_machine_image({**record.to_json(), "image_name": name})
    if validated is not None:
        record = manifest.with_validation(record, validated)
    if copies:
        record = manifest.with_copies(record, copies, copy_seconds)
    ctx.write_artifact("machine-image.json", manifest.dumps(record))
    return record


def build_new(ctx: BuildContext, build: AwsBuild, name: str
              ) -> tuple[str, dict[str, Any] | None]:
    """Launch, bootstrap, check the validation rules, capture and clean up; the new AMI's id
    and what the record says of the rules (`validation.check_builder`)."""
    ledger = Ledger(build.ec2)
    with builder_resources(ctx, ledger.held, lambda: clean_up(ctx, ledger, build.timeouts)):
        base = base_image(ctx, build)
        instance = launch(ctx, build, ledger, base, name)
        if build.on_launch is not None:
            build.on_launch(build.ec2, instance)
        ctx.progress.wait(f"the bootstrap to stop builder {instance}",
                          lambda: build.ec2.instance_state(instance), done={"stopped"},
                          failed={"terminated", "shutting-down", "missing"},
                          timeout=build.timeouts.bootstrap, interval=build.timeouts.interval)
        validated = check_builder(ctx, build.target.id, CollectedLog(
            build.ec2.console_output(instance), (f"the console output of {instance}",)))
        tags = image_tags(ctx, build.target, name)
        image_id = build.ec2.create_image(instance, name, f"cib {name} for {build.target.id}",
                                          tags)
        ctx.progress.say(f"capturing builder {instance} as image {image_id} {name}")
        _wait_image(ctx, build.ec2, image_id, build.timeouts)
        snapshots = build.ec2.image_snapshots(image_id)
        if snapshots:
            build.ec2.tag(snapshots, tags)
        return image_id, validated
