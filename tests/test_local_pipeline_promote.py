"""The life-cycle events of the local pipeline (`cib dev-up --scenarios push,pool-deploy,
promote`): a push, a push saying `pool-deploy`, then the other environment's push and the
`promote` action on it, each played through local Taskclusters and workers as
tests/test_local_pipeline.py plays a push. Two deployments share the local clouds: staging
(the played environment) and production (the one promoted to)."""

from __future__ import annotations

import json

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.devpipeline.pipeline import local_pipeline, play_scenarios, summary

from .conftest import ROOT
from .pipeline_support import (
    check_every_task_completed_with_its_artifacts,
    explain,
    require_pipeline_tools,
)

TIMEOUT = 900
SCENARIOS = ["push", "pool-deploy", "promote"]


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Both pipelines (staging, production) and each event's result: the push, the
    pool-deploy push, production's push and the promote action."""
    require_pipeline_tools()
    work = tmp_path_factory.mktemp("local-pipeline-promote")
    with local_pipeline(ROOT, "HEAD", work, promotion=True) as pipeline:
        events = list(play_scenarios(pipeline, SCENARIOS, TIMEOUT))
        yield pipeline, dict(zip(["push", "pool-deploy", "target-push", "promote"], events,
                                 strict=True))


def test_a_pool_deploy_push_redeploys_and_verifies_every_pool_and_builds_nothing(played):
    pipeline, results = played
    push, redeploy = results["push"], results["pool-deploy"]
    check_every_task_completed_with_its_artifacts(pipeline, redeploy)
    ran = {t.label for t in redeploy.tasks}
    pools = {t.label.removeprefix("worker-pool-") for t in push.tasks
             if t.label.startswith("worker-pool-")}
    assert pools and {f"worker-pool-{p}" for p in pools} <= ran, summary(redeploy)
    assert {f"verify-{p}" for p in pools} <= ran, summary(redeploy)
    # the images are the push's: found in the index, not built again
    assert not [label for label in ran if label.startswith(("disk-image-", "machine-image-",
                                                            "test-image-"))], summary(redeploy)


def test_the_promote_action_copies_the_release_into_the_target_and_deploys_its_pools(played):
    pipeline, results = played
    target = pipeline.promotion
    pushed = results["target-push"]
    check_every_task_completed_with_its_artifacts(target, pushed)
    # its push said `include keys: ubuntu-2404` (the fleet's first key): one key's images
    built = {t.label for t in pushed.tasks if t.label.startswith("machine-image-")}
    assert built and all(label.startswith("machine-image-ubuntu-2404-") for label in built)
    action = results["promote"]
    check_every_task_completed_with_its_artifacts(target, action)
    promotes = [t for t in action.tasks if t.label.startswith("promote-")]
    assert len(promotes) == 1, summary(action)
    release = json.loads(target.artifact(promotes[0].task_id, "public/release.json"))
    # production's Google images live in its own project (config/environments.yaml)
    google = [image for image in release["images"] if image["platform"] == "google"]
    assert release["key"] == "ubuntu-2404" and google, release
    assert all(image["id"].startswith("projects/example-cib-images-production/")
               for image in google), google
    # each pool of the key in the target environment runs the promoted images
    fleet = load_fleet(DirectorySource(str(pipeline.repo / "config")))
    key_pools = {pool.id for pool in fleet.keys["ubuntu-2404"].pools}
    promoted = {image["id"] for image in release["images"]}
    pools = target.tc.worker_pools()
    served = {pool_id for pool_id, pool in pools.items() if promoted & strings(pool["config"])}
    assert key_pools and served == key_pools, (served, key_pools, explain(target, action))


def strings(value) -> set[str]:
    """Every string in a JSON value (a pool's config names its images in provider fields)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        value = list(value.values())
    return set().union(*map(strings, value)) if isinstance(value, list) else set()
