"""`cib image tag --key K`: release the machine images a graph built for one key.

Steps, each one line in the task log:

1. **read** the tag task's own definition (`TASK_ID`) and, of each dependency, its
   `public/machine-image.json` (a dependency without one, such as a failed build or the
   decision task, is named and left out; no record at all is an error, exit 2), and that of
   each build a test-image dependency tested (a push that changes only a test has no build).
   Records of another key, or whose machine digest is not the config's at this commit, are
   left out too;
2. **disk image**: the `public/disk-image.json` of the disk-image task each build was given
   (`CIB_DISK_IMAGE_TASK_ID` in the machine-image task's definition), for the disk image's
   SHA-256; keys built from a cloud's base image have none;
3. **tests**: for a key with smoke tests, every image must have passed them (the
   `public/image-test.json` of its test-image task, for these tests); one whose tests failed or
   did not run stops the release (exit 3): nothing of the key is released, so its pools are not
   deployed from it. The release's images carry their tests' outcome;
4. **seal** the release record (`manifest.release_record`): every image and copy, both
   digests, the config commit, the build tasks, and as its `created` time the tag task's own
   `created`, so the task run again writes a byte-identical record;
5. **tag** every AWS image, in every region, copies included, and its EBS snapshots, and
   every Azure image (a managed image or a gallery image version, once however many regions
   it is replicated to) with the build's tags (`identity.machine_image_tags`) and
   `cib:release-sha256`, the record's seal, and label every Google image with the same tags
   as Google's labels spell them (`clouds.google.labels_of`: `cib-release-sha256`, ...; the
   image's other labels are kept);
6. **record** the release in `public/release.json` (`cib release verify` checks it), signed
   when the environment configures a signing key (docs/signing.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import manifest, pools
from ..clouds.aws import EC2
from ..digests import tests_digest
from ..errors import BuildError, CibError
from ..tc import Queue, call, read_artifact
from .context import BuildContext
from .identity import machine_image_tags
from .image_test import MACHINE_TASK_VARIABLE

DISK_TASK_VARIABLE = "CIB_DISK_IMAGE_TASK_ID"


@dataclass(frozen=True)
class Builds:
    """What the tag task's dependencies left: the machine-image records of this key, the
    disk-image record they were made from (None for keys built from base images), the tag
    task's `created` time, each target's smoke-test outcome (keys with tests) and the test runs
    it was read from."""

    records: tuple[manifest.MachineImageRecord, ...]
    disk: manifest.DiskImageRecord | None
    created: str
    tests: tuple[tuple[str, dict[str, Any]], ...] = ()
    runs: tuple[manifest.ImageTestRecord, ...] = ()  # the test runs among the dependencies


class SmokeTestsNotPassed(BuildError):
    """A tested key's image whose smoke tests failed or did not run: nothing of the key is
    released (exit 3), so its pools are not deployed from it."""


def tested_builds(ctx: BuildContext, builds: Builds, records: list[manifest.ImageTestRecord],
                  digest: str) -> Builds:
    """`builds` with each image's smoke-test outcome (a run of the tests of `digest` on that
    image); SmokeTestsNotPassed naming every image whose tests failed or did not run."""
    outcome: dict[str, dict[str, Any]] = {}
    problems = []
    for record in builds.records:
        runs = [t for t in records if t.image_id == record.image_id
                and t.tests_digest == digest]
        run = max(runs, key=lambda t: t.created, default=None)
        if run is None:
            problems.append(f"{record.target} ({record.image_id}): its smoke tests did not run")
        elif not run.passed:
            failed = [r["name"] for r in run.results if not r["passed"]]
            problems.append(f"{record.target} ({record.image_id}): smoke tests "
                            f"{', '.join(failed)} failed (task {run.test_task_id})")
        else:
            outcome[record.target] = run.summary()
            ctx.progress.say(f"{record.target}: {len(run.results)} smoke tests passed (task "
                             f"{run.test_task_id})")
    if problems:
        raise SmokeTestsNotPassed(f"not releasing {ctx.key.name}: " + "; ".join(problems)
                                  + ". Nothing of the key is released and its pools keep "
                                    "their images")
    return Builds(builds.records, builds.disk, builds.created, tuple(sorted(outcome.items())),
                  builds.runs)


def usable_records(ctx: BuildContext, records: Iterable[pools.Record]
                   ) -> list[manifest.MachineImageRecord]:
    """The machine-image records of this build of the key: records of another key, releases
    and records of another machine digest than the config's at this commit are named in the
    log and left out."""
    usable = []
    for record in records:
        if isinstance(record, manifest.Release):
            ctx.progress.say(f"skipping the release record of {record.key}: a tag task "
                             "releases machine-image records")
        elif record.key != ctx.key.name:
            ctx.progress.say(f"skipping the machine-image record of {record.key} "
                             f"({record.target}): this task tags {ctx.key.name}")
        elif ctx.digests.machines.get(record.target) != record.machine_digest:
            ctx.progress.say(f"skipping {record.image_id} of {record.target}: machine digest "
                             f"{record.machine_digest[:12]} is not this config's")
        else:
            usable.append(record)
    return sorted(usable, key=lambda r: r.target)


def _task_variable(queue: Queue, task_id: str, name: str) -> str | None:
    """The task id a task was given in its environment variable `name` (the disk-image task
    of a build: `CIB_DISK_IMAGE_TASK_ID`)."""
    definition = call("queue", f"give the definition of task {task_id}",
                      lambda: queue.task(task_id), allow=(404,))
    if not isinstance(definition, dict):  # 404: the queue no longer knows the task
        return None
    env = (definition.get("payload") or {}).get("env") or {}
    value = env.get(name)
    return value if isinstance(value, str) and value else None


def disk_record(ctx: BuildContext, queue: Queue,
                records: Iterable[manifest.MachineImageRecord]
                ) -> manifest.DiskImageRecord | None:
    """The disk-image record the builds of `records` imported, read from the disk-image task
    each build task names; None when none names one (or its record is gone). Two different
    disk images of one disk digest are an error."""
    found: dict[str, manifest.DiskImageRecord] = {}
    for build_task in sorted({r.build_task_id for r in records}):
        task = _task_variable(queue, build_task, DISK_TASK_VARIABLE)
        if task is None or task in found:
            continue
        data = read_artifact(queue, task, manifest.DISK_IMAGE_ARTIFACT)
        if data is None:
            ctx.progress.say(f"disk-image task {task} (of build {build_task}) left no "
                             f"{manifest.DISK_IMAGE_ARTIFACT}")
            continue
        record = manifest.parse_disk_image(data, f"task {task} {manifest.DISK_IMAGE_ARTIFACT}")
        if record.key != ctx.key.name or record.disk_digest != ctx.digests.disk:
            ctx.progress.say(f"skipping disk image {record.name} of task {task}: not the disk "
                             f"image of {ctx.key.name} at disk digest {ctx.digests.disk[:12]}")
            continue
        ctx.progress.say(f"read {manifest.DISK_IMAGE_ARTIFACT} of task {task}: {record.name} "
                         f"sha256 {record.sha256}")
        found[task] = record
    digests = {r.sha256 for r in found.values()}
    if len(digests) > 1:
        raise CibError(f"the machine images of {ctx.key.name} were made from different disk "
                       f"images of disk digest {ctx.digests.disk[:12]} (sha256 "
                       f"{', '.join(sorted(digests))}, tasks {', '.join(sorted(found))}); "
                       "refusing to release them as one")
    return next(iter(found.values()), None)


class NothingBuilt(Exception):
    """Every build the tag task waited for failed: there is nothing to tag or release, and
    no error of the tag's own (the failed builds report theirs, and their owners hear of it
    from them: one failure, one notification)."""


def read_builds(ctx: BuildContext, queue: Queue) -> Builds:
    """The records the tag task's dependencies left (step 1 and 2). NothingBuilt when there
    is no record because every build failed; CibError (exit 2) when there is none otherwise
    (builds that completed without a record)."""
    sources, created = pools.dependency_record_sources(queue, ctx.task_id, ctx.progress.say)
    runs, tested = read_test_runs(ctx, queue, {task for task, _ in sources})
    records = [record for _, record in sources] + tested
    usable = usable_records(ctx, records)
    if not usable:
        states = pools.dependency_states(queue, ctx.task_id, "machine-image")
        if not records and states and all(s in ("failed", "exception")
                                          for s in states.values()):
            raise NothingBuilt(f"every build of {ctx.key.name} this graph ran failed "
                               f"(tasks {', '.join(sorted(states))}): nothing to tag or "
                               "release; the pools keep their images")
        raise CibError(f"task {ctx.task_id}: no dependency left a machine-image record of "
                       f"{ctx.key.name} (did every build fail?); nothing to tag or release")
    disk = disk_record(ctx, queue, usable)
    if disk is None:
        ctx.progress.say("no disk-image record: the release's disk_sha256 is null")
    return Builds(tuple(usable), disk, created, runs=tuple(runs))


def _record(ctx: BuildContext, queue: Queue, task: str, name: str,
            parse: Callable[[Any, str], Any]) -> Any | None:
    """Task `task`'s artifact `name`, parsed; None (and a line saying so) when it has none."""
    data = read_artifact(queue, task, name)
    if data is None:
        ctx.progress.say(f"task {task} left no {name}")
        return None
    return parse(data, f"task {task} {name}")


def read_test_runs(ctx: BuildContext, queue: Queue, read: set[str]
                   ) -> tuple[list[manifest.ImageTestRecord], list[manifest.MachineImageRecord]]:
    """The image-test records the tag's test-image dependencies left, and the machine-image
    records of the builds they tested (their `CIB_MACHINE_IMAGE_TASK_ID`) that are not
    dependencies of the tag themselves (`read`): a push that changes only a test reuses the
    images, so the graph has no build task for the tag to wait for (taskgraph drops a soft
    dependency it replaces), only the test runs of the earlier builds."""
    runs, builds = [], []
    tests = pools.dependency_tasks(queue, ctx.task_id, "test-image")
    for test, (definition, _) in sorted(tests.items()):
        run = _record(ctx, queue, test, manifest.IMAGE_TEST_ARTIFACT, manifest.parse_image_test)
        if run is not None:
            runs.append(run)
        build = ((definition.get("payload") or {}).get("env") or {}).get(MACHINE_TASK_VARIABLE)
        if not isinstance(build, str) or not build or build in read:
            continue
        read.add(build)
        record = _record(ctx, queue, build, manifest.MACHINE_IMAGE_ARTIFACT,
                         manifest.parse_machine_image)
        if record is not None:
            builds.append(record)
            ctx.progress.say(f"read {manifest.MACHINE_IMAGE_ARTIFACT} of task {build} (the "
                             f"build test task {test} tested)")
    return runs, builds


def release_images(ctx: BuildContext, records: Iterable[manifest.MachineImageRecord],
                   tests: dict[str, dict[str, Any]] | None = None
                   ) -> list[manifest.ReleaseImage]:
    """The images of `records` and their copies, one per region: a target's own image wins
    over a copy into its region; where two targets copy into one region (the second build
    usually reuses the first one's copy) the first target's (by id) is released, and a line
    says so when they are different images (both stay tagged)."""
    tests = tests or {}
    ordered = sorted(records, key=lambda r: r.target)
    entries = [(r.target, r.image(tests.get(r.target))) for r in ordered]
    entries += [(r.target, image) for r in ordered
                for image in r.images(tests.get(r.target))[1:]]
    chosen: dict[str, tuple[str, manifest.ReleaseImage]] = {}
    for source, image in entries:
        if image.target not in chosen:
            chosen[image.target] = (source, image)
            continue
        first, kept = chosen[image.target]
        if kept.id == image.id:  # a copy both builds share (reused by name and digest)
            continue
        ctx.progress.say(f"{image.target} has images of both {first} ({kept.id}) and "
                         f"{source} ({image.id}): releasing {kept.id}")
    return [image for _, image in chosen.values()]


def release_of(ctx: BuildContext, builds: Builds) -> manifest.Release:
    """The sealed release of the builds (step 3): created at the tag task's creation."""
    return manifest.release_record(
        ctx.key.name, disk_digest=ctx.digests.disk,
        disk_sha256=builds.disk.sha256 if builds.disk else None,
        config_commit=ctx.config_commit, created=manifest.parse_time(builds.created),
        images=release_images(ctx, builds.records, dict(builds.tests)))


def record_tags(ctx: BuildContext, record: manifest.MachineImageRecord,
                release: manifest.Release) -> dict[str, str]:
    """The tags of the image of `record` and its copies: those its build set, and the
    release's seal."""
    return machine_image_tags(
        name=record.image_name, key=record.key, target=record.target,
        machine_digest=record.machine_digest, disk_digest=record.disk_digest,
        config_commit=record.config_commit, build_task_id=record.build_task_id,
        environment=ctx.environment, release_sha256=release.sha256)


def apply_tags(ctx: BuildContext, records: Iterable[manifest.MachineImageRecord],
               release: manifest.Release, ec2_for: Callable[[str], EC2],
               azure: Callable[[], Any] | None = None,
               google: Callable[[], Any] | None = None) -> int:
    """Tag every AWS image of `records` and its copies, with their snapshots, every Azure
    image (`azure()` gives the `clouds.azure.Azure` adapter) and label every Google image
    (`google()`: `clouds.google.Google`) (step 4); one line per image (a cloud without its
    adapter: one saying its images are released untagged). The number of images tagged. An
    image the record names but the cloud does not have is a BuildError (exit 3)."""
    tagged = 0
    for record in records:
        if record.platform == "azure" and azure is not None:
            tagged += tag_azure(ctx, record, record_tags(ctx, record, release), azure())
            continue
        if record.platform == "google" and google is not None:
            tagged += tag_google(ctx, record, record_tags(ctx, record, release), google())
            continue
        if record.platform != "amazon":
            for image in record.images():
                ctx.progress.say(f"{image.target}: tagging {record.platform} images is not "
                                 f"supported yet; {image.id} is released untagged")
            continue
        tags = record_tags(ctx, record, release)
        for region, image_id in ((record.region, record.image_id), *record.copies):
            snapshots = ec2_for(region).tag_image(image_id, tags)
            if snapshots is None:
                raise BuildError(f"{record.target}: image {image_id} is not in {region} (its "
                                 f"build, task {record.build_task_id}, recorded it there)")
            tagged += 1
            ctx.progress.say(f"tagged {image_id} {record.image_name} in {region}"
                             + (f" and its snapshot{'s' if len(snapshots) > 1 else ''} "
                                f"{', '.join(snapshots)}" if snapshots
                                else " (it has no snapshots yet)"))
    return tagged


def tag_azure(ctx: BuildContext, record: manifest.MachineImageRecord, tags: dict[str, str],
              azure: Any) -> int:
    """Tag the Azure image of `record` and its copies (a gallery version's copies are the
    version itself, tagged once); the number of images tagged."""
    from ..clouds.azure import parse_id

    tagged = 0
    ids = dict.fromkeys([record.image_id, *(image_id for _, image_id in record.copies)])
    for image_id in ids:
        kind, group, names = parse_id(image_id)
        if azure.set_tags(kind, group, *names, tags=tags) is None:
            raise BuildError(f"{record.target}: image {image_id} does not exist (its build, "
                             f"task {record.build_task_id}, recorded it)")
        regions = [record.region, *(r for r, i in record.copies if i == image_id)]
        tagged += 1
        ctx.progress.say(f"tagged {kind} {'/'.join(names)} ({record.image_name}) in "
                         f"{group}, {', '.join(dict.fromkeys(regions))}")
    return tagged


GOOGLE_IMAGE = re.compile(r"(?:.*/)?projects/([^/]+)/global/images/([^/]+)$")
GOOGLE_LABEL_WAIT = 600.0  # seconds a label change may take


def tag_google(ctx: BuildContext, record: manifest.MachineImageRecord, tags: dict[str, str],
               google: Any) -> int:
    """Label the Google image of `record` (images are global: one, whatever regions it is
    stored for) with `tags` as labels, keeping its other labels; 1."""
    from ..clouds.google import labels_of

    match = GOOGLE_IMAGE.match(record.image_id)
    target = ctx.target(record.target) if match is None else None
    project, name = (match.group(1), match.group(2)) if match else \
        (str(target.project), record.image_id)
    image = google.image(project, name)
    if image is None:
        raise BuildError(f"{record.target}: image {name} does not exist in {project} (its "
                         f"build, task {record.build_task_id}, recorded it)")
    labels = {**(image.get("labels") or {}), **labels_of(tags)}
    operation = google.set_image_labels(project, name, labels,
                                        image.get("labelFingerprint", ""))
    ctx.progress.wait(f"the labels of {name}", lambda: google.operation_state(operation),
                      done={"DONE"}, timeout=GOOGLE_LABEL_WAIT, interval=5.0)
    ctx.progress.say(f"labelled image {name} in {project}")
    return 1


def tag_release(ctx: BuildContext, queue: Queue, ec2_for: Callable[[str], EC2],
                sign: Callable[[manifest.Release], manifest.Release] | None = None,
                azure: Callable[[], Any] | None = None,
                google: Callable[[], Any] | None = None) -> manifest.Release:
    """Read the builds, seal their release, sign it (when `sign` is given: the environment
    signs its releases, signing.release_signer), tag the images (Azure ones through
    `azure()`, the `clouds.azure.Azure` adapter, Google ones through `google()`) and write
    public/release.json."""
    ctx.progress.say(f"release of {ctx.key.name} (disk digest {ctx.digests.disk[:12]}) by "
                     f"task {ctx.task_id}")
    builds = read_builds(ctx, queue)
    tests = ctx.key.image_tests(ctx.fleet.environments.get(ctx.environment))
    if tests:
        builds = tested_builds(ctx, builds, list(builds.runs), tests_digest(tests))
    release = release_of(ctx, builds)
    ctx.progress.say(f"release {release.sha256}: {len(release.images)} image"
                     f"{'s' if len(release.images) != 1 else ''} "
                     f"({', '.join(i.target for i in release.images)})")
    if sign is not None:  # before tagging: a key that cannot sign leaves nothing half done
        release = sign(release)
    apply_tags(ctx, builds.records, release, ec2_for, azure, google)
    ctx.write_artifact("release.json", manifest.dumps(release))
    return release
