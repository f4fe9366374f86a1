"""apply, teardown and sweep end to end against the local Taskcluster (`dev_taskcluster`),
which validates every request with the genuine schemas and checks scopes like the real one."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import slugid
from taskcluster.exceptions import TaskclusterRestFailure

import taskcluster
from cib_decision import manifest, pools
from cib_decision.devtc.testing import new_task
from cib_decision.errors import TransientError
from cib_decision.manifest import ReleaseImage
from cib_decision.naming import pr_pool_id
from cib_decision.pools import PoolError

from . import tcschemas
from .conftest import CONFIG_DIR
from .pools_support import (
    BUILD_TASK,
    COMMIT,
    cib,
    fleet,
    images,
    release_of,
    request,
    task,
    untested_config,
)
from .pools_support import in_task as in_task  # a fixture, used by name

AZURE = "gecko-t/win10-64-azure"
AWS = "gecko-1/win2022-64-aws"
GOOGLE = "gecko-t/ubuntu-2404-gcp"
NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
WRITES = ("worker-manager.createWorkerPool", "worker-manager.updateWorkerPool")


def silent(_line: str) -> None:
    """A log that drops its lines."""


def wm_for(dev, role=None, retries=0):
    return taskcluster.WorkerManager(dev.options(role, max_retries=retries))


def deploy(dev, pool_id, image_list, role="branch:main", log=silent, **kwargs):
    return pools.apply(wm_for(dev, role), request(pool_id, **kwargs), image_list,
                       tcschemas.store(), log)


def writes(dev) -> int:
    requests = dev.stats()["requests"]
    return sum(requests.get(method, 0) for method in WRITES)


def served(dev, pool_id):
    return pools.comparable(dev.worker_pools()[pool_id])


def launch_config_ids(dev, pool_id):
    return {pools.image_of(pools.PROVIDER_TYPES["azure"], lc).region:
            lc["workerManager"]["launchConfigId"]
            for lc in dev.worker_pools()[pool_id]["config"]["launchConfigs"]}


# --- apply ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_id", [AZURE, AWS, GOOGLE])
def test_the_server_accepts_the_definition_and_a_second_apply_writes_nothing(dev_taskcluster,
                                                                             pool_id):
    definition, outcome = deploy(dev_taskcluster, pool_id, images(pool_id))
    assert outcome.action == "created"
    assert served(dev_taskcluster, pool_id) == definition.body
    before = writes(dev_taskcluster)
    lines = []
    _, again = deploy(dev_taskcluster, pool_id, images(pool_id), log=lines.append)
    assert again.action == "unchanged"
    assert writes(dev_taskcluster) == before
    assert lines == [f"{pool_id}: unchanged ({len(definition.launch_configs)} launch configs)"]


def test_a_region_whose_build_failed_keeps_its_previous_launch_config(dev_taskcluster):
    deploy(dev_taskcluster, AZURE, images(AZURE))
    first = launch_config_ids(dev_taskcluster, AZURE)
    lines = []
    _, outcome = deploy(dev_taskcluster, AZURE, images(AZURE, {"centralus"}, build=1),
                        log=lines.append)
    second = launch_config_ids(dev_taskcluster, AZURE)
    assert second["eastus2"] == first["eastus2"] and second["westus2"] == first["westus2"]
    assert second["centralus"] != first["centralus"]
    assert (outcome.action, outcome.added, outcome.archived) == (
        "updated", [second["centralus"]], [first["centralus"]])
    assert any(line.startswith(f"{AZURE}: eastus2 keeps the image it runs") for line in lines)
    archived = wm_for(dev_taskcluster).listWorkerPoolLaunchConfigs(
        AZURE, query={"includeArchived": "true"})["workerPoolLaunchConfigs"]
    assert {lc["launchConfigId"] for lc in archived if lc["isArchived"]} == {first["centralus"]}


def test_a_pool_deploy_with_no_images_keeps_the_images_and_writes_nothing(dev_taskcluster):
    definition, _ = deploy(dev_taskcluster, AWS, images(AWS))
    before = writes(dev_taskcluster)
    again, outcome = deploy(dev_taskcluster, AWS, [])
    assert outcome.action == "unchanged" and again.body == definition.body
    assert writes(dev_taskcluster) == before


def test_a_new_pool_with_no_images_is_not_written(dev_taskcluster):
    with pytest.raises(PoolError, match="would have no launch config"):
        deploy(dev_taskcluster, AZURE, [])
    assert writes(dev_taskcluster) == 0 and dev_taskcluster.worker_pools() == {}


class KilledAfter:
    """A worker-manager client whose `method` reaches the server, then the caller dies (the
    task is killed before it sees the answer)."""

    def __init__(self, wm, method: str):
        self._wm, self._method = wm, method

    def __getattr__(self, name):
        call = getattr(self._wm, name)
        if name != self._method:
            return call

        def killed(*args, **kwargs):
            call(*args, **kwargs)
            raise KeyboardInterrupt

        return killed


@pytest.mark.parametrize("method", ["createWorkerPool", "updateWorkerPool"])
def test_an_apply_killed_after_writing_converges_when_run_again(dev_taskcluster, method):
    if method == "updateWorkerPool":
        deploy(dev_taskcluster, AZURE, images(AZURE))
    new = images(AZURE, build=1)
    with pytest.raises(KeyboardInterrupt):
        pools.apply(KilledAfter(wm_for(dev_taskcluster), method), request(AZURE), new,
                    tcschemas.store(), silent)
    definition, outcome = deploy(dev_taskcluster, AZURE, new)
    assert outcome.action == "unchanged"
    assert served(dev_taskcluster, AZURE) == definition.body


def test_an_apply_whose_write_answer_is_lost_fails_then_converges_when_run_again(
        dev_taskcluster):
    deploy(dev_taskcluster, AZURE, images(AZURE))
    new = images(AZURE, {"centralus"}, build=1)
    # read answered; the update applied each time but every answer lost (1 try + 2 retries)
    dev_taskcluster.script_faults("", "drop-after", "drop-after", "drop-after")
    # a lost answer is transient (exit 75): the worker runs the task again
    with pytest.raises(TransientError, match="worker-manager failed to update"):
        pools.apply(wm_for(dev_taskcluster, retries=2), request(AZURE), new,
                    tcschemas.store(), silent)
    definition, outcome = deploy(dev_taskcluster, AZURE, new)
    assert outcome.action == "unchanged"
    assert served(dev_taskcluster, AZURE) == definition.body


def test_an_apply_under_random_faults_run_again_until_done_converges_to_one_definition(
        dev_taskcluster):
    deploy(dev_taskcluster, AZURE, images(AZURE))
    new = images(AZURE, {"centralus", "westus2"}, build=1)
    dev_taskcluster.set_faults(error_rate=0.4, latency_ms=1, drop_rate=0.4, seed=3)
    runs = 0
    while runs < 30:
        runs += 1
        try:
            pools.apply(wm_for(dev_taskcluster, retries=1), request(AZURE), new,
                        tcschemas.store(), silent)
            break
        except (PoolError, TransientError):
            continue  # the task failed; Taskcluster (or a person) runs it again
    else:
        pytest.fail("30 runs under faults never completed")
    faults = dev_taskcluster.stats()["faults"]
    dev_taskcluster.set_faults()
    definition, outcome = deploy(dev_taskcluster, AZURE, new)
    assert outcome.action == "unchanged"
    assert served(dev_taskcluster, AZURE) == definition.body
    assert faults and runs > 1  # the seed makes this run meet faults and fail at least once
    active = wm_for(dev_taskcluster).listWorkerPoolLaunchConfigs(AZURE)[
        "workerPoolLaunchConfigs"]
    assert len(active) == 3


def test_the_pull_request_role_may_not_write_a_real_pool(dev_taskcluster):
    definition = pools.validate(pools.render(request(AZURE), images(AZURE)), tcschemas.store())
    with pytest.raises(PoolError, match=r"refused to create gecko-t/win10-64-azure \(403\)"):
        pools.write(wm_for(dev_taskcluster, "pull-request"), definition, None, silent)
    with pytest.raises(PoolError, match=r"\(403\): insufficient scopes"):
        deploy(dev_taskcluster, AZURE, images(AZURE), role="pull-request")
    assert dev_taskcluster.worker_pools() == {}


def test_the_pull_request_role_deploys_its_per_pr_pool(dev_taskcluster):
    expires = NOW + timedelta(days=7)
    definition, outcome = deploy(dev_taskcluster, AZURE, images(AZURE), role="pull-request",
                                 pull_request=8, expires=expires)
    assert outcome.action == "created"
    pool = dev_taskcluster.worker_pools()[pr_pool_id(AZURE, 8)]
    assert pools.expiry(pool["description"]) == expires
    assert set(dev_taskcluster.worker_pools()) == {definition.pool_id}


def test_a_deleted_pool_is_deployed_again_by_update(dev_taskcluster):
    deploy(dev_taskcluster, AZURE, images(AZURE))
    wm_for(dev_taskcluster).deleteWorkerPool(AZURE)
    definition, outcome = deploy(dev_taskcluster, AZURE, images(AZURE))
    assert outcome.action == "updated"
    assert served(dev_taskcluster, AZURE) == definition.body


# --- teardown and sweep -----------------------------------------------------------------------


def pr_pool(dev, pool_id, number, expires=NOW + timedelta(days=7)):
    return deploy(dev, pool_id, images(pool_id), pull_request=number, expires=expires)[0]


def providers(dev):
    return {pool_id: pool["providerId"] for pool_id, pool in dev.worker_pools().items()}


def test_teardown_deletes_that_pull_requests_pools_only_and_again_nothing(dev_taskcluster):
    mine = [pr_pool(dev_taskcluster, p, 5).pool_id for p in (AZURE, AWS)]
    others = [pr_pool(dev_taskcluster, AZURE, 55).pool_id,
              pr_pool(dev_taskcluster, GOOGLE, 6).pool_id]
    deploy(dev_taskcluster, AZURE, images(AZURE))
    # a per-PR pool of a pool no longer in the config
    stray = "cib-pr/gecko-t-gone-pr5"
    wm_for(dev_taskcluster).createWorkerPool(
        stray, pools.comparable(dev_taskcluster.worker_pools()[mine[0]]))
    deleted = pools.teardown(wm_for(dev_taskcluster, "branch:main"), 5, fleet().pools, silent)
    assert deleted == sorted([*mine, stray])
    state = providers(dev_taskcluster)
    assert all(state[p] == pools.NULL_PROVIDER for p in deleted)
    assert all(state[p] != pools.NULL_PROVIDER for p in [*others, AZURE])
    assert pools.teardown(wm_for(dev_taskcluster, "branch:main"), 5, fleet().pools,
                          silent) == []


def test_the_pull_request_role_tears_down_its_per_pr_pools(dev_taskcluster):
    mine = pr_pool(dev_taskcluster, GOOGLE, 12).pool_id
    other = pr_pool(dev_taskcluster, GOOGLE, 13).pool_id
    deleted = pools.teardown(wm_for(dev_taskcluster, "pull-request"), 12, fleet().pools,
                             silent)
    assert deleted == [mine]
    assert providers(dev_taskcluster) == {mine: pools.NULL_PROVIDER, other: "google"}


class NoListing:
    """A worker-manager client whose credentials lack `worker-manager:list-worker-pools`."""

    def __init__(self, wm):
        self._wm = wm

    def __getattr__(self, name):
        return getattr(self._wm, name)

    def listWorkerPools(self, *args, **kwargs):
        raise TaskclusterRestFailure("insufficient scopes", None, 403, {
            "code": "InsufficientScopes", "message": "needs worker-manager:list-worker-pools"})


def test_teardown_without_listing_deletes_the_configs_per_pr_pools_by_id(dev_taskcluster):
    mine = pr_pool(dev_taskcluster, AWS, 21).pool_id
    other = pr_pool(dev_taskcluster, AWS, 22).pool_id
    lines = []
    deleted = pools.teardown(NoListing(wm_for(dev_taskcluster, "pull-request")), 21,
                             fleet().pools, lines.append)
    assert deleted == [mine]
    assert providers(dev_taskcluster) == {mine: pools.NULL_PROVIDER, other: "aws"}
    assert lines[0].startswith("cannot list worker pools")


def test_sweep_deletes_expired_per_pr_pools_and_nothing_else(dev_taskcluster):
    expired = pr_pool(dev_taskcluster, AZURE, 1, expires=NOW - timedelta(seconds=1)).pool_id
    due_now = pr_pool(dev_taskcluster, AWS, 1, expires=NOW).pool_id
    alive = pr_pool(dev_taskcluster, GOOGLE, 2, expires=NOW + timedelta(hours=1)).pool_id
    # a real pool whose description happens to carry an expiry line is never swept
    real = deploy(dev_taskcluster, AZURE, images(AZURE))[0].body
    wm = wm_for(dev_taskcluster)
    wm.updateWorkerPool(AZURE, {**real, "description": "cib-expires: 2000-01-01T00:00:00Z"})
    # a per-PR pool someone made by hand, without an expiry, is left alone
    hand = "cib-pr/by-hand-pr3"
    body = pools.comparable(dev_taskcluster.worker_pools()[alive])
    wm.createWorkerPool(hand, {**body, "description": "made by hand"})
    deleted = pools.sweep(wm_for(dev_taskcluster, "branch:main"), NOW, silent)
    assert deleted == sorted([expired, due_now])
    state = providers(dev_taskcluster)
    assert {p for p, provider in state.items() if provider == pools.NULL_PROVIDER} == {
        expired, due_now}
    assert pools.sweep(wm_for(dev_taskcluster, "branch:main"), NOW, silent) == []


# --- the commands, as the tasks run them --------------------------------------------------------


def built_in_westus2(dev_taskcluster) -> tuple[str, str, ReleaseImage]:
    """A tag task whose release has the pool's images in centralus and eastus2, and a build
    task that left a machine-image record of a newer westus2 image: (tag, build, image)."""
    tag = task(dev_taskcluster)
    dev_taskcluster.resolve_task(tag, artifacts={
        manifest.RELEASE_ARTIFACT: release_of(AZURE, regions={"centralus", "eastus2"})
        .to_json()})
    built = images(AZURE, {"westus2"}, build=1)[0]
    machine = task(dev_taskcluster)
    record = manifest.MachineImageRecord(
        "win10-64", built.target, built.platform, built.region, built.id, built.name,
        built.machine_digest, "ab" * 32, COMMIT, BUILD_TASK, "2026-11-21T12:00:00Z")
    dev_taskcluster.resolve_task(machine, artifacts={
        manifest.MACHINE_IMAGE_ARTIFACT: record.to_json()})
    return tag, machine, built


def test_apply_in_a_task_reads_its_dependencies_records(dev_taskcluster, in_task, capsys,
                                                        tmp_path):
    tag, machine, built = built_in_westus2(dev_taskcluster)
    failed = task(dev_taskcluster)
    dev_taskcluster.resolve_task(failed, state="failed")
    created = datetime.now(UTC).replace(microsecond=0)
    own = task(dev_taskcluster, [tag, machine, failed], created=created)
    in_task.setenv("TASK_ID", own)
    args = ("pool", "apply", "--config-dir", str(untested_config(tmp_path)), "--pool", AZURE,
            "--pull-request", "4", "--ttl", "3 days")
    code, _, err = cib(capsys, *args)
    assert code == 0, err
    pool = dev_taskcluster.worker_pools()[pr_pool_id(AZURE, 4)]
    running = {pools.image_of("azure", lc).region: pools.image_of("azure", lc).id
               for lc in pool["config"]["launchConfigs"]}
    assert running["westus2"] == built.id
    assert running["centralus"] == next(i.id for i in images(AZURE, {"centralus"}))
    assert pools.expiry(pool["description"]) == created + timedelta(days=3)
    assert f"task {failed} left no image record" in err
    code, _, err = cib(capsys, *args)  # the task run again: same expiry, nothing written
    assert code == 0 and "unchanged" in err


def test_a_key_with_smoke_tests_deploys_its_release_not_a_builds_record(dev_taskcluster,
                                                                        in_task, capsys):
    tag, machine, built = built_in_westus2(dev_taskcluster)
    in_task.setenv("TASK_ID", task(dev_taskcluster, [tag, machine]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                       AZURE, "--pull-request", "5", "--ttl", "1 day")
    assert code == 0, err
    assert f"not deploying {built.id} (azure/westus2): a build's record; a tested key's " \
           "images are deployed from their release only" in err
    pool = dev_taskcluster.worker_pools()[pr_pool_id(AZURE, 5)]
    running = {pools.image_of("azure", lc).region for lc in pool["config"]["launchConfigs"]}
    assert running == {"centralus", "eastus2"}


def test_a_release_whose_smoke_tests_failed_deploys_nothing(dev_taskcluster, in_task, capsys):
    data = release_of(AZURE).to_json()
    data["images"][0]["tests"]["passed"] = False
    data["images"][0]["tests"]["results"][0]["passed"] = False
    data["sha256"] = manifest.release_sha256(data)
    tag = task(dev_taskcluster)
    dev_taskcluster.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: data})
    in_task.setenv("TASK_ID", task(dev_taskcluster, [tag]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                       AZURE)
    assert code == 3
    assert "smoke tests powershell failed on /subscriptions/" in err
    assert "win10-64 has smoke tests and none of its images given here passed them" in err
    assert AZURE not in dev_taskcluster.worker_pools()


def test_apply_refuses_a_dependency_release_that_fails_verification(dev_taskcluster, in_task,
                                                                     capsys):
    data = release_of(AZURE).to_json()
    data["images"][0]["id"] = data["images"][0]["id"].replace("/images/", "/images/x")
    tag = task(dev_taskcluster)
    dev_taskcluster.resolve_task(tag, artifacts={manifest.RELEASE_ARTIFACT: data})
    in_task.setenv("TASK_ID", task(dev_taskcluster, [tag]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR),
                       "--pool", AZURE)
    assert code == 2
    assert "fails verification" in err and "Traceback" not in err
    assert dev_taskcluster.worker_pools() == {}


def test_teardown_and_sweep_commands(dev_taskcluster, in_task, capsys):
    gone = pr_pool(dev_taskcluster, AZURE, 30).pool_id
    expired = pr_pool(dev_taskcluster, AWS, 31, expires=NOW - timedelta(days=1)).pool_id
    code, _, err = cib(capsys, "pool", "teardown", "--pull-request", "30", "--config-dir",
                       str(CONFIG_DIR))
    assert code == 0 and f"{gone}: deleted (pull request 30)" in err
    code, _, err = cib(capsys, "pool", "sweep", "--now", "2026-11-21T13:00:00Z")
    assert code == 0 and f"{expired}: expired" in err
    assert set(providers(dev_taskcluster).values()) == {pools.NULL_PROVIDER}


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(dev_taskcluster, in_task, capsys,
                                                            tmp_path):
    path = tmp_path / "release.json"
    path.write_text(manifest.dumps(release_of(GOOGLE)))
    code, out, err = cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool",
                         GOOGLE, "--release", str(path), "--dry-run")
    assert code == 0, err
    assert f"{GOOGLE}: would create; launch configs: 1 added" in err
    assert list(json.loads(out)) == [GOOGLE]
    assert dev_taskcluster.worker_pools() == {}


def test_a_location_whose_build_failed_keeps_its_launch_config_exactly(
        dev_taskcluster, in_task, capsys, tmp_path):
    tag = task(dev_taskcluster)
    dev_taskcluster.resolve_task(tag, artifacts={
        manifest.RELEASE_ARTIFACT: release_of(AZURE).to_json()})
    in_task.setenv("TASK_ID", task(dev_taskcluster, [tag]))
    assert cib(capsys, "pool", "apply", "--config-dir", str(CONFIG_DIR), "--pool", AZURE)[0] == 0
    before = {lc["location"]: lc for lc in dev_taskcluster.worker_pools()[AZURE]["config"][
        "launchConfigs"]}
    # the next push gives every target a bigger VM; centralus's build fails, the others
    # are not rebuilt (no new image)
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    key = config / "win10-64.yaml"
    key.write_text(key.read_text().replace("cpu: 2\n", "cpu: 4\n", 1))
    failed = slugid.nice()
    taskcluster.Queue(dev_taskcluster.options()).createTask(failed, new_task(
        taskQueueId="cib-3/images", tags={"kind": "machine-image",
                                          "label": "machine-image-win10-64-azure-centralus"}))
    dev_taskcluster.resolve_task(failed, state="failed")
    in_task.setenv("TASK_ID", task(dev_taskcluster, [failed]))
    code, _, err = cib(capsys, "pool", "apply", "--config-dir", str(config), "--pool", AZURE)
    assert code == 0, err
    assert "centralus keep their launch configs as they are: their builds failed" in err
    after = {lc["location"]: lc for lc in dev_taskcluster.worker_pools()[AZURE]["config"][
        "launchConfigs"]}
    assert after["centralus"] == before["centralus"]
    assert after["eastus2"]["hardwareProfile"]["vmSize"] == "Standard_DS4_v2" != \
        before["eastus2"]["hardwareProfile"]["vmSize"]
