"""Release record signing: the `signing` setting of an environment, detached OpenPGP
signatures of a release's canonical body made and checked with gpg in throw-away homes."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cib_decision import manifest, signing
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.model import Environment, Signing
from cib_decision.errors import CibError, ConfigError, TransientError
from cib_decision.secrets import read_secret, task_level

from .conftest import CONFIG_DIR
from .signing_keys import generate

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TASK = "fN1SbArXTPSVFNUvaOlinQ"
DIGEST = "ab" * 32

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


# --- signing and verifying ---------------------------------------------------------------------


def release(key: str = "linux-test", image_id: str = "ami-0123456789abcdef0") -> manifest.Release:
    image = manifest.ReleaseImage("amazon", "us-east-1", "amazon/us-east-1", image_id,
                                  f"{key}-{DIGEST[:12]}", DIGEST, TASK)
    return manifest.release_record(key, disk_digest=DIGEST, disk_sha256=None,
                                   config_commit=COMMIT, images=[image],
                                   created=datetime(2026, 11, 21, 13, 0, tzinfo=UTC))


def reparsed(record: manifest.Release) -> manifest.Release:
    """The record after a trip through its JSON artifact."""
    return manifest.parse_release(json.loads(manifest.dumps(record)))


def test_the_signature_covers_exactly_the_bytes_the_seal_hashes():
    record = release()
    assert hashlib.sha256(signing.signed_data(record)).hexdigest() == record.sha256


def test_a_signed_release_verifies_against_the_signers_public_key():
    key = generate("signer")
    signed, fingerprint = signing.sign_release(release(), signing.SigningKey(key.private))
    assert fingerprint == key.fingerprint
    assert signed.signature.startswith("-----BEGIN PGP SIGNATURE-----")
    copy = reparsed(signed)
    assert manifest.verify(copy) == copy  # the signature is outside the seal
    assert signing.verify_release(copy, key.public, "the record") == key.fingerprint


def test_signing_again_writes_the_same_signature_dated_by_the_release_or_the_key():
    """A rerun of a tag or promote task writes a byte-identical record: the signature is made
    at the release's creation time, or the key's when the key is newer (gpg signs with no
    key before its time), and ed25519 signatures are deterministic."""
    key = signing.SigningKey(generate("signer").private)
    old = release()  # created before the test key existed
    first, _ = signing.sign_release(old, key)
    assert signing.sign_release(old, key)[0].signature == first.signature


def test_a_passphrase_protected_key_signs_with_its_passphrase_and_not_without():
    key = generate("protected", passphrase="correct horse")
    signed, _ = signing.sign_release(release(), signing.SigningKey(key.private, key.passphrase))
    assert signing.verify_release(signed, key.public, "the record") == key.fingerprint
    for wrong in ("wrong", None):
        with pytest.raises(signing.SignatureError) as failure:
            signing.sign_release(release(), signing.SigningKey(key.private, wrong),
                                 "secret s")
        assert "secret s" in str(failure.value)


def test_an_unsigned_release_is_refused_when_a_signature_is_required():
    with pytest.raises(signing.SignatureError) as failure:
        signing.verify_release(release(), generate("signer").public, "release record of k")
    assert str(failure.value) == ("release record of k is not signed, and a signature is "
                                  "required; refusing it")
    assert failure.value.exit_code == 2


def test_a_body_changed_after_signing_is_refused_even_when_resealed():
    key = generate("signer")
    signed, _ = signing.sign_release(release(), signing.SigningKey(key.private))
    other = release(image_id="ami-0000000000000bad0")  # a valid seal of another body
    tampered = replace(other, signature=signed.signature)
    manifest.verify(tampered)
    with pytest.raises(signing.SignatureError) as failure:
        signing.verify_release(tampered, key.public, "the record")
    assert "does not match the record's content" in str(failure.value)


def test_a_release_signed_by_another_key_is_refused_naming_both_keys():
    signer, expected = generate("signer"), generate("other")
    signed, _ = signing.sign_release(release(), signing.SigningKey(signer.private))
    with pytest.raises(signing.SignatureError) as failure:
        signing.verify_release(signed, expected.public, "the record")
    message = str(failure.value)
    assert f"not by the expected key {expected.fingerprint}" in message
    assert signer.fingerprint[-16:] in message


@pytest.mark.parametrize("signature", ["not a signature", "-----BEGIN PGP SIGNATURE-----\n"
                                       "\nAAAA\n-----END PGP SIGNATURE-----\n"])
def test_a_signature_that_is_not_openpgp_is_refused(signature):
    with pytest.raises(signing.SignatureError) as failure:
        signing.verify_release(replace(release(), signature=signature),
                               generate("signer").public, "the record")
    assert "the record: the signature does not hold" in str(failure.value)


def test_a_public_key_file_without_a_key_and_a_secret_without_a_private_key_are_errors(
        tmp_path):
    signed, _ = signing.sign_release(release(), signing.SigningKey(generate("signer").private))
    with pytest.raises(signing.SignatureError, match="holds no OpenPGP key"):
        signing.verify_release(signed, "nothing here", "the record")
    with pytest.raises(signing.SignatureError, match="cannot read the public key"):
        signing.read_public_key(tmp_path / "absent.asc")
    with pytest.raises(signing.SignatureError, match="secret s has no private_key"):
        signing.SigningKey.from_secret({"private_key": generate("signer").public}, "s")


def test_gpg_runs_in_throw_away_homes_never_the_users_keyring(tmp_path, monkeypatch):
    user_home = tmp_path / "user-keyring"
    monkeypatch.setenv("GNUPGHOME", str(user_home))
    made = []
    real_mkdtemp = signing.tempfile.mkdtemp
    monkeypatch.setattr(signing.tempfile, "mkdtemp",
                        lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])
    key = generate("signer")
    signed, _ = signing.sign_release(release(), signing.SigningKey(key.private))
    signing.verify_release(signed, key.public, "the record")
    assert len(made) == 2 and not user_home.exists()
    assert not any(Path(home).exists() for home in made)


# --- what the environment asks for --------------------------------------------------------------


def configured(tmp_path: Path, key, secret: str = "project/cib/level-{level}/release-signing"
               ) -> tuple[Signing, Path]:
    """A repository with `config/` and the key's public half at keys/release-level-3.asc."""
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "release-level-3.asc").write_text(key.public)
    return Signing(secret, "keys/release-level-{level}.asc"), tmp_path / "config"


def test_the_signer_reads_the_levels_secret_signs_and_checks_against_the_repos_key(tmp_path):
    key = generate("signer")
    setting, config = configured(tmp_path, key)
    asked, said = [], []
    sign = signing.release_signer(setting, config, lambda n: asked.append(n) or key.secret(),
                                  said.append, environ={"CIB_LEVEL": "3"})
    signed = sign(release())
    assert asked == ["project/cib/level-3/release-signing"]
    assert signing.verify_release(signed, key.public, "r") == key.fingerprint
    assert said == [f"signed release {signed.sha256} with key {key.fingerprint} (secret "
                    "project/cib/level-3/release-signing)"]


def test_a_secret_holding_another_key_than_the_repository_names_fails_at_signing(tmp_path):
    setting, config = configured(tmp_path, generate("other"))
    sign = signing.release_signer(setting, config, lambda n: generate("signer").secret(),
                                  print, environ={})
    with pytest.raises(signing.SignatureError) as failure:
        sign(release())
    assert "is not the one keys/release-level-{level}.asc names" in str(failure.value)


def test_a_missing_public_key_file_fails_before_the_secret_is_read(tmp_path):
    setting = Signing("s", "keys/release-level-{level}.asc")
    (tmp_path / "config").mkdir()
    with pytest.raises(signing.SignatureError, match=r"keys/release-level-1\.asc"):
        signing.release_signer(setting, tmp_path / "config", pytest.fail, print,
                               environ={"CIB_LEVEL": "1"})


def test_check_releases_requires_signed_releases_of_the_key_only_where_configured(tmp_path):
    key = generate("signer")
    setting, config = configured(tmp_path, key)
    signed, _ = signing.sign_release(release(), signing.SigningKey(key.private))
    unsigned_other_key = release("other-key")
    plain = Environment("staging", "https://tc.example.com")
    strict = replace(plain, signing=setting)
    said = []
    signing.check_releases([release()], plain, config, "linux-test", said.append)
    signing.check_releases([signed, unsigned_other_key], strict, config, "linux-test",
                           said.append, environ={})
    assert said == [f"release record of linux-test (sha256 {signed.sha256[:12]}): signed by "
                    f"{key.fingerprint}"]
    with pytest.raises(signing.SignatureError, match="is not signed"):
        signing.check_releases([release()], strict, config, "linux-test", said.append,
                               environ={})


def test_the_level_comes_from_cib_level_and_a_malformed_one_is_an_error():
    with pytest.raises(CibError, match="CIB_LEVEL='x'"):
        task_level({"CIB_LEVEL": "x"})
    assert task_level({}) == "3" and task_level({"CIB_LEVEL": "1"}) == "1"


# --- reading secrets ---------------------------------------------------------------------------


def test_read_secret_returns_the_value_the_service_holds(dev_taskcluster):
    dev_taskcluster.set_secret("project/cib/level-3/release-signing", {"private_key": "k"})
    assert read_secret("project/cib/level-3/release-signing",
                       dev_taskcluster.options("branch:main")) == {"private_key": "k"}


def test_read_secret_says_which_secret_is_missing_and_which_scope_is_lacking(dev_taskcluster):
    with pytest.raises(CibError) as missing:
        read_secret("project/cib/level-3/absent", dev_taskcluster.options("branch:main"))
    assert str(missing.value).startswith("no secret project/cib/level-3/absent ")
    dev_taskcluster.set_secret("project/cib/level-3/x", {"a": 1})
    with pytest.raises(CibError) as refused:
        read_secret("project/cib/level-3/x", dev_taskcluster.options("pull-request"))
    assert "the credentials lack secrets:get:project/cib/level-3/x" in str(refused.value)
    assert refused.value.exit_code == 2


def test_read_secret_after_server_errors_is_transient_and_a_retry_succeeds(dev_taskcluster):
    dev_taskcluster.set_secret("project/cib/level-3/x", {"a": 1})
    dev_taskcluster.script_faults("503")
    with pytest.raises(TransientError) as failure:
        read_secret("project/cib/level-3/x", dev_taskcluster.options("branch:main"))
    assert "(503)" in str(failure.value) and failure.value.exit_code == 75
    dev_taskcluster.script_faults("500")
    assert read_secret("project/cib/level-3/x",
                       dev_taskcluster.options("branch:main", max_retries=1)) == {"a": 1}


def test_an_unreachable_secrets_service_is_transient():
    with pytest.raises(TransientError, match="the secrets service failed to read secret a/b"):
        read_secret("a/b", {"rootUrl": "http://127.0.0.1:9", "maxRetries": 0})


# --- killed while signing -------------------------------------------------------------------

KILLED_SIGNER = """
import json, os, signal, sys
from cib_decision import signing
from cib_decision.cli import _sigterm_raises
key = json.loads(sys.stdin.read())
with _sigterm_raises(), signing._gpg_home() as gpg:
    gpg.import_keys(key["private"])
    gpg.sign("data", keyid=key["fingerprint"], passphrase=key["passphrase"], detach=True)
    print(gpg.gnupghome, flush=True)
    os.kill(os.getpid(), int(sys.argv[1]))  # what a worker does on cancel or maxRunTime
    signal.pause()
"""


def _agents_of(home: str) -> list[int]:
    """Processes whose command line names `home` (the agent gpg started for it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if home in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("signum", [15, 9])
def test_a_signer_killed_mid_task_leaves_no_key_or_agent_behind(signum):
    """SIGTERM: the signer removes its home and agent itself. SIGKILL: nothing can run, so
    the next signing removes what the dead process left (its home is named for its pid)."""
    import os
    import subprocess
    import sys

    key = generate("killed", passphrase="secret words")
    process = subprocess.run(
        [sys.executable, "-c", KILLED_SIGNER, str(signum)], text=True, capture_output=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(Path(signing.__file__).parents[1])},
        input=json.dumps({"private": key.private, "fingerprint": key.fingerprint,
                          "passphrase": key.passphrase}))
    assert process.returncode in (-signum, 128 + signum, 1), process.stderr
    home = process.stdout.strip()
    assert home.startswith(str(signing.gpg_homes_dir()))
    if signum == 15:
        assert not Path(home).exists() and _agents_of(home) == []
        return
    # the key and the agent of a SIGKILLed signer (the agent caches no passphrase)
    assert Path(home).exists() and _agents_of(home)
    signing.remove_stale_homes(signing.gpg_homes_dir())  # as the next signing starts with
    assert not Path(home).exists() and _agents_of(home) == []
