"""The CI directive grammar of the head commit message.

A directive stands alone on its line; case and surrounding white space do not matter.

    flags:    no-ci  no-taskcluster-ci  no-travis-ci  pool-deploy  overwrite-disk-image
              overwrite-machine-image  disable-cleanup  purge-taskcluster-resources  no-verify
    filters:  (include|exclude) (keys|pools|regions|environments): name[, name ...]

`*` as a filter value stands for every name of that type in the config, so
`exclude keys: *` selects no image and leaves only the maintenance (purge) tasks.

Everything else is prose and is left alone, except lines that are clearly a misspelt
directive (`incude keys: x`, `include key: x`, `include-keys: x`, `pool deploy`,
`overwrite-machine-images`), which are errors, as are unknown names, empty values, include and
exclude of the same type, and keys together with pools. `no-ci` and `no-taskcluster-ci` win
over everything: every other directive line is then ignored, and reported as such.

Lines are what git and GitHub show as lines: the message split at `\n` only (a `\r` before it
is dropped). A Unicode line or paragraph separator does not start a line, so no directive can
hide after one on a line a reviewer reads as prose. The bounds of `bounds.py` apply: message
size, directive line length, number of directive lines and of names, problems listed, and
the length of quoted text; every step is linear in the message's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .bounds import (
    MAX_DIRECTIVE_LINE_CHARS,
    MAX_DIRECTIVE_LINES,
    MAX_FILTER_NAMES,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_PROBLEMS,
    excerpt,
)
from .config.model import Fleet, normalise_region, region_match_key
from .errors import CibError
from .suggest import closest, edit_distance, within_distance

FLAGS = ("no-ci", "no-taskcluster-ci", "no-travis-ci", "pool-deploy", "overwrite-disk-image",
         "overwrite-machine-image", "disable-cleanup", "purge-taskcluster-resources", "no-verify")
# Accepted for compatibility with cloud-image-builder's users; has no effect here.
NO_EFFECT_FLAGS = ("no-travis-ci",)
FILTER_TYPES = ("keys", "pools", "regions", "environments")
VERBS = ("include", "exclude")
ALL = "*"
MAINTENANCE_HINT = ("to run only the maintenance (purge) tasks with no image selected, "
                    "write `exclude keys: *`")

_FILTER = re.compile(r"^(include|exclude)\s+(keys|pools|regions|environments)\s*:\s*(.*)$")
_FILTER_LIKE = re.compile(r"^([a-z]+)\s+([a-z]+)\s*[:;=]\s*(.*)$")
_VERB_ONLY = re.compile(r"^(include|exclude)\s*:\s*(.*)$")
_NO_COLON = re.compile(
    r"^(include|exclude)\s+(keys|pools|regions|environments)\s+([\w./-]+(\s*,\s*[\w./-]+)*)$")
# `include-keys: x`, `exclude_pools = x`, `includekeys: x`: the space of a filter written as
# another character, or left out
_JOINED = re.compile(r"^(include|exclude)[-_./]*(keys|pools|regions|environments)\s*[:;=]\s*(.*)$")
# each flag, how far a misspelling of it may be, and its letters (see `_misspelt`)
_FLAG_NEAR = [(flag, max(1, len(flag) // 8), frozenset(flag)) for flag in FLAGS]
_FLAG_LENGTHS = (min(len(f) - n for f, n, _ in _FLAG_NEAR),
                 max(len(f) + n for f, n, _ in _FLAG_NEAR))
_FLAG_FORM = re.compile(r"[a-z0-9-]+")
# the start of a filter line, its words maybe misspelt (checked on a long line's first characters)
_FILTER_START = re.compile(r"^([a-z]+)[\s\-_./]+([a-z]+)\s*[:;=]")
# Words people write for the filter types, mapped to the type they meant.
_TYPE_SPELLINGS = {"key": "keys", "pool": "pools", "region": "regions",
                   "environment": "environments", "env": "environments",
                   "envs": "environments", "location": "regions", "locations": "regions"}


@dataclass(frozen=True)
class Names:
    """Names by filter type, in their canonical config spelling."""

    keys: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in FILTER_TYPES}

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in FILTER_TYPES)


@dataclass(frozen=True)
class Filter(Names):
    """The names one verb (include or exclude) of the commit message gives."""


@dataclass(frozen=True)
class Directives:
    """What the head commit message asks of the decision."""

    no_ci: bool = False
    no_taskcluster_ci: bool = False
    pool_deploy: bool = False
    overwrite_disk_image: bool = False
    overwrite_machine_image: bool = False
    disable_cleanup: bool = False
    purge_taskcluster_resources: bool = False
    no_verify: bool = False
    include: Filter = field(default_factory=Filter)
    exclude: Filter = field(default_factory=Filter)
    ignored: tuple[str, ...] = ()

    @property
    def skip_ci(self) -> bool:
        """True when the commit asks for no Taskcluster CI at all."""
        return self.no_ci or self.no_taskcluster_ci

    def to_json(self) -> dict[str, Any]:
        """The JSON shape `cib directives` prints."""
        result: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Filter):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            result[f.name] = value
        return result

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Directives:
        """Inverse of to_json (used to carry directives in taskgraph parameters)."""
        values = dict(data)
        for verb in VERBS:
            values[verb] = Filter(**{k: tuple(v) for k, v in (data.get(verb) or {}).items()})
        values["ignored"] = tuple(data.get("ignored") or ())
        return cls(**values)


@dataclass(frozen=True)
class Vocabulary(Names):
    """The names a commit message may use: everything the config has."""

    @classmethod
    def from_fleet(cls, fleet: Fleet) -> Vocabulary:
        return cls(keys=tuple(fleet.keys), pools=tuple(sorted(fleet.pools)),
                   regions=fleet.regions, environments=tuple(fleet.environments))


@dataclass(frozen=True)
class DirectiveProblem:
    """One bad directive line."""

    line: int  # 0: the message as a whole
    text: str  # the line as errors quote it (`bounds.excerpt`)
    message: str

    def __str__(self) -> str:
        if not self.line:
            return f"commit message: {self.message}"
        return f"commit message line {self.line}: `{self.text}`: {self.message}"


class DirectiveError(CibError):
    """The commit message has directive lines that cannot be obeyed; the first
    `MAX_PROBLEMS` are listed, `more` counts the others."""

    def __init__(self, problems: list[DirectiveProblem], more: int = 0):
        self.problems = problems
        self.more = more
        lines = [str(p) for p in problems]
        if len(lines) == 1 and not more:
            super().__init__(lines[0])
        else:
            super().__init__("\n".join([
                f"commit message has {len(lines) + more} directive problems:",
                *(f"  {line}" for line in lines),
                *([f"  ... and {more} more"] if more else [])]))


@dataclass
class _Line:
    number: int
    text: str


@dataclass
class _Parsed:
    flags: dict[str, _Line] = field(default_factory=dict)
    filters: dict[tuple[str, str], list[tuple[_Line, list[str]]]] = field(default_factory=dict)
    directive_lines: list[_Line] = field(default_factory=list)
    problems: list[DirectiveProblem] = field(default_factory=list)
    more: int = 0  # problems beyond MAX_PROBLEMS, counted only

    def problem(self, line: _Line, message: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.more += 1
            return
        self.problems.append(DirectiveProblem(line.number, excerpt(line.text), message))

    @property
    def full(self) -> bool:
        """True once further problems are only counted (so need no costly message)."""
        return len(self.problems) >= MAX_PROBLEMS


def message_lines(message: str) -> list[str]:
    """The lines of a commit message as git and GitHub show them: split at `\n` only, a
    `\r` before it dropped."""
    return [line.removesuffix("\r") for line in message.split("\n")]


def parse_directives(message: str, vocabulary: Vocabulary) -> Directives:
    """Read the directive lines of a commit message; raise DirectiveError for bad ones."""
    if len(message) > MAX_MESSAGE_CHARS:
        raise DirectiveError([DirectiveProblem(0, "", (
            f"{len(message)} characters, more than the {MAX_MESSAGE_CHARS} cib reads; "
            "directives go on lines of their own in a message of ordinary size"))])
    parsed = _Parsed()
    prose: set[str] = set()  # lines read as prose before: a repeated line costs nothing
    for number, raw in enumerate(message_lines(message), 1):
        text = raw.strip()
        if text and text not in prose:
            directive_lines = len(parsed.directive_lines)
            _read_line(_Line(number, text), vocabulary, parsed)
            if len(parsed.directive_lines) == directive_lines:
                prose.add(text)
            elif len(parsed.directive_lines) > MAX_DIRECTIVE_LINES:
                parsed.problem(_Line(number, text), (
                    f"more than {MAX_DIRECTIVE_LINES} directive lines; merge filters of one "
                    "type into one line (`*` stands for every name)"))
                raise DirectiveError(sorted(parsed.problems, key=lambda p: p.line),
                                     parsed.more)

    skip = [parsed.flags[f] for f in ("no-ci", "no-taskcluster-ci") if f in parsed.flags]
    if skip:
        ignored = [line.text for line in parsed.directive_lines if line not in skip]
        return Directives(no_ci="no-ci" in parsed.flags,
                          no_taskcluster_ci="no-taskcluster-ci" in parsed.flags,
                          ignored=tuple(ignored))

    _check_combinations(parsed)
    if parsed.problems:
        raise DirectiveError(sorted(parsed.problems, key=lambda p: p.line), parsed.more)
    merged = {key: _merge(values for _, values in entries)
              for key, entries in parsed.filters.items()}
    flags = {name.replace("-", "_"): True for name in parsed.flags if name not in NO_EFFECT_FLAGS}
    return Directives(
        **flags,
        include=Filter(**{t: tuple(merged.get(("include", t), ())) for t in FILTER_TYPES}),
        exclude=Filter(**{t: tuple(merged.get(("exclude", t), ())) for t in FILTER_TYPES}),
        ignored=tuple(parsed.flags[f].text for f in NO_EFFECT_FLAGS if f in parsed.flags),
    )


def _read_line(line: _Line, vocabulary: Vocabulary, parsed: _Parsed) -> None:
    if len(line.text) < _FLAG_LENGTHS[0]:
        return  # shorter than any directive or misspelling of one: prose
    if len(line.text) > MAX_DIRECTIVE_LINE_CHARS:
        # prose (a flag is a whole line), unless it starts like a filter: then refused,
        # never silently ignored
        start = _FILTER_START.match(re.sub(r"\s+", " ", line.text[:64].lower()))
        if start and _near(start[1], VERBS, 2) and (
                start[2] in _TYPE_SPELLINGS or _near(start[2], FILTER_TYPES, 2)):
            parsed.directive_lines.append(line)
            parsed.problem(line, f"{len(line.text)} characters, more than the "
                                 f"{MAX_DIRECTIVE_LINE_CHARS} a directive line may have")
        return
    lowered = re.sub(r"\s+", " ", line.text.lower())
    if lowered in FLAGS:
        parsed.directive_lines.append(line)
        parsed.flags.setdefault(lowered, line)
        return
    match = _FILTER.match(lowered)
    if match:
        parsed.directive_lines.append(line)
        verb, kind, _ = match.groups()
        raw_values = line.text.split(":", 1)[1]
        values = _resolve_values(line, kind, raw_values, vocabulary, parsed)
        if values is not None:
            parsed.filters.setdefault((verb, kind), []).append((line, values))
        return
    suggestion = _misspelt(lowered)
    if suggestion:
        parsed.directive_lines.append(line)
        parsed.problem(line, suggestion)


def _misspelt(lowered: str) -> str | None:
    """Why a line that is not a directive looks like a misspelt one, or None for prose."""
    flag_form = re.sub(r"[\s_]+", "-", lowered).strip(" .!,;:")
    if _FLAG_LENGTHS[0] <= len(flag_form) <= _FLAG_LENGTHS[1] and \
            _FLAG_FORM.fullmatch(flag_form):
        letters = set(flag_form)
        for flag, limit, flag_letters in _FLAG_NEAR:
            # cheap necessary conditions first: one edit changes the length by at most one
            # and the set of letters used by at most two
            if abs(len(flag_form) - len(flag)) <= limit and \
                    len(letters ^ flag_letters) <= 2 * limit and \
                    within_distance(flag_form, flag, limit):
                return f"not a directive; did you mean `{flag}`?"
    match = _JOINED.match(lowered)
    if match:
        verb, kind, rest = match.groups()
        return f"not a directive; did you mean `{verb} {kind}: {excerpt(rest, 40)}`?"
    match = _VERB_ONLY.match(lowered)
    if match:
        return (f"`{match.group(1)}` needs a type: `{match.group(1)} "
                f"keys|pools|regions|environments: ...`")
    match = _NO_COLON.match(lowered)
    if match:
        verb, kind, rest = match.group(1), match.group(2), match.group(3)
        return f"missing colon; did you mean `{verb} {kind}: {excerpt(rest, 40)}`?"
    match = _FILTER_LIKE.match(lowered)
    if not match:
        return None
    verb_word, kind_word, rest = match.groups()
    verb = _near(verb_word, VERBS, limit=2)
    if verb is None:
        return None  # `switch lifecycle: on-demand` is prose
    kind = _TYPE_SPELLINGS.get(kind_word) or _near(kind_word, FILTER_TYPES, limit=2)
    if verb and kind:
        return f"not a directive; did you mean `{verb} {kind}: {excerpt(rest, 40)}`?"
    if verb_word in VERBS:
        hint = closest(kind_word, FILTER_TYPES)
        return (f"unknown filter type '{excerpt(kind_word, 40)}'; the types are "
                f"{', '.join(FILTER_TYPES)}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return None


def _near(word: str, options: Iterable[str], limit: int) -> str | None:
    near = [option for option in options if within_distance(word, option, limit)]
    return min(near, key=lambda option: edit_distance(word, option)) if near else None


def _resolve_values(line: _Line, kind: str, raw: str, vocabulary: Vocabulary,
                    parsed: _Parsed) -> list[str] | None:
    items = [item.strip() for item in raw.split(",")]
    if not any(items):
        parsed.problem(line, f"no {kind} given" + (f"; {MAINTENANCE_HINT}" if kind in
                                                    ("keys", "pools") else ""))
        return None
    if not all(items):
        parsed.problem(line, "empty name between commas")
        return None
    if len(items) > MAX_FILTER_NAMES:
        parsed.problem(line, f"{len(items)} names, more than the {MAX_FILTER_NAMES} a filter "
                             "line may have (`*` stands for every name)")
        return None
    known: tuple[str, ...] = getattr(vocabulary, kind)
    index = _Index(kind, known)
    resolved: list[str] = []
    for item in items:
        if item == ALL:
            resolved.extend(known)
            continue
        name = index.lookup(item)
        if name is not None:
            resolved.append(name)
        elif parsed.full:  # only counted: no suggestion to compute
            parsed.problem(line, "")
        else:
            parsed.problem(line, _unknown(kind, item, vocabulary))
    return resolved


class _Index:
    """Names of one type by the form `_lookup` compares, so a long filter line costs one
    dictionary look-up per name."""

    def __init__(self, kind: str, known: tuple[str, ...]):
        self.kind = kind
        self.by_form: dict[str, str] = {}
        for name in known:
            self.by_form.setdefault(_form(kind, name), name)

    def lookup(self, item: str) -> str | None:
        if len(item) > MAX_NAME_CHARS:
            return None
        return self.by_form.get(_form(self.kind, item))


def _form(kind: str, item: str) -> str:
    """What names of `kind` are compared by: regions as `region_match_key` spells them,
    others case-folded, keys also without `.yaml` (the key is the file name)."""
    if kind == "regions":
        return region_match_key(item)
    wanted = item.casefold()
    return re.sub(r"\.ya?ml$", "", wanted) if kind == "keys" else wanted


def _lookup(kind: str, item: str, known: tuple[str, ...]) -> str | None:
    wanted = _form(kind, item)
    return next((name for name in known if _form(kind, name) == wanted), None)


def _unknown(kind: str, item: str, vocabulary: Vocabulary) -> str:
    singular = kind[:-1]
    known: tuple[str, ...] = getattr(vocabulary, kind)
    message = f"unknown {singular} '{excerpt(item, 60)}'"
    if len(item) > MAX_NAME_CHARS:
        return f"{message}: longer than any {singular} name can be"
    for other in FILTER_TYPES:
        if other != kind and _lookup(other, item, getattr(vocabulary, other)):
            canonical = _lookup(other, item, getattr(vocabulary, other))
            return f"{message}: {canonical!r} is a {other[:-1]}; did you mean `{other}`?"
    compare = normalise_region(item) if kind == "regions" else item
    hint = closest(compare, known)
    if hint:
        return f"{message}; did you mean {hint!r}?"
    if not known:
        return f"{message}: the config has no {kind}"
    message += f"; the config has {len(known)} {kind}"
    if len(known) <= 12:
        message += f": {', '.join(known)}"
    if kind in ("keys", "pools"):
        message += f". ({MAINTENANCE_HINT})"
    return message


def _check_combinations(parsed: _Parsed) -> None:
    for kind in FILTER_TYPES:
        inc, exc = parsed.filters.get(("include", kind)), parsed.filters.get(("exclude", kind))
        if inc and exc:
            parsed.problem(exc[0][0], f"include and exclude of {kind} together (include on "
                                      f"line {inc[0][0].number}); use one or the other")
    key_lines = [e for v in VERBS for e in parsed.filters.get((v, "keys"), [])]
    pool_lines = [e for v in VERBS for e in parsed.filters.get((v, "pools"), [])]
    if key_lines and pool_lines:
        first_key, first_pool = key_lines[0][0], pool_lines[0][0]
        later = max(first_key, first_pool, key=lambda line: line.number)
        earlier = first_pool if later is first_key else first_key
        parsed.problem(later, f"keys and pools filters together (line {earlier.number}); "
                              "a pool belongs to one key, so filter by one of them")


def _merge(groups: Iterable[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for values in groups:
        for value in values:
            seen.setdefault(value, None)
    return list(seen)
