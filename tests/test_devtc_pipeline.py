"""The pieces under the local Taskcluster's services: the request pipeline (routes, output
checks), JavaScript-style dates, pagination tokens, PostgreSQL's jsonb text."""

from __future__ import annotations

import pytest
import requests
import slugid

from cib_decision.devtc import dates
from cib_decision.devtc.api import Api, Reply, Request
from cib_decision.devtc.apierror import ApiError
from cib_decision.devtc.pagination import paginate
from cib_decision.devtc.workermanager import jsonb_text


def get(path: str) -> Request:
    return Request("GET", path, "", {}, b"", f"http://127.0.0.1{path}")


def test_reply_that_breaks_the_output_schema_is_an_internal_server_error(dev_taskcluster):
    api = Api(dev_taskcluster.ctx, {"queue.status": lambda call: {"status": {"state": "?"}}})
    method, reply = api.handle(get(f"/api/queue/v1/task/{slugid.nice()}/status"))
    assert (method, reply.status, reply.body["code"]) == (
        "queue.status", 500, "InternalServerError")
    assert "Output schema validation error" in reply.body["message"]


def test_handler_bug_is_an_internal_server_error_not_a_dropped_request(dev_taskcluster):
    def broken(call):
        raise RuntimeError("boom")
    api = Api(dev_taskcluster.ctx, {"queue.status": broken})
    _, reply = api.handle(get(f"/api/queue/v1/task/{slugid.nice()}/status"))
    assert (reply.status, reply.body["code"]) == (500, "InternalServerError")
    assert "RuntimeError: boom" in reply.body["message"]


def test_methods_not_served_and_unknown_routes_are_not_found(dev_taskcluster):
    root = dev_taskcluster.root_url
    pending = requests.get(f"{root}/api/queue/v1/pending/p%2Fw")
    assert (pending.status_code, pending.json()["code"]) == (404, "ResourceNotFound")
    assert "does not implement queue.pendingTasks" in pending.json()["message"]
    unserved = Api(dev_taskcluster.ctx, {}).handle(
        get(f"/api/queue/v1/task/{slugid.nice()}/status"))[1]
    assert (unserved.status, unserved.body["code"]) == (404, "ResourceNotFound")
    assert "does not implement queue.status" in unserved.body["message"]
    nowhere = requests.get(f"{root}/api/hooks/v1/hooks")
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, "ResourceNotFound")


def test_garbage_authorization_header_fails_authentication(dev_taskcluster):
    response = requests.get(f"{dev_taskcluster.root_url}/api/queue/v1/task/{slugid.nice()}",
                            headers={"Authorization": "Hawk garbage"})
    assert (response.status_code, response.json()["code"]) == (401, "AuthenticationFailed")
    assert response.headers["www-authenticate"] == "hawk"


def test_url_scoped_methods_check_scopes_before_url_parameters(dev_taskcluster):
    response = requests.delete(f"{dev_taskcluster.root_url}/api/worker-manager/v1/worker-pool/"
                               "NOT%2Fvalid")
    assert (response.status_code, response.json()["code"]) == (403, "InsufficientScopes")


def test_api_error_knows_its_status_and_refuses_unknown_codes():
    assert ApiError("RequestConflict", "x").status == 409
    with pytest.raises(ValueError):
        ApiError("Teapot", "x")
    assert Reply({"a": 1}).encoded() == b'{"a": 1}'


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z"),
    ("2024-05-01T12:00:00.123456789Z", "2024-05-01T12:00:00.123Z"),
    ("2024-05-01t14:00:00.5+02:00", "2024-05-01T12:00:00.500Z"),
])
def test_dates_normalise_as_javascript_to_json(text, expected):
    assert dates.normalise(text) == expected


def test_plus_one_year_rolls_a_leap_day_over_as_javascript_does():
    assert dates.to_json(dates.plus_one_year(dates.parse("2024-02-29T10:00:00Z"))) == (
        "2025-03-01T10:00:00.000Z")


def test_pagination_hands_out_tokens_until_the_last_page():
    items = list(range(5))
    page, token = paginate(items, {"limit": "2"})
    assert page == [0, 1]
    page, token = paginate(items, {"limit": "2", "continuationToken": token})
    page, last = paginate(items, {"limit": "2", "continuationToken": token})
    assert (page, last) == ([4], None)
    assert paginate(items, {"limit": "5000"}) == (items, None)
    with pytest.raises(ApiError):
        paginate(items, {"continuationToken": "garbage!"})


def test_jsonb_text_orders_keys_by_length_then_bytes():
    assert jsonb_text({"bb": [1, 2.5], "a": None, "ab": "é\n", "B": True}) == (
        '{"B": true, "a": null, "ab": "é\\n", "bb": [1, 2.5]}')
    assert jsonb_text(1e-05) == "0.00001"
