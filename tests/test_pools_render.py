"""Pool definitions rendered from the config and the images built (pure: no worker-manager)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cib_decision import manifest, pools
from cib_decision.config import Pool
from cib_decision.devworker import config as gw_config
from cib_decision.manifest import RecordError
from cib_decision.naming import PR_POOL_DOMAIN, pr_pool_id
from cib_decision.pools import PoolError
from cib_decision.tcschemas import CREATE_WORKER_POOL, provider_config_schema

from . import tcschemas
from .pools_support import images, release_of, request

AZURE = "gecko-t/win10-64-azure"
AWS = "gecko-1/win2022-64-aws"
GOOGLE = "gecko-t/ubuntu-2404-gcp"
EXPIRES = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def render(pool_id, regions=None, build=0, current=None, **kwargs):
    return pools.render(request(pool_id, **kwargs), images(pool_id, regions, build), current)


def schema_errors(definition):
    """The genuine schemas' two steps, as worker-manager runs them."""
    store = tcschemas.store()
    return (store.errors(CREATE_WORKER_POOL, definition.body) +
            store.errors(provider_config_schema(definition.provider_type),
                         definition.body["config"]))


def lc_by_region(definition):
    return {pools.image_of(definition.provider_type, lc).region: lc
            for lc in definition.launch_configs}


@pytest.mark.parametrize("pool_id, provider", [
    (AZURE, "azure"), ("gecko-t/win11-64-gpu-azure", "azure"), (AWS, "aws"),
    ("gecko-t/ubuntu-2404-aws", "aws"), (GOOGLE, "google")])
@pytest.mark.parametrize("pull_request", [None, 17])
def test_every_provider_renders_a_definition_the_genuine_schemas_accept(pool_id, provider,
                                                                        pull_request):
    definition = render(pool_id, pull_request=pull_request, expires=EXPIRES)
    assert definition.provider_type == provider
    assert schema_errors(definition) == []
    assert pools.validate(definition, tcschemas.store()) is definition


def test_the_real_cloud_image_builder_pools_render_and_validate(reference_config):
    directory = str(reference_config)
    for pool_id in ("gecko-t/win10-64-azure", "gecko-1/win2012-azure"):
        definition = pools.render(request(pool_id, "production", directory=directory),
                                  images(pool_id, directory=directory))
        assert schema_errors(definition) == []
        assert definition.body["providerId"] == "azure2"  # the deployment's name, as written


def test_win2012_pools_run_the_images_of_their_own_resource_group(reference_config):
    directory = str(reference_config)
    definition = pools.render(request("gecko-3/win2012-azure", "production",
                                      directory=directory),
                              images("gecko-3/win2012-azure", directory=directory))
    (only,) = definition.launch_configs
    group = "/resourceGroups/rg-central-us-gecko-3/"
    assert group in only["storageProfile"]["imageReference"]["id"]
    assert group in only["subnetId"]


def test_one_launch_config_per_location_that_has_an_image():
    definition = render(AZURE)
    assert sorted(lc_by_region(definition)) == ["centralus", "eastus2", "westus2"]
    centralus = lc_by_region(definition)["centralus"]
    built = next(i for i in images(AZURE) if i.region == "centralus")
    assert centralus["storageProfile"]["imageReference"]["id"] == built.id
    assert centralus["hardwareProfile"]["vmSize"] == "Standard_DS2_v2"  # format with cpu 2
    assert centralus["subnetId"].endswith(
        "/resourceGroups/rg-central-us-win10/providers/Microsoft.Network/virtualNetworks/"
        "vn-central-us-win10/subnets/sn-central-us-win10")
    assert centralus["priority"] == "Spot"  # lifecycle: spot
    assert centralus["tags"]["cib-image"] == built.name


def test_the_config_gives_capacity_lifecycle_owner_and_provider():
    body = render(AZURE).body
    assert body["providerId"] == "azure"
    assert body["owner"] == "relops-windows@example.com"
    assert body["emailOnError"] is True
    assert body["config"]["minCapacity"] == 0 and body["config"]["maxCapacity"] == 40
    assert body["config"]["lifecycle"] == {"registrationTimeout": 2700,
                                           "reregistrationTimeout": 43200,
                                           "queueInactivityTimeout": 7200}


def test_aws_and_google_take_machine_types_images_and_spot_from_the_config():
    (aws,) = [lc for lc in render(AWS).launch_configs if lc["region"] == "us-east-1"]
    assert aws["launchConfig"]["InstanceType"] == "m5.xlarge"
    assert aws["launchConfig"]["ImageId"].startswith("ami-")
    assert aws["launchConfig"]["InstanceMarketOptions"] == {"MarketType": "spot"}
    (google,) = render(GOOGLE).launch_configs
    assert google["zone"] == "us-central1-a"
    assert google["machineType"] == "zones/us-central1-a/machineTypes/n2-standard-4"
    (boot,) = google["disks"]
    assert boot["initializeParams"]["sourceImage"].startswith("projects/example-cib-images/")
    assert google["scheduling"]["provisioningModel"] == "SPOT"


@pytest.mark.parametrize("pool_id", [AZURE, AWS, GOOGLE, "gecko-t/ubuntu-2404-aws"])
def test_every_launch_config_gives_generic_worker_a_config_it_starts_with(pool_id):
    """worker-runner passes `genericWorker.config` on, adding identity and credentials;
    generic-worker exits on an unknown key and without its signing key's location."""
    for launch_config in render(pool_id).launch_configs:
        config = gw_config.from_worker_pool(launch_config["workerConfig"])
        assert gw_config.problems(config, runner_supplied=True) == []


def test_windows_workers_keep_tasks_on_the_task_disk_and_linux_workers_use_the_defaults():
    azure = render(AZURE).launch_configs[0]["workerConfig"]["genericWorker"]["config"]
    assert azure["tasksDir"] == "Z:\\" and azure["cachesDir"] == "Z:\\caches"
    linux = render(GOOGLE).launch_configs[0]["workerConfig"]["genericWorker"]["config"]
    assert "tasksDir" not in linux


def test_a_pool_without_spot_lifecycle_asks_for_regular_machines():
    req = request(AZURE)
    raw = {**req.pool.raw, "lifecycle": "normal"}
    normal = pools.PoolRequest(req.key, Pool(req.pool.domain, req.pool.variant, raw),
                               req.environment)
    definition = pools.render(normal, images(AZURE))
    assert all("priority" not in lc for lc in definition.launch_configs)
    assert schema_errors(definition) == []


def test_launch_config_ids_are_derived_from_the_pool_and_the_content():
    definition = render(AZURE)
    for lc in definition.launch_configs:
        content = {k: v for k, v in lc.items() if k != "workerManager"}
        expected = "lc-" + hashlib.sha256(
            (AZURE + json.dumps(content, sort_keys=True)).encode()).hexdigest()[:20]
        assert lc["workerManager"]["launchConfigId"] == expected


def test_launch_config_ids_change_exactly_when_the_content_changes():
    first, again = render(AZURE), render(AZURE)
    assert first.body == again.body  # rendering is deterministic: no time, no randomness
    rebuilt = lc_by_region(render(AZURE, build=1))
    for region, lc in lc_by_region(first).items():
        assert rebuilt[region]["workerManager"]["launchConfigId"] != (
            lc["workerManager"]["launchConfigId"])
    lc = first.launch_configs[0]
    weighted = {**lc, "workerManager": {**lc["workerManager"], "initialWeight": 0.5}}
    assert pools.launch_config_id(AZURE, weighted) == lc["workerManager"]["launchConfigId"]
    resized = copy.deepcopy(lc)
    resized["hardwareProfile"]["vmSize"] = "Standard_DS3_v2"
    assert pools.launch_config_id(AZURE, resized) != lc["workerManager"]["launchConfigId"]


def test_a_per_pr_pool_has_other_launch_config_ids_than_the_real_pool():
    real = render(AZURE).launch_configs[0]["workerManager"]["launchConfigId"]
    pr = render(AZURE, pull_request=5, expires=EXPIRES).launch_configs[0]
    assert pr["workerManager"]["launchConfigId"] != real


def test_a_region_without_a_new_image_keeps_the_launch_config_it_has():
    before = render(AZURE)
    after = render(AZURE, regions={"centralus"}, build=1, current=before.body)
    old, new = lc_by_region(before), lc_by_region(after)
    assert new["eastus2"] == old["eastus2"] and new["westus2"] == old["westus2"]
    assert new["centralus"] != old["centralus"]
    assert {r: i.kept for r, i in after.images.items()} == {
        "centralus": False, "eastus2": True, "westus2": True}


def test_a_pool_change_without_images_applies_to_kept_regions_with_their_images():
    before = render(AZURE)
    req = request(AZURE)
    raw = {**req.pool.raw, "capacity": {"minimum": 0, "maximum": 5}}
    changed = pools.PoolRequest(req.key, Pool(req.pool.domain, req.pool.variant, raw),
                                req.environment)
    after = pools.render(changed, [], before.body)
    assert after.body["config"]["maxCapacity"] == 5
    assert after.launch_configs == before.launch_configs  # same images, same content, same ids


def test_a_pool_deploy_given_no_images_keeps_every_image_the_pool_runs():
    before = render(AWS)
    after = pools.render(request(AWS), [], before.body)
    assert after.body == before.body
    assert all(image.kept for image in after.images.values())


def test_a_location_with_no_image_anywhere_gets_no_launch_config():
    definition = render(AZURE, regions={"eastus2"})
    assert sorted(lc_by_region(definition)) == ["eastus2"]
    assert definition.missing == ("centralus", "westus2")


def test_a_pool_is_never_rendered_without_a_launch_config():
    with pytest.raises(PoolError, match="would have no launch config"):
        render(AZURE, regions=set())


def test_a_deleted_pool_gives_no_images_to_keep():
    deleted = {**render(AZURE).body, "providerId": pools.NULL_PROVIDER}
    with pytest.raises(PoolError, match="would have no launch config"):
        pools.render(request(AZURE), [], deleted)


def test_images_of_other_platforms_or_other_keys_targets_are_not_used():
    foreign = images(AWS)  # win2022-64 on amazon, not win10-64's azure targets
    with pytest.raises(PoolError, match="would have no launch config"):
        pools.render(request(AZURE), foreign)


def test_a_per_pr_pool_records_its_expiry_and_is_small_and_quiet():
    definition = render(AZURE, pull_request=42, expires=EXPIRES)
    assert definition.pool_id == pr_pool_id(AZURE, 42)
    assert definition.pool_id.startswith(f"{PR_POOL_DOMAIN}/")
    assert pools.expiry(definition.body["description"]) == EXPIRES
    assert "cib-expires: 2026-11-28T13:00:00Z" in definition.body["description"].splitlines()
    assert definition.body["config"]["maxCapacity"] == pools.PR_MAX_CAPACITY
    assert definition.body["emailOnError"] is False


def test_a_real_pool_records_no_expiry():
    assert pools.expiry(render(AZURE).body["description"]) is None


def test_a_per_pr_pool_needs_an_expiry():
    with pytest.raises(PoolError, match="needs an expiry"):
        render(AZURE, pull_request=42)


def test_no_per_pr_pool_in_an_environment_that_takes_no_pull_requests():
    with pytest.raises(PoolError, match="production does not take pull requests"):
        render(AZURE, environment="production", pull_request=42, expires=EXPIRES)


def test_a_config_pool_in_the_per_pr_domain_is_refused():
    req = request(AZURE)
    raw = {**req.pool.raw, "domain": PR_POOL_DOMAIN}
    sneaky = pools.PoolRequest(req.key, Pool(PR_POOL_DOMAIN, req.pool.variant, raw),
                               req.environment)
    with pytest.raises(PoolError, match="reserved for per-PR pools"):
        pools.render(sneaky, images(AZURE))


def test_a_definition_the_schemas_refuse_is_a_clear_error_listing_the_problems():
    definition = render(GOOGLE)
    del definition.launch_configs[0]["zone"]
    definition.body["config"]["maxCapacity"] = -1
    with pytest.raises(PoolError) as caught:
        pools.validate(definition, tcschemas.store())
    message = str(caught.value)
    assert "not valid for worker-manager" in message
    assert "'zone' is a required property" in message
    assert "-1 is less than the minimum of 0" in message


def test_a_request_that_fails_the_request_schema_is_reported_before_the_config():
    definition = render(AZURE)
    definition.body["owner"] = 17
    with pytest.raises(PoolError, match=r"request \$\.owner: 17 is not of type 'string'"):
        pools.validate(definition, tcschemas.store())


def test_a_target_without_a_machine_type_cannot_be_rendered():
    req = request(AWS)
    targets = tuple(replace(t, raw={k: v for k, v in t.raw.items() if k != "machine"})
                    for t in req.key.targets)
    bare = pools.PoolRequest(replace(req.key, targets=targets), req.pool, req.environment)
    with pytest.raises(PoolError, match=r"no machine\.type or machine\.format"):
        pools.render(bare, images(AWS))


def test_unknown_pools_are_named_with_a_suggestion():
    with pytest.raises(PoolError, match="did you mean 'gecko-t/win10-64-azure'"):
        request("gecko-t/win10-64-azur")


# --- the images a deploy is given --------------------------------------------------------------


def test_a_release_that_fails_verification_is_refused():
    data = release_of(AZURE).to_json()
    data["images"][0]["id"] = data["images"][0]["id"].replace("win10-64-", "evil-win10-64-")
    tampered = manifest.parse_release(data)
    with pytest.raises(RecordError, match="fails verification"):
        pools.collect_images([tampered], "win10-64", print)


def test_release_images_win_over_machine_image_records_and_newer_releases_over_older():
    old, new = release_of(AZURE, build=1), release_of(AZURE, build=2)
    newer = manifest.release_record(
        new.key, disk_digest=new.disk_digest, disk_sha256=new.disk_sha256,
        config_commit=new.config_commit, created=datetime(2026, 11, 22, tzinfo=UTC),
        images=new.images)
    chosen = pools.collect_images([newer, old], "win10-64", print)
    assert {i.id for i in chosen} == {i.id for i in newer.images}
    loose = images(AZURE, {"centralus"}, build=3)[0]
    record = manifest.MachineImageRecord(
        "win10-64", loose.target, loose.platform, loose.region, loose.id, loose.name,
        loose.machine_digest, old.disk_digest, old.config_commit, loose.build_task_id,
        "2026-12-01T00:00:00Z")
    chosen = pools.collect_images([record, old], "win10-64", print)
    assert loose.id not in {i.id for i in chosen}
    alone = pools.collect_images([record], "win10-64", print)
    assert [i.id for i in alone] == [loose.id]


def test_records_of_another_key_are_skipped_with_a_line():
    lines = []
    assert pools.collect_images([release_of(AWS)], "win10-64", lines.append) == []
    assert lines == ["skipping a record of key win2022-64: the pool runs images of win10-64"]


@pytest.mark.parametrize("description, expected", [
    ("x\ncib-expires: 2026-11-28T13:00:00Z\n", datetime(2026, 11, 28, 13, tzinfo=UTC)),
    ("cib-expires: 2026-11-28T14:00:00+01:00", datetime(2026, 11, 28, 13, tzinfo=UTC)),
    ("cib-expires: never", None),
    ("a pool that says cib-expires: 2026-11-28T13:00:00Z mid-line", None),
    ("", None),
])
def test_the_expiry_is_read_only_from_its_own_line(description, expected):
    assert pools.expiry(description) == expected


def test_expiry_round_trips_through_the_rendered_description():
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    definition = render(GOOGLE, pull_request=3, expires=expires + timedelta(microseconds=7))
    assert pools.expiry(definition.body["description"]) == expires


def test_a_location_served_by_a_copy_of_an_image_runs_the_copy_with_its_targets_settings():
    req = request(AWS)
    east = next(t for t in req.key.targets if t.region == "us-east-1")
    copying = replace(east, raw={**east.raw, "copies": ["eu-west-1"]})
    key = replace(req.key, targets=(copying,))
    pool = Pool(req.pool.domain, req.pool.variant,
                {**req.pool.raw, "locations": ["us-east-1", "eu-west-1"]})
    own = next(i for i in images(AWS) if i.region == "us-east-1")
    copy_of = replace(own, region="eu-west-1", target="amazon/eu-west-1",
                      id="ami-0000000000000eu01")
    definition = pools.render(pools.PoolRequest(key, pool, req.environment), [own, copy_of])
    by_region = {lc["region"]: lc["launchConfig"] for lc in definition.launch_configs}
    assert by_region["eu-west-1"]["ImageId"] == copy_of.id
    assert by_region["us-east-1"]["ImageId"] == own.id
    assert by_region["eu-west-1"]["InstanceType"] == "m5.xlarge"
    assert schema_errors(definition) == []


def test_a_machine_image_record_gives_its_copies_too():
    own = next(i for i in images(AWS) if i.region == "us-east-1")
    record = manifest.MachineImageRecord(
        "win2022-64", own.target, own.platform, own.region, own.id, own.name,
        own.machine_digest, "ab" * 32, "0" * 40, own.build_task_id, "2026-12-01T00:00:00Z",
        copies=(("eu-west-1", "ami-0000000000000eu01"),))
    chosen = pools.collect_images([record], "win2022-64", print)
    assert [(i.target, i.id) for i in chosen] == [
        ("amazon/eu-west-1", "ami-0000000000000eu01"), ("amazon/us-east-1", own.id)]
