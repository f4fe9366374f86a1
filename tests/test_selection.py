"""Selection: the fleet narrowed by directives and the environment, with reasons."""

from __future__ import annotations

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import Vocabulary, parse_directives
from cib_decision.selection import select

from .conftest import CONFIG_DIR


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(DirectorySource(CONFIG_DIR))


def run(fleet, message: str, environment: str = "production"):
    return select(fleet, parse_directives(message, Vocabulary.from_fleet(fleet)), environment)


def test_no_directives_select_every_key_target_and_pool_cib_can_build(fleet):
    selection = run(fleet, "plain commit")
    assert set(selection.keys) == set(fleet.keys)
    for name, key in fleet.keys.items():
        assert selection.keys[name].targets == tuple(t.id for t in key.targets)
        assert selection.keys[name].pools == tuple(p.id for p in key.pools)
    # cib builds on all three clouds (a cloud left out: test_unbuilt_clouds.py)
    assert selection.skipped == {}


@pytest.mark.parametrize("flag", ["no-ci", "no-taskcluster-ci"])
def test_no_ci_selects_nothing(fleet, flag):
    selection = run(fleet, f"x\n\n{flag}\ninclude keys: win10-64")
    assert selection.empty and flag in selection.skipped["*"]


def test_an_excluded_environment_selects_nothing(fleet):
    assert run(fleet, "exclude environments: production", "production").empty
    assert not run(fleet, "exclude environments: production", "staging").empty
    assert run(fleet, "include environments: staging", "production").empty


def test_include_keys_narrows_to_those_keys(fleet):
    selection = run(fleet, "include keys: win11-64, win2022-64")
    assert set(selection.keys) == {"win11-64", "win2022-64"}
    assert selection.skipped["win10-64"] == "not in `include keys`"


def test_exclude_keys_star_leaves_only_maintenance(fleet):
    selection = run(fleet, "exclude keys: *")
    assert selection.empty and set(selection.skipped) == set(fleet.keys)


def test_include_pools_selects_the_feeding_key_and_only_the_pools_locations(fleet):
    selection = run(fleet, "include pools: gecko-1/win11-64-azure")
    assert set(selection.keys) == {"win11-64"}
    chosen = selection.keys["win11-64"]
    assert chosen.pools == ("gecko-1/win11-64-azure",)
    assert chosen.targets == ("azure/centralus", "azure/eastus")
    assert selection.skipped["gecko-t/win11-64-azure"] == "not in `include pools`"


def test_exclude_pools_drops_only_those_pools(fleet):
    selection = run(fleet, "exclude pools: gecko-t/ubuntu-2404-gcp")
    assert selection.keys["ubuntu-2404"].pools == ("gecko-t/ubuntu-2404-aws",)
    # the Google target stays: pool filters narrow pools, not the images a key builds
    assert selection.keys["ubuntu-2404"].targets == ("amazon/us-east-1", "google/us-central1")
    assert selection.skipped["gecko-t/ubuntu-2404-gcp"] == "in `exclude pools`"


def test_region_filters_narrow_targets_and_pools(fleet):
    selection = run(fleet, "include regions: East US")
    assert set(selection.keys) == {"win11-64", "win11-64-gpu"}
    assert selection.keys["win11-64"].targets == ("azure/eastus",)
    assert selection.keys["win11-64"].pools == ("gecko-t/win11-64-azure",
                                                "gecko-1/win11-64-azure")
    excluded = run(fleet, "exclude regions: us-east-1").keys["ubuntu-2404"]
    assert excluded.targets == ("google/us-central1",)  # what is left is on Google
    assert excluded.pools == ("gecko-t/ubuntu-2404-gcp",)
    assert not excluded.unbuilt_targets and not excluded.unbuilt_pools


def test_keys_built_from_a_base_image_need_no_disk_image(fleet):
    selection = run(fleet, "plain")
    assert selection.keys["win2022-64"].disk_image is False
    assert selection.keys["win10-64"].disk_image is True
    assert selection.keys["ubuntu-2404"].disk_image is True
