"""The purge's pure decisions (`lifecycle.purge`): what is ours, orphaned and settled, in which
order it goes, what a failure does to the rest, the exit status and the closing table."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision.errors import BuildError, CibError, TransientError
from cib_decision.lifecycle.purge import (
    BUILDER_TAG,
    TASK_TAG,
    Outcome,
    Resource,
    Rules,
    Verdict,
    carry_out,
    check_outcomes,
    select,
    summary,
    table,
    waves,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=1)
YOUNG = NOW - timedelta(hours=1)
OURS = {BUILDER_TAG: "true", TASK_TAG: "task-done"}
RULES = Rules(now=NOW, task_states={"task-done": "completed", "task-busy": "running"},
              owned_groups=frozenset({"rg-central-us-win10"}))


def aws(kind, rid, state, tags=OURS, created=OLD, used_by=()):
    return Resource("amazon", kind, rid, "us-east-1", state, dict(tags), created,
                    tuple(used_by))


def azure(kind, rid, state, group="rg-central-us-win10", tags=None, created=OLD, used_by=()):
    return Resource("azure", kind, rid, group, state, dict(tags or {}), created, tuple(used_by))


def decided(resources, rules=RULES):
    return {v.resource.id: v for v in select(resources, rules)}


def removed(resources, rules=RULES):
    return {rid for rid, v in decided(resources, rules).items() if v.remove}


def test_only_resources_tagged_as_builders_are_touched_on_aws():
    resources = [aws("instance", "i-ours", "stopped"),
                 aws("instance", "i-untagged", "stopped", tags={}),
                 aws("instance", "i-foreign", "stopped", tags={"Name": "cib-builder-x",
                                                               TASK_TAG: "task-done"}),
                 aws("instance", "i-not-true", "stopped", tags={BUILDER_TAG: "false"}),
                 aws("volume", "vol-foreign", "available", tags={"team": "cib"})]
    assert set(decided(resources)) == {"i-ours"}
    assert removed(resources) == {"i-ours"}


def test_only_the_orphan_states_count_a_running_builder_and_an_attached_volume_stay():
    resources = [aws("instance", "i-running", "running"),
                 aws("volume", "vol-attached", "in-use", used_by=["i-running"]),
                 aws("volume", "vol-free", "available")]
    assert decided(resources).keys() == {"vol-free"}


def test_a_young_orphan_is_kept_and_says_why():
    verdicts = decided([aws("instance", "i-young", "stopped", created=YOUNG),
                        aws("volume", "vol-old", "available")])
    assert not verdicts["i-young"].remove
    assert "1h00m00s old, younger than --min-age" in verdicts["i-young"].reason
    assert verdicts["vol-old"].remove


def test_min_age_zero_purges_a_young_orphan():
    rules = Rules(now=NOW, min_age=timedelta(0))
    assert removed([aws("instance", "i-young", "stopped", created=YOUNG)], rules) == {"i-young"}


def test_an_old_orphan_of_a_build_task_still_running_is_kept():
    verdict = decided([aws("instance", "i-old", "stopped",
                           tags={BUILDER_TAG: "true", TASK_TAG: "task-busy"})])["i-old"]
    assert not verdict.remove
    assert "build task task-busy is running" in verdict.reason


@pytest.mark.parametrize("state, gone", [("completed", True), ("failed", True),
                                         ("exception", True), ("missing", True),
                                         ("pending", False), ("unknown", False), (None, False)])
def test_without_a_creation_time_only_a_settled_build_task_lets_a_resource_go(state, gone):
    states = {"t": state} if state else {}
    group = aws("security-group", "sg-1", "unused", tags={BUILDER_TAG: "true", TASK_TAG: "t"},
                created=None)
    assert removed([group], Rules(now=NOW, task_states=states)) == ({"sg-1"} if gone else set())


def test_a_builders_key_pair_security_group_and_volume_go_after_it_and_not_before():
    instance = aws("instance", "i-1", "stopped")
    rest = [aws("key-pair", "cib-x", "in-use", used_by=["i-1"]),
            aws("security-group", "sg-1", "in-use", created=None, used_by=["i-1"],
                tags={BUILDER_TAG: "true"}),
            aws("volume", "vol-root", "in-use", used_by=["i-1"])]
    verdicts = decided([instance, *rest], Rules(now=NOW))
    assert all(verdicts[r.id].remove and verdicts[r.id].after == ("i-1",) for r in rest)
    assert [[v.resource.id for v in wave] for wave in waves(list(verdicts.values()))] == [
        ["i-1"], ["vol-root", "cib-x", "sg-1"]]


def test_what_a_kept_builder_uses_is_kept():
    resources = [aws("instance", "i-young", "stopped", created=YOUNG),
                 aws("key-pair", "cib-x", "in-use", used_by=["i-young"]),
                 aws("security-group", "sg-shared", "in-use", created=None,
                     used_by=["i-old", "i-young"]),
                 aws("instance", "i-old", "stopped")]
    assert removed(resources) == {"i-old"}


def test_a_security_group_a_foreign_interface_uses_is_never_removed():
    group = aws("security-group", "sg-1", "in-use", used_by=["eni-foreign"])
    assert removed([group]) == set()


def test_azure_orphans_in_owned_groups_go_whatever_their_tags_and_others_are_never_seen():
    resources = [azure("vm", "vm-builder", "deallocated"),
                 azure("nic", "nic-loose", "unattached", group="RG-Central-US-Win10"),
                 azure("disk", "disk-foreign-group", "unattached", group="rg-someone-else"),
                 azure("public-ip", "ip-foreign-group", "no-address", group="rg-other")]
    assert set(decided(resources)) == {"vm-builder", "nic-loose"}
    assert removed(resources) == {"vm-builder", "nic-loose"}


def test_worker_manager_resources_go_only_with_the_worker_manager_groups():
    managed = {"managed-by": "taskcluster", "worker-pool-id": "gecko-t/win10-64-azure"}
    resources = [azure("vm", "vm-worker", "deallocated", tags=managed),
                 azure("vm", "vm-builder", "deallocated")]
    assert removed(resources) == {"vm-builder"}
    with_wm = Rules(now=NOW, owned_groups=RULES.owned_groups,
                    worker_manager_groups=frozenset({"rg-central-us-win10"}))
    assert removed(resources, with_wm) == {"vm-builder", "vm-worker"}


def test_an_azure_vm_takes_its_nic_and_disk_and_the_nic_its_public_ip_in_three_waves():
    resources = [azure("vm", "vm-1", "deallocated"),
                 azure("nic", "nic-1", "attached", created=None, used_by=["vm-1"]),
                 azure("disk", "disk-1", "attached", used_by=["vm-1"]),
                 azure("public-ip", "ip-1", "no-address", created=None, used_by=["nic-1"])]
    verdicts = select(resources, RULES)
    assert [[v.resource.id for v in wave] for wave in waves(verdicts)] == [
        ["vm-1"], ["nic-1", "disk-1"], ["ip-1"]]


def test_an_orphan_in_use_by_something_that_stays_is_listed_as_kept():
    resources = [azure("vm", "vm-running", "running"),
                 azure("nic", "nic-1", "attached", created=None, used_by=["vm-running"]),
                 azure("public-ip", "ip-1", "no-address", created=None, used_by=["nic-1"])]
    verdicts = decided(resources)
    assert set(verdicts) == {"ip-1"}
    assert not verdicts["ip-1"].remove and "in use by nic-1" in verdicts["ip-1"].reason


class Recorder:
    """A cloud that records what it is asked to do, and fails on the ids in `fail`."""

    def __init__(self, fail=(), error=BuildError, never_gone=()):
        self.fail, self.error, self.calls = set(fail), error, []
        self.never_gone = set(never_gone)

    def remove(self, resource):
        self.calls.append(("remove", resource.id))
        if resource.id in self.fail:
            raise self.error(f"refused {resource.id}")

    def wait_removed(self, resources):
        self.calls.append(("wait", tuple(r.id for r in resources)))
        return {r.id: BuildError(f"{r.id} still there") for r in resources
                if r.id in self.never_gone}


BUILD = [aws("instance", "i-1", "stopped"), aws("key-pair", "cib-x", "in-use", used_by=["i-1"]),
         aws("volume", "vol-free", "available"), aws("instance", "i-young", "stopped",
                                                     created=YOUNG)]


def test_a_dry_run_asks_the_cloud_nothing_and_says_would_remove():
    cloud = Recorder()
    outcomes = carry_out(select(BUILD, RULES), cloud, dry_run=True, say=lambda _: None)
    assert cloud.calls == []
    assert {o.verdict.resource.id: o.action for o in outcomes} == {
        "i-1": "would remove", "cib-x": "would remove", "vol-free": "would remove",
        "i-young": "kept"}


def test_removal_waits_for_a_wave_to_be_gone_before_the_next():
    cloud = Recorder()
    outcomes = carry_out(select(BUILD, RULES), cloud, dry_run=False, say=lambda _: None)
    assert cloud.calls == [("remove", "i-1"), ("remove", "vol-free"),
                           ("wait", ("i-1", "vol-free")), ("remove", "cib-x"),
                           ("wait", ("cib-x",))]
    assert summary(outcomes) == "3 removed, 1 kept"


def test_a_failed_removal_is_a_warning_and_skips_what_depended_on_it():
    cloud, said = Recorder(fail={"i-1"}), []
    outcomes = carry_out(select(BUILD, RULES), cloud, dry_run=False, say=said.append)
    actions = {o.verdict.resource.id: o.action for o in outcomes}
    assert actions["i-1"] == "failed: refused i-1"
    assert actions["cib-x"] == "skipped: i-1 was not removed"
    assert actions["vol-free"] == "removed"
    assert ("remove", "cib-x") not in cloud.calls
    assert any(line.startswith("warning: could not remove instance i-1") for line in said)
    check_outcomes(outcomes)  # one of two removals worked: exit 0


def test_a_removal_that_never_completes_fails_and_skips_its_dependents():
    cloud = Recorder(never_gone={"i-1"})
    outcomes = carry_out(select(BUILD, RULES), cloud, dry_run=False, say=lambda _: None)
    actions = {o.verdict.resource.id: o.action for o in outcomes}
    assert actions["i-1"] == "failed: i-1 still there"
    assert actions["cib-x"] == "skipped: i-1 was not removed"
    assert actions["vol-free"] == "removed"


@pytest.mark.parametrize("error, raised", [(BuildError, BuildError),
                                           (TransientError, TransientError)])
def test_when_every_removal_fails_the_purge_fails(error, raised):
    cloud = Recorder(fail={"i-1", "vol-free"}, error=error)
    outcomes = carry_out(select(BUILD, RULES), cloud, dry_run=False, say=lambda _: None)
    with pytest.raises(raised, match="every removal failed"):
        check_outcomes(outcomes)


def test_nothing_to_remove_is_not_a_failure():
    check_outcomes([Outcome(Verdict(BUILD[3], False, "young"), "kept")])
    check_outcomes([])


def test_the_table_names_each_resource_its_place_reason_and_action_in_plain_text():
    outcomes = [Outcome(Verdict(BUILD[0], True, "stopped builder"), "removed"),
                Outcome(Verdict(BUILD[2], True, "volume attached to nothing"), "failed: boom",
                        CibError("boom"))]
    out = io.StringIO()
    table(outcomes, out, title="purge of amazon us-east-1")
    text = out.getvalue()
    assert text.isascii() and "\x1b[" not in text
    lines = [line for line in text.splitlines() if "i-1" in line or "vol-free" in line]
    assert [[cell.strip() for cell in line.strip("|").split("|")] for line in lines] == [
        ["amazon instance", "i-1", "us-east-1", "stopped builder", "removed"],
        ["amazon volume", "vol-free", "us-east-1", "volume attached to nothing",
         "failed: boom"]]


# --- properties ------------------------------------------------------------------------------

KINDS = [("amazon", "instance", ["stopped", "running"]),
         ("amazon", "volume", ["available", "in-use"]),
         ("amazon", "security-group", ["unused", "in-use"]),
         ("azure", "vm", ["deallocated", "running"]),
         ("azure", "nic", ["unattached", "attached"]),
         ("azure", "public-ip", ["no-address", "has-address"])]


@st.composite
def inventories(draw):
    count = draw(st.integers(1, 12))
    resources = []
    for n in range(count):
        cloud, kind, states = draw(st.sampled_from(KINDS))
        tags = draw(st.sampled_from([{}, {BUILDER_TAG: "true"}, {BUILDER_TAG: "no"},
                                     {"managed-by": "taskcluster"}]))
        task = draw(st.sampled_from([None, "task-done", "task-busy", "task-unknown"]))
        if task:
            tags = {**tags, TASK_TAG: task}
        users = draw(st.lists(st.integers(0, count - 1).filter(lambda i, n=n: i != n),
                              max_size=2, unique=True))
        resources.append(Resource(
            cloud, kind, f"r{n}", draw(st.sampled_from(["rg-central-us-win10", "rg-other"]))
            if cloud == "azure" else "us-east-1", draw(st.sampled_from(states)), tags,
            draw(st.sampled_from([None, OLD, YOUNG])), tuple(f"r{u}" for u in users)))
    return resources


@settings(max_examples=150, deadline=None)
@given(inventories())
def test_nothing_foreign_young_busy_or_used_by_a_survivor_is_ever_removed(resources):
    verdicts = select(resources, RULES)
    gone = {v.resource.id for v in verdicts if v.remove}
    for resource in resources:
        if resource.id not in gone:
            continue
        if resource.cloud == "amazon":
            assert resource.tags.get(BUILDER_TAG) == "true"
        else:
            assert resource.where == "rg-central-us-win10"
            assert resource.tags.get("managed-by") != "taskcluster"
        assert resource.tags.get(TASK_TAG) != "task-busy"
        assert resource.created is None or resource.created <= NOW - RULES.min_age
        assert set(resource.used_by) <= gone
    order = {v.resource.id: n for n, wave in enumerate(waves(verdicts)) for v in wave}
    for verdict in verdicts:
        assert all(order[a] < order[verdict.resource.id] for a in verdict.after)
