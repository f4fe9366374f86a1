"""A cloud-image-builder repository adopts cib-decision with one file, proven end to end: the
predecessor's own config files (../shared/reference/cib-config) in its layout (`config/`,
`.platforms.yml`, no kinds), plus this repository's `.taskcluster.yml` whose setup line
installs cib-decision (from this checkout, as an adopter installs it from a release), and the
roles file of its deployment (its pools live in a domain and a provider ours does not grant).
A push of it plays through the local Taskcluster, moto and the Azure fake: the decision plans
with the kinds that ship in the package and the roles file that ships with them, and every
task completes on workers that follow generic-worker's rules, each pool verified by a worker
of its own. Needs PyPI and qemu-img, like tests/test_local_pipeline.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cib_decision.devpipeline.pipeline import local_pipeline, play_scenarios
from cib_decision.devtc.testing import require_schemas

from .conftest import PREDECESSOR_PLATFORMS, REFERENCE_CONFIG, ROOT, require_reference
from .pipeline_support import check_every_task_completed_with_its_artifacts, explain, pool_worker

TIMEOUT = 900


def adopting_repository(path):
    """The predecessor's files and one new file, committed as a fleet repository's history."""
    shutil.copytree(require_reference(REFERENCE_CONFIG), path / "config")
    (path / ".platforms.yml").write_text(PREDECESSOR_PLATFORMS)
    ours = (ROOT / ".taskcluster.yml").read_text()
    assert ours.count("setup: ./scripts/setup") == 1
    (path / ".taskcluster.yml").write_text(ours.replace(
        "setup: ./scripts/setup",
        "setup: 'python3 -m venv .venv && .venv/bin/pip install --quiet "
        f"--disable-pip-version-check \"cib-decision @ file://{ROOT}\"'"))
    # what its deployment grants beyond cib-decision's own: its pools' third domain and
    # its provider (the decision names exactly these when they are missing)
    roles = []
    for line in (ROOT / "taskcluster" / "roles.yml").read_text().splitlines(keepends=True):
        roles.append(line)
        if "gecko-1/*" in line:
            roles.append(line.replace("gecko-1/*", "gecko-3/*"))
        if line.rstrip().endswith("worker-manager:provider:azure"):
            roles.append(line.replace("provider:azure", "provider:azure2"))
    (path / "taskcluster").mkdir()
    (path / "taskcluster" / "roles.yml").write_text("".join(roles))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=Release Engineer", "-c", "user.email=re@example.com",
                  "commit", "-q", "-m", "Adopt cib-decision"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    require_schemas()
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils; .ci/run installs it)")
    repo = adopting_repository(tmp_path_factory.mktemp("cloud-image-builder"))
    assert not (repo / "taskcluster" / "config.yml").exists()  # no kinds of its own
    with local_pipeline(repo, "HEAD", tmp_path_factory.mktemp("adoption")) as pipeline:
        (push,) = play_scenarios(pipeline, ["push"], TIMEOUT)
        yield pipeline, push


def test_an_adopted_predecessor_repository_completes_every_task_of_its_first_push(adopted):
    pipeline, push = adopted
    check_every_task_completed_with_its_artifacts(pipeline, push)
    labels = set(push.by_label())
    # its first decision builds every image of its enabled platform (nothing is recorded as
    # built yet), and nothing of the platform .platforms.yml leaves out
    for kind in ("lint-config", "task-env-cib"):
        assert kind in labels
    machine_images = {label for label in labels if label.startswith("machine-image-")}
    assert machine_images and all("-azure-" in label for label in machine_images)
    assert not [label for label in labels if "amazon" in label]


def test_each_pool_of_the_adopted_repository_is_deployed_and_verified_by_its_own_worker(
        adopted):
    pipeline, push = adopted
    verified = {t.queue: t for t in push.tasks if t.label.startswith("verify-")}
    deployed = {t.label.removeprefix("worker-pool-") for t in push.tasks
                if t.label.startswith("worker-pool-")}
    assert deployed and {q.replace("/", "-") for q in verified} == deployed, \
        explain(pipeline, push)
    for queue, task in verified.items():
        assert pool_worker(pipeline, task).startswith(queue.replace("/", "-")[:20])
