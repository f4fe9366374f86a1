"""The edits `cib dev-up` makes for its pull requests change exactly what they say: a pool's
capacity (no image), or one key's machine images (its deploymentId tags), and nothing else."""

from __future__ import annotations

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.devpipeline.pipeline import bump_pool_capacity, change_a_deployment_id
from cib_decision.digests import fleet_digests
from cib_decision.errors import CibError


def digests(config) -> dict:
    return {name: (d.disk, d.machines) for name, d in
            fleet_digests(load_fleet(DirectorySource(str(config)))).items()}


def changed_files(before: dict[str, str], config) -> list[str]:
    return sorted(p.name for p in config.glob("*.yaml") if p.read_text() != before[p.name])


def snapshot(config) -> dict[str, str]:
    return {p.name: p.read_text() for p in config.glob("*.yaml")}


def test_a_deployment_id_change_rebuilds_one_keys_machine_images_and_nothing_else(fleet_dir):
    before, texts = digests(fleet_dir), snapshot(fleet_dir)
    key = change_a_deployment_id(fleet_dir.parent, fleet_dir)
    after = digests(fleet_dir)
    assert changed_files(texts, fleet_dir) == [f"{key}.yaml"]
    assert {name for name in before if before[name] != after[name]} == {key}
    assert after[key][0] == before[key][0]  # the disk image is reused
    assert all(after[key][1][t] != before[key][1][t] for t in before[key][1])
    # only the tag's value lines changed: comments and layout stay as written
    old = texts[f"{key}.yaml"].splitlines()
    new = (fleet_dir / f"{key}.yaml").read_text().splitlines()
    assert len(old) == len(new)
    assert all("value:" in b and b.endswith("-next'")
               for a, b in zip(old, new, strict=True) if a != b)


def test_a_capacity_bump_changes_one_pool_and_no_digest(fleet_dir):
    before, texts = digests(fleet_dir), snapshot(fleet_dir)
    pool = bump_pool_capacity(fleet_dir.parent, fleet_dir)
    assert "/" in pool and len(changed_files(texts, fleet_dir)) == 1
    assert digests(fleet_dir) == before


def test_a_fleet_without_a_deployment_id_tag_says_what_the_change_needs(fleet_dir):
    for path in fleet_dir.glob("*.yaml"):
        path.write_text(path.read_text().replace("deploymentId", "deployment"))
    with pytest.raises(CibError, match="no key built here has a deploymentId tag"):
        change_a_deployment_id(fleet_dir.parent, fleet_dir)
