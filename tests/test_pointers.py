"""Release pointers in the index: names, history, rollback choice, and what GC must keep."""

from __future__ import annotations

import pytest

import taskcluster
from cib_decision.devtc.index import NAMESPACE
from cib_decision.errors import CibError, TransientError
from cib_decision.lifecycle import pointers
from cib_decision.lifecycle.pointers import Entry, ReleaseRef

POOL = "gecko-t/win10-64-azure"
KEY = "win10-64"
TASKS = ["fN1SbArXTPSVFNUvaOlinQ", "dB2SbArXTPSVFNUvaOlinQ", "eC3SbArXTPSVFNUvaOlinQ"]


def ref(n: int, key: str = KEY) -> ReleaseRef:
    return ReleaseRef(key, f"{n:x}" * 64 if n < 16 else "f" * 64, TASKS[n % 3])


def silent(_line: str) -> None:
    """A log that drops its lines."""


def entry(n: int, action: str = "deploy", sequence: int = 0) -> Entry:
    return Entry(f"x.{sequence}", ref(n), action, POOL, sequence)


def test_names_are_valid_index_paths_and_a_pool_id_stays_one_component():
    path = pointers.history_path("production", POOL, 7)
    assert NAMESPACE.match(path)
    assert path == ("cib.v2.cib-decision.pointers.production.pool.gecko-t%2Fwin10-64-azure."
                    "history.00000007")
    assert pointers.unpart(pointers.part("a.b/c")) == "a.b/c"
    assert "." not in pointers.part("a.b/c")
    assert pointers.release_path("staging", KEY) == (
        "cib.v2.cib-decision.pointers.staging.release.win10-64.latest")


def test_the_scopes_of_a_deploy_cover_exactly_its_pool_and_key():
    scopes = pointers.insert_scopes("production", KEY, POOL)
    assert scopes == [
        "index:insert-task:cib.v2.cib-decision.pointers.production.release.win10-64.*",
        "index:insert-task:cib.v2.cib-decision.pointers.production.pool."
        "gecko-t%2Fwin10-64-azure.*"]


def test_a_rollback_returns_to_the_release_before_the_current_one():
    assert pointers.previous_release([entry(1), entry(2)]).release == ref(1)
    assert pointers.previous_release([entry(1)]) is None
    assert pointers.previous_release([]) is None


def test_a_second_rollback_goes_further_back_instead_of_undoing_the_first():
    history = [entry(1), entry(2), entry(3), entry(2, "rollback")]
    assert pointers.previous_release(history).release == ref(1)
    assert pointers.previous_release([entry(1), entry(2), entry(1, "rollback")]) is None


def test_spares_are_the_newest_distinct_releases_other_than_the_current():
    history = [entry(1), entry(2), entry(3), entry(2), entry(4)]
    assert [e.release for e in pointers.spares(history, 2)] == [ref(2), ref(3)]
    assert pointers.spares(history, 0) == []


def index_of(dev, role=None, retries=0):
    return taskcluster.Index(dev.options(role, max_retries=retries))


def test_pool_history_appends_in_order_and_a_rerun_appends_nothing(dev_taskcluster):
    index = index_of(dev_taskcluster)
    for n in (1, 2, 2, 1):
        pointers.record_pool(index, "staging", POOL, ref(n), "deploy", silent)
    history = pointers.history(index, "staging", POOL)
    assert [(e.sequence, e.release) for e in history] == [(1, ref(1)), (2, ref(2)),
                                                           (3, ref(1))]
    latest = pointers.find(index, pointers.pool_path("staging", POOL))
    assert latest.release == ref(1) and latest.sequence == 3
    anonymous = taskcluster.Index({"rootUrl": dev_taskcluster.root_url})
    assert pointers.history(anonymous, "staging", POOL) == history
    assert pointers.history(index, "production", POOL) == []


def test_the_release_pointer_is_rewritten_only_when_it_changes(dev_taskcluster):
    index, lines = index_of(dev_taskcluster), []
    pointers.set_release(index, "production", ref(1), "promote", lines.append)
    pointers.set_release(index, "production", ref(1), "promote", lines.append)
    pointers.set_release(index, "production", ref(2), "promote", lines.append)
    assert pointers.find(index, pointers.release_path("production", KEY)).release == ref(2)
    assert "already" in lines[1] and "-> 2222" in lines[2]
    assert dev_taskcluster.stats()["requests"]["index.insertTask"] == 2


def test_referenced_releases_lists_current_releases_and_rollback_spares(dev_taskcluster):
    index = index_of(dev_taskcluster)
    for n in (1, 2, 3, 4):
        pointers.record_pool(index, "production", POOL, ref(n), "deploy", silent)
    pointers.set_release(index, "production", ref(5, "other"), "promote", silent)
    pointers.record_pool(index, "staging", POOL, ref(6), "deploy", silent)
    found = pointers.referenced_releases(index, ["production"], keep_history=2)
    assert {r.sha256 for r in found} == {ref(n).sha256 for n in (2, 3, 4, 5)}
    assert {r.key for r in found} == {KEY, "other"}
    assert all(r.task_id in TASKS and r.environment == "production" for r in found)
    assert ref(6).sha256 in {r.sha256 for r in pointers.referenced_releases(index, ["staging"])}


def test_a_listing_that_fails_raises_instead_of_a_partial_answer(dev_taskcluster):
    index = index_of(dev_taskcluster)
    pointers.record_pool(index, "production", POOL, ref(1), "deploy", silent)
    dev_taskcluster.script_faults("", "", "500")  # the history listing fails
    with pytest.raises(TransientError, match="failed to list"):
        pointers.referenced_releases(index, ["production"])


def test_a_caller_without_the_insert_scope_cannot_write_a_pointer(dev_taskcluster):
    with pytest.raises(CibError, match="insufficient scopes"):
        pointers.record_pool(index_of(dev_taskcluster, "pull-request"), "production", POOL,
                             ref(1), "deploy", silent)
