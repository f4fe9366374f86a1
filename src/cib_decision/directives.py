"""The CI directive grammar of the head commit message.

A directive stands alone on its line; case and surrounding white space do not matter.

    flags:    no-ci  no-taskcluster-ci  no-travis-ci  pool-deploy  overwrite-disk-image
              overwrite-machine-image  disable-cleanup  purge-taskcluster-resources  no-verify
    filters:  (include|exclude) (keys|pools|regions|environments): name[, name ...]

`*` as a filter value stands for every name of that type in the config, so
`exclude keys: *` selects no image and leaves only the maintenance (purge) tasks.

Everything else is prose and is left alone, except lines that are clearly a misspelt
directive (`incude keys: x`, `include key: x`, `pool deploy`, `overwrite-machine-images`),
which are errors, as are unknown names, empty values, include and exclude of the same type,
and keys together with pools. `no-ci` and `no-taskcluster-ci` win over everything: every other
directive line is then ignored, and reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .config.model import Fleet, normalise_region, region_match_key
from .errors import CibError
from .suggest import closest, edit_distance

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

    line: int
    text: str
    message: str

    def __str__(self) -> str:
        return f"commit message line {self.line}: `{self.text}`: {self.message}"


class DirectiveError(CibError):
    """The commit message has directive lines that cannot be obeyed; all are listed."""

    def __init__(self, problems: list[DirectiveProblem]):
        self.problems = problems
        lines = [str(p) for p in problems]
        if len(lines) == 1:
            super().__init__(lines[0])
        else:
            super().__init__("\n".join([f"commit message has {len(lines)} directive problems:",
                                        *(f"  {line}" for line in lines)]))


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

    def problem(self, line: _Line, message: str) -> None:
        self.problems.append(DirectiveProblem(line.number, line.text, message))


def parse_directives(message: str, vocabulary: Vocabulary) -> Directives:
    """Read the directive lines of a commit message; raise DirectiveError for bad ones."""
    parsed = _Parsed()
    for number, raw in enumerate(message.splitlines(), 1):
        text = raw.strip()
        if text:
            _read_line(_Line(number, text), vocabulary, parsed)

    skip = [parsed.flags[f] for f in ("no-ci", "no-taskcluster-ci") if f in parsed.flags]
    if skip:
        ignored = [line.text for line in parsed.directive_lines if line not in skip]
        return Directives(no_ci="no-ci" in parsed.flags,
                          no_taskcluster_ci="no-taskcluster-ci" in parsed.flags,
                          ignored=tuple(ignored))

    _check_combinations(parsed)
    if parsed.problems:
        raise DirectiveError(sorted(parsed.problems, key=lambda p: p.line))
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
    if re.fullmatch(r"[a-z0-9-]+", flag_form):
        for flag in FLAGS:
            limit = max(1, len(flag) // 8)
            if flag_form == flag or edit_distance(flag_form, flag) <= limit:
                return f"not a directive; did you mean `{flag}`?"
    match = _VERB_ONLY.match(lowered)
    if match:
        return (f"`{match.group(1)}` needs a type: `{match.group(1)} "
                f"keys|pools|regions|environments: ...`")
    match = _NO_COLON.match(lowered)
    if match:
        verb, kind, rest = match.group(1), match.group(2), match.group(3)
        return f"missing colon; did you mean `{verb} {kind}: {rest}`?"
    match = _FILTER_LIKE.match(lowered)
    if not match:
        return None
    verb_word, kind_word, rest = match.groups()
    verb = _near(verb_word, VERBS, limit=2)
    kind = _TYPE_SPELLINGS.get(kind_word) or _near(kind_word, FILTER_TYPES, limit=2)
    if verb and kind:
        return f"not a directive; did you mean `{verb} {kind}: {rest}`?"
    if verb_word in VERBS:
        hint = closest(kind_word, FILTER_TYPES)
        return (f"unknown filter type {kind_word!r}; the types are "
                f"{', '.join(FILTER_TYPES)}" + (f" (did you mean {hint!r}?)" if hint else ""))
    return None


def _near(word: str, options: Iterable[str], limit: int) -> str | None:
    best = min(options, key=lambda option: edit_distance(word, option))
    return best if edit_distance(word, best) <= limit else None


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
    known: tuple[str, ...] = getattr(vocabulary, kind)
    resolved: list[str] = []
    for item in items:
        if item == ALL:
            resolved.extend(known)
            continue
        name = _lookup(kind, item, known)
        if name is None:
            parsed.problem(line, _unknown(kind, item, vocabulary))
        else:
            resolved.append(name)
    return resolved


def _lookup(kind: str, item: str, known: tuple[str, ...]) -> str | None:
    if kind == "regions":
        wanted = region_match_key(item)
        return next((r for r in known if region_match_key(r) == wanted), None)
    wanted = item.casefold()
    if kind == "keys":
        wanted = re.sub(r"\.ya?ml$", "", wanted)  # the key is the file name
    return next((name for name in known if name.casefold() == wanted), None)


def _unknown(kind: str, item: str, vocabulary: Vocabulary) -> str:
    singular = kind[:-1]
    known: tuple[str, ...] = getattr(vocabulary, kind)
    message = f"unknown {singular} {item!r}"
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
