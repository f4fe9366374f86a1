"""Faults on demand: 5xx answers, dropped connections (before or after the request is applied)
and latency; the official client's retries survive them and the counters add up."""

from __future__ import annotations

import time

import pytest
import requests
import slugid

import taskcluster
from cib_decision.devtc.faults import Faults, FaultSettings
from cib_decision.devtc.testing import new_task


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """The client sleeps 0.1·2^n s between attempts; these tests need not wait."""
    monkeypatch.setattr(taskcluster.utils, "calculateSleepTime", lambda attempt: 0.0)


def test_each_5xx_answer_has_a_service_error_body(dev_taskcluster):
    dev_taskcluster.script_faults("500", "502", "503")
    url = f"{dev_taskcluster.root_url}/api/queue/v1/task/{slugid.nice()}/status"
    answers = [requests.get(url) for _ in range(3)]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (500, "InternalServerError"), (502, "BadGateway"), (503, "ServiceUnavailable")]
    assert all(a.json()["requestInfo"]["method"] == "status" for a in answers)
    assert requests.get(url).status_code == 404  # the script is used up


def test_persistent_errors_exhaust_the_client_retries(dev_taskcluster):
    dev_taskcluster.set_faults(error_rate=1.0)
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=2))
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        q.createTask(slugid.nice(), new_task())
    assert info.value.status_code in (500, 502, 503)
    stats = dev_taskcluster.stats()
    assert stats["requests"] == {"queue.createTask": 3}
    assert sum(stats["faults"].values()) == 3
    assert (stats["tasksCreated"], dev_taskcluster.tasks()) == (0, {})


def test_client_with_retries_survives_errors_and_counts_match(dev_taskcluster):
    dev_taskcluster.script_faults("503", "500")
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=5))
    task_id = slugid.nice()
    assert q.createTask(task_id, new_task())["status"]["taskId"] == task_id
    stats = dev_taskcluster.stats()
    assert stats["requests"] == {"queue.createTask": 3}
    assert stats["faults"] == {"503": 1, "500": 1}
    assert stats["responses"] == {"200": 1, "500": 1, "503": 1}
    assert stats["tasksCreated"] == 1


def test_connection_dropped_before_applying_leaves_nothing_behind(dev_taskcluster):
    dev_taskcluster.script_faults("drop-before")
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=0))
    with pytest.raises(taskcluster.TaskclusterConnectionError):
        q.createTask(slugid.nice(), new_task())
    assert dev_taskcluster.tasks() == {}
    assert dev_taskcluster.stats()["faults"] == {"drop-before": 1}


def test_lost_response_after_applying_is_safe_to_retry_with_the_same_body(dev_taskcluster):
    dev_taskcluster.script_faults("drop-after")
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=0))
    task_id, body = slugid.nice(), new_task()
    with pytest.raises(taskcluster.TaskclusterConnectionError):
        q.createTask(task_id, body)
    assert list(dev_taskcluster.tasks()) == [task_id]  # applied, though the answer was lost
    assert q.createTask(task_id, body)["status"]["taskId"] == task_id
    stats = dev_taskcluster.stats()
    assert (stats["requests"], stats["faults"], stats["tasksCreated"]) == (
        {"queue.createTask": 2}, {"drop-after": 1}, 1)


def test_retried_create_after_a_lost_response_with_a_new_created_conflicts(dev_taskcluster):
    dev_taskcluster.script_faults("drop-after")
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=0))
    task_id = slugid.nice()
    with pytest.raises(taskcluster.TaskclusterConnectionError):
        q.createTask(task_id, new_task())
    time.sleep(0.002)
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        q.createTask(task_id, new_task())  # re-stamped `created`: another definition
    assert info.value.status_code == 409


def test_random_faults_with_retries_still_create_every_task_once(dev_taskcluster):
    dev_taskcluster.set_faults(error_rate=0.3, drop_rate=0.2, seed=7)
    q = taskcluster.Queue(dev_taskcluster.options(max_retries=8))
    bodies = {slugid.nice(): new_task() for _ in range(20)}
    for task_id, body in bodies.items():
        q.createTask(task_id, body)
    assert set(dev_taskcluster.tasks()) == set(bodies)
    stats = dev_taskcluster.stats()
    faults = stats["faults"]
    assert stats["tasksCreated"] == 20
    assert sum(faults.values()) > 0
    assert stats["requests"]["queue.createTask"] == 20 + sum(faults.values())
    assert sum(stats["responses"].values()) == stats["requests"]["queue.createTask"] - (
        faults.get("drop-before", 0) + faults.get("drop-after", 0))


def test_latency_delays_api_calls(dev_taskcluster):
    q = taskcluster.Queue(dev_taskcluster.options())
    task_id = slugid.nice()
    q.createTask(task_id, new_task())
    dev_taskcluster.set_faults(latency_ms=150)
    start = time.monotonic()
    q.status(task_id)
    assert time.monotonic() - start >= 0.15


def test_faults_can_be_set_over_http_while_running(dev_taskcluster):
    url = f"{dev_taskcluster.root_url}/dev/faults"
    assert requests.put(url, json={"errorRate": 1.0}).json() == {
        "errorRate": 1.0, "latencyMs": 0, "dropRate": 0.0}
    status_url = f"{dev_taskcluster.root_url}/api/queue/v1/task/{slugid.nice()}/status"
    assert requests.get(status_url).status_code >= 500
    assert requests.put(url, json={"errorRate": 2}).status_code == 400
    requests.put(url, json={})
    assert requests.get(status_url).status_code == 404
    assert requests.get(url).json()["errorRate"] == 0.0


def test_same_seed_gives_the_same_faults():
    def run():
        faults = Faults(FaultSettings(error_rate=0.5, drop_rate=0.2), seed=3)
        return [faults.decide().kind for _ in range(40)]
    first = run()
    assert first == run()
    assert {"drop-before", "drop-after"} <= set(first) and None in first


def test_rates_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError):
        FaultSettings(error_rate=1.5)
    with pytest.raises(ValueError):
        Faults().script(["404"])
