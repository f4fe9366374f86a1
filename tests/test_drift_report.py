"""What `cib drift` writes for the drift task's check run, and which clouds it asks (pure)."""

from __future__ import annotations

from cib_decision import drift, drift_clouds
from cib_decision.checkrun_errors import MAX_TEXT
from cib_decision.cli.drift import NO_DRIFT, check_run_text


def test_no_drift_is_a_headline_and_the_sentence_the_table_prints():
    assert check_run_text([], "production") == f"### No drift in production\n\n{NO_DRIFT}.\n"


def test_a_long_drift_keeps_whole_rows_within_the_check_run_budget_and_counts_the_rest():
    found = [drift.undeployed(f"gecko-t/pool-{n:04}-{'x' * 200}") for n in range(500)]
    text = check_run_text(found, "staging")
    assert len(text) <= MAX_TEXT
    assert text.startswith("### 500 differences in staging\n")
    rows = [line for line in text.splitlines() if line.startswith("| `gecko-t/pool-")]
    assert rows and all(row.endswith(" |") for row in rows)
    assert text.rstrip().endswith(f"... and {500 - len(rows)} more (`cib drift --format json` "
                                  "lists them all; so does this task's `public/drift.json`)")


def test_a_pipe_in_a_detail_does_not_break_the_table():
    (row,) = [line for line in check_run_text(
        [drift.Drift("hand-edited", "a/b", "x | y", "fix")], "e").splitlines()
        if line.startswith("| `a/b`")]
    assert row == "| `a/b` | hand-edited | x \\| y | fix |"


def test_a_cloud_without_a_reader_is_not_asked_and_nothing_of_it_is_gone():
    asked = []

    def amazon():
        def read(wanted):
            asked.extend(wanted)
            return {"ami-1"}
        return read

    lines = []
    wanted = [drift_clouds.Wanted("amazon", "us-east-1", "ami-1"),
              drift_clouds.Wanted("amazon", "us-east-1", "ami-2"),
              drift_clouds.Wanted("google", "us-central1", "projects/p/global/images/i")]
    existing = drift_clouds.existing(wanted, lines.append, {"amazon": amazon})
    assert existing == {"amazon": {"ami-1"}}
    assert [w.id for w in asked] == ["ami-1", "ami-2"]
    assert lines == ["amazon: 1 of 2 images exist",
                     "google: 1 image not checked (cib drift does not read google yet)"]
    pool = drift.DeployedPool("gecko-t/g", "k", "google", (("us-central1", "i"),),
                              frozenset(), frozenset(), ())
    assert drift.pool_cloud_drift(pool, existing) == []


def test_azure_ids_are_compared_whatever_their_case():
    image = "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/images/i"
    pool = drift.DeployedPool("gecko-t/a", "k", "azure", (("eastus", image),),
                              frozenset(), frozenset(), ())
    assert drift.pool_cloud_drift(pool, {"azure": {image.lower()}}) == []


def test_a_region_kept_on_an_earlier_image_because_its_build_failed_is_told_to_build_again():
    """A push whose build of one region failed releases the others; the pool's deploy keeps
    that region's image (pools.failed_build_regions). No deploy can mend it, so the fix
    names the build, not a pool-deploy; an image swapped in a released region stays
    `unreleased-image`."""
    from cib_decision.drift import pool_drift
    from cib_decision.pools import Definition, comparable

    def launch(region: str, ami: str) -> dict:
        return {"region": region, "launchConfig": {"ImageId": ami}}

    live = {"workerPoolId": "gecko-t/linux-aws", "providerId": "aws",
            "config": {"launchConfigs": [launch("us-east-1", "ami-0old"),
                                         launch("us-west-2", "ami-0edited")]}}
    expected = Definition("gecko-t/linux-aws", "aws", comparable(live), {})
    found = {d.kind: d for d in pool_drift(
        "gecko-t/linux-aws", expected, live, {"ami-0new"}, "f" * 64, "f" * 64, "linux",
        frozenset({"us-west-2"}))}
    assert set(found) == {"unbuilt-region", "unreleased-image"}
    assert found["unbuilt-region"].detail == (
        "us-east-1 keeps ami-0old of an earlier release: release ffffffffffff has no image "
        "there (its build failed, or was left out of that push)")
    assert "`include keys: linux` (failed builds are not indexed" in found["unbuilt-region"].fix
    assert "pool-deploy" in found["unreleased-image"].fix
