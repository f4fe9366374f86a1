"""Fixtures of the Google life-cycle tests (test helper): one Compute fake served for the module
(`devclouds.google_server`), a fresh fake per test, and the environment that points
`Google.from_environment` at it, so `cib promote`, `cib purge` and `cib gc` talk to it through
google-cloud-compute exactly as they would to Google."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cib_decision.devclouds.google_fake import GoogleFake
from cib_decision.devclouds.google_server import GoogleServer

STAGING_PROJECT = "example-cib-images"  # the bundled ubuntu-2404 Google target's project
PRODUCTION_PROJECT = "example-cib-images-production"  # production's `google.project`
ZONE = "us-central1-a"


@pytest.fixture(scope="module")
def google_fake_server():
    with GoogleServer() as served:
        yield served


@pytest.fixture
def google_fake(google_fake_server, monkeypatch):
    """A fresh fake (operations done at their first read: no wait sleeps) behind the module's
    server, and the process environment pointing the adapter at it."""
    fresh = GoogleFake(url=google_fake_server.url, operation_polls=0, run_polls=0,
                       check_tokens=True,
                       service_accounts=google_fake_server.fake.service_accounts)
    google_fake_server.fake = fresh
    for name, value in google_fake_server.environ().items():
        monkeypatch.setenv(name, value)
    return fresh


def timestamp(days_old: float) -> str:
    """A Compute `creationTimestamp` `days_old` days ago."""
    return (datetime.now(UTC) - timedelta(days=days_old)).isoformat(timespec="milliseconds")


def writes(fake: GoogleFake) -> list[str]:
    """The Compute calls that change something, in order."""
    return [c for c in fake.calls if not c.endswith((".get", ".list", ".getFromFamily",
                                                     ".getSerialPortOutput", ".wait"))]
