"""Loading config directories: the reference and bundled fleets load, and every kind of mistake
is reported as FILE:LINE: message (through load_fleet and through `cib config check`), never as
a traceback. Bad inputs are made by editing a copy of the bundled fleet, and expected line
numbers are computed from the edited text."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cib_decision import cli
from cib_decision.config import DirectorySource, Fleet, load_fleet
from cib_decision.config.model import SHARED_FILES
from cib_decision.errors import ConfigError, Problem

from .conftest import CONFIG_DIR

# --- helpers -------------------------------------------------------------------------------


def line_number(text: str, index: int) -> int:
    """1-based line of character `index` of `text`."""
    return text.count("\n", 0, index) + 1


def line_of(path: Path, fragment: str, after: str | None = None) -> int:
    """1-based line where `fragment` first occurs in `path` (after `after`, when given)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(after) if after is not None else 0
    return line_number(text, text.index(fragment, start))


def replace_once(path: Path, old: str, new: str) -> int:
    """Replace the one occurrence of `old` in `path` by `new`; return the line `new` starts on."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    index = text.index(old)
    path.write_text(text[:index] + new + text[index + len(old):], encoding="utf-8")
    return line_number(text, index)


def insert_after(path: Path, anchor: str, new: str) -> int:
    """Insert `new` right after the one occurrence of `anchor`; return the line `new` starts on."""
    replace_once(path, anchor, anchor + new)
    return line_of(path, anchor) + anchor.count("\n")


def problems_of(directory: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_fleet(DirectorySource(directory))
    return info.value.problems


def run_check(directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["config", "check", "--config-dir", str(directory)])
    out, err = capsys.readouterr()
    return code, out, err


def listing(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


@dataclass(frozen=True)
class Expected:
    """A problem that must be reported: file name in the config directory, line, fragments."""

    file: str
    line: int
    fragments: tuple[str, ...]

    def matches(self, directory: Path, problem: Problem) -> bool:
        return (problem.file == str(directory / self.file) and problem.line == self.line
                and all(f in problem.message for f in self.fragments))

    def find_in_output(self, directory: Path, err: str) -> str | None:
        prefix = f"  {directory / self.file}:{self.line}: "
        return next((line for line in err.splitlines()
                     if line.startswith(prefix) and all(f in line for f in self.fragments)), None)


# --- bad inputs, one per category ----------------------------------------------------------


def unknown_field(d: Path) -> Expected:
    line = replace_once(d / "win10-64.yaml", "      region: East US 2\n",
                        "      regoin: East US 2\n")
    return Expected("win10-64.yaml", line,
                    ("unknown field 'regoin' in target[1]", "did you mean 'region'?"))


def wrong_type(d: Path) -> Expected:
    line = replace_once(d / "win10-64.yaml", "              maximum: 40\n",
                        '              maximum: "three"\n')
    return Expected("win10-64.yaml", line,
                    ("wrong type for manager.pool[0].capacity.maximum", "expected integer",
                     "'three'"))


def missing_required_field(d: Path) -> Expected:
    path = d / "win10-64.yaml"
    # The problem is on the list item of the target that lacks `region`.
    item = line_of(path, "    - platform: azure\n      group: rg-east-us-2-win10\n")
    replace_once(path, "      region: East US 2\n", "")
    return Expected("win10-64.yaml", item, ("missing required field in target[1]", "'region'"))


def duplicate_pool_id(d: Path) -> Expected:
    first = line_of(d / "win10-64.yaml",
                    "        - domain: gecko-t\n          variant: win10-64-azure\n")
    line = insert_after(d / "win11-64-gpu.yaml", "manager:\n    pool:\n",
                        "        - domain: gecko-t\n"
                        "          variant: win10-64-azure\n"
                        "          provider: azure\n"
                        "          locations:\n"
                        "              - eastus\n")
    # Keys are checked in name order, so the later file gets the problem and names the first.
    return Expected("win11-64-gpu.yaml", line,
                    ("duplicate pool id gecko-t/win10-64-azure",
                     f"also defined at {d / 'win10-64.yaml'}:{first}"))


def pool_location_without_target(d: Path) -> Expected:
    line = replace_once(d / "win10-64.yaml", "              - eastus2\n",
                        "              - eastus3\n")
    return Expected("win10-64.yaml", line,
                    ("pool gecko-t/win10-64-azure location 'eastus3' has no azure target",
                     "did you mean 'eastus2'?"))


def azure_pool_location_served_only_by_a_copy(d: Path) -> Expected:
    replace_once(d / "win10-64.yaml", "      region: Central US\n",
                 "      region: Central US\n      copies: [North Europe]\n")
    line = replace_once(d / "win10-64.yaml", "              - eastus2\n",
                        "              - northeurope\n")
    return Expected("win10-64.yaml", line,
                    ("pool gecko-t/win10-64-azure location 'northeurope' has no azure target",
                     "an Azure location needs a target there",
                     "`copies` only replicates the image"))


def duplicate_mapping_key(d: Path) -> Expected:
    path = d / "ubuntu-2404.yaml"
    first = line_of(path, "    edition: Server\n")
    line = insert_after(path, "    edition: Server\n", "    edition: Desktop\n")
    return Expected("ubuntu-2404.yaml", line,
                    ("invalid YAML", "duplicate key 'edition'", f"first defined on line {first}"))


def invalid_platform(d: Path) -> Expected:
    line = replace_once(d / "win2022-64.yaml", "    - platform: amazon\n      region: us-east-1\n",
                        "    - platform: aws\n      region: us-east-1\n")
    return Expected("win2022-64.yaml", line,
                    ("invalid value 'aws' for target[0].platform",
                     "expected one of amazon, azure, google"))


def invalid_root_url(d: Path) -> Expected:
    line = replace_once(d / "environments.yaml", "    root-url: https://tc-staging.example.com\n",
                        "    root-url: tc-staging.example.com\n")
    return Expected("environments.yaml", line, ("staging.root-url", "'tc-staging.example.com'"))


def no_image_source(d: Path) -> Expected:
    path = d / "win10-64.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("\niso:\n") + 1, text.index("\nmanager:\n") + 1
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return Expected("win10-64.yaml", line_of(path, "\nimage:\n") + 1,
                    ("no image source", "`iso`, `image.source` or `image.base`"))


def invalid_pool_id(d: Path) -> Expected:
    line = replace_once(d / "win10-64.yaml", "          variant: win10-64-azure\n",
                        "          variant: Win10-64-azure\n")
    return Expected("win10-64.yaml", line,
                    ("pool id 'gecko-t/Win10-64-azure' is not a valid worker pool id",))


CASES: dict[str, Callable[[Path], Expected]] = {
    "unknown-field": unknown_field,
    "wrong-type": wrong_type,
    "missing-required-field": missing_required_field,
    "duplicate-pool-id": duplicate_pool_id,
    "pool-location-without-target": pool_location_without_target,
    "azure-pool-location-served-only-by-a-copy": azure_pool_location_served_only_by_a_copy,
    "duplicate-mapping-key": duplicate_mapping_key,
    "invalid-platform": invalid_platform,
    "invalid-root-url": invalid_root_url,
    "no-image-source": no_image_source,
    "invalid-pool-id": invalid_pool_id,
}

# --- the reference config ------------------------------------------------------------------


@functools.cache
def load_dir(directory: Path) -> Fleet:
    """The fleet of a directory no test writes to (reference or bundled config)."""
    return load_fleet(DirectorySource(directory))


def executions(fleet: Fleet) -> list[dict]:
    return [execution for key in fleet.keys.values() for target in key.targets
            for execution in ((target.raw.get("bootstrap") or {}).get("executions") or [])]


def test_every_reference_file_loads(reference_config: Path) -> None:
    fleet = load_dir(reference_config)
    assert set(fleet.keys) == {"win10-64", "win10-64-occ", "win2012"}
    stems = {p.stem for p in reference_config.iterdir() if p.suffix in (".yaml", ".yml")}
    assert stems == set(fleet.keys) | set(fleet.shared.files)


def test_reference_duplicate_targets_get_group_suffix(reference_config: Path) -> None:
    fleet = load_dir(reference_config)
    targets = fleet.keys["win2012"].targets
    bases = [f"{t.platform}/{t.region}" for t in targets]
    assert any(bases.count(b) > 1 for b in bases), "win2012 should repeat platform/region"
    for target, base in zip(targets, bases, strict=True):
        if bases.count(base) > 1:
            assert target.id == f"{base}/{target.raw['group']}"
        else:
            assert target.id == base
    assert len({t.id for t in targets}) == len(targets)
    assert "azure/centralus/rg-central-us-gecko-1" in {t.id for t in targets}
    # Keys without repeats keep plain `<platform>/<region>` ids, with regions normalised.
    assert [t.id for t in fleet.keys["win10-64"].targets][:2] == ["azure/centralus",
                                                                  "azure/eastus"]


@pytest.mark.parametrize("which", ["reference", "bundled"])
def test_on_keys_in_bootstrap_executions_stay_strings(which: str, reference_config: Path) -> None:
    directory = reference_config if which == "reference" else CONFIG_DIR
    found = executions(load_dir(directory))
    with_on = [e for e in found if "on" in e]
    assert with_on, "expected bootstrap executions with an `on:` key"
    for execution in found:
        assert all(isinstance(k, str) for k in execution)
        assert "true" not in execution and True not in execution
    assert all(isinstance(e["on"], dict) for e in with_on)


# --- the bundled fleet ---------------------------------------------------------------------


@pytest.fixture
def bundled() -> Fleet:
    return load_dir(CONFIG_DIR)


def is_windows(key) -> bool:
    return str(key.image["os"]).startswith("Windows")


def test_bundled_fleet_has_at_least_five_keys(bundled: Fleet) -> None:
    assert len(bundled.keys) >= 5


def test_bundled_fleet_has_windows_on_azure_in_several_regions(bundled: Fleet) -> None:
    regions = {name: {t.region for t in key.targets if t.platform == "azure"}
               for name, key in bundled.keys.items() if is_windows(key)}
    assert any(len(r) >= 3 for r in regions.values()), regions
    assert len(set().union(*regions.values())) >= 3


def test_bundled_fleet_has_windows_on_aws_from_an_amazon_base_image(bundled: Fleet) -> None:
    matches = [key for key in bundled.keys.values()
               if is_windows(key) and "amazon" in key.platforms
               and (key.image.get("base") or {}).get("amazon", {}).get("owner") == "amazon"]
    assert matches
    assert all("*" in key.image["base"]["amazon"]["name"] for key in matches)


def test_bundled_fleet_has_a_linux_key_on_amazon_or_google(bundled: Fleet) -> None:
    assert any(not is_windows(key) and key.platforms & {"amazon", "google"}
               for key in bundled.keys.values())


def test_bundled_fleet_has_a_gpu_key(bundled: Fleet) -> None:
    assert any(key.image.get("gpu") is True for key in bundled.keys.values())


def test_bundled_environments_come_from_environments_yaml(bundled: Fleet) -> None:
    written = yaml.safe_load((CONFIG_DIR / "environments.yaml").read_text(encoding="utf-8"))
    assert {"production", "staging"} <= set(bundled.environments)
    for name in ("production", "staging"):
        assert re.fullmatch(r"https://[^/\s]+(/\S*)?", bundled.environments[name].root_url)
        assert bundled.environments[name].root_url == written[name]["root-url"]


def test_bundled_fleet_has_all_five_shared_files(bundled: Fleet) -> None:
    assert len(SHARED_FILES) == 5
    assert set(bundled.shared.files) == set(SHARED_FILES)
    assert all(bundled.shared.entries(name) for name in SHARED_FILES)


def test_config_check_accepts_the_bundled_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(CONFIG_DIR, capsys)
    assert code == 0, err
    assert re.search(r": OK \(\d+ keys, \d+ targets, \d+ pools, 2 environments\)", out)
    assert err == ""


# --- problems name file and line -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_load_fleet_reports_problem_with_file_and_line(case, fleet_dir: Path) -> None:
    expected = case(fleet_dir)
    problems = problems_of(fleet_dir)
    assert any(expected.matches(fleet_dir, p) for p in problems), (
        f"expected {expected} in:\n{listing(problems)}")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_config_check_prints_problem_with_file_and_line(
        case, fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = case(fleet_dir)
    code, out, err = run_check(fleet_dir, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert out == ""
    assert re.match(r"error: config has \d+ problems?:\n", err), err
    assert expected.find_in_output(fleet_dir, err), f"expected {expected} in:\n{err}"


def unclosed_bracket(d: Path) -> tuple[Path, int]:
    path = d / "win10-64.yaml"
    return path, replace_once(path, "    timezone: UTC\n", "    timezone: [UTC\n")


def test_bad_yaml_is_reported_at_the_file_and_where_the_parser_stopped(
        fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, bracket = unclosed_bracket(fleet_dir)
    problems = problems_of(fleet_dir)
    assert len(problems) == 1, listing(problems)
    [problem] = problems
    assert problem.file == str(path)
    assert "invalid YAML" in problem.message and "flow sequence" in problem.message
    # The parser notices the missing ']' on the next line, where `hostname:` follows.
    assert problem.line in (bracket, bracket + 1)

    code, out, err = run_check(fleet_dir, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert f"  {path}:{problem.line}: invalid YAML" in err


@pytest.mark.parametrize("where", ["middle-of-file", "last-line"])
def test_unclosed_bracket_is_reported_on_its_own_line(where: str, fleet_dir: Path) -> None:
    if where == "middle-of-file":
        path, bracket = unclosed_bracket(fleet_dir)
    else:
        path = fleet_dir / "environments.yaml"
        old = "    description: Staging deployment for trying image and pool changes first.\n"
        bracket = replace_once(path, old, old.replace("description: ", "description: ["))
    [problem] = problems_of(fleet_dir)
    assert problem.file == str(path)
    assert problem.line <= len(path.read_text(encoding="utf-8").splitlines())
    assert problem.line == bracket


def test_yml_file_is_reported_by_name(fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fleet_dir / "win2022-64.yaml").rename(fleet_dir / "win2022-64.yml")
    problems = problems_of(fleet_dir)
    assert len(problems) == 1, listing(problems)
    [problem] = problems
    assert problem.file == str(fleet_dir / "win2022-64.yml")
    assert "rename to win2022-64.yaml" in problem.message
    # The whole file is wrong, so there is no line: printed as `FILE: message`.
    assert problem.line == 0
    assert str(problem) == f"{fleet_dir / 'win2022-64.yml'}: {problem.message}"

    code, out, err = run_check(fleet_dir, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert f"  {fleet_dir / 'win2022-64.yml'}: config files end in .yaml" in err


def test_problems_in_several_files_are_all_reported_in_one_run(
        fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [case(fleet_dir) for case in (unknown_field, invalid_platform, invalid_root_url,
                                             duplicate_mapping_key)]
    # A problem found after the schema checks (in a file whose schema is fine) is also listed.
    line = replace_once(fleet_dir / "win11-64-gpu.yaml", "          variant: win11-64-gpu-azure\n",
                        "          variant: Win11-64-gpu-azure\n")
    expected.append(Expected("win11-64-gpu.yaml", line, ("is not a valid worker pool id",)))
    # One file that is not YAML at all does not hide the others.
    replace_once(fleet_dir / "drivers.yaml", "  infpath: ena.inf\n", "  infpath: {ena.inf\n")
    expected_files = {e.file for e in expected} | {"drivers.yaml"}
    assert len(expected_files) == 6

    problems = problems_of(fleet_dir)
    for e in expected:
        assert any(e.matches(fleet_dir, p) for p in problems), f"{e} not in\n{listing(problems)}"
    assert {Path(p.file).name for p in problems} == expected_files

    code, out, err = run_check(fleet_dir, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert f"error: config has {len(problems)} problems:" in err
    for e in expected:
        assert e.find_in_output(fleet_dir, err), f"{e} not in\n{err}"


# --- problems inside anchors ---------------------------------------------------------------


def error_in_mapping_anchor(d: Path) -> tuple[str, int, str]:
    line = insert_after(d / "win10-64.yaml", "      machine: &machine\n          cpu: 2\n",
                        "          cpus: 2\n")
    return "win10-64.yaml", line, "unknown field 'cpus'"


def error_in_sequence_anchor(d: Path) -> tuple[str, int, str]:
    line = insert_after(d / "win10-64.yaml", "      disk: &disk\n          - os: true\n",
                        "            sizee: 48\n")
    return "win10-64.yaml", line, "unknown field 'sizee'"


def error_in_shared_file_anchor(d: Path) -> tuple[str, int, str]:
    path = d / "packages.yaml"
    anchor = line_of(path, "  target: &windows\n")
    line = replace_once(path, "          - false\n  sources:\n      - platform: amazon\n"
                              "        bucket: example-cib-media\n        key: package/7z",
                        '          - "no"\n  sources:\n      - platform: amazon\n'
                        "        bucket: example-cib-media\n        key: package/7z")
    assert line > anchor
    return "packages.yaml", line, "expected boolean"


ANCHOR_CASES = {"mapping-anchor": error_in_mapping_anchor,
                "sequence-anchor": error_in_sequence_anchor,
                "shared-file-anchor": error_in_shared_file_anchor}


@pytest.mark.parametrize("make", ANCHOR_CASES.values(), ids=ANCHOR_CASES.keys())
def test_error_inside_an_anchor_is_reported_at_its_line_in_that_file(
        make, fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, line, fragment = make(fleet_dir)
    problems = [p for p in problems_of(fleet_dir) if fragment in p.message]
    assert problems
    assert all(p.file == str(fleet_dir / name) and p.line == line for p in problems), (
        listing(problems))

    code, out, err = run_check(fleet_dir, capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert f"  {fleet_dir / name}:{line}: " in err
    assert fragment in err


@pytest.mark.parametrize("make", [error_in_sequence_anchor, error_in_shared_file_anchor],
                         ids=["sequence-anchor", "shared-file-anchor"])
def test_error_inside_an_aliased_list_item_is_reported_once(make, fleet_dir: Path) -> None:
    _, _, fragment = make(fleet_dir)
    problems = [p for p in problems_of(fleet_dir) if fragment in p.message]
    assert len(problems) == 1, listing(problems)


def test_error_inside_an_aliased_mapping_is_reported_once(fleet_dir: Path) -> None:
    _, _, fragment = error_in_mapping_anchor(fleet_dir)
    problems = [p for p in problems_of(fleet_dir) if fragment in p.message]
    assert len(problems) == 1, listing(problems)


def test_explicit_key_overrides_a_merged_key(fleet_dir: Path) -> None:
    path = fleet_dir / "win10-64.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("      machine: *machine\n", text.index("group: rg-east-us-2-win10"))
    path.write_text(text[:start] + "      machine:\n          <<: *machine\n          cpu: 8\n"
                    + text[start + len("      machine: *machine\n"):], encoding="utf-8")
    fleet = load_fleet(DirectorySource(fleet_dir))
    machine = fleet.keys["win10-64"].target("azure/eastus2").raw["machine"]
    assert machine["cpu"] == 8
    assert machine["ram"] == 7
