"""The Compute fake (devclouds.google_fake on google_server) in Google's shapes, through the
real client library where cib uses it (clouds.google) and over plain HTTP where the shape itself
is the point; and the clouds secret's Google fields (cloudcreds)."""

from __future__ import annotations

import json

import pytest
import requests

from cib_decision import cloudcreds
from cib_decision.clouds.google import Google
from cib_decision.devclouds.google_fake import GoogleFake, matches_filter
from cib_decision.devclouds.google_server import GoogleServer
from cib_decision.errors import BuildError, CibError, TransientError

P = "example-cib-images"


@pytest.fixture(scope="module")
def server():
    with GoogleServer() as served:
        yield served


@pytest.fixture
def fake(server):
    server.fake = GoogleFake(url=server.url, operation_polls=1, check_tokens=True,
                             service_accounts=server.fake.service_accounts)
    return server.fake


@pytest.fixture
def google(server):
    return Google.from_environment(server.environ())


def source(name="base"):
    return {"name": name, "sourceImage": f"projects/{P}/global/images/seed"}


def test_an_operation_is_pending_then_running_then_done_and_the_change_lands_when_done(
        fake, google):
    fake.add_image(P, "seed")
    operation = google.insert_image(P, source("new"))
    assert fake.images[(P, "new")]["status"] == "PENDING"
    assert [google.operation_state(operation) for _ in range(3)] == ["RUNNING", "DONE", "DONE"]
    assert google.image(P, "new")["status"] == "READY"


def test_wait_finishes_an_operation_at_once(fake, server, google):
    fake.add_image(P, "seed")
    operation = google.insert_image(P, source("new"))
    answer = requests.post(f"{server.url}/compute/v1/projects/{P}/global/operations/"
                           f"{operation.name}/wait", headers=_auth(google), timeout=10).json()
    assert answer["status"] == "DONE" and answer["kind"] == "compute#operation"


def test_listings_page_with_next_page_tokens_and_the_adapter_reads_every_page(
        fake, server, google):
    for index in range(7):
        fake.add_image(P, f"image-{index}", labels={"cib-key": "a" if index % 2 else "b"})
    fake.page_size = 3
    first = requests.get(f"{server.url}/compute/v1/projects/{P}/global/images",
                         headers=_auth(google), timeout=10).json()
    assert len(first["items"]) == 3 and first["nextPageToken"]
    assert len(google.images(P)) == 7
    assert [i["name"] for i in google.images_labelled(P, {"cib-key": "a"})] == [
        "image-1", "image-3", "image-5"]
    assert fake.calls.count("images.list") >= 1 + 3


def test_filters_match_labels_names_and_presence():
    image = {"name": "x", "status": "READY", "labels": {"cib-key": "k"}}
    assert matches_filter(image, '(labels.cib-key = "k") AND (status = READY)')
    assert not matches_filter(image, 'labels.cib-key = "other"')
    assert matches_filter(image, "labels.cib-key:*") and not matches_filter(image, "family:*")
    assert matches_filter(image, 'name != "y"')


def test_the_family_gives_its_newest_image_that_is_not_deprecated(fake, google):
    fake.add_image(P, "old", family="f", created="2026-01-01T00:00:00.000+00:00")
    fake.add_image(P, "newer", family="f", created="2026-02-01T00:00:00.000+00:00",
                   deprecated="DEPRECATED")
    fake.add_image(P, "mid", family="f", created="2026-01-15T00:00:00.000+00:00")
    assert google.image_from_family(P, "f")["name"] == "mid"
    assert google.image_from_family(P, "none") is None


def test_set_labels_needs_the_current_fingerprint(fake, google):
    fake.add_image(P, "x", labels={"a": "1"})
    image = google.image(P, "x")
    with pytest.raises(BuildError, match="412 conditionNotMet"):
        google.set_image_labels(P, "x", {"a": "2"}, "stale")
    operation = google.set_image_labels(P, "x", {"a": "2"}, image["labelFingerprint"])
    while google.operation_state(operation) != "DONE":
        pass
    after = google.image(P, "x")
    assert after["labels"] == {"a": "2"}
    assert after["labelFingerprint"] != image["labelFingerprint"]


def test_labels_that_break_googles_rules_are_refused(fake, google):
    fake.add_image(P, "seed")
    with pytest.raises(BuildError, match="400 invalid"):
        google.insert_image(P, {**source("x"), "labels": {"cib:key": "Upper"}})


def test_errors_come_in_googles_body_and_map_to_exit_statuses(fake, server, google):
    fake.fail("images.get", status=429, reason="rateLimitExceeded")
    answer = requests.get(f"{server.url}/compute/v1/projects/{P}/global/images/x",
                          headers=_auth(google), timeout=10)
    error = answer.json()["error"]
    assert answer.status_code == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    assert error["errors"][0]["reason"] == "rateLimitExceeded" and error["code"] == 429
    fake.fail("images.get", status=503, reason="backendError")
    with pytest.raises(TransientError):
        google.image(P, "x")
    assert google.image(P, "x") is None  # a 404 is absence


def test_an_operation_that_fails_is_done_with_its_errors(fake, google):
    fake.add_image(P, "seed")
    fake.fail("images.insert", status=403, reason="quotaExceeded", during="operation",
              message="Quota 'IMAGES' exceeded. Limit: 10.0 globally.")
    operation = google.insert_image(P, source("x"))
    google.operation_state(operation)
    with pytest.raises(TransientError, match="QUOTA_EXCEEDED"):
        google.operation_state(operation)
    body = google.operation(operation)
    assert body["httpErrorStatusCode"] == 403 and body["error"]["errors"][0]["message"]


def test_an_instance_runs_its_startup_script_to_the_serial_port_and_powers_off(fake, google):
    fake.add_image(P, "seed")
    fake.run_polls = 1
    operation = google.insert_instance(P, "us-central1-a", {
        "name": "builder", "machineType": "zones/us-central1-a/machineTypes/e2-small",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": f"projects/{P}/global/images/seed"}}],
        "metadata": {"items": [{"key": "startup-script",
                                "value": "#!/bin/bash\n# execution a\nx\npoweroff\n"}]}})
    assert google.instance(P, "us-central1-a", "builder") is None  # not until it is done
    while google.operation_state(operation) != "DONE":
        pass
    statuses = [google.instance_status(P, "us-central1-a", "builder") for _ in range(3)]
    assert statuses == ["RUNNING", "TERMINATED", "TERMINATED"]
    text, following = google.serial_output(P, "us-central1-a", "builder")
    assert "startup-script: cib: a passed" in text and following == len(text.encode())
    assert google.serial_output(P, "us-central1-a", "builder", following)[0] == ""
    with pytest.raises(BuildError, match="resourceInUseByAnotherResource"):
        google.delete_disk(P, "us-central1-a", "builder")
    operation = google.delete_instance(P, "us-central1-a", "builder")
    while google.operation_state(operation) != "DONE":
        pass
    assert google.disks(P, "us-central1-a") == []  # the boot disk was auto-deleted


def test_a_raw_disk_image_needs_its_object_in_storage(fake, google):
    with pytest.raises(BuildError, match=r"rawDisk\.source"):
        google.insert_image(P, {"name": "d", "rawDisk": {"source": "gs://b/missing.tar.gz"}})
    url = google.upload_object("b", "disk.tar.gz", b"packed")
    google.insert_image(P, {"name": "d", "rawDisk": {"source": url}})
    assert fake.images[(P, "d")]["sourceType"] == "RAW"


def test_requests_without_a_token_the_server_issued_or_signed_by_its_key_are_refused(
        fake, server):
    answer = requests.get(f"{server.url}/compute/v1/projects/{P}/global/images/x",
                          headers={"Authorization": "Bearer made-up"}, timeout=10)
    assert answer.status_code == 401
    with pytest.raises(CibError, match="401"):
        Google.from_environment({**server.environ(), "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(
            {**json.loads(server.service_account_key()),
             "client_email": "other@example.iam.gserviceaccount.com"})}).image(P, "x")


def test_the_clouds_secrets_google_fields_become_the_adapters_environment(server):
    found = cloudcreds.variables(server.secret(), "project/cib/level-3/clouds")
    assert set(found) == {"GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_COMPUTE_ENDPOINT",
                          "GOOGLE_STORAGE_ENDPOINT"}
    assert Google.from_environment(found).image(P, "nothing") is None
    with pytest.raises(CibError, match="Google: google_compute_endpoint without "
                                       "google_service_account_key"):
        cloudcreds.variables({"google_compute_endpoint": "http://x"}, "s")
    assert cloudcreds.has_credentials({"GOOGLE_SERVICE_ACCOUNT_KEY": "{}"})


def _auth(adapter):
    """A token from the server's token endpoint, as google-auth trades the key's JWT for one."""
    from google.auth.transport.requests import Request

    adapter.credentials.refresh(Request())
    return {"Authorization": f"Bearer {adapter.credentials.token}"}
