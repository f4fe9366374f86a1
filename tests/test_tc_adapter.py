"""The Taskcluster adapter's rules, each in one place: the calls cib makes on each service are
the services' own (typed protocols checked against the clients' API references), a lost
connection or a 5xx is retried by one helper, and artifacts are read (and downloaded) one way."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from taskcluster.exceptions import (
    TaskclusterConnectionError,
    TaskclusterRestFailure,
)

import taskcluster
from cib_decision import tc
from cib_decision.errors import CibError, TransientError

SRC = Path(__file__).resolve().parents[1] / "src" / "cib_decision"
PROTOCOLS = {tc.Queue: taskcluster.Queue, tc.Index: taskcluster.Index,
             tc.WorkerManager: taskcluster.WorkerManager, tc.Secrets: taskcluster.Secrets}


def _calls(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if inspect.isfunction(member) and not name.startswith("_")}


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_each_protocol_call_is_the_services_own_with_its_arguments(protocol):
    reference = PROTOCOLS[protocol].funcinfo
    assert _calls(protocol), "a protocol with no calls"
    for name, signature in _calls(protocol).items():
        assert name in reference, f"{protocol.__name__}.{name} is no call of the service"
        entry = reference[name]
        params = [p for p in signature.parameters if p != "self"]
        assert [p for p in params if p not in ("payload", "query")] == entry["args"], name
        assert ("payload" in params) == ("input" in entry), name
        assert ("query" in params) == ("query" in entry), name


def test_no_module_outside_the_local_taskcluster_types_a_client_as_any():
    found = [f"{path.relative_to(SRC)}:{number}"
             for path in SRC.rglob("*.py") if not {"devtc", "devworker"} & set(path.parts)
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\b(queue|index|wm|secrets_client)\w*: Any\b", line)]
    assert found == []


def server_error() -> TaskclusterRestFailure:
    return TaskclusterRestFailure("bad gateway", None, 502, {"message": "bad gateway"})


def not_found() -> TaskclusterRestFailure:
    return TaskclusterRestFailure("no such task", None, 404, {"message": "no such task"})


def failing(*errors: Exception, then: Any = "done"):
    left = list(errors)
    calls: list[int] = []

    def function() -> Any:
        calls.append(1)
        if left:
            raise left.pop(0)
        return then
    return function, calls


def test_lost_connections_and_5xx_are_retried_until_an_answer():
    waits: list[float] = []
    told: list[int] = []
    function, calls = failing(server_error(), TaskclusterConnectionError("reset", None))
    assert tc.retrying(function, sleep=waits.append,
                       retried=lambda error, attempt: told.append(attempt)) == "done"
    assert len(calls) == 3 and told == [0, 1]
    assert 0.075 <= waits[0] <= 0.125 and 0.15 <= waits[1] <= 0.25  # backoff, ±25 %


def test_a_refusal_is_not_retried():
    function, calls = failing(not_found())
    with pytest.raises(TaskclusterRestFailure):
        tc.retrying(function, sleep=lambda _: None)
    assert len(calls) == 1


def test_the_last_error_is_raised_when_the_attempts_run_out():
    function, calls = failing(*(server_error() for _ in range(9)))
    with pytest.raises(TaskclusterRestFailure):
        tc.retrying(function, attempts=4, sleep=lambda _: None)
    assert len(calls) == 4


def test_waits_grow_to_at_most_ten_seconds():
    waits: list[float] = []
    function, _ = failing(*(server_error() for _ in range(11)))
    tc.retrying(function, attempts=12, sleep=waits.append)
    assert max(waits) <= 12.5 and waits[-1] >= 7.5


def test_call_gives_an_allowed_status_and_ours_for_the_rest():
    assert tc.call("queue", "give task x", lambda: (_ for _ in ()).throw(not_found()),
                   allow=(404,)) == 404
    with pytest.raises(CibError, match=r"^queue refused to give task x \(404\): no such task"):
        tc.call("queue", "give task x", lambda: (_ for _ in ()).throw(not_found()))
    with pytest.raises(TransientError):
        tc.call("queue", "give task x", lambda: (_ for _ in ()).throw(server_error()))


class StoredArtifact:
    """A queue whose one artifact is stored elsewhere: the answer is a URL to fetch, as the
    real queue's for S3 and object artifacts."""

    def __init__(self, url: str):
        self.url = url

    def getLatestArtifact(self, task_id: str, name: str) -> dict[str, str]:
        return {"storageType": "s3", "url": self.url}


URL = "https://artifacts.example.com/task/public/release.json"


@responses.activate
def test_a_download_answered_5xx_is_retried():
    responses.add(responses.GET, URL, status=503)
    responses.add(responses.GET, URL, json={"key": "win2022"})
    assert tc.read_artifact(StoredArtifact(URL), "t", "public/release.json") == {
        "key": "win2022"}


@responses.activate
def test_a_download_that_keeps_failing_is_transient(monkeypatch):
    monkeypatch.setattr(tc.time, "sleep", lambda _: None)
    responses.add(responses.GET, URL, body=requests.ConnectionError("reset"))
    with pytest.raises(TransientError, match=re.escape(
            "cannot download artifact public/release.json of task t")):
        tc.read_artifact(StoredArtifact(URL), "t", "public/release.json")
    assert len(responses.calls) == 5


@responses.activate
def test_a_download_that_is_not_json_is_refused_with_the_callers_error():
    class Refused(CibError):
        pass

    responses.add(responses.GET, URL, body="<html>")
    with pytest.raises(Refused, match="is not JSON"):
        tc.read_artifact(StoredArtifact(URL), "t", "public/release.json", refused=Refused)


def test_an_artifact_the_queue_does_not_have_is_none(dev_taskcluster):
    queue = taskcluster.Queue(dev_taskcluster.options(max_retries=0))
    assert tc.read_artifact(queue, taskcluster.slugId(), "public/none.json") is None
