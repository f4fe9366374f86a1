"""The images a deploy is given: release and machine-image records, read from the artifacts of
the deploy task's dependencies, verified, and (for a key with smoke tests) only releases whose
images passed them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..errors import CibError
from ..manifest import (
    MACHINE_IMAGE_ARTIFACT,
    RELEASE_ARTIFACT,
    MachineImageRecord,
    Release,
    ReleaseImage,
    parse_machine_image,
    parse_release,
    parse_time,
    smoke_test_problems,
    verify,
)
from ..tc import Queue, call, read_artifact
from .definition import Log, PoolError

Record = Release | MachineImageRecord


def parse_record(data: Any, source: str) -> Record:
    """A release record (it has `images`) or a machine-image record, parsed strictly."""
    if isinstance(data, dict) and "images" in data:
        return parse_release(data, source)
    return parse_machine_image(data, source)


def collect_images(records: Iterable[Record], key: str, log: Log) -> list[ReleaseImage]:
    """The images of `key` in `records`. Every release must verify (RecordError otherwise: a
    deploy never runs an image from a record that fails its seal); records of other keys are
    skipped. A machine-image record gives its image and its copies in other regions. Per
    target, a release's image wins over a machine-image record's, and of two the newer
    (`created`) wins."""
    ranked: dict[str, tuple[tuple[int, datetime], ReleaseImage]] = {}
    for record in records:
        if record.key != key:
            log(f"skipping a record of key {record.key}: the pool runs images of {key}")
            continue
        if isinstance(record, Release):
            verify(record)
            entries, rank = record.images, (1, parse_time(record.created))
        else:
            entries, rank = record.images(), (0, parse_time(record.created))
        for image in entries:
            if image.target not in ranked or ranked[image.target][0] < rank:
                ranked[image.target] = (rank, image)
    return [image for _, image in sorted(ranked.values(), key=lambda r: r[1].target)]


class UntestedImages(CibError):
    """A key with smoke tests whose records hold no release that passed them: nothing is
    deployed (exit 3), the pool keeps its images."""

    exit_code = 3


def tested_records(records: Iterable[Record], key: str, log: Log) -> list[Record]:
    """For a key with smoke tests: the records a pool may deploy, which are its releases
    whose every image passed them. Machine-image records (no test ran on them as far as they
    say) and releases with failed or missing tests are named and left out; records of other
    keys pass untouched. UntestedImages when `records` had images of `key` and none may be
    deployed."""
    kept, refused = [], []
    for record in records:
        if record.key != key:
            kept.append(record)
        elif isinstance(record, Release):
            problems = smoke_test_problems(record)
            if problems:
                refused.append(f"release {record.sha256[:12]}: {'; '.join(problems)}")
            else:
                kept.append(record)
        else:
            refused.append(f"{record.image_id} ({record.target}): a build's record; a tested "
                           "key's images are deployed from their release only")
    for reason in refused:
        log(f"not deploying {reason}")
    if refused and not any(r.key == key for r in kept):
        raise UntestedImages(f"{key} has smoke tests and none of its images given here "
                             f"passed them ({len(refused)} refused, named above): nothing is "
                             "deployed, the pool keeps its images")
    return kept


def dependency_records(queue: Queue, task_id: str, log: Log) -> tuple[list[Record], str]:
    """The records the dependencies of task `task_id` left (`public/release.json`, else
    `public/machine-image.json`; a dependency with neither, such as the decision task or a
    failed build, gives none), and the task's `created` time."""
    sources, created = dependency_record_sources(queue, task_id, log)
    return [record for _, record in sources], created


def dependency_tasks(queue: Queue, task_id: str, kind: str
                     ) -> dict[str, tuple[dict[str, Any], str]]:
    """The definition and state of each dependency of task `task_id` of `kind` (its
    `tags.kind`, as taskgraph tags every task), by task id."""
    def read() -> dict[str, tuple[dict[str, Any], str]]:
        dependencies = queue.task(task_id).get("dependencies") or ()
        definitions = {d: queue.task(d) for d in dependencies}
        return {d: (definition, queue.status(d)["status"]["state"])
                for d, definition in definitions.items()
                if (definition.get("tags") or {}).get("kind") == kind}

    return call("queue", f"give the dependencies of task {task_id}", read, refused=PoolError)


def dependency_states(queue: Queue, task_id: str, kind: str) -> dict[str, str]:
    """The state of each dependency of task `task_id` of `kind`, by task id."""
    return {d: state for d, (_, state) in dependency_tasks(queue, task_id, kind).items()}


def dependency_record_sources(queue: Queue, task_id: str, log: Log
                              ) -> tuple[list[tuple[str, Record]], str]:
    """As `dependency_records`, each record with the id of the task that left it (what a
    release pointer names)."""
    task = call("queue", f"give the definition of task {task_id}", lambda: queue.task(task_id),
                refused=PoolError)
    records: list[tuple[str, Record]] = []
    for dependency in task.get("dependencies") or ():
        for name in (RELEASE_ARTIFACT, MACHINE_IMAGE_ARTIFACT):
            data = read_artifact(queue, dependency, name, refused=PoolError)
            if data is not None:
                records.append((dependency, parse_record(data, f"task {dependency} {name}")))
                log(f"read {name} of task {dependency}")
                break
        else:
            log(f"task {dependency} left no image record")
    return records, task["created"]
