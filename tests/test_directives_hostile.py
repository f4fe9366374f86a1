"""Commit messages written to hurt: every bound of `bounds.py` enforced with a clear error,
lines as git shows them, quoted text escaped and short, and linear work whatever the message
holds (each case well under a second of CPU; before, a 1 MB line took minutes)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision.bounds import (
    MAX_DIRECTIVE_LINE_CHARS,
    MAX_DIRECTIVE_LINES,
    MAX_EXCERPT_CHARS,
    MAX_FILTER_NAMES,
    MAX_MESSAGE_CHARS,
    MAX_PROBLEMS,
    excerpt,
)
from cib_decision.directives import DirectiveError, Directives, parse_directives

from .directives_support import VOCAB

CPU_SECONDS = 1.0
# the longest an error of one message can be: MAX_PROBLEMS lines of quoted text and reasons
MAX_ERROR_CHARS = (MAX_PROBLEMS + 3) * 600


def outcome(message: str) -> Directives | DirectiveError:
    """The directives, or the error; within CPU_SECONDS and MAX_ERROR_CHARS."""
    started = time.process_time()
    try:
        result: Directives | DirectiveError = parse_directives(message, VOCAB)
    except DirectiveError as error:
        result = error
        assert len(str(error)) <= MAX_ERROR_CHARS, str(error)[:500]
    assert time.process_time() - started < CPU_SECONDS
    return result


def error_of(message: str) -> DirectiveError:
    result = outcome(message)
    assert isinstance(result, DirectiveError), result
    return result


def test_a_megabyte_line_of_prose_is_prose_and_costs_little():
    for line in ("a" * 999_000, "overwrite-machine-image" * 40_000, "include " * 120_000):
        result = outcome(f"Subject\n\n{line}\n")
        assert result == Directives()


@pytest.mark.parametrize("start", ["include keys: ", "Incude  key = ", "exclude-pools: "])
def test_a_long_line_that_starts_like_a_filter_is_refused_not_ignored(start):
    line = start + "win10-64, " * 2000
    error = error_of(f"Subject\n\n{line}")
    (problem,) = error.problems
    assert problem.line == 3
    assert f"{len(line.strip())} characters, more than the {MAX_DIRECTIVE_LINE_CHARS}" \
        in problem.message
    assert len(problem.text) < MAX_EXCERPT_CHARS + 40


def test_a_message_over_the_size_bound_is_refused_as_a_whole():
    error = error_of("x\n" * (MAX_MESSAGE_CHARS // 2 + 1))
    assert str(error).startswith("commit message: ") and str(MAX_MESSAGE_CHARS) in str(error)


def test_too_many_names_in_a_filter_line_is_one_problem():
    names = ", ".join(f"k{i}" for i in range(MAX_FILTER_NAMES + 1))
    (problem,) = error_of(f"include keys: {names}").problems
    assert f"{MAX_FILTER_NAMES + 1} names, more than the {MAX_FILTER_NAMES}" in problem.message


def test_thousands_of_unknown_names_list_the_first_problems_and_count_the_rest():
    names = ", ".join(f"nokey{i}" for i in range(MAX_FILTER_NAMES))
    error = error_of(f"include keys: {names}")
    assert len(error.problems) == MAX_PROBLEMS and error.more == MAX_FILTER_NAMES - MAX_PROBLEMS
    assert str(error).startswith(f"commit message has {MAX_FILTER_NAMES} directive problems:")
    assert str(error).endswith(f"... and {MAX_FILTER_NAMES - MAX_PROBLEMS} more")


def test_more_directive_lines_than_the_bound_are_refused():
    message = "\n".join(["include keys: win10-64"] * (MAX_DIRECTIVE_LINES + 1))
    error = error_of(message)
    assert f"more than {MAX_DIRECTIVE_LINES} directive lines" in str(error)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c",
                                       "\x1d", "\x1e", "\r"])
def test_a_directive_after_a_line_separator_git_does_not_know_is_prose(separator):
    assert outcome(f"Fix a typo in the docs{separator}overwrite-machine-image") == Directives()
    assert isinstance(outcome(f"exclude keys: win10-64{separator}win11-64"), DirectiveError)


def test_crlf_line_ends_still_end_lines():
    result = outcome("Rebuild\r\n\r\noverwrite-machine-image\r\ninclude keys: win10-64\r\n")
    assert result.overwrite_machine_image and result.include.keys == ("win10-64",)


@pytest.mark.parametrize("line, meant", [
    ("include-keys: win10-64", "include keys: win10-64"),
    ("exclude_pools: gecko-t/win10-64-azure", "exclude pools: gecko-t/win10-64-azure"),
    ("Include-Regions = eastus", "include regions: eastus"),
    ("includekeys: win10-64", "include keys: win10-64"),
    ("exclude.environments: staging", "exclude environments: staging"),
])
def test_a_filter_with_its_space_written_as_another_character_is_an_error(line, meant):
    (problem,) = error_of(f"Subject\n\n{line}").problems
    assert problem.message == f"not a directive; did you mean `{meant}`?"


def test_quoted_text_is_escaped_and_short():
    name = "\x1b[31mred\u202eevil`" + "x" * 500
    (problem,) = error_of(f"include keys: {name}").problems
    text = str(DirectiveError([problem]))
    assert "\x1b" not in text and "\u202e" not in text and "`evil" not in text
    assert "\\x1b[31mred\\u202eevil'" in text
    assert "more characters)" in text and len(text) < 400


def test_excerpt_counts_what_it_leaves_out():
    assert excerpt("abc") == "abc"
    assert excerpt("a\nb\tc\u2028") == "a\\x0ab\\x09c\\u2028"
    assert excerpt("x" * 100, 10) == "x" * 10 + "... (90 more characters)"


FRAGMENTS = st.sampled_from([
    "include", "exclude", "keys", "pools", "regions", "environments", ":", ",", " ", "\n",
    "*", "win10-64", "gecko-t/win10-64-azure", "eastus", "production", "no-ci", "-", "_",
    "pool-deploy", "overwrite-machine-image", "\u2028", "\r", "\t", "key", "incude", "=",
    "x" * 300])


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=60).map("".join))
def test_any_mix_of_directive_fragments_is_read_or_refused_cleanly(message):
    outcome(message)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_is_read_or_refused_cleanly(message):
    outcome(message)


@pytest.mark.parametrize("argv", [
    ["plan", "--pull-request", "-5"],
    ["plan", "--pull-request", "123456789012345678901"],
    ["plan", "--pull-request", "1e3"],
    ["image", "machine", "--pull-request", "0", "--key", "k", "--target", "t"],
    ["decision", "--concurrency", "0"],
    ["gc", "--cloud", "aws", "--keep", "-1"],
    ["dev-event", "push", "--pull-request", "99999999999999999999999"],
])
def test_out_of_range_numbers_are_argument_errors_not_tracebacks(argv, capsys):
    from cib_decision.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "is not a whole number from" in err
    assert "Traceback" not in err
