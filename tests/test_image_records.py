"""The disk-image record and the progress lines image builds write."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from cib_decision import manifest
from cib_decision.errors import BuildError
from cib_decision.images.progress import Progress, WaitTimeout, duration
from cib_decision.manifest import RecordError

DIGEST = "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK = "fN1SbArXTPSVFNUvaOlinQ"


def disk_record(**overrides):
    arguments = {"platform": "amazon", "region": "us-east-1",
                 "location": "s3://bucket/ubuntu-2404-disk-abababababab.raw",
                 "image_format": "raw", "size": 4096, "sha256": "cd" * 32,
                 "disk_digest": DIGEST, "config_commit": COMMIT, "build_task_id": TASK,
                 "created": datetime(2026, 11, 21, tzinfo=UTC), **overrides}
    return manifest.disk_image_record("ubuntu-2404", **arguments)


def test_a_disk_image_record_is_named_for_its_disk_digest_and_round_trips():
    record = disk_record()
    assert record.name == "ubuntu-2404-disk-abababababab"
    again = manifest.parse_disk_image(json.loads(manifest.dumps(record)))
    assert again == record


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"size": 0}, "size: 0 is not a size in bytes"),
    ({"location": "/tmp/x.raw"}, "is not an s3:// or https:// location"),
    ({"sha256": "xyz"}, "sha256: 'xyz' is not a SHA-256"),
])
def test_a_bad_disk_image_record_is_refused_naming_the_field(overrides, problem):
    with pytest.raises(RecordError, match=problem):
        disk_record(**overrides)


class Clock:
    """A clock that advances only when slept on."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_wait_prints_one_line_per_state_change_with_elapsed_time():
    clock, out = Clock(), io.StringIO()
    states = iter(["pending"] * 3 + ["running"] * 5 + ["stopped"])
    progress = Progress(out, clock=clock, sleep=clock.sleep)
    assert progress.wait("instance i-1 to stop", lambda: next(states), done={"stopped"},
                         timeout=600, interval=10) == "stopped"
    lines = out.getvalue().splitlines()
    assert lines == ["[       0s] waiting for instance i-1 to stop (at most 10m00s)",
                     "[       0s]   instance i-1 to stop: pending after 0s",
                     "[      30s]   instance i-1 to stop: pending -> running after 30s",
                     "[    1m20s]   instance i-1 to stop: running -> stopped after 1m20s"]


def test_a_wait_times_out_naming_what_and_the_last_state():
    clock = Clock()
    progress = Progress(io.StringIO(), clock=clock, sleep=clock.sleep)
    with pytest.raises(WaitTimeout, match=r"timed out after 1m00s waiting for x; last state: "
                                          r"running"):
        progress.wait("x", lambda: "running", done={"stopped"}, timeout=60, interval=15)
    assert clock.now == 60


def test_a_failed_state_ends_the_wait_at_once():
    clock = Clock()
    progress = Progress(io.StringIO(), clock=clock, sleep=clock.sleep)
    with pytest.raises(BuildError, match="image ami-1: state failed after 0s"):
        progress.wait("image ami-1", lambda: "failed", done={"available"}, failed={"failed"},
                      timeout=60)


def test_durations_read_like_a_clock():
    assert [duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m05s"]
