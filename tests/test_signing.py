"""Release record signing: the `signing` setting of an environment, detached OpenPGP
signatures of a release's canonical body made and checked with gpg in throw-away homes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.model import Signing
from cib_decision.errors import ConfigError

from .conftest import CONFIG_DIR

SIGNING_YAML = """\
production:
    root-url: https://tc.example.com
    signing:
        secret: project/cib/level-{level}/release-signing
        public-key: keys/release-level-{level}.asc
staging:
    root-url: https://tc-staging.example.com
"""


def fleet_with_environments(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    (config / "environments.yaml").write_text(text)
    return config


def test_an_environment_names_its_signing_secret_and_public_key(tmp_path):
    fleet = load_fleet(DirectorySource(fleet_with_environments(tmp_path, SIGNING_YAML)))
    assert fleet.environments["production"].signing == Signing(
        "project/cib/level-{level}/release-signing", "keys/release-level-{level}.asc")
    assert fleet.environments["staging"].signing is None


@pytest.mark.parametrize("signing, problem", [
    ("{secret: a/b}", "missing required field in production.signing: 'public-key'"),
    ("{secret: 'a b', public-key: k.asc}", "signing.secret"),
    ("{secret: 'a/{project}', public-key: k.asc}", "signing.secret"),
    ("{secret: a, public-key: /etc/k.asc}", "signing.public-key"),
    ("{secret: a, public-key: ../k.asc}", "signing.public-key"),
    ("{secret: a, public-key: k.asc, key-id: X}", "key-id"),
])
def test_a_malformed_signing_setting_is_a_config_problem_on_its_line(tmp_path, signing, problem):
    text = f"production:\n    root-url: https://tc.example.com\n    signing: {signing}\n"
    with pytest.raises(ConfigError) as failure:
        load_fleet(DirectorySource(fleet_with_environments(tmp_path, text)))
    message = str(failure.value)
    assert "environments.yaml:3:" in message and problem in message, message
