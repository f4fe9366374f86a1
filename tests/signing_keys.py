"""OpenPGP keys for signing tests, generated with gpg once per test session (ed25519, fast) in
a throw-away home: nothing private is committed, nothing touches the user's keyring."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TestKey:
    """A generated key: its fingerprint, armored public and private key, passphrase."""

    __test__ = False  # not a test class, whatever its name

    fingerprint: str
    public: str
    private: str
    passphrase: str | None = None

    def secret(self) -> dict[str, str]:
        """The signing secret's value holding this key."""
        value = {"private_key": self.private}
        if self.passphrase is not None:
            value["passphrase"] = self.passphrase
        return value


def _gpg(home: str, *args: str, passphrase: str = "") -> str:
    result = subprocess.run(
        ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase",
         passphrase, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def generate(name: str, passphrase: str | None = None) -> TestKey:
    """A new ed25519 signing key for `name` (protected by `passphrase` when given)."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tempfile.mkdtemp(prefix="cib-gpg-test-")
    try:
        # No calibration of key protection by this agent (seconds); its keys die with it.
        Path(home, "gpg-agent.conf").write_text("s2k-count 65536\n")
        _gpg(home, "--quick-gen-key", f"{name} <{name}@example.com>", "ed25519", "sign",
             "never", passphrase=passphrase or "")
        listing = _gpg(home, "--with-colons", "--list-secret-keys")
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        public = _gpg(home, "--armor", "--export", fingerprint)
        private = _gpg(home, "--armor", "--export-secret-keys", fingerprint,
                       passphrase=passphrase or "")
        return TestKey(fingerprint, public, private, passphrase)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True,
                       check=False)
        shutil.rmtree(home, ignore_errors=True)
