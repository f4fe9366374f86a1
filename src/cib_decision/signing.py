"""Signed release records: a detached, ASCII-armored OpenPGP signature of a release's canonical
body (the bytes `manifest.release_sha256` hashes) in its `signature` field, made and checked
with gpg (python-gnupg).

gpg always runs in a throw-away home (`GNUPGHOME`) made for one call and removed afterwards
(and by the next call when a killed process could not: `remove_stale_homes`),
never in the user's keyring, in batch mode with the passphrase given on a pipe (loopback
pinentry). Which key signs and which public key checks is the environment's `signing` setting
(config/environments.yaml, docs/signing.md): the Taskcluster secret holding the private key
(`{"private_key": "<armored>", "passphrase": "..."}`) and the repository path of the armored
public key; `{level}` in either is the task's level (`secrets.task_level`).

Every failure is a `SignatureError` (a CibError, exit 2) saying which: unsigned where a
signature is required, not an OpenPGP signature, a body changed after signing, signed by
another key, a secret without a usable private key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config.model import Environment, Fleet, Signing
from .digests import canonical_json
from .errors import CibError
from .manifest import Release, parse_time
from .secrets import task_level

GPG_BINARY = "gpg"
# The throw-away agent must not calibrate its key protection (seconds of hashing at start):
# keys it protects live only as long as the home. It caches no passphrase (a killed process
# leaves no unlocked key behind in an agent).
_AGENT_CONF = ("s2k-count 65536\nallow-loopback-pinentry\ndefault-cache-ttl 0\n"
               "max-cache-ttl 0\n")
# Homes live in one directory per user, each named for the process that made it, so the next
# signing finds and removes what a killed process (SIGKILL, maxRunTime) left behind.
_HOMES_PREFIX = "cib-gpg-homes-"
_PRIVATE_KEY = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


class SignatureError(CibError):
    """A release record whose signature is missing or does not hold, or a signing key that
    cannot be used."""


@dataclass(frozen=True)
class SigningKey:
    """A private key (armored) and the passphrase that unlocks it (None: unprotected)."""

    private_key: str
    passphrase: str | None = None

    @classmethod
    def from_secret(cls, value: Mapping[str, Any], name: str) -> SigningKey:
        """The key in secret `name`: `private_key` (armored) and optional `passphrase`."""
        private, passphrase = value.get("private_key"), value.get("passphrase")
        if not isinstance(private, str) or _PRIVATE_KEY not in private:
            raise SignatureError(f"secret {name} has no private_key holding an armored OpenPGP "
                                 f"private key ({_PRIVATE_KEY} ...)")
        if passphrase is not None and not isinstance(passphrase, str):
            raise SignatureError(f"secret {name}: passphrase must be a string")
        return cls(private, passphrase)


def signed_data(release: Release) -> bytes:
    """The bytes a signature covers: the canonical JSON of the release's sealed body, exactly
    what its `sha256` is the digest of."""
    return canonical_json(release.body())


def secret_name(signing: Signing, at_level: str) -> str:
    """The name of the secret holding the signing key, at a level."""
    return signing.secret.replace("{level}", at_level)


def public_key_path(signing: Signing, config_dir: str | Path, at_level: str) -> Path:
    """Where the armored public key is: its path from the repository root, the config
    directory's parent."""
    return Path(config_dir).resolve().parent / signing.public_key.replace("{level}", at_level)


def read_public_key(path: str | Path) -> str:
    """The armored public key(s) in a file; SignatureError when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SignatureError(f"cannot read the public key {path}: {reason}") from None


# --- gpg ---------------------------------------------------------------------------------


def gpg_homes_dir() -> Path:
    """Where this user's throw-away gpg homes are made (mode 0700). A short path: gpg-agent's
    socket lives in the home and socket paths are limited in length."""
    parent = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir())
    homes = parent / f"{_HOMES_PREFIX}{os.getuid()}"
    homes.mkdir(mode=0o700, exist_ok=True)
    if homes.is_symlink() or homes.stat().st_uid != os.getuid():
        raise CibError(f"{homes} is not this user's own directory: refusing to put keys there")
    homes.chmod(0o700)
    return homes


def _remove_home(home: Path) -> None:
    """Stop any agent of `home`, then delete it (the keys it imported with it)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf:
        subprocess.run([gpgconf, "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)


def remove_stale_homes(homes: Path) -> list[Path]:
    """Remove the homes whose process is gone (killed before it could clean up); the homes
    removed."""
    removed = []
    for home in homes.iterdir():
        pid = home.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove_home(home)
            removed.append(home)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _gpg_home() -> Iterator[Any]:
    """A gnupg.GPG on a new, empty home; the home and any agent it started go afterwards,
    and so do the homes of processes killed before they could remove theirs."""
    import gnupg

    homes = gpg_homes_dir()
    remove_stale_homes(homes)
    home = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=homes)
    try:
        Path(home, "gpg-agent.conf").write_text(_AGENT_CONF)
        try:
            # Loopback pinentry always: a passphrase comes on a pipe or not at all, never
            # from a prompt that would wait for someone.
            gpg = gnupg.GPG(gpgbinary=GPG_BINARY, gnupghome=home,
                            options=["--pinentry-mode", "loopback"])
        except (OSError, ValueError) as exc:
            raise CibError(f"cannot run {GPG_BINARY} (is GnuPG installed?): {exc}") from None
        yield gpg
    finally:
        _remove_home(Path(home))


def _last_line(stderr: str) -> str:
    lines = [line for line in (stderr or "").splitlines()
             if line.strip() and not line.startswith("[GNUPG:]")]
    return lines[-1].removeprefix("gpg: ") if lines else "no reason given"


def sign_release(release: Release, key: SigningKey, source: str = "the signing key"
                 ) -> tuple[Release, str]:
    """`release` with a detached armored signature of `signed_data` by `key`, and the
    signing key's fingerprint. `source` names the key in errors (e.g. `secret <name>`)."""
    with _gpg_home() as gpg:
        gpg.import_keys(key.private_key)
        secret_keys = gpg.list_keys(secret=True)
        if len(secret_keys) != 1:
            raise SignatureError(f"{source} holds {len(secret_keys)} OpenPGP private keys; it "
                                 "must hold exactly one")
        fingerprint = secret_keys[0]["fingerprint"]
        if key.passphrase is not None and not gpg.is_valid_passphrase(key.passphrase):
            raise SignatureError(f"the passphrase of {source} contains a line break")
        # Signed "at" the release's own creation time (or the key's, when the key is newer:
        # gpg signs with no key before its time): with a deterministic algorithm (EdDSA, RSA)
        # a rerun of the tag or promote task writes the byte-identical record.
        at = max(int(parse_time(release.created).timestamp()), int(secret_keys[0]["date"]))
        signature = gpg.sign(signed_data(release), keyid=fingerprint, detach=True,
                             passphrase=key.passphrase,
                             extra_args=["--faked-system-time", f"{at}!"])
        if not signature.data:
            if "bad passphrase" in (signature.status or "") or "BAD_PASSPHRASE" in (
                    signature.stderr or ""):
                raise SignatureError(f"the passphrase of {source} does not unlock its key "
                                     f"{fingerprint}")
            raise SignatureError(f"gpg could not sign with {source} (key {fingerprint}): "
                                 f"{_last_line(signature.stderr)}")
    return replace(release, signature=signature.data.decode("ascii")), fingerprint


def verify_release(release: Release, public_key: str, source: str) -> str:
    """The fingerprint of the key that signed `release` when its signature is a valid one
    by a key in `public_key` (armored) over its body; SignatureError saying what is wrong
    otherwise. `source` names the record in messages."""
    if not release.signature:
        raise SignatureError(f"{source} is not signed, and a signature is required; "
                             "refusing it")
    with _gpg_home() as gpg:
        imported = gpg.import_keys(public_key)
        expected = sorted(set(f for f in imported.fingerprints if f))
        if not expected:
            raise SignatureError("the public key holds no OpenPGP key: "
                                 f"{_last_line(imported.stderr)}")
        signature_file = Path(gpg.gnupghome) / "release.sig"
        signature_file.write_text(release.signature, encoding="utf-8")
        result = gpg.verify_data(str(signature_file), signed_data(release))
    signer = result.pubkey_fingerprint or result.fingerprint
    if result.valid and signer in expected:
        return signer
    if result.valid or result.status == "no public key":
        raise SignatureError(f"{source} is signed by key {signer or result.key_id}, not by "
                             f"the expected key {', '.join(expected)}; refusing it")
    if result.status == "signature bad":
        raise SignatureError(f"{source}: the signature does not match the record's content "
                             "(changed after signing); refusing it")
    raise SignatureError(f"{source}: the signature does not hold ("
                         f"{result.status or _last_line(result.stderr)}); refusing it")


# --- what the environment asks for --------------------------------------------------------------


def release_signer(signing: Signing, config_dir: str | Path,
                   read_secret: Callable[[str], Mapping[str, Any]],
                   say: Callable[[str], None], environ: Mapping[str, str] | None = None
                   ) -> Callable[[Release], Release]:
    """What signs a release in a tag task: reads the signing secret, signs, and checks the
    signature against the repository's public key (a secret holding another key than the
    one deploys check against fails here, not at the deploy)."""
    at_level = task_level(environ)
    name = secret_name(signing, at_level)
    key_path = public_key_path(signing, config_dir, at_level)
    public_key = read_public_key(key_path)

    def sign(release: Release) -> Release:
        key = SigningKey.from_secret(read_secret(name), name)
        signed, fingerprint = sign_release(release, key, f"secret {name}")
        try:
            verify_release(signed, public_key, f"the release of {release.key}")
        except SignatureError as exc:
            raise SignatureError(f"the key in secret {name} ({fingerprint}) is not the one "
                                 f"{signing.public_key} names: {exc}") from None
        say(f"signed release {release.sha256} with key {fingerprint} (secret {name})")
        return signed

    return sign


def check_releases(records: Iterable[Any], environment: Environment, config_dir: str | Path,
                   key: str, say: Callable[[str], None],
                   environ: Mapping[str, str] | None = None) -> None:
    """When `environment` signs its releases, require a valid signature on every release
    record of `key` in `records` (SignatureError otherwise); other records pass untouched."""
    if environment.signing is None:
        return
    path = public_key_path(environment.signing, config_dir, task_level(environ))
    public_key = read_public_key(path)
    for record in records:
        if isinstance(record, Release) and record.key == key:
            source = f"release record of {record.key} (sha256 {record.sha256[:12]})"
            fingerprint = verify_release(record, public_key, source)
            say(f"{source}: signed by {fingerprint}")


def environment_named(fleet: Fleet, name: str) -> Environment:
    """Environment `name` of the fleet (the first configured when `name` is empty, as pool
    deploys choose); CibError naming the known ones otherwise."""
    name = name or next(iter(fleet.environments))
    if name not in fleet.environments:
        raise CibError(f"no environment {name!r}; the config has "
                       f"{', '.join(fleet.environments)}")
    return fleet.environments[name]


def tag_signer(fleet: Fleet, environment: str, config_dir: str | Path,
               say: Callable[[str], None]) -> Callable[[Release], Release] | None:
    """The signer of a tag task in `environment` (reading the signing secret through
    Taskcluster), or None when the environment does not sign its releases."""
    setting = environment_named(fleet, environment).signing
    if setting is None:
        return None
    from .secrets import read_secret

    return release_signer(setting, config_dir, read_secret, say)
