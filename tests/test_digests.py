"""Content digests cover exactly an image's inputs.

Formatting (comments, indentation, key order, anchors) changes no digest; a change to `image`,
`iso` or an applicable shared input changes the key's disk digest and so every machine digest;
a target's `bootstrap` or `tag` changes only that target's machine digest; pools, machine sizes
and networks change nothing. Inputs are made by editing copies of the config files as text.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision.config import DirectorySource, Fleet, load_fleet
from cib_decision.config.model import SHARED_FILES, ImageKey, SharedInputs
from cib_decision.digests import (
    KeyDigests,
    applicable_shared_inputs,
    canonical_json,
    disk_inputs,
    fleet_digests,
    key_digests,
    machine_inputs,
    sha256_of,
)
from cib_decision.errors import ConfigError
from cib_decision.yamlsrc import YamlDocument, parse_yaml

from .conftest import CONFIG_DIR

# --- helpers -------------------------------------------------------------------------------


@functools.cache
def load_original(directory: Path) -> Fleet:
    """The fleet of a directory the tests never write to (bundled or reference config)."""
    return load_fleet(DirectorySource(directory))


def digests_of(directory: Path) -> dict[str, KeyDigests]:
    return fleet_digests(load_fleet(DirectorySource(directory)))


def replace_once(path: Path, old: str, new: str, after: str | None = None) -> None:
    """Replace `old` by `new` in `path`: its only occurrence, or its first one after `after`."""
    text = path.read_text(encoding="utf-8")
    if after is None:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
        index = text.index(old)
    else:
        index = text.index(old, text.index(after))
    path.write_text(text[:index] + new + text[index + len(old):], encoding="utf-8")


def yaml_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def leaves(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    """(path, value) of every scalar inside `value`."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, value)]


def get_in(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def set_in(value: Any, path: tuple[str | int, ...], new: Any) -> None:
    get_in(value, path[:-1])[path[-1]] = new


def dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


# --- formatting transforms -----------------------------------------------------------------


def add_comments(text: str) -> str:
    """Put a comment line before every key and list item, and a trailing comment after every
    single-line scalar that ends its line."""
    tokens = list(yaml.scan(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    before: set[int] = set()
    trailing: set[int] = set()
    for token, following in itertools.pairwise(tokens):
        if isinstance(token, yaml.KeyToken | yaml.BlockEntryToken):
            before.add(token.start_mark.line)
        if (isinstance(token, yaml.ScalarToken) and token.style not in ("|", ">")
                and token.start_mark.line == token.end_mark.line
                and following.start_mark.line > token.end_mark.line):
            trailing.add(token.end_mark.line)
    out = ["# a comment added at the top\n"]
    for number, line in enumerate(text.splitlines(keepends=True)):
        if number in before:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# a comment added before line {number + 1}\n")
        if number in trailing:
            line = line.rstrip("\n") + "  # a trailing comment\n"
        out.append(line)
    out.append("# a comment added at the end\n")
    return "".join(out)


class _ExpandingDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present
    """Writes repeated content out in full instead of as anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def _dump(data: Any, **options: Any) -> str:
    return yaml.dump(data, Dumper=_ExpandingDumper, default_flow_style=False,
                     allow_unicode=True, explicit_start=True, **options)


def _parsed(text: str) -> Any:
    # The project's own parser: YAML 1.2 booleans, so `on:` stays the string "on".
    return parse_yaml(text, "<test>").data


def sorted_indent_4(text: str) -> str:
    return _dump(_parsed(text), sort_keys=True, indent=4)


def expanded_anchors(text: str) -> str:
    """Anchors and aliases written out in full, keys in their order, indented by 2."""
    return _dump(_parsed(text), sort_keys=False, indent=2)


def has_aliases(text: str) -> bool:
    events = yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return any(isinstance(event, yaml.AliasEvent) for event in events)


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "comments": add_comments,
    "sorted-keys-indent-4": sorted_indent_4,
    "anchors-expanded-indent-2": expanded_anchors,
}


@functools.cache
def transformed(transform: str, path: Path) -> str:
    return TRANSFORMS[transform](path.read_text(encoding="utf-8"))


@pytest.fixture(params=["bundled", "reference"])
def original_dir(request: pytest.FixtureRequest) -> Path:
    if request.param == "reference":
        return request.getfixturevalue("reference_config")
    return CONFIG_DIR


def assert_same_fleet(before: Fleet, after: Fleet) -> None:
    old, new = fleet_digests(before), fleet_digests(after)
    changed = [name for name in old if new.get(name) != old[name]]
    assert set(after.keys) == set(before.keys)
    assert not changed, f"digests changed for {changed}"
    for name, key in before.keys.items():
        assert after.keys[name].raw == key.raw, name
    assert after.shared.files == before.shared.files
    assert after.environments == before.environments


# --- formatting changes no digest ----------------------------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_formatting_every_file_changes_no_digest(transform: str, original_dir: Path,
                                                 tmp_path: Path) -> None:
    copy_dir = tmp_path / "config"
    copy_dir.mkdir()
    for path in yaml_files(original_dir):
        new = transformed(transform, path)
        assert new != path.read_text(encoding="utf-8"), f"{transform} left {path.name} as it was"
        (copy_dir / path.name).write_text(new, encoding="utf-8")
    for beside in original_dir.parent.glob(".*.yml"):  # the repository's .platforms.yml
        shutil.copy(beside, tmp_path / beside.name)
    assert_same_fleet(load_original(original_dir), load_fleet(DirectorySource(copy_dir)))


def test_expanding_anchors_writes_no_alias(original_dir: Path) -> None:
    files = yaml_files(original_dir)
    assert any(has_aliases(p.read_text(encoding="utf-8")) for p in files)
    assert not any(has_aliases(transformed("anchors-expanded-indent-2", p)) for p in files)


def test_re_dumped_key_file_keeps_on_keys_as_strings() -> None:
    text = (CONFIG_DIR / "ubuntu-2404.yaml").read_text(encoding="utf-8")
    for transform in (sorted_indent_4, expanded_anchors):
        executions = _parsed(transform(text))["target"][0]["bootstrap"]["executions"]
        assert "on" in executions[0] and True not in executions[0]


# --- image and iso: disk digest and every machine digest -----------------------------------

PLATFORMS = ("amazon", "azure", "google")


def mutate(path: tuple[str | int, ...], value: Any) -> Any:
    """A different value for `value` that the schema still accepts."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return ["changed.example.com"] if path[-1] == "suffixes" else "changed"
    if path[-1] == "platform":
        return next(p for p in PLATFORMS if p != value)
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    return value + "x"


@functools.cache
def original_doc(key: str) -> YamlDocument:
    return parse_yaml((CONFIG_DIR / f"{key}.yaml").read_text(encoding="utf-8"), key)


def edit_leaf(path: Path, leaf: tuple[str | int, ...], new: Any) -> dict[str, Any]:
    """Write `new` in place of the scalar at `leaf` of the bundled key file copied at `path`,
    editing only the line it is on; return the content the edited file must parse to."""
    doc = original_doc(path.stem)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = doc.lines[leaf] - 1
    prefix = (rf"\s*(?:-\s+)?{re.escape(leaf[-1])}:\s+" if isinstance(leaf[-1], str)
              else r"\s*-\s+")
    match = re.match(rf"({prefix})\S.*$", lines[number])
    assert match, f"cannot find the value of {dotted(leaf)} on line {number + 1}"
    lines[number] = match.group(1) + json.dumps(new) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    expected = copy.deepcopy(doc.data)
    set_in(expected, leaf, new)
    return expected


def _leaf_cases() -> list[Any]:
    """Every scalar of win10-64's `image` and `iso`, and of the other kinds of image source."""
    cases = []
    for key, section in (("win10-64", "image"), ("win10-64", "iso"),
                         ("win2022-64", "image.base"), ("ubuntu-2404", "image.source")):
        path = tuple(section.split("."))
        for leaf, _ in leaves(get_in(original_doc(key).data, path), path):
            cases.append(pytest.param(key, leaf, id=f"{key}:{dotted(leaf)}"))
    return cases


def only_keys(directory: Path, *keys: str) -> Path:
    """Drop the other keys' files: a key's digests depend only on its file and shared inputs."""
    for path in yaml_files(directory):
        if path.stem not in (*keys, *SHARED_FILES):
            path.unlink()
    return directory


def copy_key_alone(key: str, directory: Path) -> Path:
    """A copy of one bundled key with product-keys.yaml as its only shared input (parsing and
    copying fewer files keeps the many image-field cases fast)."""
    directory.mkdir(exist_ok=True)
    for name in (f"{key}.yaml", "product-keys.yaml"):
        (directory / name).write_bytes((CONFIG_DIR / name).read_bytes())
    return directory


@pytest.fixture(scope="module")
def key_alone(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], KeyDigests]:
    """Digests of copy_key_alone(key), unedited."""
    @functools.cache
    def digests(key: str) -> KeyDigests:
        return digests_of(copy_key_alone(key, tmp_path_factory.mktemp(key)))[key]
    return digests


@pytest.mark.parametrize(("key", "leaf"), _leaf_cases())
def test_changing_an_image_or_iso_field_changes_disk_and_every_machine_digest(
        key: str, leaf: tuple[str | int, ...], tmp_path: Path,
        key_alone: Callable[[str], KeyDigests]) -> None:
    before = key_alone(key)
    directory = copy_key_alone(key, tmp_path)
    value = get_in(original_doc(key).data, leaf)
    expected = edit_leaf(directory / f"{key}.yaml", leaf, mutate(leaf, value))
    fleet = load_fleet(DirectorySource(directory))
    assert fleet.keys[key].raw == expected, "the edit went wrong"
    after = fleet_digests(fleet)[key]
    assert after.disk != before.disk
    assert after.machines.keys() == before.machines.keys()
    assert all(after.machines[t] != before.machines[t] for t in before.machines)


def test_removing_the_iso_changes_the_disk_digest(fleet_dir: Path) -> None:
    path = fleet_dir / "win11-64.yaml"
    before = digests_of(fleet_dir)
    # Keep a source, so that the key still loads: a disk image converted from a cloud image.
    text = path.read_text(encoding="utf-8")
    start, end = text.index("\niso:\n") + 1, text.index("\nmanager:\n") + 1
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    replace_once(path, "    target:\n        platform: amazon\n",
                 "    source:\n        url: https://example.com/w11.vhd\n"
                 "    target:\n        platform: amazon\n")
    after = digests_of(fleet_dir)
    assert after["win11-64"].disk != before["win11-64"].disk
    assert {k: v for k, v in after.items() if k != "win11-64"} == {
        k: v for k, v in before.items() if k != "win11-64"}


# --- shared inputs: only where they apply --------------------------------------------------

WINDOWS_KEYS = {"win10-64", "win11-64", "win11-64-gpu", "win2022-64"}
ALL_KEYS = WINDOWS_KEYS | {"ubuntu-2404"}

# (file, old text, new text, keys whose digests must change); every other key must not change.
SHARED_EDITS = {
    "package-for-all-windows": (
        "packages.yaml", "  savepath: Windows\\Temp\\7z2407-x64.msi\n",
        "  savepath: Windows\\Temp\\7z2408-x64.msi\n", WINDOWS_KEYS),
    "package-for-ubuntu-only": (
        "packages.yaml", "- name: 7z2407-x64.msi\n",
        "- name: extra.deb\n  target:\n      os:\n          - Ubuntu 24.04\n"
        "- name: 7z2407-x64.msi\n", {"ubuntu-2404"}),
    "gpu-driver": (
        "drivers.yaml", "  infpath: Display.Driver\\nvgridsw.inf\n",
        "  infpath: Display.Driver\\nvgridsw2.inf\n", {"win11-64-gpu"}),
    "gpu-driver-now-for-non-gpu-too": (
        "drivers.yaml", "          - true\n  sources:\n",
        "          - true\n          - false\n  sources:\n",
        {"win11-64-gpu", "win10-64", "win11-64"}),
    "amazon-driver": (
        "drivers.yaml", "  infpath: ena.inf\n", "  infpath: ena2.inf\n", {"win2022-64"}),
    "amazon-unattend-command": (
        "unattend-commands.yaml", "/manualpeerlist:169.254.169.123 ",
        "/manualpeerlist:169.254.169.124 ", {"win2022-64"}),
    "azure-client-unattend-command": (
        "unattend-commands.yaml", "  command: cmd /c netsh winhttp reset proxy\n",
        "  command: cmd /c netsh winhttp reset proxy & exit 0\n",
        {"win10-64", "win11-64", "win11-64-gpu"}),
    "windows-client-service": (
        "disable-windows-service.yaml", "- name: MapsBroker ", "- name: MapsBrokerSvc ",
        {"win10-64", "win11-64", "win11-64-gpu"}),
    "product-key-windows-10-professional": (
        "product-keys.yaml", "Windows 10:\n    Professional: W269N-WFGWX-YVC9B-4J6C9-T83GX\n",
        "Windows 10:\n    Professional: AAAAA-WFGWX-YVC9B-4J6C9-T83GX\n", {"win10-64"}),
    "product-key-windows-10-enterprise": (
        "product-keys.yaml", "Windows 10:\n    Professional: W269N-WFGWX-YVC9B-4J6C9-T83GX\n"
                             "    Enterprise: NPPR9-FWDCX-D2C8J-H872K-2YT43\n",
        "Windows 10:\n    Professional: W269N-WFGWX-YVC9B-4J6C9-T83GX\n"
        "    Enterprise: AAAAA-FWDCX-D2C8J-H872K-2YT43\n", set()),
    "product-key-server-2022-datacenter": (
        "product-keys.yaml", "    Datacenter: WX4NM-KYWYW-QJJR4-XV3QB-6VM33\n",
        "    Datacenter: AAAAA-KYWYW-QJJR4-XV3QB-6VM33\n", {"win2022-64"}),
    "product-key-for-an-os-no-key-uses": (
        "product-keys.yaml", "Windows Server 2022:\n",
        "Windows Server 2019:\n    Datacenter: AAAAA-KYWYW-QJJR4-XV3QB-6VM33\n"
        "Windows Server 2022:\n", set()),
}


@pytest.mark.parametrize(("name", "old", "new", "changed"), SHARED_EDITS.values(),
                         ids=SHARED_EDITS.keys())
def test_shared_input_change_changes_exactly_the_keys_it_applies_to(
        name: str, old: str, new: str, changed: set[str], fleet_dir: Path) -> None:
    before = fleet_digests(load_original(CONFIG_DIR))
    assert set(before) == ALL_KEYS
    replace_once(fleet_dir / name, old, new)
    after = digests_of(fleet_dir)
    for key in sorted(ALL_KEYS):
        if key in changed:
            assert after[key].disk != before[key].disk, key
            assert all(after[key].machines[t] != m for t, m in before[key].machines.items()), key
        else:
            assert after[key] == before[key], f"{key} changed"


def test_applicable_shared_inputs_follow_gpu_cloud_and_os() -> None:
    fleet = load_original(CONFIG_DIR)

    def drivers(key: str) -> set[str]:
        return {d["name"] for d in applicable_shared_inputs(fleet.keys[key], fleet.shared)
                ["drivers"]}

    assert drivers("win11-64-gpu") == {"nvidia-grid-a10"}
    assert drivers("win10-64") == set()
    assert drivers("win2022-64") == {"aws-ena", "aws-nvme"}
    assert drivers("ubuntu-2404") == set()
    inputs = applicable_shared_inputs(fleet.keys["win10-64"], fleet.shared)
    assert inputs["product-keys"] == "W269N-WFGWX-YVC9B-4J6C9-T83GX"
    assert applicable_shared_inputs(fleet.keys["ubuntu-2404"], fleet.shared)["product-keys"] is None


# --- bootstrap and tag: only that target's machine digest ----------------------------------

ONE_TARGET_TAG = "      tag:\n          - name: workerType\n            value: gecko-t-other\n"
# (file, old, new, text the edit comes after, key, target ids whose machine digest must change)
TARGET_EDITS = {
    "tag-of-one-target": (
        "win10-64.yaml", "      tag: *tag\n", ONE_TARGET_TAG, "nsg-east-us-2-win10",
        "win10-64", {"azure/eastus2"}),
    "bootstrap-of-one-target": (
        "win10-64.yaml", "      bootstrap: *bootstrap\n",
        "      bootstrap:\n          executions: []\n", "nsg-east-us-2-win10",
        "win10-64", {"azure/eastus2"}),
    "anchored-tag-of-every-target": (
        "win10-64.yaml", "            value: 'c41e9a0'\n", "            value: 'c41e9a1'\n", None,
        "win10-64", {"azure/centralus", "azure/eastus2", "azure/westus2"}),
    "anchored-bootstrap-of-every-target": (
        "win10-64.yaml", "                    failure: retry after 30 seconds\n",
        "                    failure: retry after 31 seconds\n", None,
        "win10-64", {"azure/centralus", "azure/eastus2", "azure/westus2"}),
    "bootstrap-on-key": (
        "ubuntu-2404.yaml", "                    failure: retest after 15 seconds\n",
        "                    failure: retest after 16 seconds\n", "- platform: google",
        "ubuntu-2404", {"google/us-central1"}),
    "bootstrap-command": (
        "ubuntu-2404.yaml", "                            match: TERMINATED\n",
        "                            match: stopped\n", None,
        "ubuntu-2404", {"google/us-central1"}),
    "tag-of-one-aws-target": (
        "win2022-64.yaml", "      tag: *tag\n", ONE_TARGET_TAG, "example-cib-ami-staging-usw2",
        "win2022-64", {"amazon/us-west-2"}),
    "tag-value-type": (
        "win2022-64.yaml", "            value: '5b0e8d2'\n", "            value: 5082\n", None,
        "win2022-64", {"amazon/us-east-1", "amazon/us-west-2"}),
}


@pytest.mark.parametrize(("name", "old", "new", "after", "key", "changed"),
                         TARGET_EDITS.values(), ids=TARGET_EDITS.keys())
def test_bootstrap_or_tag_change_changes_only_that_targets_machine_digest(
        name: str, old: str, new: str, after: str | None, key: str, changed: set[str],
        fleet_dir: Path) -> None:
    before = fleet_digests(load_original(CONFIG_DIR))
    replace_once(only_keys(fleet_dir, key) / name, old, new, after)
    now = digests_of(fleet_dir)
    assert set(now) == {key}
    assert now[key].disk == before[key].disk
    assert changed <= set(before[key].machines)
    for target, digest in before[key].machines.items():
        if target in changed:
            assert now[key].machines[target] != digest, target
        else:
            assert now[key].machines[target] == digest, target


# --- pools, machines and networks: no digest -----------------------------------------------

# (file, old, new, text the edit comes after)
NO_DIGEST_EDITS = {
    "pool-capacity": ("win10-64.yaml", "              maximum: 40\n",
                      "              maximum: 41\n", None),
    "pool-location-removed": ("win10-64.yaml", "              - westus2\n", "", None),
    "pool-location-added": ("win11-64.yaml", "              - eastus\n          lifecycle: spot\n",
                            "              - eastus\n              - northeurope\n"
                            "          lifecycle: spot\n", None),
    "pool-added": ("win10-64.yaml", "manager:\n    pool:\n",
                   "manager:\n    pool:\n        - domain: gecko-3\n"
                   "          variant: win10-64-azure\n          provider: azure\n"
                   "          locations:\n              - centralus\n", None),
    "pool-owner-and-lifecycle": ("win2022-64.yaml", "          lifecycle: spot\n"
                                 "          owner: relops-windows@example.com\n",
                                 "          lifecycle: on-demand\n"
                                 "          owner: someone-else@example.com\n", None),
    "anchored-machine-size": ("win10-64.yaml", "          cpu: 2\n", "          cpu: 4\n", None),
    "machine-of-one-target": ("win10-64.yaml", "      machine: *machine\n",
                              "      machine:\n          cpu: 8\n          ram: 32\n",
                              "rg-east-us-2-win10"),
    "aws-instance-type": ("win2022-64.yaml", "          type: m5.xlarge\n",
                          "          type: m5.2xlarge\n", None),
    "network-name": ("win10-64.yaml", "          name: vn-east-us-2-win10\n",
                     "          name: vn-east-us-2-win10-b\n", None),
    "network-rule": ("win10-64.yaml", "                    priority: 200\n",
                     "                    priority: 201\n", None),
    "network-subnet": ("win11-64-gpu.yaml", "              name: sn-east-us-win11-gpu\n",
                       "              name: sn-east-us-win11-gpu-b\n", None),
}


@pytest.mark.parametrize(("name", "old", "new", "after"), NO_DIGEST_EDITS.values(),
                         ids=NO_DIGEST_EDITS.keys())
def test_pool_machine_and_network_changes_change_no_digest(
        name: str, old: str, new: str, after: str | None, fleet_dir: Path) -> None:
    key = Path(name).stem
    before = load_original(CONFIG_DIR)
    replace_once(only_keys(fleet_dir, key) / name, old, new, after)
    fleet = load_fleet(DirectorySource(fleet_dir))
    assert fleet.keys[key].raw != before.keys[key].raw
    assert fleet_digests(fleet) == {key: fleet_digests(before)[key]}


def test_removing_every_pool_changes_no_digest(fleet_dir: Path) -> None:
    path = fleet_dir / "ubuntu-2404.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("\nmanager:\n") + 1, text.index("\ntarget:\n") + 1
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    fleet = load_fleet(DirectorySource(fleet_dir))
    assert fleet.keys["ubuntu-2404"].pools == ()
    assert fleet_digests(fleet) == fleet_digests(load_original(CONFIG_DIR))


# --- digests as values ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", ".nan", "!!binary aGk="])
def test_every_config_that_loads_has_digests(value: str, fleet_dir: Path) -> None:
    replace_once(only_keys(fleet_dir, "ubuntu-2404") / "ubuntu-2404.yaml",
                 "                            match: TERMINATED\n",
                 "                            match: TERMINATED\n"
                 f"                            timeout: {value}\n")
    try:
        fleet = load_fleet(DirectorySource(fleet_dir))
    except ConfigError:
        return  # refusing such a value when loading would be as good
    assert re.fullmatch(r"[0-9a-f]{64}", fleet_digests(fleet)["ubuntu-2404"].disk)


def test_fleet_digests_are_hex_sha256_per_key_and_target() -> None:
    fleet = load_original(CONFIG_DIR)
    digests = fleet_digests(fleet)
    assert set(digests) == set(fleet.keys)
    for name, key in fleet.keys.items():
        assert digests[name].key == name
        assert set(digests[name].machines) == {t.id for t in key.targets}
        values = [digests[name].disk, *digests[name].machines.values()]
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in values)
        # Targets with the same bootstrap and tag share a machine digest; none is the disk's.
        assert digests[name].disk not in digests[name].machines.values()
    assert fleet_digests(load_fleet(DirectorySource(CONFIG_DIR))) == digests


def test_canonical_json_is_key_order_independent() -> None:
    one = {"b": 1, "a": {"d": [2, {"y": None, "x": True}], "c": "é"}}
    two = {"a": {"c": "é", "d": [2, {"x": True, "y": None}]}, "b": 1}
    assert canonical_json(one) == canonical_json(two)
    assert canonical_json(one) == '{"a":{"c":"é","d":[2,{"x":true,"y":null}]},"b":1}'.encode()
    assert sha256_of(one) == sha256_of(two)


def test_canonical_json_keeps_list_order_and_types() -> None:
    assert canonical_json([1, 2]) != canonical_json([2, 1])
    assert sha256_of({"a": 1}) != sha256_of({"a": "1"})
    assert sha256_of({"a": True}) != sha256_of({"a": 1})


def test_canonical_json_rejects_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"a": math.nan})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None, database=None)
@given(JSON)
def test_canonical_json_ignores_key_order_for_any_content(value: Any) -> None:
    assert canonical_json(_reversed_keys(value)) == canonical_json(value)
    assert json.loads(canonical_json(value)) == value


# --- computed once ---------------------------------------------------------------------------


def test_a_keys_digests_are_computed_once_and_equal_a_fresh_computation() -> None:
    fleet = load_original(CONFIG_DIR)
    key = fleet.keys["win10-64"]
    first = key_digests(key, fleet.shared)
    assert key_digests(key, fleet.shared) is first
    assert fleet_digests(fleet)["win10-64"] is first
    disk = sha256_of(disk_inputs(key, fleet.shared))
    assert first.disk == disk
    assert first.machines == {t.id: sha256_of(machine_inputs(disk, t)) for t in key.targets}


def test_other_shared_inputs_give_the_same_key_other_digests() -> None:
    fleet = load_original(CONFIG_DIR)
    other = SharedInputs({**fleet.shared.files, "packages": []})
    key = fleet.keys["win10-64"]
    assert key_digests(key, other).disk != key_digests(key, fleet.shared).disk
    assert key_digests(key, other) == KeyDigests(
        key.name, sha256_of(disk_inputs(key, other)),
        {t.id: sha256_of(machine_inputs(sha256_of(disk_inputs(key, other)), t))
         for t in key.targets})


def test_keys_alike_in_os_architecture_gpu_clouds_and_edition_share_their_shared_inputs(
        ) -> None:
    fleet = load_original(CONFIG_DIR)
    win10 = fleet.keys["win10-64"]
    twin = ImageKey("twin", "twin.yaml", copy.deepcopy(win10.raw), win10.targets, win10.pools)
    assert applicable_shared_inputs(twin, fleet.shared) is applicable_shared_inputs(
        win10, fleet.shared)
    gpu = ImageKey("gpu", "gpu.yaml", {**win10.raw, "image": {**win10.image, "gpu": True}},
                   win10.targets, win10.pools)
    assert applicable_shared_inputs(gpu, fleet.shared) is not applicable_shared_inputs(
        win10, fleet.shared)


# --- digests known from another fleet ------------------------------------------------------


def copy_of_bundled(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, directory)
    return directory


def test_known_digests_are_taken_only_for_keys_unchanged_under_the_same_shared_inputs(
        tmp_path):
    head = load_original(CONFIG_DIR)
    known = (head, fleet_digests(head))
    directory = copy_of_bundled(tmp_path)
    replace_once(directory / "win10-64.yaml", "timezone:", "timezone: CET #")
    base = load_fleet(DirectorySource(directory))
    reused = fleet_digests(base, known)
    # the same digests as computed afresh, whichever way each key came
    assert reused == fleet_digests(load_fleet(DirectorySource(directory)))
    taken = {name for name in base.keys if reused[name] is known[1][name]}
    assert taken == set(base.keys) - {"win10-64"}


def test_a_change_of_the_shared_inputs_takes_no_known_digest(tmp_path):
    head = load_original(CONFIG_DIR)
    known = (head, fleet_digests(head))
    directory = copy_of_bundled(tmp_path)
    shared = next(directory / f"{name}.yaml" for name in SHARED_FILES
                  if (directory / f"{name}.yaml").exists())
    shared.write_text(shared.read_text(encoding="utf-8") + "\n# a comment changes no data\n",
                      encoding="utf-8")
    same = load_fleet(DirectorySource(directory))
    assert all(fleet_digests(same, known)[n] is known[1][n] for n in same.keys)
    (directory / "drivers.yaml").write_text(yaml.safe_dump([]), encoding="utf-8")
    changed = load_fleet(DirectorySource(directory))
    reused = fleet_digests(changed, known)
    assert not any(reused[n] is known[1][n] for n in changed.keys)
    assert reused == fleet_digests(load_fleet(DirectorySource(directory)))
