"""A cloud-image-builder repository adopts cib-decision with one file, proven end to end: the
predecessor's own config files (../shared/reference/cib-config) in its layout (`config/`,
`.platforms.yml`, no kinds), plus this repository's `.taskcluster.yml` whose setup line
installs cib-decision (from this checkout, as an adopter installs it from a release), and the
roles file of its deployment (its pools live in a domain and a provider ours does not grant).
A push of it plays through the local Taskcluster, moto and the Azure fake: the decision plans
with the kinds that ship in the package and the roles file that ships with them, and every
task completes on workers that follow generic-worker's rules, but win2012's builds, which its
validation rules refuse (they name programs whose lines went to Papertrail); the push that
migrates those rules builds them, and each pool is verified by a worker of its own. Needs PyPI
and qemu-img, like tests/test_local_pipeline.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cib_decision.devpipeline.pipeline import local_pipeline, play_scenarios

from .conftest import PREDECESSOR_PLATFORMS, REFERENCE_CONFIG, ROOT, require_reference
from .pipeline_support import (
    check_every_task_completed_with_its_artifacts,
    explain,
    pool_worker,
    require_pipeline_tools,
)

TIMEOUT = 900
# the README's setup line for an adopted repository, with this checkout as the requirement
ADOPTER_SETUP = next(
    line.removeprefix("setup: '").removesuffix("'") for line in (
        ROOT / "README.md").read_text().splitlines() if line.startswith("setup: '")
).replace('"cib-decision @ git+https://github.com/<org>/cib-decision@<commit>"',
          '"{requirement}"')


def adopting_repository(path):
    """The predecessor's files and one new file, committed as a fleet repository's history."""
    shutil.copytree(require_reference(REFERENCE_CONFIG), path / "config")
    (path / ".platforms.yml").write_text(PREDECESSOR_PLATFORMS)
    ours = (ROOT / ".taskcluster.yml").read_text()
    assert ours.count("setup: ./scripts/setup") == 1
    (path / ".taskcluster.yml").write_text(ours.replace(
        "setup: ./scripts/setup",
        f"setup: '{ADOPTER_SETUP.format(requirement=f'cib-decision @ file://{ROOT}')}'"))
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


RULED_KEY = "win2012"  # its validation rules name the Papertrail programs it forwarded
MIGRATED_RULES = """validation:
    instance:
        log:
            - program: cib
              match: '^all \\d+ executions passed$'
"""
MIGRATION = ("win2012: validate with the builder's own logs\n\n"
             "include keys: win2012\n")


def migrate_rules(repo) -> None:
    """cloud-image-builder's two rules (Papertrail's sysprep-setupact and OpenCloudConfig
    programs) replaced by one the builder's own output has: the bootstrap ended."""
    path = repo / "config" / f"{RULED_KEY}.yaml"
    text = path.read_text()
    start = text.index("validation:\n")
    end = text.index("\n\n", start) if "\n\n" in text[start:] else len(text)
    path.write_text(text[:start] + MIGRATED_RULES + text[end:].lstrip("\n"))


@pytest.fixture(scope="module")
def adopted(tmp_path_factory):
    """The first push of the adopted repository, then the push that migrates win2012's
    validation rules and rebuilds its images."""
    require_pipeline_tools(clones_this_checkout=False)
    repo = adopting_repository(tmp_path_factory.mktemp("cloud-image-builder"))
    assert not (repo / "taskcluster" / "config.yml").exists()  # no kinds of its own
    with local_pipeline(repo, "HEAD", tmp_path_factory.mktemp("adoption")) as pipeline:
        (push,) = play_scenarios(pipeline, ["push"], TIMEOUT)
        migrated = pipeline.commit(MIGRATION, change=migrate_rules)
        yield pipeline, push, pipeline.play("push", migrated, timeout=TIMEOUT)


def test_an_adopted_repository_builds_everything_but_what_its_validation_rules_refuse(
        adopted):
    pipeline, push, _ = adopted
    failed = {t.label: t.state for t in push.tasks if not t.ok}
    # win2012's rules name programs whose lines reached Papertrail, not the builder's own
    # output: every build of it fails saying so, captures nothing, and its pools get no
    # image (a first deploy without one is refused); everything else completes
    builds = {label for label in failed if label.startswith(f"machine-image-{RULED_KEY}-")}
    assert len(builds) == 12 and all(failed[label] == "failed" for label in builds)
    assert {label: state for label, state in failed.items() if label not in builds} == {
        f"worker-pool-gecko-{n}-{RULED_KEY}-azure": "failed" for n in (1, 3)} | {
        f"verify-gecko-{n}-{RULED_KEY}-azure": "unscheduled" for n in (1, 3)}, \
        explain(pipeline, push)
    log = pipeline.artifact(push.by_label()[sorted(builds)[0]].task_id,
                            "public/logs/live_backing.log").decode()
    assert "missed 2 of 2 validation rules; its image is not captured" in log
    assert "rule 'sysprep-setupact' /" in log and "rule 'OpenCloudConfig' /" in log
    assert "no line of program 'OpenCloudConfig' in the run command's output on" in log
    labels = set(push.by_label())
    # its first decision builds every image of its enabled platform (nothing is recorded as
    # built yet), and nothing of the platform .platforms.yml leaves out
    for kind in ("lint-config", "task-env-cib"):
        assert kind in labels
    machine_images = {label for label in labels if label.startswith("machine-image-")}
    assert machine_images and all("-azure-" in label for label in machine_images)
    assert not [label for label in labels if "amazon" in label]


def test_with_its_rules_migrated_every_task_completes(adopted):
    pipeline, _, migrated = adopted
    check_every_task_completed_with_its_artifacts(pipeline, migrated)
    built = {t.label for t in migrated.tasks if t.label.startswith("machine-image-")}
    assert len(built) == 12 and all(f"-{RULED_KEY}-" in label for label in built)
    record = pipeline.artifact(migrated.by_label()[sorted(built)[0]].task_id,
                               "public/machine-image.json")
    assert b'"passed": true' in record and b'"program": "cib"' in record


def test_each_pool_of_the_adopted_repository_is_deployed_and_verified_by_its_own_worker(
        adopted):
    pipeline, push, migrated = adopted
    tasks = [t for t in [*push.tasks, *migrated.tasks] if t.ok]
    verified = {t.queue: t for t in tasks if t.label.startswith("verify-")}
    deployed = {t.label.removeprefix("worker-pool-") for t in tasks
                if t.label.startswith("worker-pool-")}
    assert len(deployed) == 4 and {q.replace("/", "-") for q in verified} == deployed, \
        explain(pipeline, migrated)
    for queue, task in verified.items():
        assert pool_worker(pipeline, task).startswith(queue.replace("/", "-")[:20])
