"""`cib drift` asks Compute Engine whether the images of Google pools and releases exist: the
real adapter against the Google fake (`devclouds.google_server`)."""

from __future__ import annotations

import pytest

from cib_decision import drift, drift_clouds
from cib_decision.devclouds.google_server import GoogleServer
from cib_decision.errors import TransientError
from cib_decision.lifecycle.gc import normalise_id

PROJECT = "example-cib-images"
KEPT = f"projects/{PROJECT}/global/images/ubuntu-2404-aaaaaaaaaaaa"
DELETED = f"projects/{PROJECT}/global/images/ubuntu-2404-bbbbbbbbbbbb"
POOL = "gecko-t/ubuntu-2404-gcp"


@pytest.fixture
def google(monkeypatch):
    with GoogleServer() as server:
        for name, value in server.environ().items():
            monkeypatch.setenv(name, value)
        server.fake.add_image(PROJECT, KEPT.rsplit("/", 1)[1], family="ubuntu-2404")
        yield server.fake


def wanted(*ids: str) -> list[drift_clouds.Wanted]:
    return [drift_clouds.Wanted("google", "us-central1", i) for i in ids]


def test_a_google_pool_running_a_deleted_image_is_told_to_rebuild_its_key(google):
    # a launch config's sourceImage may be the image's full URL
    url = f"https://www.googleapis.com/compute/v1/{KEPT}"
    existing = drift_clouds.existing(wanted(url, DELETED))
    assert existing == {"google": {normalise_id(url)}}
    pool = drift.DeployedPool(POOL, "ubuntu-2404", "google",
                              (("us-central1", url), ("us-east1", DELETED)),
                              frozenset({normalise_id(DELETED)}), frozenset(), ())
    (gone,) = drift.pool_cloud_drift(pool, existing)
    assert (gone.kind, gone.subject) == ("image-gone", POOL)
    assert gone.detail.startswith(f"us-east1 runs {DELETED}, which google no longer has")
    assert gone.fix == drift.rebuild("ubuntu-2404")
    assert [c for c in google.calls if c.startswith("images.")] == ["images.get"] * 2


def test_a_google_image_that_cannot_be_read_fails_the_read(google):
    google.fail("images.get", status=503, reason="backendError", times=5)
    with pytest.raises(TransientError):
        drift_clouds.existing(wanted(KEPT))
