"""`cib drift` against the local Taskcluster (`dev_taskcluster`): a pool deployed as a push
deploys it reports nothing; each kind of drift between the config, worker-manager and the
release pointers is found, with the fix it names."""

from __future__ import annotations

import json

import pytest

import taskcluster
from cib_decision import manifest, pools
from cib_decision.lifecycle import pointers

from .conftest import CONFIG_DIR
from .pools_support import cib, release_of, task
from .pools_support import in_task as in_task  # a fixture, used by name

AZURE = "gecko-t/win10-64-azure"
DEPLOYED = (AZURE, "gecko-1/win2022-64-aws")  # the pools a test deploys, as a push would

pytestmark = pytest.mark.usefixtures("in_task")


def deploy(dev, monkeypatch, capsys, pool_id, build=0):
    """A tag task's release of the pool's key (another `build` for other images), and the
    pool deployed from it by `cib pool apply` as its worker-pool task runs it."""
    tag = task(dev)
    dev.resolve_task(tag, artifacts={
        manifest.RELEASE_ARTIFACT: release_of(pool_id, build=build).to_json()})
    monkeypatch.setenv("TASK_ID", task(dev, [tag]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                       pool_id)
    monkeypatch.delenv("TASK_ID")
    assert code == 0, err
    return tag


def drift(capsys, *args):
    code, out, err = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                         "staging", "--format", "json", *args)
    assert code in (0, 1), err
    return code, {(d["subject"], d["kind"]): d for d in json.loads(out)["drift"]}


@pytest.fixture
def deployed(dev_taskcluster, monkeypatch, capsys):
    for pool_id in DEPLOYED:
        deploy(dev_taskcluster, monkeypatch, capsys, pool_id)
    return dev_taskcluster


def deployable_pools():
    """The config's pools cib deploys (the Google one it does not build yet is left out)."""
    from cib_decision.config import DirectorySource, load_fleet
    from cib_decision.selection import pool_not_built

    fleet = load_fleet(DirectorySource(str(CONFIG_DIR)))
    return {pool.id for key in fleet.keys.values() for pool in key.pools
            if not pool_not_built(key, pool, fleet, "staging")}


def test_pools_deployed_from_their_release_have_no_drift_and_the_others_are_undeployed(
        deployed, capsys):
    code, found = drift(capsys)
    assert code == 1
    assert set(found) == {(p, "not-deployed") for p in deployable_pools() - set(DEPLOYED)}
    assert found[("gecko-t/ubuntu-2404-aws", "not-deployed")]["fix"] == (
        "push a commit whose message says `pool-deploy` and `include pools: "
        "gecko-t/ubuntu-2404-aws`")


def test_a_pool_edited_by_hand_is_found_with_the_fields_that_differ(deployed, capsys):
    wm = taskcluster.WorkerManager(deployed.options())
    pool = wm.workerPool(AZURE)
    body = pools.comparable(pool)
    body["config"]["maxCapacity"] += 10
    body["owner"] = "someone-else@example.com"
    wm.updateWorkerPool(AZURE, body)
    _, found = drift(capsys)
    edited = found[(AZURE, "hand-edited")]
    assert "in config.maxCapacity, owner" in edited["detail"]
    assert f"cib rollback --pool {AZURE} --to " in edited["fix"]


def test_an_image_no_release_names_and_a_pool_behind_its_key_are_found(
        deployed, monkeypatch, capsys):
    index = taskcluster.Index(deployed.options())
    # the key moves on (another build released and deployed elsewhere) while the pool stays
    newer = release_of(AZURE, build=1)
    tag = task(deployed)
    deployed.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: newer.to_json()})
    pointers.set_release(index, "staging", pointers.ReleaseRef(newer.key, newer.sha256, tag),
                         "deploy", lambda line: None)
    _, found = drift(capsys)
    assert f"its key's current release is {newer.sha256[:12]}" in \
        found[(AZURE, "behind-key")]["detail"]
    # a launch config switched to an image of that build by hand
    wm = taskcluster.WorkerManager(deployed.options())
    body = pools.comparable(wm.workerPool(AZURE))
    launch = body["config"]["launchConfigs"][0]
    image = next(i for i in newer.images if i.region == launch["location"])
    launch["storageProfile"]["imageReference"]["id"] = image.id
    launch["workerManager"]["launchConfigId"] = "lc-edited-by-hand"  # as the UI makes one
    wm.updateWorkerPool(AZURE, body)
    _, found = drift(capsys)
    assert f"{launch['location']} runs {image.id}, which release" in \
        found[(AZURE, "unreleased-image")]["detail"]


def test_a_pool_deployed_by_hand_and_one_whose_key_left_the_config_are_found(
        deployed, capsys):
    wm = taskcluster.WorkerManager(deployed.options())
    body = pools.comparable(wm.workerPool(AZURE))
    for pool_id in ("gecko-t/win7-32-azure", "gecko-t/ubuntu-2404-aws"):
        wm.createWorkerPool(pool_id, body)
    _, found = drift(capsys)
    assert found[("gecko-t/win7-32-azure", "not-in-config")]["fix"].startswith(
        "delete it in worker-manager")
    assert ("gecko-t/ubuntu-2404-aws", "no-release") in found
    assert ("gecko-t/ubuntu-2404-aws", "not-deployed") not in found


def test_the_table_says_each_difference_and_its_fix_or_that_there_is_none(deployed, capsys):
    code, out, _ = cib(capsys, "drift", "--config-dir", str(CONFIG_DIR), "--environment",
                       "staging")
    assert code == 1
    assert "  gecko-t/ubuntu-2404-aws  not-deployed: in the config, not in worker-manager\n" \
           "      fix: push a commit whose message says `pool-deploy`" in out
