"""cloud-image-builder's earlier config forms load, each meaning what the predecessor's scripts
of its time made of it (docs/predecessor-forms.md): a file in an earlier form gives the same
fleet, and the same digests, as the file rewritten by hand into the current form. A genuinely
broken file in an earlier form still fails with its file and line.

The fixtures are our own, written in each form's shape; none is a copy of the predecessor's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.config.forms import key_in_current_form, unattend_commands_in_current_form
from cib_decision.digests import fleet_digests
from cib_decision.directives import Directives
from cib_decision.errors import ConfigError
from cib_decision.selection import select

KEY = """\
image:
  os: Windows 10
  edition: Professional
  architecture: x86-64
  gpu: false{image_extra}
iso:
  source: {{platform: azure, bucket: isos, key: win10.iso}}
manager:
  pool:{pool}
target:
- platform: azure
  group: rg-central-us-gecko-t
  region: Central US
  storage: sacentralusgeckot
  tag:
  - {{name: deploymentId, value: abc1234}}
"""

POOL_LIST = """
  - domain: gecko-t
    variant: win10-64
    capacity: {minimum: 0, maximum: 3}
    locations: [centralus]
    lifecycle: spot
    timeout: {registration: 900, reregistration: 86400}
    owner: relops@example.com
    provider: azure"""


def key_text(pool: str = POOL_LIST, image_extra: str = "") -> str:
    return KEY.format(pool=pool, image_extra=image_extra)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def load(directory: Path):
    return load_fleet(DirectorySource(directory))


def problems(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(directory)
    return [f"{Path(p.file).name}:{p.line}: {p.message}" for p in info.value.problems]


def same_fleet(tmp_path: Path, earlier: dict[str, str], current: dict[str, str]) -> None:
    """The two config directories load to the same keys, pools and digests."""
    old = load(write(tmp_path / "earlier" / "config", earlier))
    new = load(write(tmp_path / "current" / "config", current))
    assert {n: k.raw for n, k in old.keys.items()} == {n: k.raw for n, k in new.keys.items()}
    assert old.shared.files == new.shared.files
    assert fleet_digests(old) == fleet_digests(new)


# --- each form means what the current form says ----------------------------------------------


def test_a_bare_network_word_is_the_network_location(tmp_path):
    """June to August 2020: `network: Home` (build-disk-image.ps1 passed it as the location)."""
    same_fleet(tmp_path, {"win10-64.yaml": key_text(image_extra="\n  network: Home")},
               {"win10-64.yaml": key_text(image_extra="\n  network: {location: Home}")})


def test_a_single_pool_mapping_named_by_id_is_the_keys_one_pool(tmp_path):
    """January 2020: `pool` one mapping, named `id: <domain>/<variant>`."""
    mapping = POOL_LIST.replace("  - domain: gecko-t\n    variant: win10-64",
                                "    id: gecko-t/win10-64")
    assert "- " not in mapping
    same_fleet(tmp_path, {"win10-64.yaml": key_text(pool=mapping)},
               {"win10-64.yaml": key_text()})
    fleet = load(tmp_path / "earlier" / "config")
    assert list(fleet.pools) == ["gecko-t/win10-64"]


def test_worker_manager_timeouts_in_lifecycle_or_on_the_pool_are_the_pools_timeouts(tmp_path):
    """May 2020: worker-manager's lifecycle object, then its field names on the pool."""
    in_lifecycle = POOL_LIST.replace(
        "lifecycle: spot\n    timeout: {registration: 900, reregistration: 86400}",
        "lifecycle: {registrationTimeout: 900, reregistrationTimeout: 86400}")
    on_pool = POOL_LIST.replace(
        "lifecycle: spot\n    timeout: {registration: 900, reregistration: 86400}",
        "lifecycle: normal\n    registrationTimeout: 900\n    reregistrationTimeout: 86400")
    current = POOL_LIST.replace("    lifecycle: spot\n", "")
    same_fleet(tmp_path / "a", {"win10-64.yaml": key_text(pool=in_lifecycle)},
               {"win10-64.yaml": key_text(pool=current)})
    same_fleet(tmp_path / "b", {"win10-64.yaml": key_text(pool=on_pool)},
               {"win10-64.yaml": key_text(pool=current.replace(
                   "    timeout:", "    lifecycle: normal\n    timeout:"))})
    pool = load(tmp_path / "a" / "earlier" / "config").pools["gecko-t/win10-64"]
    assert pool.raw["timeout"] == {"registration": 900, "reregistration": 86400}
    assert "lifecycle" not in pool.raw  # the predecessor read only `spot` from it: not spot


def with_execution_test(test: str) -> str:
    return key_text() + (
        "  bootstrap:\n    executions:\n    - name: rename\n      shell: azure-powershell\n"
        "      commands: [Rename-Computer -NewName $name]\n"
        f"      test: {{std: {{out: {test}}}}}\n")


def test_an_executions_like_wildcard_is_the_regular_expression_it_meant(tmp_path):
    """April 2020: `test.std.out.like`, compared with PowerShell's `-like` (the whole output;
    `*`, `?` and `[...]` wildcards) by build-machine-image.ps1 of the time."""
    same_fleet(tmp_path, {"win10-64.yaml": with_execution_test("{like: 'host*renamed?'}")},
               {"win10-64.yaml": with_execution_test(
                   "{match: '^host[\\s\\S]*renamed[\\s\\S]\\s*$'}")})
    assert "give only one" in " ".join(problems(write(tmp_path / "both" / "config", {
        "win10-64.yaml": with_execution_test("{like: a*, match: a}")})))


def test_grouped_unattend_commands_are_one_entry_per_command(tmp_path):
    """December 2019 to May 2020: commands grouped under one target; in May 2020 a command
    could carry its own target, which then is its target."""
    grouped = """\
    - unattend:
      - {description: power plan, command: powercfg /setactive high}
      - description: no hibernation
        command: powercfg /hibernate off
        target: {cloud: [azure], os: [Windows 7]}
      target: {cloud: [azure, amazon], os: [Windows 10]}
    - description: long paths
      command: reg add LongPathsEnabled
      target: {cloud: [azure], os: [Windows 10]}
    """
    flat = """\
    - description: power plan
      command: powercfg /setactive high
      target: {cloud: [azure, amazon], os: [Windows 10]}
    - description: no hibernation
      command: powercfg /hibernate off
      target: {cloud: [azure], os: [Windows 7]}
    - description: long paths
      command: reg add LongPathsEnabled
      target: {cloud: [azure], os: [Windows 10]}
    """
    key = key_text()
    same_fleet(tmp_path, {"win10-64.yaml": key, "unattend-commands.yaml": grouped},
               {"win10-64.yaml": key, "unattend-commands.yaml": flat})


def test_one_config_yaml_holding_every_key_by_name_is_those_keys(tmp_path):
    """December 2019: the whole fleet in `config.yaml`, one mapping per key."""
    other = key_text().replace("win10-64", "win7-32").replace("Windows 10", "Windows 7")
    single = "win10-64:\n" + textwrap.indent(key_text(), "  ") + \
             "win7-32:\n" + textwrap.indent(other, "  ")
    same_fleet(tmp_path, {"config.yaml": single},
               {"win10-64.yaml": key_text(), "win7-32.yaml": other})
    fleet = load(tmp_path / "earlier" / "config")
    assert {k.file.rpartition("/")[2] for k in fleet.keys.values()} == {"config.yaml"}


def test_a_document_in_the_current_form_is_returned_as_it_is():
    import yaml

    data = yaml.safe_load(key_text())
    assert key_in_current_form(data) is data
    commands = [{"command": "x", "target": {"os": ["Windows 10"]}}]
    assert unattend_commands_in_current_form(commands) is commands


# --- broken files in an earlier form still fail at their line ---------------------------------


def test_a_misspelt_field_in_the_single_file_form_names_its_line_in_config_yaml(tmp_path):
    text = "win10-64:\n" + textwrap.indent(key_text().replace("  edition:", "  editon:"), "  ")
    line = text.splitlines().index("    editon: Professional") + 1
    found = problems(write(tmp_path / "config", {"config.yaml": text}))
    assert found == [f"config.yaml:{line}: unknown field 'editon' in image; "
                     "did you mean 'edition'?"]


def test_a_key_in_config_yaml_and_in_its_own_file_is_defined_twice(tmp_path):
    single = "win10-64:\n" + textwrap.indent(key_text(), "  ")
    found = problems(write(tmp_path / "config", {"config.yaml": single,
                                                 "win10-64.yaml": key_text()}))
    assert len(found) == 1 and "key win10-64 is defined twice" in found[0]


def test_a_pool_named_neither_by_domain_and_variant_nor_by_id_says_what_it_needs(tmp_path):
    nameless = """
    capacity: {minimum: 0, maximum: 3}
    locations: [centralus]
    provider: azure"""
    text = key_text(pool=nameless)
    line = text.splitlines().index("  pool:") + 1
    assert problems(write(tmp_path / "config", {"win10-64.yaml": text})) == [
        f"win10-64.yaml:{line}: manager.pool needs `domain` and `variant`, or `id`"]


def test_a_pool_named_twice_or_a_command_given_twice_is_refused(tmp_path):
    both = POOL_LIST.replace("  - domain: gecko-t", "  - id: gecko-t/win10-64\n    domain: gecko-t")
    commands = "- command: a\n  unattend: [{command: b}]\n"
    found = problems(write(tmp_path / "config", {"win10-64.yaml": key_text(pool=both),
                                                 "unattend-commands.yaml": commands}))
    assert sorted(m.split(": ", 1)[1] for m in found) == [
        "[0] has `command` and also `unattend`: give only one of them",
        "manager.pool[0] has `domain` and `variant` and also `id`: give only one of them"]


def test_a_network_that_is_neither_a_word_nor_a_mapping_is_refused_at_its_line(tmp_path):
    text = key_text(image_extra="\n  network: 7")
    line = text.splitlines().index("  network: 7") + 1
    found = problems(write(tmp_path / "config", {"win10-64.yaml": text}))
    assert found == [f"win10-64.yaml:{line}: wrong type for image.network: expected string, "
                     "got integer ('7')"]


# --- the platforms of a repository whose decision is still the predecessor's -----------------


def amazon_target_key() -> str:
    return key_text() + """\
- platform: amazon
  group: rg-west-us-mpd001-1
  region: West US
"""


def test_without_platforms_file_the_predecessors_decision_builds_on_azure_alone(tmp_path):
    """Every version of ci/create-image-build-tasks.py built machine images on Azure only,
    until .platforms.yml (April 2021) said which: an amazon target with an Azure region name
    is then dormant, not an error."""
    repo = tmp_path / "repo"
    config = write(repo / "config", {"win10-64.yaml": amazon_target_key()})
    assert any("not an AWS region name" in p for p in problems(config))  # our own layout
    (repo / "ci").mkdir()
    (repo / "ci" / "create-image-build-tasks.py").write_text("# the predecessor's decision\n")
    fleet = load(config)
    assert fleet.enabled_platforms == {"azure"}
    selection = select(fleet, Directives(), "production")
    assert set(selection.keys["win10-64"].unbuilt_targets.values()) == {
        "amazon is not enabled in this repository (ci/create-image-build-tasks.py without "
        ".platforms.yml: azure)"}
    (repo / ".platforms.yml").write_text("- azure\n- amazon\n")  # its later switch decides
    assert any("not an AWS region name" in p for p in problems(config))


# --- what the predecessor's builder derived where its config was silent -----------------------


def test_an_azure_target_without_storage_uses_the_account_the_predecessors_builder_derived(
        tmp_path):
    """Until April 2021 the config named no storage account: posh-minions-managed derived
    `sa<group without rg- and dashes>`; the config's `storage` wins wherever it is given."""
    text = key_text().replace("  storage: sacentralusgeckot\n", "") + """\
- platform: azure
  group: rg-east-us-gecko-t
  region: East US
  storage: mine
- platform: azure
  group: rg-a-resource-group-name-too-long-for-an-account
  region: West US
"""
    targets = load(write(tmp_path / "config", {"win10-64.yaml": text})).keys["win10-64"].targets
    assert [t.storage for t in targets] == ["sacentralusgeckot", "mine", None]
