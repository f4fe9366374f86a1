"""A content-addressed cache of parsed and validated config files.

An entry is the parsed content of one file that had no problems, stored as JSON under the
SHA-256 of: the entry format, the source of the code that parses and validates files (so a
change to the YAML rules or a schema is a miss, with no version number to forget), the kind of
file (which schema applies) and the file's bytes. A file whose bytes changed is a miss; an entry
that cannot be read or decoded is a miss and is written anew. Files with problems are never
stored: their messages need the full parse.

The entries live in one SQLite file, written in one transaction per load (a thousand small
files cost more to write than parsing saves). It is a cache: a file that is not a database is
replaced, and one that cannot be opened or written only means no cache.

Where: `CIB_CACHE_DIR` (empty: no cache), else `$XDG_CACHE_HOME/cib`, else `~/.cache/cib`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

FORMAT = 1
MISS = object()  # what `lookup` returns for a file it has no entry for


class ParsedCache:
    """Parsed config content by the SHA-256 of file bytes and parsing code."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / f"config-v{FORMAT}.sqlite"
        self._db: sqlite3.Connection | None = None
        self._unusable = False
        self._pending: dict[str, str] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, *,
                         default_location: bool = True) -> ParsedCache | None:
        """The cache the environment asks for: `CIB_CACHE_DIR` (set but empty: none), else
        (with `default_location`) `$XDG_CACHE_HOME/cib` or `~/.cache/cib`."""
        if "CIB_CACHE_DIR" in environ:
            return cls(environ["CIB_CACHE_DIR"]) if environ["CIB_CACHE_DIR"] else None
        if not default_location:
            return None
        base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return cls(Path(base) / "cib")

    def lookup(self, kind: str, content: bytes) -> Any:
        """The parsed content of a valid file of `kind` with these bytes, or MISS."""
        db = self._connect()
        if db is None:
            return MISS
        try:
            row = db.execute("SELECT data FROM entries WHERE key = ?",
                             (_key(kind, content),)).fetchone()
            entry = json.loads(row[0]) if row else None
        except (sqlite3.Error, ValueError, TypeError):
            return MISS  # a damaged entry: parsed again, and stored anew
        if not isinstance(entry, dict) or "data" not in entry:
            return MISS
        return entry["data"]

    def store(self, kind: str, content: bytes, data: Any) -> None:
        """Remember the parsed content of a valid file (written by `flush`)."""
        try:
            entry = json.dumps({"data": data}, ensure_ascii=False, allow_nan=False)
        except ValueError:
            return  # not JSON (cannot happen for valid config): simply not cached
        self._pending[_key(kind, content)] = entry

    def flush(self) -> None:
        """Write the stored entries in one transaction, and close the database."""
        pending, self._pending = self._pending, {}
        db = self._connect() if pending else self._db
        try:
            if db is not None and pending:
                with db:
                    db.executemany("INSERT OR REPLACE INTO entries (key, data) VALUES (?, ?)",
                                   pending.items())
        except sqlite3.Error:
            pass  # read-only, full or locked by another writer: no cache this time
        finally:
            if db is not None:
                db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._unusable:
            for attempt in range(2):
                try:
                    self._db = _open(self.path)
                    break
                except sqlite3.DatabaseError as exc:
                    # Not a database (or damaged beyond reading): start a new one, once.
                    if attempt or isinstance(exc, sqlite3.OperationalError):
                        self._unusable = True
                        break
                    self._remove()
                except (OSError, sqlite3.Error):
                    self._unusable = True
                    break
        return self._db

    def _remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            self._unusable = True


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=2)
    try:
        db.execute("PRAGMA synchronous = OFF")  # a cache: losing the last writes is fine
        db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, data TEXT)")
        db.execute("SELECT count(*) FROM entries WHERE key = ''").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _key(kind: str, content: bytes) -> str:
    digest = hashlib.sha256(_code_fingerprint())
    digest.update(kind.encode() + b"\0")
    digest.update(content)
    return digest.hexdigest()


@cache
def _code_fingerprint() -> bytes:
    """What the parsed and validated content of a file depends on besides its bytes: our
    parsing and validating code, and the libraries under it (their files' size and time).
    jsonschema-rs is found, not imported: a fleet read from this cache is not validated."""
    import importlib.util

    import yaml

    from .. import yamlsrc
    from . import schemas, validate

    digest = hashlib.sha256(f"{FORMAT}\0{sys.version_info[:2]}\0{yaml.__version__}\0"
                            f"{yaml.__with_libyaml__}\0".encode())
    for module in (yamlsrc, schemas, validate, sys.modules[__name__]):
        digest.update(Path(module.__file__ or "").read_bytes())
    stat = os.stat(yaml.__file__ or "")
    digest.update(f"{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    spec = importlib.util.find_spec("jsonschema_rs")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(Path(location).glob("jsonschema_rs*")):  # the compiled module
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.digest()
