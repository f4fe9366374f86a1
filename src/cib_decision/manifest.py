"""The records image builds leave behind as task artifacts, which pool deploys read (pure).

Two records, both JSON documents with sorted keys:

- a **machine-image record**, `public/machine-image.json`, one per machine-image task: which
  cloud image one target's build made, from which digests, commit and task;
- a **release record**, `public/release.json`, one per key, written by the key's tag task: the
  disk image and every machine image of one build of the key, sealed with `sha256`, the
  SHA-256 of the canonical JSON (`digests.canonical_json`) of the record without its `sha256`
  and `signature` fields. `signature` is reserved for a later signing step and not checked here.

Field names are snake_case, like the rest of cib's JSON output. Times are UTC ISO 8601 with a
`Z` (`2026-11-21T13:00:00Z`). Regions are in canonical spelling (`config.model.normalise_region`)
and platforms as the config spells them (`azure`, `amazon`, `google`). Image ids are what the
cloud calls the image: an AMI id (`ami-...`), an Azure managed image or Compute Gallery image
version resource id (`/subscriptions/.../providers/Microsoft.Compute/images/<name>` or
`.../galleries/<g>/images/<i>/versions/<v>`), a GCP image self link, `projects/<p>/global/images/
<name>` or a bare image name.

Parsing is strict: an unknown field, a missing one or a malformed value is a `RecordError`
(a `CibError`) naming the record and every bad field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config.model import Target, normalise_region
from .config.schemas import PLATFORMS
from .digests import canonical_json
from .errors import CibError
from .naming import image_name

FORMAT = 1
MACHINE_IMAGE_ARTIFACT = "public/machine-image.json"
RELEASE_ARTIFACT = "public/release.json"
UNSEALED_FIELDS = ("sha256", "signature")

_DIGEST = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Taskcluster task ids are v4 "nice" slugids (the queue's own pattern).
_TASK_ID = re.compile(
    r"[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]")
_AZURE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
    r"(?:images/[^/]+|galleries/[^/]+/images/[^/]+/versions/[^/]+)", re.IGNORECASE)
IMAGE_ID_PATTERNS = {
    "amazon": re.compile(r"ami-[0-9a-f]{8,17}"),
    "azure": _AZURE_ID,
    "google": re.compile(r"(?:(?:https://(?:www|compute)\.googleapis\.com/compute/v1/)?"
                         r"projects/[a-z][-a-z0-9.:]*/global/images/)?[a-z]([-a-z0-9]*[a-z0-9])?"),
}


class RecordError(CibError):
    """A machine-image or release record that is malformed or fails verification."""


def format_time(moment: datetime) -> str:
    """`moment` as UTC ISO 8601 with a `Z`, to the second (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a time zone (`Z` or an offset); ValueError otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class ReleaseImage:
    """One machine image of a release: where it is, what the cloud calls it, what made it."""

    platform: str
    region: str
    target: str
    id: str
    name: str
    machine_digest: str
    build_task_id: str
    # What its build's validation rules said (`MachineImageRecord.validation`), and its smoke
    # tests' outcome (`ImageTestRecord.summary()`); None where none ran.
    validation: dict[str, Any] | None = None
    tests: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"platform": self.platform, "region": self.region, "target": self.target,
                "id": self.id, "name": self.name, "machine_digest": self.machine_digest,
                "build_task_id": self.build_task_id}
        if self.validation is not None:
            data["validation"] = self.validation
        if self.tests is not None:
            data["tests"] = self.tests
        return data


@dataclass(frozen=True)
class MachineImageRecord:
    """`public/machine-image.json`: the image one machine-image task made."""

    key: str
    target: str
    platform: str
    region: str
    image_id: str
    image_name: str
    machine_digest: str
    disk_digest: str
    config_commit: str
    build_task_id: str
    created: str
    format: int = FORMAT
    # Copies of the image in other regions (AWS `copies`), `((region, image id), ...)`.
    copies: tuple[tuple[str, str], ...] = ()
    # Seconds from starting each copy the build made until the builder saw it available,
    # `((region, seconds), ...)` (`cib stats` reads them); reused copies have none.
    copy_seconds: tuple[tuple[str, float], ...] = ()
    # The validation rules its builder was checked against (images/validation.py `record`);
    # None when the key has none, or the image was reused (it passed them when built).
    validation: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"format": self.format, "key": self.key, "target": self.target,
                "platform": self.platform, "region": self.region, "image_id": self.image_id,
                "image_name": self.image_name, "machine_digest": self.machine_digest,
                "disk_digest": self.disk_digest, "config_commit": self.config_commit,
                "build_task_id": self.build_task_id, "created": self.created}
        if self.copies:
            data["copies"] = dict(self.copies)
        if self.copy_seconds:
            data["copy_seconds"] = dict(self.copy_seconds)
        if self.validation is not None:
            data["validation"] = self.validation
        return data

    def image(self, tests: dict[str, Any] | None = None) -> ReleaseImage:
        """This image as an entry of a release (with its smoke tests' outcome, `tests`)."""
        return ReleaseImage(self.platform, self.region, self.target, self.image_id,
                            self.image_name, self.machine_digest, self.build_task_id,
                            self.validation, tests)

    def images(self, tests: dict[str, Any] | None = None) -> tuple[ReleaseImage, ...]:
        """This image and each copy as entries of a release; a copy's target is named
        `<platform>/<region>` of the copy (a copy is the same image: its checks too)."""
        return (self.image(tests), *(ReleaseImage(
            self.platform, region, f"{self.platform}/{region}", image_id, self.image_name,
            self.machine_digest, self.build_task_id, self.validation, tests)
            for region, image_id in self.copies))


@dataclass(frozen=True)
class Release:
    """`public/release.json`: one build of a key, sealed by `sha256`."""

    key: str
    disk_digest: str
    disk_sha256: str | None
    config_commit: str
    created: str
    images: tuple[ReleaseImage, ...]
    sha256: str
    signature: str | None = None
    format: int = FORMAT

    def body(self) -> dict[str, Any]:
        """The sealed part: everything but `sha256` and `signature`."""
        return {"format": self.format, "key": self.key, "disk_digest": self.disk_digest,
                "disk_sha256": self.disk_sha256, "config_commit": self.config_commit,
                "created": self.created, "images": [i.to_json() for i in self.images]}

    def to_json(self) -> dict[str, Any]:
        data = {**self.body(), "sha256": self.sha256}
        if self.signature is not None:
            data["signature"] = self.signature
        return data


def machine_image_record(key: str, target: Target, *, image_id: str, machine_digest: str,
                         disk_digest: str, config_commit: str, build_task_id: str,
                         created: datetime, pull_request: int | None = None
                         ) -> MachineImageRecord:
    """The record of the image built for `target` of `key`; the image name comes from
    `naming.image_name` (pull-request builds get their `-pr<N>` name). Checked like a parsed
    record, so a builder cannot write one that a pool deploy would refuse."""
    record = MachineImageRecord(
        key=key, target=target.id, platform=target.platform,
        region=normalise_region(target.region), image_id=image_id,
        image_name=image_name(key, machine_digest, pull_request=pull_request),
        machine_digest=machine_digest, disk_digest=disk_digest, config_commit=config_commit,
        build_task_id=build_task_id, created=format_time(created))
    return parse_machine_image(record.to_json(), f"machine-image record of {target.id}")


def release_sha256(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a release without its unsealed fields."""
    sealed = {name: value for name, value in body.items() if name not in UNSEALED_FIELDS}
    return hashlib.sha256(canonical_json(sealed)).hexdigest()


def release_record(key: str, *, disk_digest: str, disk_sha256: str | None, config_commit: str,
                   created: datetime, images: Iterable[MachineImageRecord | ReleaseImage]
                   ) -> Release:
    """The sealed release of one build of `key` (images sorted by target). `disk_sha256` is
    None for keys without a disk image (built from a cloud's base image)."""
    entries = tuple(sorted((e for i in images for e in (
        i.images() if isinstance(i, MachineImageRecord) else (i,))), key=lambda i: i.target))
    unsealed = Release(key, disk_digest, disk_sha256, config_commit, format_time(created),
                       entries, sha256="")
    body = unsealed.body()
    return parse_release({**body, "sha256": release_sha256(body)}, f"release record of {key}")


def smoke_test_problems(release: Release, *, required: bool = True) -> list[str]:
    """Why a release may not be deployed for its smoke tests: each image whose tests failed,
    and with `required` (the key has tests) each image on which none ran. None: it may."""
    problems = []
    for image in release.images:
        if image.tests is None:
            if not required:
                continue
            problems.append(f"{image.target}: no smoke tests ran on {image.id}")
        elif not image.tests["passed"]:
            failed = [r["name"] for r in image.tests["results"] if not r["passed"]]
            problems.append(f"{image.target}: smoke tests {', '.join(failed)} failed on "
                            f"{image.id} (task {image.tests['task_id']})")
    return problems


def dumps(record: MachineImageRecord | Release | ImageTestRecord) -> str:
    """The artifact's content: indented JSON with sorted keys and a final newline."""
    return json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"


def verify(release: Release) -> Release:
    """`release` when its `sha256` matches its content; RecordError otherwise."""
    actual = release_sha256(release.body())
    if actual != release.sha256:
        raise RecordError(f"release record of {release.key} fails verification: it says sha256 "
                          f"{release.sha256} but its content hashes to {actual}; refusing it")
    return release


# --- parsing --------------------------------------------------------------------------------


class _Reader:
    """Reads the fields of one JSON object, collecting every problem before raising."""

    def __init__(self, data: Any, source: str, fields: tuple[str, ...],
                 optional: tuple[str, ...] = ()):
        self.source, self.problems = source, []
        self.data = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            self.problems.append(f"is {_type_name(data)}, not an object")
            return
        for name in sorted(set(data) - set(fields) - set(optional)):
            self.problems.append(f"{name}: unknown field")
        for name in fields:
            if name not in data:
                self.problems.append(f"{name}: missing")

    def get(self, name: str, check: Callable[[Any], str | None], *, nullable: bool = False
            ) -> Any:
        """The field's value, or a problem (`check` returns what is wrong, or None)."""
        if name not in self.data:
            return None
        value = self.data[name]
        if value is None and nullable:
            return None
        problem = check(value)
        if problem:
            self.problems.append(f"{name}: {problem}")
        return value

    def done(self) -> None:
        if self.problems:
            raise RecordError("\n".join([f"{self.source} is malformed:",
                                         *(f"  {p}" for p in self.problems)]))


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _string(pattern: re.Pattern[str] | None = None, what: str = "") -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return f"must be a non-empty string, not {_type_name(value)}"
        if pattern is not None and not pattern.fullmatch(value):
            return f"{value!r} is not {what}"
        return None
    return check


_DIGEST_CHECK = _string(_DIGEST, "a SHA-256 (64 lower-case hex digits)")
_COMMIT_CHECK = _string(_COMMIT, "a git commit id (40 or 64 lower-case hex digits)")
_TASK_CHECK = _string(_TASK_ID, "a Taskcluster task id")


def _platform(value: Any) -> str | None:
    return None if value in PLATFORMS else f"{value!r} is not one of {', '.join(PLATFORMS)}"


def _region(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, not {_type_name(value)}"
    spelled = normalise_region(value)
    return None if spelled == value else f"{value!r} is not in canonical spelling ({spelled!r})"


def _time(value: Any) -> str | None:
    try:
        parse_time(value)
    except (TypeError, ValueError):
        return f"{value!r} is not an ISO 8601 time with a time zone"
    return None


def _format(value: Any) -> str | None:
    return None if value == FORMAT and type(value) is int else (
        f"{value!r} is not a format this cib reads ({FORMAT})")


def _check_image(reader: _Reader, values: dict[str, Any], id_field: str, name_field: str
                 ) -> None:
    """Cross-field checks: the target is on the platform and region, the id has the
    platform's form and the name carries the machine digest (`naming.image_name`)."""
    platform, region, target = values["platform"], values["region"], values["target"]
    image_id, name, digest = values[id_field], values[name_field], values["machine_digest"]
    if not all(isinstance(v, str) for v in (platform, region, target, image_id, name, digest)):
        return
    parts = target.split("/")
    if len(parts) < 2 or parts[0] != platform or parts[1] != region:
        reader.problems.append(f"target: {target!r} is not on {platform}/{region}")
    pattern = IMAGE_ID_PATTERNS.get(platform)
    if pattern is not None and not pattern.fullmatch(image_id):
        reader.problems.append(f"{id_field}: {image_id!r} is not an image id on {platform}")
    if _DIGEST.fullmatch(digest) and not name.endswith(f"-{digest[:12]}"):
        reader.problems.append(f"{name_field}: {name!r} is not named for machine digest "
                               f"{digest[:12]}")


MACHINE_IMAGE_FIELDS = ("format", "key", "target", "platform", "region", "image_id",
                        "image_name", "machine_digest", "disk_digest", "config_commit",
                        "build_task_id", "created")
RELEASE_FIELDS = ("format", "key", "disk_digest", "disk_sha256", "config_commit", "created",
                  "images", "sha256")
IMAGE_FIELDS = ("platform", "region", "target", "id", "name", "machine_digest",
                "build_task_id")


def parse_machine_image(data: Any, source: str = MACHINE_IMAGE_ARTIFACT) -> MachineImageRecord:
    """A machine-image record from its parsed JSON; RecordError naming each bad field."""
    r = _Reader(data, source, MACHINE_IMAGE_FIELDS,
                optional=("copies", "copy_seconds", "validation"))
    values = {
        "format": r.get("format", _format), "key": r.get("key", _string()),
        "target": r.get("target", _string()), "platform": r.get("platform", _platform),
        "region": r.get("region", _region), "image_id": r.get("image_id", _string()),
        "image_name": r.get("image_name", _string()),
        "machine_digest": r.get("machine_digest", _DIGEST_CHECK),
        "disk_digest": r.get("disk_digest", _DIGEST_CHECK),
        "config_commit": r.get("config_commit", _COMMIT_CHECK),
        "build_task_id": r.get("build_task_id", _TASK_CHECK), "created": r.get("created", _time),
    }
    _check_image(r, values, "image_id", "image_name")
    copies = _copies(r, data.get("copies", {}) if isinstance(data, dict) else {},
                     values["platform"], values["region"])
    seconds = _copy_seconds(r, data.get("copy_seconds", {}) if isinstance(data, dict) else {},
                            dict(copies))
    validation = r.get("validation", _validation)
    r.done()
    return MachineImageRecord(**values, copies=copies, copy_seconds=seconds,
                              validation=validation)


def _copies(r: _Reader, data: Any, platform: Any, region: Any) -> tuple[tuple[str, str], ...]:
    """The `copies` of a machine-image record: `{region: image id}` in other regions."""
    if not isinstance(data, dict):
        r.problems.append("copies: must be an object of region: image id")
        return ()
    pattern = IMAGE_ID_PATTERNS.get(platform) if isinstance(platform, str) else None
    for copy_region, image_id in sorted(data.items()):
        problem = _region(copy_region) or (None if copy_region != region else
                                           "is the image's own region")
        if problem:
            r.problems.append(f"copies: {copy_region!r}: {problem}")
        if not isinstance(image_id, str) or (pattern and not pattern.fullmatch(image_id)):
            r.problems.append(f"copies.{copy_region}: {image_id!r} is not an image id on "
                              f"{platform}")
    return tuple(sorted(data.items()))


def _copy_seconds(r: _Reader, data: Any, copies: dict[str, str]
                  ) -> tuple[tuple[str, float], ...]:
    """The `copy_seconds` of a machine-image record: `{region: seconds}` of its copies."""
    if not isinstance(data, dict):
        r.problems.append("copy_seconds: must be an object of region: seconds")
        return ()
    for region, seconds in sorted(data.items()):
        if region not in copies:
            r.problems.append(f"copy_seconds: {region!r} is not a region of its copies")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            r.problems.append(f"copy_seconds.{region}: {seconds!r} is not a number of seconds")
    return tuple(sorted(data.items()))


def _validation(value: Any) -> str | None:
    """`{rules: [{program, match, lines, passed}], log_sha256, sources: [...]}`."""
    if not isinstance(value, dict) or set(value) != {"rules", "log_sha256", "sources"}:
        return "must be an object of rules, log_sha256 and sources"
    rules = value["rules"]
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and set(r) == {"program", "match", "lines", "passed"}
            and isinstance(r["passed"], bool) and type(r["lines"]) is int for r in rules):
        return "rules: must be a list of {program, match, lines, passed}"
    return _DIGEST_CHECK(value["log_sha256"]) or (
        None if isinstance(value["sources"], list) else "sources: must be a list")


def _tests(value: Any) -> str | None:
    """`{passed, tests_digest, task_id, results: [{name, passed, exit_code, output_sha256}]}`."""
    fields = {"passed", "tests_digest", "task_id", "results"}
    if not isinstance(value, dict) or set(value) != fields:
        return f"must be an object of {', '.join(sorted(fields))}"
    if not isinstance(value["passed"], bool):
        return "passed: must be a boolean"
    results = value["results"]
    if not isinstance(results, list) or not all(
            isinstance(t, dict) and set(t) == set(TEST_RESULT_FIELDS)
            and isinstance(t["passed"], bool) for t in results):
        return f"results: must be a list of {{{', '.join(TEST_RESULT_FIELDS)}}}"
    return _DIGEST_CHECK(value["tests_digest"]) or _TASK_CHECK(value["task_id"])


def with_validation(record: MachineImageRecord, validation: dict[str, Any]
                    ) -> MachineImageRecord:
    """`record` with what its builder's validation rules said, checked like a parsed one."""
    return parse_machine_image({**record.to_json(), "validation": validation},
                               f"machine-image record of {record.target}")


def with_copies(record: MachineImageRecord, copies: dict[str, str],
                seconds: dict[str, float] | None = None) -> MachineImageRecord:
    """`record` with copies of its image in other regions (and how long each copy the build
    made took, `seconds`), checked like a parsed record."""
    data = {**record.to_json(), "copies": dict(copies)}
    if seconds:
        data["copy_seconds"] = {region: round(s, 1) for region, s in seconds.items()}
    return parse_machine_image(data, f"machine-image record of {record.target}")


def parse_release(data: Any, source: str = RELEASE_ARTIFACT) -> Release:
    """A release record from its parsed JSON (not verified: see `verify`); RecordError
    naming each bad field."""
    r = _Reader(data, source, RELEASE_FIELDS, optional=("signature",))
    values = {
        "format": r.get("format", _format), "key": r.get("key", _string()),
        "disk_digest": r.get("disk_digest", _DIGEST_CHECK),
        "disk_sha256": r.get("disk_sha256", _DIGEST_CHECK, nullable=True),
        "config_commit": r.get("config_commit", _COMMIT_CHECK),
        "created": r.get("created", _time), "sha256": r.get("sha256", _DIGEST_CHECK),
        "signature": r.get("signature", _string(), nullable=True),
    }
    images = r.get("images", lambda v: None if isinstance(v, list) and v else
                   "must be a non-empty list")
    entries = []
    for index, item in enumerate(images if isinstance(images, list) else ()):
        entries.append(_parse_image(r, f"images[{index}].", item))
    targets = [e.target for e in entries]
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        r.problems.append(f"images: target {target!r} appears more than once")
    r.done()
    return Release(images=tuple(entries), **values)


def _parse_image(r: _Reader, prefix: str, item: Any) -> ReleaseImage:
    inner = _Reader(item, "", IMAGE_FIELDS, optional=("validation", "tests"))
    values = {
        "platform": inner.get("platform", _platform), "region": inner.get("region", _region),
        "target": inner.get("target", _string()), "id": inner.get("id", _string()),
        "name": inner.get("name", _string()),
        "machine_digest": inner.get("machine_digest", _DIGEST_CHECK),
        "build_task_id": inner.get("build_task_id", _TASK_CHECK),
        "validation": inner.get("validation", _validation),
        "tests": inner.get("tests", _tests),
    }
    _check_image(inner, values, "id", "name")
    r.problems.extend(f"{prefix}{p}" for p in inner.problems)
    return ReleaseImage(**values)


def loads(text: str | bytes, source: str) -> MachineImageRecord | Release:
    """A record from an artifact's text: a release when it has `images`, else a machine-image
    record. Not verified: call `verify` on a release."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{source} is not JSON: {exc}") from None
    if isinstance(data, dict) and "images" in data:
        return parse_release(data, source)
    return parse_machine_image(data, source)


# --- disk-image records (added for `cib image disk`) ---------------------------------------

DISK_IMAGE_ARTIFACT = "public/disk-image.json"
DISK_IMAGE_FIELDS = ("format", "key", "name", "platform", "region", "location", "image_format",
                     "size", "sha256", "disk_digest", "config_commit", "build_task_id",
                     "created")
_LOCATION = re.compile(r"(?:s3://[^/\s]+/\S+|https://\S+)")


@dataclass(frozen=True)
class DiskImageRecord:
    """`public/disk-image.json`: the disk image one disk-image task uploaded. `location` is
    `s3://<bucket>/<object>` (in `region`) or an https URL (an Azure blob); `sha256` and `size`
    are those of the uploaded file, `image_format` its format (`raw`, `vhd`, ...)."""

    key: str
    name: str
    platform: str
    region: str
    location: str
    image_format: str
    size: int
    sha256: str
    disk_digest: str
    config_commit: str
    build_task_id: str
    created: str
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "key": self.key, "name": self.name,
                "platform": self.platform, "region": self.region, "location": self.location,
                "image_format": self.image_format, "size": self.size, "sha256": self.sha256,
                "disk_digest": self.disk_digest, "config_commit": self.config_commit,
                "build_task_id": self.build_task_id, "created": self.created}


def disk_image_record(key: str, *, platform: str, region: str, location: str,
                      image_format: str, size: int, sha256: str, disk_digest: str,
                      config_commit: str, build_task_id: str, created: datetime,
                      pull_request: int | None = None) -> DiskImageRecord:
    """The record of the disk image of `key`, named by `naming.image_name` (kind `disk`) and
    checked like a parsed record."""
    record = DiskImageRecord(
        key=key, name=image_name(key, disk_digest, kind="disk", pull_request=pull_request),
        platform=platform, region=normalise_region(region), location=location,
        image_format=image_format, size=size, sha256=sha256, disk_digest=disk_digest,
        config_commit=config_commit, build_task_id=build_task_id, created=format_time(created))
    return parse_disk_image(record.to_json(), f"disk-image record of {key}")


def _size(value: Any) -> str | None:
    return None if type(value) is int and value > 0 else f"{value!r} is not a size in bytes"


def parse_disk_image(data: Any, source: str = DISK_IMAGE_ARTIFACT) -> DiskImageRecord:
    """A disk-image record from its parsed JSON; RecordError naming each bad field."""
    r = _Reader(data, source, DISK_IMAGE_FIELDS)
    values = {
        "format": r.get("format", _format), "key": r.get("key", _string()),
        "name": r.get("name", _string()), "platform": r.get("platform", _platform),
        "region": r.get("region", _region),
        "location": r.get("location", _string(_LOCATION, "an s3:// or https:// location")),
        "image_format": r.get("image_format", _string()), "size": r.get("size", _size),
        "sha256": r.get("sha256", _DIGEST_CHECK),
        "disk_digest": r.get("disk_digest", _DIGEST_CHECK),
        "config_commit": r.get("config_commit", _COMMIT_CHECK),
        "build_task_id": r.get("build_task_id", _TASK_CHECK), "created": r.get("created", _time),
    }
    name, digest = values["name"], values["disk_digest"]
    if (isinstance(name, str) and isinstance(digest, str) and _DIGEST.fullmatch(digest)
            and not name.endswith(f"-{digest[:12]}")):
        r.problems.append(f"name: {name!r} is not named for disk digest {digest[:12]}")
    r.done()
    return DiskImageRecord(**values)


# --- image-test records (`cib image test`) -------------------------------------------------

IMAGE_TEST_ARTIFACT = "public/image-test.json"
TEST_RESULT_FIELDS = ("name", "passed", "exit_code", "output_sha256")
IMAGE_TEST_FIELDS = ("format", "key", "target", "image_id", "machine_digest", "tests_digest",
                     "passed", "results", "test_task_id", "created")


@dataclass(frozen=True)
class ImageTestRecord:
    """`public/image-test.json`: the smoke tests one test-image task ran on one machine image
    (`image_id`, built for `target` at `machine_digest`): the digest of the tests as they ran
    (`digests.tests_digest`), each test's outcome and output digest, and whether all passed."""

    key: str
    target: str
    image_id: str
    machine_digest: str
    tests_digest: str
    passed: bool
    results: tuple[dict[str, Any], ...]
    test_task_id: str
    created: str
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "key": self.key, "target": self.target,
                "image_id": self.image_id, "machine_digest": self.machine_digest,
                "tests_digest": self.tests_digest, "passed": self.passed,
                "results": [dict(r) for r in self.results], "test_task_id": self.test_task_id,
                "created": self.created}

    def summary(self) -> dict[str, Any]:
        """What a release's image entry says of its tests (`ReleaseImage.tests`)."""
        return {"passed": self.passed, "tests_digest": self.tests_digest,
                "task_id": self.test_task_id, "results": [dict(r) for r in self.results]}


def image_test_record(record: MachineImageRecord, *, tests_digest: str,
                      results: Iterable[dict[str, Any]], test_task_id: str, created: datetime
                      ) -> ImageTestRecord:
    """The record of a test run on the image of `record`, checked like a parsed one."""
    listed = tuple(results)
    data = {"format": FORMAT, "key": record.key, "target": record.target,
            "image_id": record.image_id, "machine_digest": record.machine_digest,
            "tests_digest": tests_digest, "passed": all(r["passed"] for r in listed),
            "results": list(listed), "test_task_id": test_task_id,
            "created": format_time(created)}
    return parse_image_test(data, f"image-test record of {record.target}")


def parse_image_test(data: Any, source: str = IMAGE_TEST_ARTIFACT) -> ImageTestRecord:
    """An image-test record from its parsed JSON; RecordError naming each bad field."""
    r = _Reader(data, source, IMAGE_TEST_FIELDS)
    values = {
        "format": r.get("format", _format), "key": r.get("key", _string()),
        "target": r.get("target", _string()), "image_id": r.get("image_id", _string()),
        "machine_digest": r.get("machine_digest", _DIGEST_CHECK),
        "tests_digest": r.get("tests_digest", _DIGEST_CHECK),
        "passed": r.get("passed", lambda v: None if isinstance(v, bool)
                        else "must be a boolean"),
        "test_task_id": r.get("test_task_id", _TASK_CHECK), "created": r.get("created", _time),
    }
    results = r.get("results", lambda v: None if isinstance(v, list) and all(
        isinstance(t, dict) and set(t) == set(TEST_RESULT_FIELDS)
        and isinstance(t["passed"], bool) for t in v)
        else f"must be a list of {{{', '.join(TEST_RESULT_FIELDS)}}}")
    if isinstance(results, list) and isinstance(values["passed"], bool) and \
            values["passed"] != all(t.get("passed") for t in results if isinstance(t, dict)):
        r.problems.append("passed: does not say whether every result passed")
    r.done()
    return ImageTestRecord(results=tuple(results or ()), **values)
