"""Hostile YAML: every malformed or abusive construct ends as a YamlProblem naming the file and
line, quickly, never as a traceback, a MemoryError, a segmentation fault or minutes of CPU.
Nesting that could crash the process runs in a subprocess, so a crash fails the test instead of
ending the run. Legitimate anchors, aliases and merges still load."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cib_decision import yamlsrc
from cib_decision.yamlsrc import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_YAML_BYTES,
    YamlProblem,
    parse_yaml,
)

from .conftest import CONFIG_DIR

SRC = Path(yamlsrc.__file__).resolve().parents[1]
# The parser must withstand hostile text of any size (a caller may hand it text that no size
# bound checked): the tests of its defences raise the size bound to this.
BEYOND_THE_SIZE_BOUND = 8 * 1024 * 1024


@pytest.fixture(autouse=True)
def _size_bound_raised(request, monkeypatch):
    if "size_bound" not in request.node.name:
        monkeypatch.setattr(yamlsrc, "MAX_YAML_BYTES", BEYOND_THE_SIZE_BOUND)
CPU_SECONDS = 1.0  # what one hostile document may cost, parse and problem included
DEPTH_PROBLEM = f"nested more than {MAX_DEPTH} levels deep"


def problem_of(text: str | bytes, filename: str = "hostile.yaml") -> tuple[int, str]:
    """(line, message) of the YamlProblem `text` gives, within CPU_SECONDS of CPU time."""
    start = time.process_time()
    with pytest.raises(YamlProblem) as info:
        parse_yaml(text, filename)
    spent = time.process_time() - start
    assert spent < CPU_SECONDS, f"took {spent:.2f} s of CPU"
    problem = info.value.problem
    assert problem.file == filename and str(info.value).startswith(f"{filename}:{problem.line}: ")
    return problem.line, problem.message


def parsed(text: str | bytes) -> Any:
    """The data of `text`, which must parse within CPU_SECONDS, line map included."""
    start = time.process_time()
    doc = parse_yaml(text, "fine.yaml")
    doc.line_of(())
    spent = time.process_time() - start
    assert spent < CPU_SECONDS, f"took {spent:.2f} s of CPU"
    return doc.data


def laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each line a list of `width` aliases of the line before."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"a: &a [{', '.join(['lol'] * width)}]"]
    lines += [f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]"
              for prev, name in itertools.pairwise(names)]
    return "\n".join(lines) + "\n"


# --- alias bombs -------------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_alias_that_crosses_the_limit() -> None:
    # Copies: b 9*10, c 9*91, d 9*820, e 9*7381 (74,718 in all); f's first *e adds 66,430.
    line, message = problem_of(laughs())
    assert line == 6
    assert message == (f"invalid YAML: alias *e expands the document beyond {MAX_ALIAS_VALUES} "
                       "values (YAML alias bomb?)")


def test_alias_bomb_of_mappings_is_refused() -> None:
    text = "a: &a {x: 1, y: 2, z: 3}\n" + "".join(
        f"k{i}: &k{i} {{" + ", ".join(f"m{j}: *{'a' if i == 0 else f'k{i - 1}'}"
                                     for j in range(10)) + "}\n"
        for i in range(8))
    line, message = problem_of(text)
    assert line == 6 and "alias *k3 expands the document beyond" in message


def test_alias_bomb_through_merge_keys_is_refused() -> None:
    sources = ["a"] + [f"k{i}" for i in range(8)]
    text = "a: &a {x: 1, y: 2}\n" + "".join(
        f"k{i}: &k{i}\n  <<: [{', '.join([f'*{sources[i]}'] * 10)}]\n  own{i}: 1\n"
        for i in range(8))
    line, message = problem_of(text)
    assert "YAML alias bomb?" in message
    assert text.splitlines()[line - 1].lstrip().startswith("<<:")


def test_alias_bomb_is_refused_before_the_line_map_or_json_see_it() -> None:
    # Nine levels of nine would be 387 million values to walk or write out.
    with pytest.raises(YamlProblem):
        parse_yaml(laughs(9, 9), "laughs.yaml")
    # One level less than the limit loads, and its line map and JSON stay small.
    doc = parse_yaml(laughs(5, 9), "laughs.yaml")
    assert len(doc.lines) < 2 * MAX_ALIAS_VALUES
    assert len(json.dumps(doc.data)) < 100 * MAX_ALIAS_VALUES


@pytest.mark.parametrize(("text", "line"), [
    ("a: &a [1, *a]\n", 1),
    ("a: &a {b: *a}\n", 1),
    ("top:\n  a: &a\n    - 1\n    - b: [*a]\n", 4),
    ("a: &a\n  <<: *a\n", 2),
])
def test_alias_inside_its_own_value_is_refused(text: str, line: int) -> None:
    assert problem_of(text) == (
        line, "invalid YAML: alias *a is inside the value it refers to (a recursive structure)")


def test_alias_that_nests_values_too_deep_is_refused_at_the_alias() -> None:
    text = ("a: &a " + "[" * 60 + "]" * 60 + "\n"
            "b: " + "[" * 50 + "*a" + "]" * 50 + "\n")
    assert problem_of(text) == (
        2, f"invalid YAML: alias *a nests lists and mappings more than {MAX_DEPTH} levels deep")


def test_chain_of_aliases_cannot_build_deep_data() -> None:
    # Each anchor wraps the one before in two more levels: 60 of them would be 120 deep.
    lines = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [[*l{i - 1}]]" for i in range(1, 60)]
    line, message = problem_of("\n".join(lines) + "\n")
    assert message.endswith(f"more than {MAX_DEPTH} levels deep")
    assert line == 51  # l50 holds *l49 (99 levels) two levels down


# --- nesting ---------------------------------------------------------------------------------

DEEP_TEXTS: dict[str, str] = {
    "flow lists": "[" * 100_000,
    "closed flow lists": "[" * 100_000 + "]" * 100_000,
    "flow mappings": "{" * 100_000,
    "flow mappings with keys": "{a: " * 100_000,
    "single-pair mappings in lists": "[a: " * 100_000,
    "block lists on one line": "- " * 100_000 + "x\n",
    "explicit keys on one line": "? " * 100_000 + "x\n",
    "block lists then flow lists": "- " * 60 + "[" * 60 + "x",
}


@pytest.mark.parametrize("name", DEEP_TEXTS)
def test_deep_nesting_is_refused_at_its_first_line(name: str) -> None:
    assert problem_of(DEEP_TEXTS[name]) == (1, f"invalid YAML: lists and mappings {DEPTH_PROBLEM}")


@pytest.mark.parametrize("item", ["a:", "-", "- a:"])
def test_deep_indentation_is_refused_at_the_line_too_deep(item: str) -> None:
    text = "".join(" " * (2 * level) + item + "\n" for level in range(300)) + " " * 600 + "x\n"
    line, message = problem_of(text)
    assert message == f"invalid YAML: lists and mappings {DEPTH_PROBLEM}"
    # One list or mapping a line ("- a:" opens two), the 101st is the one refused.
    assert line == (51 if item == "- a:" else 101)


@pytest.mark.parametrize("style", ["flow", "block"])
def test_nesting_up_to_the_limit_loads_and_one_more_is_refused(style: str) -> None:
    def nested(depth: int) -> str:
        if style == "flow":
            return "[" * depth + "x" + "]" * depth
        return "".join(" " * level + "-\n" for level in range(depth - 1)) + " " * depth + "- x\n"

    data = parsed(nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH):
        assert isinstance(data, list)
        data = data[0]
    assert data == "x"
    assert problem_of(nested(MAX_DEPTH + 1))[1].endswith(DEPTH_PROBLEM)


_CHILD = """
import sys
import yaml
if sys.argv[2] == "python":
    del yaml.CSafeLoader  # the pure-Python parser PyYAML falls back to without libyaml
from cib_decision import yamlsrc
assert (yamlsrc._Base is yaml.SafeLoader) == (sys.argv[2] == "python")
yamlsrc.MAX_YAML_BYTES = int(sys.argv[3])  # the parser's own defences, beyond the size bound
try:
    yamlsrc.parse_yaml(eval(sys.argv[1]), "deep.yaml").line_of(())
    print("parsed")
except yamlsrc.YamlProblem as exc:
    print(exc)
"""

CRASHING_TEXTS = {  # each is a Python expression; with the old parser, a segfault or a traceback
    "100,000 [": '"[" * 100_000',
    "1,000,000 [ and ]": '"[" * 1_000_000 + "]" * 1_000_000',
    "1,000,000 {": '"{" * 1_000_000',
    "1,000,000 {a:": '"{a: " * 1_000_000',
    "100,000 [ with a key": '"? " + "[" * 100_000 + "]" * 100_000 + "\\n: v"',
    "1,000,000 - on one line": '"- " * 1_000_000 + "x"',
    "3,000 indented lists": '"".join(" " * i + "-\\n" for i in range(3000))',
    "3,000 indented mappings": '"".join(" " * i + "a:\\n" for i in range(3000))',
    "1,000,000 ? on one line": '"? " * 1_000_000 + "x"',
    "deep within a valid file": '"a: 1\\nb: " + "[" * 1_000_000',
}


def run_child(expression: str, parser: str = "libyaml") -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", _CHILD, expression, parser,
                             str(BEYOND_THE_SIZE_BOUND)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("name", CRASHING_TEXTS)
def test_deep_nesting_cannot_crash_the_process(name: str) -> None:
    output = run_child(CRASHING_TEXTS[name])
    assert output.startswith("deep.yaml:") and output.endswith(DEPTH_PROBLEM), output


@pytest.mark.parametrize("name", ["1,000,000 [ and ]", "1,000,000 - on one line",
                                  "3,000 indented mappings"])
def test_deep_nesting_cannot_crash_the_pure_python_parser_either(name: str) -> None:
    output = run_child(CRASHING_TEXTS[name], parser="python")
    assert output.startswith("deep.yaml:") and output.endswith(DEPTH_PROBLEM), output


def test_pure_python_parser_still_loads_bundled_files() -> None:
    expression = f"open({str(CONFIG_DIR / 'win10-64.yaml')!r}).read()"
    assert run_child(expression, parser="python") == "parsed"


def test_bundled_files_are_composed_without_reading_events_first() -> None:
    # The pre-scan must let ordinary files through to the fast path (see _COMPOSER_DEPTH).
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        assert not yamlsrc._may_nest_deeper_than(path.read_text(encoding="utf-8"),
                                                 yamlsrc._COMPOSER_DEPTH), path.name


def _event_depth(text: str) -> int:
    """How deep libyaml's parser nests lists and mappings in `text`, up to its first error."""
    loader = yaml.CSafeLoader(text)
    depth = deepest = 0
    try:
        while True:
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.StreamEndEvent):
                return deepest
    except yaml.YAMLError:
        return deepest
    finally:
        loader.dispose()


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_depth_pre_scan_never_underestimates_libyaml() -> None:
    # Random text from YAML's indicators: where the pre-scan says "no deeper than N", libyaml
    # must agree (the bound is what keeps its recursive composer from a segfault).
    pieces = [*"[]{}[]{}[{,:?-  \n\t\"'#&*!|>%@ab1.\\=$()", "\r", "\ufeff", "\u2028", "\x85",
              ": ", "- ", "? ", "&a ", "*a ", "!t ", "--- ", "\n  ", "\n- ", "a: ", "x[", "[a: "]
    rng = random.Random(20240611)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
        actual = _event_depth(text)
        for bound in (10, 20, 30, 50):
            if not yamlsrc._may_nest_deeper_than(text, bound):
                assert actual <= bound, (text, actual, bound)


# --- merge keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line"), [
    ("a: 1\nb:\n  <<: 5\n", 3),
    ("b:\n  c: 1\n  <<: [1, 2]\n", 3),
    ('b: {<<: "x"}\n', 1),
    ("s: &s text\nb:\n  <<: *s\n", 3),
    ("m: &m {x: 1}\nb:\n  <<: [*m, 3]\n", 3),
    ("b:\n  <<: [[x]]\n", 2),
    ("b:\n  <<:\n", 2),
])
def test_merge_of_anything_but_mappings_is_an_error_on_the_merge_line(text: str,
                                                                      line: int) -> None:
    assert problem_of(text) == (
        line, "invalid YAML: merge key `<<` needs a mapping or a list of mappings")


def test_legitimate_merges_still_load() -> None:
    text = ("base: &base {shell: bash, retries: 2}\n"
            "extra: &extra {retries: 5, timeout: 60}\n"
            "one:\n  <<: *base\n  name: one\n"
            "two:\n  <<: [*base, *extra]\n  shell: sh\n")
    doc = parse_yaml(text, "merges.yaml")
    assert doc.data["one"] == {"shell": "bash", "retries": 2, "name": "one"}
    assert doc.data["two"] == {"shell": "sh", "retries": 2, "timeout": 60}
    assert doc.line_of(("two", "shell")) == 8


# --- legitimate anchors and aliases --------------------------------------------------------------


def test_bundled_anchors_and_aliases_still_load() -> None:
    path = CONFIG_DIR / "ubuntu-2404.yaml"
    text = path.read_text(encoding="utf-8")
    assert "&hostname" in text and "*hostname" in text and "<<:" not in text
    doc = parse_yaml(path.read_bytes(), path.name)
    amazon, google = doc.data["target"][:2]
    assert google["hostname"] is amazon["hostname"]  # aliases share one object, as before
    assert amazon["hostname"]["format"] == "u2404-{0}"
    assert google["bootstrap"]["executions"][0] is amazon["bootstrap"]["executions"][0]
    # The line map follows aliases to their anchor's lines.
    anchor = text.count("\n", 0, text.index("format: u2404")) + 1
    assert doc.line_of(("target", 1, "hostname", "format")) == anchor


def test_many_small_aliases_within_the_limit_load() -> None:
    uses = MAX_ALIAS_VALUES // 10  # each copies a list of 4 values plus itself
    data = parsed("a: &a [w, x, y, z]\nb: [" + ", ".join(["*a"] * uses) + "]\n")
    assert len(data["b"]) == uses and data["b"][-1] == ["w", "x", "y", "z"]


def test_scalar_aliases_are_not_counted_against_the_limit() -> None:
    data = parsed("a: &a x\nb: [" + ", ".join(["*a"] * (2 * MAX_ALIAS_VALUES)) + "]\n")
    assert len(data["b"]) == 2 * MAX_ALIAS_VALUES


def test_the_alias_limit_grows_with_large_files() -> None:
    # Aliases may copy one value a character of the file, when that is more than the limit.
    def text(uses: int) -> str:
        return ("# " + "x" * 400_000 + "\na: &a [" + ", ".join(["w"] * 50) + "]\n"
                "b: [" + ", ".join(["*a"] * uses) + "]\n")

    assert MAX_ALIAS_VALUES < 5_000 * 51
    assert len(parsed(text(5_000))["b"]) == 5_000
    big = text(12_000)  # 612,000 values, in 448,000 characters
    assert problem_of(big) == (3, f"invalid YAML: alias *a expands the document beyond "
                                  f"{len(big)} values (YAML alias bomb?)")


# --- size and long text ------------------------------------------------------------------------


def test_a_file_over_the_size_bound_is_refused_before_parsing() -> None:
    text = b"a: b\n" * (MAX_YAML_BYTES // 5 + 1)
    line, message = problem_of(text)
    assert line == 1
    assert message == (f"file is {round(len(text) / 1024)} KB ({len(text)} bytes); YAML files "
                       f"may be at most 256 KB ({MAX_YAML_BYTES} bytes)")
    assert problem_of(text.decode()) == (line, message)
    # Characters beyond ASCII count in UTF-8 bytes when the file is given as text.
    assert problem_of("\u00e9" * (MAX_YAML_BYTES // 2 + 1))[1].startswith("file is 256 KB")


def test_a_file_of_exactly_the_size_bound_is_read() -> None:
    assert parsed(b"# " + b"x" * (MAX_YAML_BYTES - 3) + b"\n") is None


LONG_TEXTS: dict[str, Callable[[], str]] = {
    "plain scalar": lambda: "a: " + "x" * 4_000_000 + "\n",
    "quoted scalar with escapes": lambda: 'a: "' + "\\t" * 2_000_000 + '"\n',
    "single-quoted scalar": lambda: "a: '" + "''" * 2_000_000 + "'\n",
    "folded block scalar": lambda: "a: >\n" + "  word\n" * 600_000,
    "explicit key": lambda: "? " + "k" * 4_000_000 + "\n: v\n",
    "one line of spaces": lambda: "a: x" + " " * 4_000_000 + "\n",
    "sexagesimal-looking float": lambda: "a: 1" + ":1" * 1_000_000 + ".5\n",
}


@pytest.mark.parametrize("name", LONG_TEXTS)
def test_huge_scalars_and_lines_take_linear_time(name: str) -> None:
    text = LONG_TEXTS[name]()
    start = time.process_time()
    try:
        parse_yaml(text, "long.yaml").line_of(())
    except YamlProblem as exc:
        assert exc.problem.line == 1 and len(str(exc)) < 400  # messages cut long values
    assert time.process_time() - start < CPU_SECONDS


@pytest.mark.parametrize(("value", "fragment"), [
    ("1" * 5_000_000, "has more than 4000 digits"),
    ("0x" + "f" * (MAX_INT_DIGITS - 2), "has more than 4000 digits"),
    ("!!int " + ":".join(["1"] * 1_000_000), "has more than 4000 digits"),
])
def test_huge_integers_are_refused_on_their_line(value: str, fragment: str) -> None:
    line, message = problem_of(f"ok: 1\nbig: {value}\n")
    assert line == 2 and fragment in message and len(message) < 300


def test_integers_within_the_limit_load() -> None:
    assert parsed(f"a: {'9' * MAX_INT_DIGITS}\n")["a"] == 10 ** MAX_INT_DIGITS - 1


# --- explicit tags and odd characters ----------------------------------------------------------


@pytest.mark.parametrize(("value", "tag"), [
    ("!!bool maybe", "!!bool"),
    ("!!timestamp soon", "!!timestamp"),
    ("!!int twelve", "!!int"),
    ("!!float x", "!!float"),
])
def test_bad_explicitly_tagged_values_are_errors_on_their_line(value: str, tag: str) -> None:
    line, message = problem_of(f"a: 1\nb: {value}\n")
    assert line == 2 and message.endswith(f"is not a valid {tag}")


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b"])
def test_control_characters_are_reported_on_their_line(character: str) -> None:
    text = "a: é\nb: c\nd: e" + character + "\n"
    assert problem_of(text)[0] == 3
    assert problem_of(text.encode())[0] == 3


def test_text_with_lone_surrogates_is_a_problem_not_a_traceback() -> None:
    assert problem_of("a: 1\nb: \ud800\n") == (
        2, "not UTF-8 text: 'utf-8' codec can't encode character '\\ud800' in position 8: "
           "surrogates not allowed")
