"""Garbage collection's decisions (pure): which images are ours, which are referenced and by
what, which are among the newest, and which snapshots go with a deleted image."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision import pools
from cib_decision.lifecycle import gc
from cib_decision.lifecycle.gc import DELETE, IGNORE, KEEP, Image, Reference
from cib_decision.lifecycle.references import (
    gather,
    pool_image_ids,
    pool_references,
    release_references,
)

from .pools_support import images, release_of, request

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
DIGEST = "ab" * 32
AZURE_IMAGE = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-images/"
               "providers/Microsoft.Compute/images/win11-64-0123456789ab")
GALLERY_IMAGE = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-images/"
                 "providers/Microsoft.Compute/galleries/cib/images/win11-64")


def ours(key: str = "linux", environment: str = "production") -> tuple[tuple[str, str], ...]:
    return (("cib:environment", environment), ("cib:key", key),
            ("cib:machine-digest", DIGEST))


def ami(number: int, days_old: float, *, key: str = "linux", environment: str = "production",
        region: str = "us-east-1", tags: tuple[tuple[str, str], ...] | None = None,
        state: str = gc.AVAILABLE, snapshots: tuple[str, ...] | None = None) -> Image:
    return Image("amazon", region, f"ami-{number:017x}", f"{key}-{number:012x}",
                 NOW - timedelta(days=days_old), ours(key, environment) if tags is None else tags,
                 state, (f"snap-{number:017x}",) if snapshots is None else snapshots)


def decisions(plan: gc.Plan) -> dict[str, tuple[str, str]]:
    return {d.image.id: (d.action, d.reason) for d in plan.decisions}


# --- references from pool definitions ---------------------------------------------------------


@pytest.mark.parametrize("pool_id", ["gecko-1/win2022-64-aws", "gecko-t/win10-64-azure",
                                     "gecko-t/ubuntu-2404-gcp"])
def test_a_rendered_pool_refers_to_every_image_it_runs(pool_id):
    given_images = images(pool_id)
    definition = pools.render(request(pool_id), given_images)
    served = {**definition.body, "workerPoolId": pool_id}
    expected = {image.id for image in definition.images.values()}
    assert expected and expected <= {image.id for image in given_images}
    assert pool_image_ids(served) == expected


def test_an_image_id_outside_the_rendered_fields_still_counts():
    pool = {"workerPoolId": "a/b", "config": {"launchConfigs": [
        {"region": "us-east-1", "launchConfig": {"ImageId": "ami-0000000000000000a"},
         "workerConfig": {"note": "fallback ami-0000000000000000b for tests"}},
        {"location": "eastus", "custom": {"image": AZURE_IMAGE.upper()}}]}}
    assert pool_image_ids(pool) == {"ami-0000000000000000a", "ami-0000000000000000b",
                                    AZURE_IMAGE.upper()}


def test_a_pool_without_launch_configs_refers_to_nothing():
    assert pool_image_ids({"workerPoolId": "a/b", "config": {}}) == set()
    assert pool_image_ids({"workerPoolId": "a/b"}) == set()


def test_pool_references_name_the_pool_and_environment():
    pool = {"workerPoolId": "gecko-1/linux", "config": {"launchConfigs": [
        {"region": "us-east-1", "launchConfig": {"ImageId": "ami-0000000000000000a"}}]}}
    assert pool_references([pool], "staging") == [
        Reference("ami-0000000000000000a", "pool gecko-1/linux (staging)")]


def test_release_references_name_every_image_of_the_release():
    release = release_of("gecko-1/win2022-64-aws")
    references = release_references([release], "pointer production/win2022-64")
    assert {r.image_id for r in references} == {i.id for i in release.images}
    assert all(r.reason.startswith("pointer production/win2022-64: release ")
               for r in references)


def test_gather_stops_at_the_first_source_that_fails():
    calls = []

    def failing():
        calls.append("failing")
        raise RuntimeError("page 2 failed")

    def later():
        calls.append("later")
        return [Reference("ami-0000000000000000a", "pool x")]

    with pytest.raises(RuntimeError, match="page 2"):
        gather([lambda: [], failing, later])
    assert calls == ["failing"]


# --- decisions --------------------------------------------------------------------------------


def test_images_without_both_of_our_tags_are_never_touched():
    untagged = ami(1, 400, tags=())
    foreign = ami(2, 400, tags=(("cib:key", "linux"),))  # a key but no machine digest
    other = ami(3, 400, tags=(("Name", "someone-elses"),))
    plan = gc.plan([untagged, foreign, other], [], keep=0, now=NOW)
    assert {d.image.id: d.action for d in plan.decisions} == {
        untagged.id: IGNORE, foreign.id: IGNORE, other.id: IGNORE}
    assert all("never touched" in d.reason for d in plan.decisions)


def test_newest_n_per_key_environment_and_region_are_kept_the_rest_deleted():
    old = [ami(n, days_old=n) for n in range(1, 6)]  # ami 1 is the newest
    staging = ami(10, 50, environment="staging")
    west = ami(11, 60, region="us-west-2")
    other_key = ami(12, 70, key="windows")
    plan = gc.plan([*old, staging, west, other_key], [], keep=2, now=NOW)
    result = decisions(plan)
    assert [result[i.id][0] for i in old] == [KEEP, KEEP, DELETE, DELETE, DELETE]
    assert result[old[0].id][1] == "among the newest 2 of linux in production"
    assert result[old[2].id][1] == ("unreferenced and not among the newest 2 of linux in "
                                    "production")
    # alone in their group: each is among its group's newest
    assert {result[i.id][0] for i in (staging, west, other_key)} == {KEEP}


def test_a_referenced_image_is_kept_however_old_with_every_reference_named():
    images_ = [ami(1, 1), ami(2, 300)]
    references = [Reference(images_[1].id, "pool gecko-1/linux (production)"),
                  Reference(images_[1].id.upper(), "rollback spare of gecko-1/linux"),
                  Reference(images_[1].id, "pool gecko-1/linux (production)")]
    result = decisions(gc.plan(images_, references, keep=1, now=NOW))
    assert result[images_[1].id] == (KEEP, "referenced by pool gecko-1/linux (production); "
                                           "rollback spare of gecko-1/linux")


def test_keep_zero_deletes_every_unreferenced_image_past_the_minimum_age():
    fresh, old, used = ami(1, 0.5), ami(2, 3), ami(3, 10)
    plan = gc.plan([fresh, old, used], [Reference(used.id, "pool p (production)")], keep=0,
                   now=NOW, min_age=timedelta(days=1))
    result = decisions(plan)
    assert result[fresh.id][0] == KEEP and "younger than the minimum age" in result[fresh.id][1]
    assert result[old.id][0] == DELETE
    assert result[used.id][0] == KEEP


def test_pending_images_and_images_of_unknown_age_are_kept():
    pending = ami(1, 30, state=gc.PENDING)
    unknown = Image("amazon", "us-east-1", "ami-0000000000000000f", "linux-x", None, ours())
    result = decisions(gc.plan([pending, unknown], [], keep=0, now=NOW))
    assert result[pending.id] == (KEEP, "still being made (pending)")
    assert result[unknown.id] == (KEEP, "creation time unknown")


def test_failed_images_take_no_place_among_the_newest():
    failed, good = ami(1, 1, state=gc.FAILED), ami(2, 5)
    result = decisions(gc.plan([failed, good], [], keep=1, now=NOW))
    assert result[failed.id] == (DELETE, "failed and unreferenced")
    assert result[good.id][0] == KEEP


def test_a_deleted_image_takes_its_snapshots_except_those_an_image_that_stays_uses():
    shared = "snap-000000000000000aa"
    kept = ami(1, 1, snapshots=(shared,))
    gone = ami(2, 30, snapshots=(shared, "snap-000000000000000bb"))
    foreign = ami(3, 30, tags=(), snapshots=("snap-000000000000000cc",))
    also_gone = ami(4, 40, snapshots=("snap-000000000000000cc", "snap-000000000000000dd"))
    plan = gc.plan([kept, gone, foreign, also_gone], [], keep=1, now=NOW)
    by_id = {d.image.id: d for d in plan.decisions}
    assert by_id[gone.id].snapshots == ("snap-000000000000000bb",)
    assert "keeping snapshot snap-000000000000000aa" in by_id[gone.id].reason
    assert by_id[also_gone.id].snapshots == ("snap-000000000000000dd",)
    assert by_id[kept.id].snapshots == ()


def test_an_azure_gallery_version_is_referenced_through_its_image_definition():
    version = Image("azure", "eastus", f"{GALLERY_IMAGE}/versions/1.0.0", "win11-64-1",
                    NOW - timedelta(days=90), ours("win11-64"))
    plain = Image("azure", "eastus", AZURE_IMAGE, "win11-64-0123456789ab",
                  NOW - timedelta(days=90), ours("win11-64"))
    references = [Reference(GALLERY_IMAGE.lower(), "pool gecko-t/win11-64-azure (production)"),
                  Reference(AZURE_IMAGE.upper(), "pool gecko-t/win11-64-azure (staging)")]
    result = decisions(gc.plan([version, plain], references, keep=0, now=NOW))
    assert result[version.id] == (KEEP, "referenced by pool gecko-t/win11-64-azure "
                                        "(production)")
    assert result[plain.id][0] == KEEP


def test_a_run_narrowed_to_an_environment_leaves_the_others_images_alone():
    staging, production = ami(1, 30, environment="staging"), ami(2, 30)
    result = decisions(gc.plan([staging, production], [], keep=0, now=NOW,
                               environments={"staging"}))
    assert result[staging.id][0] == DELETE
    assert result[production.id] == (IGNORE, "built for production: this run collects "
                                             "staging only")


def test_images_without_a_creation_time_get_the_one_found_for_them():
    unknown = Image("azure", "eastus", AZURE_IMAGE, "win11-64-x", None, ours("win11-64"))
    foreign = Image("azure", "eastus", AZURE_IMAGE + "2", "other", None, ())
    dated = ami(1, 3)
    when = NOW - timedelta(days=9)
    filled = gc.with_created([unknown, foreign, dated], lambda image: when)
    assert [i.created for i in filled] == [when, None, dated.created]


def test_a_negative_keep_is_refused():
    with pytest.raises(ValueError):
        gc.plan([], [], keep=-1, now=NOW)


# --- the property: nothing referenced, foreign or still used is ever deleted -----------------

_tag_sets = st.sampled_from([(), (("cib:key", "a"),), ours("a"), ours("a", "staging"),
                             ours("b")])
_images = st.lists(st.builds(
    lambda n, days, region, tags, state, snaps: Image(
        "amazon", region, f"ami-{n:017x}", f"img-{n}", NOW - timedelta(days=days), tags, state,
        tuple(f"snap-{s:017x}" for s in snaps)),
    st.integers(0, 40), st.integers(0, 60), st.sampled_from(["us-east-1", "us-west-2"]),
    _tag_sets, st.sampled_from([gc.AVAILABLE, gc.AVAILABLE, gc.PENDING, gc.FAILED]),
    st.lists(st.integers(0, 15), max_size=3, unique=True)),
    max_size=25, unique_by=lambda i: i.id)


@settings(max_examples=300, deadline=None)
@given(images_=_images, referenced=st.sets(st.integers(0, 40), max_size=15),
       keep=st.integers(0, 4), min_days=st.integers(0, 10))
def test_nothing_referenced_foreign_or_still_used_is_ever_deleted(images_, referenced, keep,
                                                                    min_days):
    references = [Reference(f"AMI-{n:017x}" if n % 2 else f"ami-{n:017x}", f"pool p{n}")
                  for n in referenced]
    plan = gc.plan(images_, references, keep=keep, now=NOW, min_age=timedelta(days=min_days))
    assert len(plan.decisions) == len(images_)
    referenced_ids = {f"ami-{n:017x}" for n in referenced}
    deleted = plan.deleted
    assert not {d.image.id for d in deleted} & referenced_ids
    assert all(d.image.ours for d in deleted)
    assert all(not d.image.ours for d in plan.of(IGNORE))
    staying_snapshots = {(d.image.region, s) for d in plan.decisions if d.action != DELETE
                         for s in d.image.snapshots}
    assert not {(d.image.region, s) for d in deleted for s in d.snapshots} & staying_snapshots
    # every group keeps at least its newest `keep` available images
    for image in images_:
        if image.ours and image.state == gc.AVAILABLE:
            group = [i for i in images_ if i.ours and i.state == gc.AVAILABLE
                     and (i.region, i.key, i.environment) ==
                     (image.region, image.key, image.environment)]
            newer = [i for i in group if (i.created, i.name, i.id) >
                     (image.created, image.name, image.id)]
            if len(newer) < keep:
                assert image.id not in {d.image.id for d in deleted}
