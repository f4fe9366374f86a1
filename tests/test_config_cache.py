"""The parsed-config cache: a file whose bytes were loaded before is not parsed again, any change
to its bytes or to the parsing code is a miss, and a broken cache is no cache. Problems and
loaded fleets are the same with and without it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cib_decision import yamlsrc
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config import cache as cache_module
from cib_decision.config import load as load_module
from cib_decision.config.cache import MISS, ParsedCache
from cib_decision.digests import fleet_digests
from cib_decision.errors import ConfigError

from .conftest import CONFIG_DIR


@pytest.fixture
def cache(tmp_path: Path) -> ParsedCache:
    return ParsedCache(tmp_path / "cache")


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The names of the files parse_yaml is asked to parse."""
    seen: list[str] = []

    def counting(text, filename):
        seen.append(Path(filename).name)
        return yamlsrc.parse_yaml(text, filename)

    monkeypatch.setattr(load_module, "parse_yaml", counting)
    return seen


def entries(cache: ParsedCache) -> dict[str, str]:
    """The stored entries, by key."""
    with closing(sqlite3.connect(cache.path)) as db:
        return dict(db.execute("SELECT key, data FROM entries"))


def same_fleet(a, b) -> None:
    assert fleet_digests(a) == fleet_digests(b)
    assert {k: v.raw for k, v in a.keys.items()} == {k: v.raw for k, v in b.keys.items()}
    assert a.shared.files == b.shared.files and a.environments == b.environments


def test_a_second_load_parses_nothing_and_gives_the_same_fleet(cache, parses):
    first = load_fleet(DirectorySource(CONFIG_DIR), cache)
    assert len(parses) == len(list(CONFIG_DIR.glob("*.yaml")))
    assert len(entries(cache)) == len(parses)
    parses.clear()
    second = load_fleet(DirectorySource(CONFIG_DIR), cache)
    assert parses == []
    same_fleet(first, second)
    same_fleet(second, load_fleet(DirectorySource(CONFIG_DIR)))


def test_a_changed_file_is_parsed_again(cache, parses, fleet_dir):
    load_fleet(DirectorySource(fleet_dir), cache)
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text().replace("edition: Professional", "edition: Enterprise"))
    parses.clear()
    fleet = load_fleet(DirectorySource(fleet_dir), cache)
    assert parses == ["win10-64.yaml"]
    assert fleet.keys["win10-64"].image["edition"] == "Enterprise"


def test_a_comment_is_a_change_of_bytes_but_not_of_content(cache, parses, fleet_dir):
    before = load_fleet(DirectorySource(fleet_dir), cache)
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text() + "# a comment\n")
    parses.clear()
    same_fleet(before, load_fleet(DirectorySource(fleet_dir), cache))
    assert parses == ["win10-64.yaml"]


@pytest.mark.parametrize("damage", ["", "{not json", '{"other": 1}', "[]"],
                         ids=["empty", "truncated", "no-data", "not-an-entry"])
def test_a_corrupt_entry_is_ignored_and_written_anew(cache, parses, damage):
    expected = load_fleet(DirectorySource(CONFIG_DIR))
    load_fleet(DirectorySource(CONFIG_DIR), cache)
    victim = sorted(entries(cache))[0]
    with closing(sqlite3.connect(cache.path)) as db, db:
        db.execute("UPDATE entries SET data = ? WHERE key = ?", (damage, victim))
    parses.clear()
    same_fleet(expected, load_fleet(DirectorySource(CONFIG_DIR), cache))
    assert len(parses) == 1  # the file whose entry was damaged
    assert entries(cache)[victim] != damage


@pytest.mark.parametrize("damage", [b"", b"not a database at all" * 100, b"\0" * 4096],
                         ids=["empty", "text", "zeros"])
def test_a_cache_file_that_is_not_a_database_is_replaced(cache, parses, damage):
    expected = load_fleet(DirectorySource(CONFIG_DIR))
    cache.directory.mkdir(parents=True)
    cache.path.write_bytes(damage)
    parses.clear()
    same_fleet(expected, load_fleet(DirectorySource(CONFIG_DIR), cache))
    assert len(entries(cache)) == len(parses) == len(list(CONFIG_DIR.glob("*.yaml")))


def test_other_parsing_code_does_not_use_the_entries(cache, parses, monkeypatch):
    load_fleet(DirectorySource(CONFIG_DIR), cache)
    monkeypatch.setattr(cache_module, "_code_fingerprint", lambda: b"other code")
    parses.clear()
    load_fleet(DirectorySource(CONFIG_DIR), cache)
    assert len(parses) == len(list(CONFIG_DIR.glob("*.yaml")))


def test_the_kind_of_file_is_part_of_the_key(cache):
    cache.store("key", b"x: 1\n", {"x": 1})
    cache.flush()
    assert cache.lookup("key", b"x: 1\n") == {"x": 1}
    assert cache.lookup("packages", b"x: 1\n") is MISS
    cache.flush()


def test_files_with_problems_are_not_cached_and_keep_their_messages(cache, parses, fleet_dir):
    path = fleet_dir / "win10-64.yaml"
    path.write_text(path.read_text().replace("      region: East US 2\n",
                                             "      regoin: East US 2\n", 1))
    with pytest.raises(ConfigError) as without:
        load_fleet(DirectorySource(fleet_dir))
    with pytest.raises(ConfigError):
        load_fleet(DirectorySource(fleet_dir), cache)  # stores every file but the broken one
    for _ in range(2):
        parses.clear()
        with pytest.raises(ConfigError) as cached:
            load_fleet(DirectorySource(fleet_dir), cache)
        assert str(cached.value) == str(without.value)
        assert parses == ["win10-64.yaml"]


def test_a_cached_key_still_names_the_line_of_a_problem_found_after_validation(
        cache, fleet_dir):
    """A duplicate pool id names the line in the first file, which comes from the cache."""
    load_fleet(DirectorySource(fleet_dir), cache)
    other = fleet_dir / "win11-64-gpu.yaml"
    text = other.read_text()
    other.write_text(text.replace("manager:\n    pool:\n", "manager:\n    pool:\n"
                                  "        - domain: gecko-t\n"
                                  "          variant: win10-64-azure\n"
                                  "          provider: azure\n"
                                  "          locations:\n"
                                  "              - eastus\n", 1))
    with pytest.raises(ConfigError) as without:
        load_fleet(DirectorySource(fleet_dir))
    with pytest.raises(ConfigError) as cached:
        load_fleet(DirectorySource(fleet_dir), cache)
    assert "duplicate pool id gecko-t/win10-64-azure" in str(cached.value)
    assert str(cached.value) == str(without.value)


def test_a_cache_that_cannot_be_written_is_no_cache(tmp_path, parses):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    cache = ParsedCache(blocked)
    for _ in range(2):
        same_fleet(load_fleet(DirectorySource(CONFIG_DIR), cache),
                   load_fleet(DirectorySource(CONFIG_DIR)))


@pytest.mark.parametrize(("environ", "expected"), [
    ({"CIB_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}, Path("/c")),
    ({"CIB_CACHE_DIR": ""}, None),
    ({"XDG_CACHE_HOME": "/x"}, Path("/x/cib")),
    ({}, Path.home() / ".cache" / "cib"),
])
def test_the_cache_lives_where_the_environment_says(environ, expected):
    found = ParsedCache.from_environment(environ)
    assert (found.directory if found else None) == expected


def test_without_cib_cache_dir_the_graph_uses_no_cache_by_default():
    assert ParsedCache.from_environment({"XDG_CACHE_HOME": "/x"}, default_location=False) is None
    found = ParsedCache.from_environment({"CIB_CACHE_DIR": "/c"}, default_location=False)
    assert found is not None and found.directory == Path("/c")
