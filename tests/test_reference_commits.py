"""Every real cloud-image-builder commit message either parses or fails fairly.

The messages come from ../shared/reference/cib-commits.json and are checked against the
reference config of ../shared/reference/cib-config (keys win10-64, win10-64-occ, win2012).
That config is a snapshot: many messages name keys and pools that existed in the repository at
the time but are not in the snapshot, and the strict grammar now refuses names it cannot find,
where the old tool silently built nothing. Each expected failure says why it is fair.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import DirectiveError, Vocabulary, parse_directives

from .conftest import REFERENCE, require_reference

# sha prefix -> None when the message must parse, else (text the error must contain, why fair)
EXPECTED: dict[str, tuple[str, str] | None] = {
    "b75ce084": None,  # exclude keys: win2012
    "de55d549": None,  # pool-deploy + exclude environments: production
    "43523b6f": ("unknown key 'win10-64-gpu'",
                 "win10-64-gpu is not in the config snapshot; excluding a key that does not "
                 "exist is almost always a typo, so it is refused"),
    "78e5abbe": ("unknown pool 'gecko-t/win7-32-azure'",
                 "the win7-32 pool is not in the config snapshot"),
    "d534f7fc": None,  # include pools: gecko-t/win10-64-occ-azure + include environments
    "8a126716": ("unknown pool 'gecko-t/win7-32-azure'",
                 "the win7-32 pool is not in the config snapshot"),
    "24398f51": ("exclude keys: *",
                 "`include pools: non-existent` was the old idiom for 'no image, only "
                 "maintenance'; it is now an error that names the explicit replacement"),
    "0c1f49ec": None,  # include pools + overwrite-machine-image + no-travis-ci
    "96166f06": None,  # overwrite-disk-image as the subject line + include pools
    "dd2dee0d": ("unknown pool 'gecko-t/win7-32-gpu-azure'",
                 "the win7-32-gpu pool is not in the config snapshot"),
    "74b219bb": ("unknown pool 'gecko-t/win7-32-gpu-azure'",
                 "the win7-32-gpu pool is not in the config snapshot"),
    "4def3198": None,  # no-taskcluster-ci
    "fb21fe8c": None,  # no-ci
    "295a8d6c": ("unknown key 'win10-64-2004'",
                 "packer-era keys are not in the config snapshot"),
    "0fccc962": ("unknown key 'win11-64-2009-alpha'",
                 "packer-era keys are not in the config snapshot"),
    "52fce5c8": ("keys and pools filters together",
                 "`include keys` with `include pools: northeurope` mixes keys and pools (and "
                 "northeurope is a region, not a pool)"),
    "c17ad704": ("unknown key 'trusted-win2012r2-64-vs-py2-l3.yaml'",
                 "packer-era keys are not in the config snapshot (a `.yaml` suffix itself is "
                 "accepted: the key is the file name)"),
    "7c653aa3": None,  # pool-deploy
}


def _commits() -> list[dict]:
    path = require_reference(REFERENCE / "cib-commits.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def vocabulary(reference_config) -> Vocabulary:
    return Vocabulary.from_fleet(load_fleet(DirectorySource(reference_config)))


def test_every_reference_commit_parses_or_fails_fairly(vocabulary):
    outcomes = {}
    for commit in _commits():
        sha, message = commit["sha"], commit["message"]
        try:
            result = parse_directives(message, vocabulary)
            outcomes[sha] = ("ok", result)
        except DirectiveError as error:
            assert error.problems, sha
            for problem in error.problems:
                # a fair error names a real line of the message and quotes it
                assert message.splitlines()[problem.line - 1].strip() == problem.text, sha
            outcomes[sha] = ("error", str(error))
    assert len(outcomes) == len(_commits())
    parsed = [sha for sha, (kind, _) in outcomes.items() if kind == "ok"]
    failed = {sha: text for sha, (kind, text) in outcomes.items() if kind == "error"}
    # every error is one of the documented fair ones
    documented = {p: e for p, e in EXPECTED.items() if e is not None}
    for sha, text in failed.items():
        match = next((e for p, e in documented.items() if sha.startswith(p)), None)
        assert match is not None, f"undocumented failure for {sha}: {text}"
        assert match[0] in text, f"{sha}: expected {match[0]!r} in {text!r}"
    for sha in parsed:
        assert not any(sha.startswith(p) for p in documented), f"{sha} was expected to fail"


def test_the_reference_commits_exercise_the_grammar(vocabulary):
    results = {}
    for commit in _commits():
        with contextlib.suppress(DirectiveError):
            results[commit["sha"][:8]] = parse_directives(commit["message"], vocabulary)
    flat = list(results.values())
    assert any(r.no_ci for r in flat) and any(r.no_taskcluster_ci for r in flat)
    assert any(r.pool_deploy for r in flat)
    assert any(r.overwrite_disk_image for r in flat)
    assert any("no-travis-ci" in r.ignored for r in flat)
    assert any(r.exclude.environments == ("production",) for r in flat)
