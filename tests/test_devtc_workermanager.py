"""The local worker-manager: pools validated in two steps with the genuine provider schemas,
launch config ids as the service's database computes them, conflicts, archiving, deletion."""

from __future__ import annotations

import copy

import pytest

import taskcluster
from cib_decision.devtc import DevTaskcluster
from cib_decision.devtc.testing import require_schemas
from cib_decision.devtc.workermanager import launch_config_id

from .tcschemas import validator

SUBSCRIPTION = "/subscriptions/0a1b2c3d-0000-4000-8000-000000000000/resourceGroups/rg-cib"
AZURE_IMAGE = (f"{SUBSCRIPTION}/providers/Microsoft.Compute/galleries/cib/images/win10-64/"
               "versions/1.0.17")
AZURE_SEQUENTIAL = {
    "location": "eastus2",
    "subnetId": f"{SUBSCRIPTION}/providers/Microsoft.Network/virtualNetworks/vn-eastus2/"
                "subnets/sn-workers",
    "hardwareProfile": {"vmSize": "Standard_D4s_v3"},
    "storageProfile": {"osDisk": {"createOption": "FromImage", "diskSizeGB": 128},
                       "imageReference": {"id": AZURE_IMAGE}},
    "priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1},
    "tags": {"image-digest": "d2fad18c5d9a"},
    "workerConfig": {"genericWorker": {"config": {"idleTimeoutSecs": 90,
                                                  "deploymentId": "d2fad18c5d9a"}}},
}
AZURE_ARM = {
    "armDeployment": {
        "mode": "Incremental",
        "templateLink": {"id": f"{SUBSCRIPTION}/providers/Microsoft.Resources/templateSpecs/"
                               "worker/versions/3"},
        "parameters": {"location": {"value": "westus2"}, "imageId": {"value": AZURE_IMAGE},
                       "vmSize": {"value": "Standard_D8s_v3"}},
    },
    "workerConfig": {"genericWorker": {"config": {"idleTimeoutSecs": 90}}},
}
AWS = {
    "region": "us-east-1",
    "launchConfig": {"ImageId": "ami-0abcdef1234567890", "InstanceType": "m5.xlarge",
                     "SubnetId": "subnet-0123456789abcdef0",
                     "SecurityGroupIds": ["sg-0123456789abcdef0"],
                     "Placement": {"AvailabilityZone": "us-east-1a"},
                     "InstanceMarketOptions": {"MarketType": "spot"}},
    "workerConfig": {"dockerConfig": {"allowPrivileged": False}},
    "workerManager": {"capacityPerInstance": 1},
}
GOOGLE = {
    "region": "us-central1", "zone": "us-central1-a",
    "machineType": "zones/us-central1-a/machineTypes/n2-standard-4",
    "disks": [{"type": "PERSISTENT", "boot": True, "autoDelete": True,
               "initializeParams": {"sourceImage": "projects/cib/global/images/ubuntu-2404-f9da",
                                    "diskSizeGb": 75}}],
    "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
    "scheduling": {"onHostMaintenance": "terminate"},
    "workerConfig": {"shutdown": {"enabled": True}},
}


def pool(provider: str, *launch_configs: dict, **fields) -> dict:
    return {"providerId": provider, "description": "built by cib", "owner": "cib@example.com",
            "emailOnError": False,
            "config": {"minCapacity": 0, "maxCapacity": 20,
                       "lifecycle": {"registrationTimeout": 1800},
                       "launchConfigs": [copy.deepcopy(lc) for lc in launch_configs]},
            **fields}


def manager(tc, role=None):
    return taskcluster.WorkerManager(tc.options(role))


def rejected(call, *args, **kwargs):
    with pytest.raises(taskcluster.TaskclusterRestFailure) as info:
        call(*args, **kwargs)
    return info.value.status_code, info.value.body


def assert_valid(schema_id, instance):
    assert list(validator(schema_id).iter_errors(instance)) == []


@pytest.mark.parametrize("provider, launch_configs", [
    ("azure", [AZURE_SEQUENTIAL, AZURE_ARM]), ("aws", [AWS]), ("google", [GOOGLE])])
def test_realistic_pools_of_each_provider_type_are_created(dev_taskcluster, provider,
                                                           launch_configs):
    wm, pool_id = manager(dev_taskcluster), f"gecko-t/{provider}-workers"
    created = wm.createWorkerPool(pool_id, pool(provider, *launch_configs))
    assert_valid("/schemas/worker-manager/v1/worker-pool-full.json", created)
    assert (created["workerPoolId"], created["providerId"]) == (pool_id, provider)
    assert created == wm.workerPool(pool_id) == dev_taskcluster.worker_pools()[pool_id]
    served = created["config"]["launchConfigs"]
    assert [lc["workerManager"]["launchConfigId"] for lc in served] == [
        launch_config_id(pool_id, lc) for lc in launch_configs]
    assert [{k: v for k, v in lc.items() if k != "workerManager"} for lc in served] == [
        {k: v for k, v in lc.items() if k != "workerManager"} for lc in launch_configs]


def test_lifecycle_defaults_are_filled_in_as_the_service_does(dev_taskcluster):
    created = manager(dev_taskcluster).createWorkerPool("gecko-t/aws", pool("aws", AWS))
    assert created["config"]["lifecycle"] == {"registrationTimeout": 1800,
                                              "queueInactivityTimeout": 7200,
                                              "reregistrationTimeout": 345600}


def test_launch_config_ids_match_what_postgresql_computes():
    """Expected ids computed by PostgreSQL 15 with worker-manager's
    `'lc-' || left(md5(pool || (config - 'workerManager')::text), 20)`."""
    assert launch_config_id("proj-images/win2022", {
        "location": "eastus2", "subnetId": "/subscriptions/x/sub",
        "hardwareProfile": {"vmSize": "Standard_D4s_v3"},
        "storageProfile": {"osDisk": {"createOption": "FromImage"}, "imageReference": {
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/win-1"}},
        "workerConfig": {"genericWorker": {"config": {"a": 1}}}, "priority": "Spot",
        "billingProfile": {"maxPrice": -1}, "workerManager": {"capacityPerInstance": 1},
    }) == "lc-ce9f64b5ec39f3ab79c2"
    assert launch_config_id("gecko-t/linux", {
        "region": "us-east-1", "launchConfig": {"ImageId": "ami-123", "InstanceType": "m5.large",
                                                "Placement": {"AvailabilityZone": "us-east-1a"}},
        "workerConfig": {"x": [1, 2.5, True, None, "é\n\"q\"\t\u0001/"]}, "aa": 0.1, "b": 1e-05,
        "c": 12345678901234567890,
    }) == "lc-3ee08fa2bb967d84a83c"
    assert launch_config_id("a/b", {}) == "lc-4e5d1b62d917f34bd90a"
    assert launch_config_id("a/b", {"workerManager": {"launchConfigId": "mine"}}) == "mine"


def test_pool_id_with_a_slash_travels_quoted(dev_taskcluster):
    wm = manager(dev_taskcluster)
    wm.createWorkerPool("cib-pr/pr-1234-win2022", pool("aws", AWS))
    assert wm.workerPool("cib-pr/pr-1234-win2022")["workerPoolId"] == "cib-pr/pr-1234-win2022"
    assert dev_taskcluster.stats()["requests"]["worker-manager.workerPool"] == 1


def test_unknown_provider_is_an_input_error_before_the_config_is_checked(dev_taskcluster):
    status, body = rejected(manager(dev_taskcluster).createWorkerPool, "gecko-t/x",
                            pool("azure_trusted", {"not": "a launch config"}))
    assert (status, body["code"]) == (400, "InputError")
    assert body["message"].startswith("Invalid Provider")


def test_config_is_checked_against_the_provider_type_schema(dev_taskcluster):
    wm = manager(dev_taskcluster)
    status, body = rejected(wm.createWorkerPool, "gecko-t/x", pool("aws", AZURE_SEQUENTIAL))
    assert (status, body["code"]) == (400, "InputValidationError")
    assert "config-aws.json" in body["message"]
    both_modes = {**AZURE_SEQUENTIAL, "armDeployment": AZURE_ARM["armDeployment"]}
    status, body = rejected(wm.createWorkerPool, "gecko-t/x", pool("azure", both_modes))
    assert (status, body["code"]) == (400, "InputValidationError")
    assert dev_taskcluster.worker_pools() == {}


def test_provider_ids_map_to_types_as_the_deployment_configures():
    require_schemas()
    with DevTaskcluster(roles={}, providers={"azure2": "azure"}) as tc:
        wm = manager(tc)
        assert wm.createWorkerPool("gecko-t/x", pool("azure2", AZURE_SEQUENTIAL))[
            "providerId"] == "azure2"
        assert rejected(wm.createWorkerPool, "gecko-t/y", pool("azure2", AWS))[1]["code"] == (
            "InputValidationError")
        assert {p["providerId"] for p in wm.listProviders()["providers"]} == {
            "azure", "aws", "google", "azure2"}


def test_request_schema_comes_first(dev_taskcluster):
    wm = manager(dev_taskcluster)
    status, body = rejected(wm.createWorkerPool, "gecko-t/x",
                            pool("aws", AWS, workerPoolId="gecko-t/x"))
    assert (status, body["code"]) == (400, "InputValidationError")
    status, body = rejected(wm.createWorkerPool, "gecko-t/x", pool("aws", AWS, owner="nobody"))
    assert (status, body["code"]) == (400, "InputValidationError")
    status, body = rejected(wm.createWorkerPool, "gecko-t/Upper", pool("aws", AWS))
    assert (status, body["code"]) == (400, "InvalidRequestArguments")


def test_create_on_an_existing_pool_conflicts_unless_equal_to_the_served_pool(dev_taskcluster):
    wm = manager(dev_taskcluster)
    created = wm.createWorkerPool("gecko-t/aws", pool("aws", AWS))
    status, body = rejected(wm.createWorkerPool, "gecko-t/aws", pool("aws", AWS, owner="x@y.z"))
    assert (status, body["code"]) == (409, "RequestConflict")
    assert body["message"].startswith("Worker pool already exists")
    # the service compares with its stored pool, whose launch configs carry their ids
    assert rejected(wm.createWorkerPool, "gecko-t/aws", pool("aws", AWS))[0] == 409
    served = {k: created[k] for k in ("providerId", "description", "config", "owner",
                                      "emailOnError")}
    assert wm.createWorkerPool("gecko-t/aws", served) == created


def test_update_replaces_the_pool_and_archives_launch_configs_left_out(dev_taskcluster):
    wm, pool_id = manager(dev_taskcluster), "gecko-t/win10-64"
    created = wm.createWorkerPool(pool_id, pool("azure", AZURE_SEQUENTIAL, AZURE_ARM))
    old_ids = [lc["workerManager"]["launchConfigId"] for lc in created["config"]["launchConfigs"]]
    rebuilt = copy.deepcopy(AZURE_SEQUENTIAL)
    rebuilt["storageProfile"]["imageReference"]["id"] = AZURE_IMAGE.replace("1.0.17", "1.0.18")
    updated = wm.updateWorkerPool(pool_id, pool("azure", rebuilt, AZURE_ARM,
                                                description="new image"))
    assert_valid("/schemas/worker-manager/v1/worker-pool-full.json", updated)
    assert updated["created"] == created["created"]
    assert updated["description"] == "new image"
    new_id = launch_config_id(pool_id, rebuilt)
    assert [lc["workerManager"]["launchConfigId"]
            for lc in updated["config"]["launchConfigs"]] == [new_id, old_ids[1]]
    everything = wm.listWorkerPoolLaunchConfigs(pool_id, query={"includeArchived": "true"})
    assert_valid("/schemas/worker-manager/v1/worker-pool-launch-config-list.json", everything)
    assert {lc["launchConfigId"]: lc["isArchived"]
            for lc in everything["workerPoolLaunchConfigs"]} == {
        old_ids[0]: True, old_ids[1]: False, new_id: False}
    active = wm.listWorkerPoolLaunchConfigs(pool_id)["workerPoolLaunchConfigs"]
    assert {lc["launchConfigId"] for lc in active} == {old_ids[1], new_id}


def test_an_archived_launch_config_comes_back_when_listed_again(dev_taskcluster):
    wm, pool_id = manager(dev_taskcluster), "gecko-t/aws"
    wm.createWorkerPool(pool_id, pool("aws", AWS))
    other = {**AWS, "region": "us-west-2"}
    wm.updateWorkerPool(pool_id, pool("aws", other))
    wm.updateWorkerPool(pool_id, pool("aws", AWS))
    states = {lc["launchConfigId"]: lc["isArchived"] for lc in wm.listWorkerPoolLaunchConfigs(
        pool_id, query={"includeArchived": "true"})["workerPoolLaunchConfigs"]}
    assert states == {launch_config_id(pool_id, AWS): False,
                      launch_config_id(pool_id, other): True}


def test_reusing_a_launch_config_id_with_other_content_conflicts(dev_taskcluster):
    wm, pool_id = manager(dev_taskcluster), "gecko-t/aws"
    pinned = {**AWS, "workerManager": {"launchConfigId": "lc-pinned"}}
    wm.createWorkerPool(pool_id, pool("aws", pinned))
    # the same id with another image: refused, and nothing changes
    moved = copy.deepcopy(pinned)
    moved["launchConfig"]["ImageId"] = "ami-0fedcba9876543210"
    status, body = rejected(wm.updateWorkerPool, pool_id, pool("aws", moved))
    assert (status, body["code"]) == (409, "RequestConflict")
    assert "Launch config with ID `lc-pinned` already exists" in body["message"]
    assert wm.workerPool(pool_id)["config"]["launchConfigs"][0]["launchConfig"]["ImageId"] == (
        AWS["launchConfig"]["ImageId"])
    # workerManager settings are not content: changing them keeps the id
    resized = {**pinned, "workerManager": {"launchConfigId": "lc-pinned", "maxCapacity": 3}}
    updated = wm.updateWorkerPool(pool_id, pool("aws", resized))
    assert updated["config"]["launchConfigs"][0]["workerManager"]["launchConfigId"] == (
        "lc-pinned")


def test_update_rules(dev_taskcluster):
    wm = manager(dev_taskcluster)
    status, body = rejected(wm.updateWorkerPool, "gecko-t/missing", pool("aws", AWS))
    assert (status, body["code"]) == (404, "ResourceNotFound")
    wm.createWorkerPool("gecko-t/aws", pool("aws", AWS))
    status, body = rejected(wm.updateWorkerPool, "gecko-t/aws",
                            pool("aws", AWS, workerPoolId="gecko-t/other"))
    assert (status, body["code"]) == (400, "InputError")
    same_id = pool("aws", AWS, workerPoolId="gecko-t/aws", lastModified="2020-01-01T00:00:00Z")
    assert wm.updateWorkerPool("gecko-t/aws", same_id)["workerPoolId"] == "gecko-t/aws"


def test_deleted_pool_stays_listed_with_the_null_provider_until_updated(dev_taskcluster):
    wm, pool_id = manager(dev_taskcluster), "gecko-t/aws"
    wm.createWorkerPool(pool_id, pool("aws", AWS))
    deleted = wm.deleteWorkerPool(pool_id)
    assert_valid("/schemas/worker-manager/v1/worker-pool-full.json", deleted)
    assert deleted["providerId"] == "null-provider"
    assert "launchConfigs" not in deleted["config"]
    assert [p["providerId"] for p in wm.listWorkerPools()["workerPools"]] == ["null-provider"]
    assert all(lc["isArchived"] for lc in wm.listWorkerPoolLaunchConfigs(
        pool_id, query={"includeArchived": "true"})["workerPoolLaunchConfigs"])
    assert rejected(wm.createWorkerPool, pool_id, pool("aws", AWS))[0] == 409
    revived = wm.updateWorkerPool(pool_id, pool("aws", AWS))
    assert (revived["providerId"], len(revived["config"]["launchConfigs"])) == ("aws", 1)
    assert rejected(wm.deleteWorkerPool, "gecko-t/missing")[0] == 404


def test_list_worker_pools_pages_in_id_order(dev_taskcluster):
    wm = manager(dev_taskcluster)
    ids = ["gecko-t/c", "gecko-1/b", "gecko-t/a"]
    for pool_id in ids:
        wm.createWorkerPool(pool_id, pool("aws", AWS))
    first = wm.listWorkerPools(query={"limit": 2})
    assert_valid("/schemas/worker-manager/v1/worker-pool-list.json", first)
    pages = []
    wm.listWorkerPools(query={"limit": 2}, paginationHandler=pages.append)
    assert [[p["workerPoolId"] for p in page["workerPools"]] for page in pages] == [
        ["gecko-1/b", "gecko-t/a"], ["gecko-t/c"]]


def test_roles_may_manage_only_their_pools(dev_taskcluster):
    pr = manager(dev_taskcluster, "pull-request")
    assert pr.createWorkerPool("cib-pr/pr-7-win10-64", pool("aws", AWS))["providerId"] == "aws"
    status, body = rejected(pr.createWorkerPool, "gecko-t/win10-64", pool("aws", AWS))
    assert (status, body["code"]) == (403, "InsufficientScopes")
    assert "worker-manager:manage-worker-pool:gecko-t/win10-64" in body["message"]
    main = manager(dev_taskcluster, "branch:main")
    assert main.createWorkerPool("gecko-t/win10-64", pool("aws", AWS))["providerId"] == "aws"
