"""The directive grammar: every rule and every error, pinned."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision import cli
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import (
    FILTER_TYPES,
    FLAGS,
    DirectiveError,
    Directives,
    Vocabulary,
    parse_directives,
)

from .conftest import CONFIG_DIR
from .directives_support import VOCAB


def parse(message: str) -> Directives:
    return parse_directives(message, VOCAB)


def error_of(message: str) -> DirectiveError:
    with pytest.raises(DirectiveError) as info:
        parse(message)
    return info.value


# -- flags -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", [f for f in FLAGS if f != "no-travis-ci"])
def test_each_flag_sets_its_field(flag):
    result = parse(f"subject line\n\n{flag}")
    assert getattr(result, flag.replace("-", "_")) is True
    others = [f for f in FLAGS if f not in (flag, "no-travis-ci")]
    assert not any(getattr(result, f.replace("-", "_")) for f in others)


def test_flags_ignore_case_and_surrounding_white_space():
    result = parse("  POOL-Deploy \t\n\tOverwrite-Machine-Image")
    assert result.pool_deploy and result.overwrite_machine_image


def test_a_directive_may_be_the_subject_line():
    message = "overwrite-disk-image\n\ninclude pools: gecko-t/win10-64-azure"
    assert parse(message).overwrite_disk_image


def test_no_travis_ci_is_accepted_with_no_effect_and_reported_as_ignored():
    result = parse("fix\n\nno-travis-ci")
    assert result == Directives(ignored=("no-travis-ci",))


def test_a_flag_inside_prose_is_not_a_directive():
    result = parse("we should pool-deploy tomorrow\nnot no-ci yet")
    assert result == Directives()


def test_json_has_exactly_the_documented_fields():
    data = parse("pool-deploy\ninclude keys: win10-64").to_json()
    assert list(data) == ["no_ci", "no_taskcluster_ci", "pool_deploy", "overwrite_disk_image",
                          "overwrite_machine_image", "disable_cleanup",
                          "purge_taskcluster_resources", "no_verify", "include", "exclude",
                          "ignored"]
    assert data["include"] == {"keys": ["win10-64"], "pools": [], "regions": [],
                               "environments": []}
    assert data["exclude"] == {t: [] for t in FILTER_TYPES}
    assert Directives.from_json(data) == parse("pool-deploy\ninclude keys: win10-64")


# -- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "kind", "expected"), [
    ("include keys: win10-64, win11-64", "keys", ["win10-64", "win11-64"]),
    ("include keys:win2022-64", "keys", ["win2022-64"]),
    ("include pools: gecko-t/win10-64-azure", "pools", ["gecko-t/win10-64-azure"]),
    ("include regions: eastus2", "regions", ["eastus2"]),
    ("include environments: staging", "environments", ["staging"]),
])
def test_include_filters_of_each_type(line, kind, expected):
    assert getattr(parse(line).include, kind) == tuple(expected)


@pytest.mark.parametrize("kind", FILTER_TYPES)
def test_exclude_filters_of_each_type(kind):
    name = getattr(VOCAB, kind)[0]
    result = parse(f"exclude {kind}: {name}")
    assert getattr(result.exclude, kind) == (name,)
    assert not result.include


def test_names_come_back_in_their_canonical_config_spelling():
    result = parse("INCLUDE KEYS: WIN10-64, Win11-64.yaml\nInclude Environments: Production")
    assert result.include.keys == ("win10-64", "win11-64")
    assert result.include.environments == ("production",)


@pytest.mark.parametrize("spelling", ["North Central US", "northcentralus", "north-central-us",
                                      "NorthCentralUS", " north central us "])
def test_regions_compare_normalised(spelling):
    assert parse(f"include regions: {spelling}").include.regions == ("northcentralus",)


def test_aws_style_regions_keep_their_dashes():
    assert parse("include regions: US East 1").include.regions == ("us-east-1",)


def test_repeated_lines_of_one_filter_are_merged_without_duplicates():
    result = parse("include keys: win10-64\nbody\ninclude keys: win11-64, win10-64")
    assert result.include.keys == ("win10-64", "win11-64")


def test_star_stands_for_every_name_so_exclude_keys_star_is_maintenance_only():
    result = parse("exclude keys: *")
    assert result.exclude.keys == VOCAB.keys
    assert not result.include


def test_include_of_one_type_with_exclude_of_another_is_allowed():
    result = parse("include environments: staging\nexclude keys: win10-64")
    assert result.include.environments == ("staging",)
    assert result.exclude.keys == ("win10-64",)


# -- no-ci wins ------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["no-ci", "no-taskcluster-ci"])
def test_no_ci_wins_and_every_other_directive_line_is_ignored(flag):
    message = (f"subject\n\ninclude keys: win10-64\npool-deploy\n{flag}\n"
               "incude keys: typo\ninclude pools: nope\nprose line")
    result = parse(message)
    assert result.skip_ci
    assert getattr(result, flag.replace("-", "_"))
    assert not result.pool_deploy and not result.include
    assert result.ignored == ("include keys: win10-64", "pool-deploy", "incude keys: typo",
                              "include pools: nope")


def test_no_ci_and_no_taskcluster_ci_together_are_both_reported():
    result = parse("no-ci\nno-taskcluster-ci")
    assert result.no_ci and result.no_taskcluster_ci and result.ignored == ()


# -- errors ----------------------------------------------------------------------------------

def test_include_and_exclude_of_the_same_type_is_an_error_naming_both_lines():
    error = error_of("subject\ninclude keys: win10-64\nexclude keys: win11-64")
    (problem,) = error.problems
    assert problem.line == 3 and problem.text == "exclude keys: win11-64"
    assert "include on line 2" in problem.message


def test_keys_together_with_pools_is_an_error():
    error = error_of("include keys: win10-64\n\nexclude pools: gecko-t/win11-64-azure")
    (problem,) = error.problems
    assert problem.line == 3 and "keys and pools" in problem.message


@pytest.mark.parametrize(("line", "suggestion"), [
    ("include keys: win10-46", "win10-64"),
    ("include pools: gecko-t/win10-64-azur", "gecko-t/win10-64-azure"),
    ("include regions: northcentral", "northcentralus"),
    ("include environments: prod", "production"),
])
def test_an_unknown_name_is_an_error_suggesting_the_closest(line, suggestion):
    error = error_of(f"subject\n\n{line}")
    (problem,) = error.problems
    assert problem.line == 3
    assert f"did you mean {suggestion!r}" in str(error)
    assert line in str(error)


def test_a_name_of_another_type_says_which_type_it_is():
    error = error_of("include pools: eastus2")
    assert "'eastus2' is a region; did you mean `regions`?" in str(error)


def test_the_old_maintenance_idiom_is_an_error_that_points_to_the_new_one():
    error = error_of("include pools: non-existent")
    assert "unknown pool 'non-existent'" in str(error)
    assert "exclude keys: *" in str(error)


@pytest.mark.parametrize("line", ["include keys:", "include keys:   ", "exclude regions: ,"])
def test_an_empty_value_is_an_error(line):
    error = error_of(line)
    assert error.problems[0].line == 1
    assert "no regions given" in str(error) or "no keys given" in str(error) or \
        "empty name" in str(error)


def test_an_empty_name_between_commas_is_an_error():
    assert "empty name between commas" in str(error_of("include keys: win10-64,,win11-64"))


@pytest.mark.parametrize(("line", "suggestion"), [
    ("incude keys: win10-64", "`include keys: win10-64`"),
    ("exlcude pools: gecko-t/win10-64-azure", "`exclude pools: gecko-t/win10-64-azure`"),
    ("include key: win10-64", "`include keys: win10-64`"),
    ("include region: eastus", "`include regions: eastus`"),
    ("include env: staging", "`include environments: staging`"),
    ("pool deploy", "`pool-deploy`"),
    ("pool_deploy", "`pool-deploy`"),
    ("overwrite-machine-images", "`overwrite-machine-image`"),
    ("overwrite machine image", "`overwrite-machine-image`"),
    ("no-cl", "`no-ci`"),
    ("disable-cleanups.", "`disable-cleanup`"),
    ("purge-taskcluster-resource", "`purge-taskcluster-resources`"),
    ("exclude keys win10-64", "`exclude keys: win10-64`"),
    ("include: win10-64", "needs a type"),
    ("include platforms: azure", "unknown filter type 'platforms'"),
])
def test_a_clearly_misspelt_directive_is_an_error_with_a_suggestion(line, suggestion):
    error = error_of(f"subject\n\n  {line}  ")
    (problem,) = error.problems
    assert problem.line == 3 and problem.text == line
    assert suggestion in problem.message
    assert str(error).startswith(f"commit message line 3: `{line}`")


@pytest.mark.parametrize("prose", [
    "switch lifecycle: on-demand",
    "debug winrm: await manual intervention",
    "purge taskcluster worker-manager resources",
    "fix pool filters",
    "only build pools on request",
    "no-op",
    "include the new regions in the docs",
    "Merge pull request #12 from someone/branch",
    "Signed-off-by: A Person <a@example.com>",
    "Co-authored-by: B <b@example.com>",
    "Reviewers: include keys in the summary",
    "ci: fix lint",
    "deploy pools",
])
def test_prose_is_not_mistaken_for_a_directive(prose):
    assert parse(f"{prose}\n\n{prose}") == Directives()


def test_every_problem_of_a_message_is_reported_at_once():
    error = error_of("incude keys: a\npool deploy\ninclude regions: mars")
    assert [p.line for p in error.problems] == [1, 2, 3]
    assert str(error).startswith("commit message has 3 directive problems:")


# -- property: any text gives a result or a clean directive error ------------------------------

_fragments = st.sampled_from([
    *FLAGS, "include", "exclude", "keys", "pools", "regions", "environments", ":", ",", "*",
    "win10-64", "gecko-t/win10-64-azure", "North Central US", "staging", " ", "\n", "\t", "incude",
    "key", "pool deploy", ".yaml", "\r\n", "\u2028", "\x00", "İ", "ß",
])


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_gives_a_result_or_a_directive_error(text):
    try:
        result = parse(text)
    except DirectiveError as error:
        assert error.problems and str(error)
    else:
        assert isinstance(result, Directives)
        json.dumps(result.to_json())


@settings(max_examples=400, deadline=None)
@given(st.lists(_fragments, max_size=30).map("".join))
def test_directive_shaped_text_gives_a_result_or_a_directive_error(text):
    try:
        result = parse(text)
    except DirectiveError as error:
        assert all(p.line >= 1 and p.message for p in error.problems)
    else:
        for kind in FILTER_TYPES:
            known = set(getattr(VOCAB, kind))
            assert set(getattr(result.include, kind)) <= known
            assert set(getattr(result.exclude, kind)) <= known


# -- the CLI ---------------------------------------------------------------------------------

def test_cli_prints_directives_as_json_from_a_file(tmp_path, capsys):
    message = tmp_path / "msg"
    message.write_text("Rebuild win11\n\ninclude keys: win11-64\noverwrite-machine-image\n")
    assert cli.main(["directives", "--config-dir", str(CONFIG_DIR), str(message)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["include"]["keys"] == ["win11-64"] and data["overwrite_machine_image"]


def test_cli_reads_standard_input(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("include regions: West US 2\n"))
    assert cli.main(["directives", "--config-dir", str(CONFIG_DIR), "-"]) == 0
    assert json.loads(capsys.readouterr().out)["include"]["regions"] == ["westus2"]


def test_cli_directive_error_exits_2_naming_the_line_without_traceback(tmp_path, capsys):
    message = tmp_path / "msg"
    message.write_text("subject\n\ninclude keys: win10-46\n")
    assert cli.main(["directives", "--config-dir", str(CONFIG_DIR), str(message)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "commit message line 3: `include keys: win10-46`" in captured.err
    assert "did you mean 'win10-64'" in captured.err
    assert "Traceback" not in captured.err


def test_vocabulary_comes_from_the_bundled_fleet():
    vocabulary = Vocabulary.from_fleet(load_fleet(DirectorySource(CONFIG_DIR)))
    assert "production" in vocabulary.environments
    assert all("/" in pool for pool in vocabulary.pools)
    assert all(region == region.lower() and " " not in region for region in vocabulary.regions)
