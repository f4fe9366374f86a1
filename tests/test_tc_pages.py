"""`tc.pages`: one rule for every Taskcluster listing: follow `continuationToken` to the last
page, keep the caller's query on every page, and a failed page raises what the caller maps it
to, naming the page (a listing is whole or it raises)."""

from __future__ import annotations

import pytest
from taskcluster.exceptions import TaskclusterRestFailure

from cib_decision.errors import CibError
from cib_decision.tc import pages

LISTING = [{"items": [1, 2], "continuationToken": "a"}, {"items": [3], "continuationToken": "b"},
           {"items": []}]


def listing(asked: list[dict], failing_page: int | None = None):
    def call(query: dict) -> dict:
        asked.append(query)
        if len(asked) == failing_page:
            raise TaskclusterRestFailure("unavailable", superExc=None, status_code=503)
        return LISTING[len(asked) - 1]
    return call


def test_every_page_is_read_with_the_callers_query_and_the_token():
    asked: list[dict] = []
    assert list(pages(listing(asked), "items", query={"limit": "2"})) == [1, 2, 3]
    assert asked == [{"limit": "2"}, {"limit": "2", "continuationToken": "a"},
                     {"limit": "2", "continuationToken": "b"}]


def test_a_failed_page_raises_the_callers_error_naming_the_page():
    def fail(exc, page):
        return CibError(f"page {page}: {exc.status_code}")

    with pytest.raises(CibError, match="page 2: 503"):
        list(pages(listing([], failing_page=2), "items", fail=fail))
    with pytest.raises(TaskclusterRestFailure):  # no mapping: Taskcluster's own error
        list(pages(listing([], failing_page=1), "items"))
