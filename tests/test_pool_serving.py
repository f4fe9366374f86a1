"""One rule for which target serves a pool where (`ImageKey.serving_target`), used by the
selection (`include pools`), the graph (what a pool deploy waits for and is redeployed by) and
the pool definitions: the pool's own domain's resource group where a region has several, by
region otherwise, and a target copying its image to a location no target is in."""

from __future__ import annotations

from cib_decision.config.model import ImageKey, Pool, Target
from cib_decision.directives import Directives, Filter
from cib_decision.taskgraph.items import pool_targets


def target(platform: str, region: str, group: str | None = None, copies=()) -> Target:
    raw = {"platform": platform, "region": region, "copies": list(copies),
           **({"group": group} if group else {})}
    return Target(f"{platform}/{region}" + (f"/{group}" if group else ""), platform, region,
                  raw)


def pool(domain: str, platform: str, *locations: str) -> Pool:
    return Pool(domain, "win", {"platform": platform, "locations": list(locations),
                                "provider": platform})


# cloud-image-builder's win2012: a resource group per pool domain in each region
GROUPS = ImageKey("win2012", "win2012.yaml", {"image": {"os": "Windows Server 2012"}}, (
    target("azure", "centralus", "rg-central-us-gecko-1"),
    target("azure", "centralus", "rg-central-us-gecko-3"),
    target("azure", "eastus", "rg-east-us-gecko-1"),
    target("azure", "eastus", "rg-east-us-gecko-3"),
), (pool("gecko-1", "azure", "centralus", "eastus"),
    pool("gecko-3", "azure", "centralus")))

# an AWS key whose us-east-1 build is copied to eu-west-1, where a pool runs it
COPIES = ImageKey("linux", "linux.yaml", {"image": {"os": "Ubuntu 24.04"}}, (
    target("amazon", "us-east-1", copies=("eu-west-1",)),
    target("amazon", "us-west-2"),
), (pool("gecko-t", "amazon", "eu-west-1"), pool("gecko-1", "amazon", "us-west-2")))


def test_a_pool_is_served_by_its_own_domains_resource_group_in_each_region():
    gecko_1, gecko_3 = GROUPS.pools
    assert [t.id for t in GROUPS.serving_targets(gecko_1)] == [
        "azure/centralus/rg-central-us-gecko-1", "azure/eastus/rg-east-us-gecko-1"]
    assert pool_targets(GROUPS, gecko_3) == ["azure/centralus/rg-central-us-gecko-3"]


def test_include_pools_builds_only_the_targets_that_serve_the_pool():
    from cib_decision.config.model import Fleet, SharedInputs
    from cib_decision.selection import select

    fleet = Fleet({"win2012": GROUPS}, SharedInputs({}), {})
    chosen = select(fleet, Directives(include=Filter(pools=("gecko-3/win",))), "production")
    assert chosen.keys["win2012"].targets == ("azure/centralus/rg-central-us-gecko-3",)
    assert chosen.skipped["win2012 azure/eastus/rg-east-us-gecko-3"] == \
        "serves none of the pools in `include pools`"


def test_a_pool_served_through_a_copy_waits_for_and_is_redeployed_by_the_copying_target():
    from cib_decision.config.model import Fleet, SharedInputs
    from cib_decision.digests import KeyDigests
    from cib_decision.taskgraph.items import pool_items as items_of_pools

    copied, direct = COPIES.pools
    assert pool_targets(COPIES, copied) == ["amazon/us-east-1"]
    assert pool_targets(COPIES, direct) == ["amazon/us-west-2"]
    fleet = Fleet({"linux": COPIES}, SharedInputs({}), {})

    def pool_items(east: str) -> dict[str, dict]:
        digests = {"linux": KeyDigests("linux", "d" * 64, {"amazon/us-east-1": east,
                                                           "amazon/us-west-2": "w" * 64})}
        return {item["pool"]: item for item in items_of_pools(
            fleet, digests, {"cib_environment": "production"})}

    before, after = pool_items("a" * 64), pool_items("b" * 64)
    assert before[copied.id]["targets"] == ["amazon/us-east-1"]
    # the copying target's image is rebuilt: the pool it serves is deployed again, the other
    # pool is not
    assert before[copied.id]["digest"] != after[copied.id]["digest"]
    assert before[direct.id]["digest"] == after[direct.id]["digest"]
