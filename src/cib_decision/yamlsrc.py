"""YAML parsing that remembers the line of every value, so errors can name file and line.

Booleans follow YAML 1.2 (`true`/`false` only): cloud-image-builder's files use `on:` as a
mapping key in bootstrap executions, which YAML 1.1 would silently turn into `True`.
Timestamps stay strings, and mapping keys are always strings, so parsed content is plain JSON.

Limits
------
Config files come from pull requests, so a file may be hostile. These bounds keep any text from
crashing the parser (libyaml's composer recurses in C once per level of nesting, and a segfault
ends the process at about 25,000 levels), filling memory, or taking more than linear time. Each
is checked before the structure it protects is built; breaking one is a YamlProblem naming the
file and line, like any other mistake. Config files are far inside all of them.

- `MAX_YAML_BYTES`, 256 KB (262,144 bytes): the largest file `parse_yaml` reads (reported on
  line 1). The bundled files are under 10 KB; a file of the densest valid YAML this size
  parses in about half a second (some 2 µs a value), so no file costs a decision more.
- `MAX_DEPTH`, 100 levels: lists and mappings nested in each other, counting those aliases
  bring in; reported at the first list or mapping beyond it (or the alias that goes beyond it).
  Config files need fewer than 20. Text that might nest deeper than the C composer is safely
  handed (1,000 levels; a linear look at the text decides, in 1 to 2 ms a megabyte) is
  read event by event first, which needs no recursion and stops at the 101st level.
- `MAX_ALIAS_VALUES`, 100,000 values (or one per character of the file, if that is more): what
  aliases of lists and mappings may copy into the document in total. Each use counts every key
  and value under its anchor, aliases inside expanded; reported at the alias that crosses it.
  This stops "billion laughs" alias bombs, whose data is small while aliases share it but which
  blow up whatever walks it (validation, digests, the line map). An alias inside the value it
  names (a recursive structure) is refused too.
- `MAX_INT_DIGITS`, 4,000: the most characters an integer may be written with, and the most
  digits it may have (Python refuses to print one of more than 4,300 digits, and turning long
  text into one can take quadratic time).

A merge key `<<` must name a mapping or a list of mappings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from itertools import chain
from typing import Any

import yaml

from .bounds import excerpt
from .errors import Problem

Path = tuple[str | int, ...]

MAX_YAML_BYTES = 256 * 1024  # the largest YAML file accepted: 256 KB
MAX_DEPTH = 100  # lists and mappings nested in each other (config files need under 20)
MAX_ALIAS_VALUES = 100_000  # values aliases may copy in, in total (or 1 a character, if more)
MAX_INT_DIGITS = 4_000  # the longest integer, written and in digits (Python prints 4,300)


# libyaml's parser when PyYAML has it (it is several times faster); the resolvers and
# constructors below are Python either way, so both give the same result.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The deepest nesting that may be handed to the composer without reading the events first.
# libyaml's composer (Cython) recurses in C, about 330 bytes of stack a level: 1,000 levels
# fit in a 512 KB thread stack. PyYAML's own composer recurses in Python, two frames a level.
_COMPOSER_DEPTH = 1_000 if _Base is not yaml.SafeLoader else 300


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader with YAML 1.2 booleans and no implicit timestamps or sexagesimal ints."""

    # The composer calls these around every node to follow path resolvers. There are none
    # (none are ever added), so they are builtins that take the same arguments and do nothing
    # that matters: two Python calls a node are a few per cent of the composer's time.
    descend_resolver = slice  # (parent, index): makes a slice object, which is dropped
    ascend_resolver = tuple  # (): the empty tuple

    def resolve(self, kind, value, implicit):
        """The tag of a node; a scalar's depends only on its text and how it was quoted (there
        are no path resolvers), so it is remembered: config files repeat most of their words.
        A list or mapping without a tag has the default one."""
        if kind is not yaml.ScalarNode:
            return _COLLECTION_TAGS[kind]
        key = (value, implicit)
        tag = _scalar_tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_scalar_tags) < _MAX_REMEMBERED_TAGS and len(value) <= _MAX_REMEMBERED_LENGTH:
                _scalar_tags[key] = tag
        return tag


_COLLECTION_TAGS = {yaml.SequenceNode: yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                    yaml.MappingNode: yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG}
_scalar_tags: dict[tuple[str, tuple[bool, bool]], str] = {}
_MAX_REMEMBERED_TAGS = 200_000
_MAX_REMEMBERED_LENGTH = 200  # words are remembered, long text (and hostile text) is not


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (
        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))

_ScalarNode = yaml.ScalarNode
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_INT_BOUND = 10 ** MAX_INT_DIGITS
_MERGE_PROBLEM = "merge key `<<` needs a mapping or a list of mappings"
_DEPTH_PROBLEM = f"lists and mappings nested more than {MAX_DEPTH} levels deep"


@dataclass
class YamlDocument:
    """Parsed YAML content, and the 1-based line of every mapping key and list item.

    The line map is built from `text` when a line is first asked for: most documents are
    valid and never need one, so parsing does not pay for it.
    """

    filename: str
    data: Any
    text: str = ""
    _lines: dict[Path, int] | None = field(default=None, repr=False, compare=False)

    @property
    def lines(self) -> dict[Path, int]:
        """Line of every mapping key and list item, by path (`()` is the document)."""
        if self._lines is None:
            self._lines = line_map(self.text)
        return self._lines

    def line_of(self, path: Path) -> int:
        """Line of `path`, or of its nearest ancestor that has one (1 for the document)."""
        lines = self.lines
        path = tuple(path)
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return lines.get((), 1)


@dataclass
class YamlPart:
    """One value of a parsed document read as a document of its own (cloud-image-builder's
    first config file held every key in one mapping): its lines are those of the whole."""

    whole: YamlDocument
    prefix: Path
    data: Any

    @property
    def filename(self) -> str:
        return self.whole.filename

    def line_of(self, path: Path) -> int:
        """Line of `path` inside the part (see YamlDocument.line_of)."""
        return self.whole.line_of((*self.prefix, *path))


class YamlProblem(Exception):
    """Text that is not valid YAML (or not a single document)."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def parse_yaml(text: str | bytes, filename: str) -> YamlDocument:
    """Parse one YAML document; raise YamlProblem naming the line for bad YAML, duplicate keys
    or text beyond the limits (see the module's docstring)."""
    if isinstance(text, bytes):
        _check_size(len(text), filename)
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise YamlProblem(Problem(filename, 1, f"not UTF-8 text: {exc}")) from None
    elif len(text) > MAX_YAML_BYTES // 4 and not text.isascii():
        _check_size(len(text.encode("utf-8", "surrogatepass")), filename)
    else:
        _check_size(len(text), filename)
    if _may_nest_deeper_than(text, _COMPOSER_DEPTH):
        # Too deep for the composer's recursion, perhaps: find out from the events (the scan
        # stops at the first value too deep). Bad YAML is left to the parse below to report.
        problem = _scan_events(text, filename)
        if problem is not None:
            raise YamlProblem(problem)
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:  # text given as str, with lone surrogates
        line = text.count("\n", 0, exc.start) + 1
        raise YamlProblem(Problem(filename, line, f"not UTF-8 text: {exc}")) from None
    try:
        node = loader.get_single_node()
        data = None if node is None else _construct(loader, node, _Memo(_alias_limit(text)), 1)
        return YamlDocument(filename, data, text)
    except _AliasLimit as exc:
        # The nodes do not say where an alias is; the events do.
        raise YamlProblem(_scan_events(text, filename) or Problem(
            filename, exc.node.start_mark.line + 1,
            f"invalid YAML: aliases of this value expand the document beyond "
            f"{_alias_limit(text)} values or {MAX_DEPTH} levels (YAML alias bomb?)")) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_marked_problem(exc, filename, text.count("\n") + 1)) from None
    except yaml.reader.ReaderError as exc:
        line = _reader_line(text, exc)
        raise YamlProblem(Problem(filename, line, f"invalid YAML: {exc}")) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(filename, 1, f"invalid YAML: {exc}")) from None
    except (ValueError, TypeError, RecursionError) as exc:
        message = f"invalid YAML value: {excerpt(str(exc))}"
        raise YamlProblem(Problem(filename, 1, message)) from None
    finally:
        loader.dispose()


def _alias_limit(text: str) -> int:
    """How many values aliases of lists and mappings may copy into `text`'s document."""
    return max(MAX_ALIAS_VALUES, len(text))


def _check_size(size: int, filename: str) -> None:
    if size > MAX_YAML_BYTES:
        raise YamlProblem(Problem(
            filename, 1, f"file is {size / 2**10:.0f} KB ({size} bytes); YAML files may be at "
                         f"most {MAX_YAML_BYTES // 2**10} KB ({MAX_YAML_BYTES} bytes)"))


def _reader_line(text: str, exc: yaml.reader.ReaderError) -> int:
    """Line of a character the reader refused: libyaml gives its offset in UTF-8 bytes."""
    if _Base is yaml.SafeLoader:
        return text.count("\n", 0, exc.position) + 1
    return text.encode("utf-8", "surrogatepass").count(b"\n", 0, exc.position) + 1


# --- nesting depth, before composing ------------------------------------------------------------
#
# Block lists and mappings nest by indentation: each level starts in a new column (libyaml keeps
# a strictly increasing stack of them), at the start of a line or after `-`, `?` or `:`
# indicators on it, and a block mapping may hold one list at its own column ("indentless").
# So block nesting is at most twice the longest line prefix of blanks and those indicators,
# plus 2. Flow collections nest only by brackets; one the parser accepts follows the start of
# the text, whitespace, a line break or one of `[{,?:` (a plain scalar cannot hold one in flow
# context, and after any other token a bracket is an error), and each may hold a single-pair
# mapping (`[a: [b]]`), so flow nesting is at most twice the number of such brackets. Both
# take a few string searches for ordinary text; tests/test_yaml_hostile.py checks the bounds
# against libyaml's events on random text.

_BLOCK_INDICATORS = "[ \t\ufeff?:-]"
_BEFORE_FLOW = frozenset(" \t\n\r\x0b\x0c\x85\u2028\u2029\ufeff[{,?:")
_FLOW_BRACKET = re.compile(r"[\[{](?<=[\s\[{,?:\ufeff].)")  # those (and a few more), not at 0
_BLOCK_SHARE = 5  # a fifth of the depth budget for block nesting (config files: under 40)


def _may_nest_deeper_than(text: str, depth: int) -> bool:
    """False when lists and mappings in `text` certainly nest at most `depth` levels deep
    (linear, and a few milliseconds a megabyte: see above)."""
    block_budget = depth // _BLOCK_SHARE
    if _has_long_line_prefix(text, block_budget // 2):  # block nesting <= 2 * (prefix + 1)
        return True
    most = (depth - block_budget) // 2  # flow nesting <= 2 * brackets
    count = text.count("[") + text.count("{")
    if count <= most:
        return False
    if count > 50 * most:  # many brackets: one regular expression beats a loop over them
        return len(_FLOW_BRACKET.findall(text)) + (text[:1] in ("[", "{")) > most
    brackets = 0
    for bracket in "[{":
        index = text.find(bracket)
        while index >= 0:
            if index == 0 or text[index - 1] in _BEFORE_FLOW:
                brackets += 1
                if brackets > most:
                    return True
            index = text.find(bracket, index + 1)
    return False


def _has_long_line_prefix(text: str, width: int) -> bool:
    """Whether a line of `text` starts with `width` blanks or block indicators. YAML breaks
    lines at \\n, \\r, NEL, LS and PS; each is searched for on its own (one character to look
    for is far faster than a set of them)."""
    first, *after_breaks = _line_prefix_patterns(width)
    if first.match(text):
        return True
    return any(brk in text and pattern.search(text) for brk, pattern in after_breaks)


@cache
def _line_prefix_patterns(width: int) -> tuple[Any, ...]:
    run = f"{_BLOCK_INDICATORS}{{{width}}}"
    return (re.compile(run), *((brk, re.compile(re.escape(brk) + run)) for brk in _BREAKS))


_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


def _scan_events(text: str, filename: str) -> Problem | None:
    """The first value of `text` nested deeper than MAX_DEPTH, or alias beyond the limits, read
    from the parser's events (no recursion, and no further than that value); None if there is
    none before the end or the first syntax error."""
    try:
        loader = _Loader(text)
    except UnicodeEncodeError:
        return None  # parse_yaml reports it
    # Open collections: [anchor, size, height], as in _expanded; and (size, height) by anchor.
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int]] = {}
    limit = _alias_limit(text)
    unfinished: set[str] = set()  # anchors of open collections
    copied = 0
    try:
        while True:
            event = loader.get_event()
            kind = event.__class__
            if kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                size, height = 1, 0
                if kind is yaml.AliasEvent:
                    name = event.anchor
                    if name in unfinished:
                        return _at(filename, event, "is inside the value it refers to "
                                                    "(a recursive structure)")
                    size, height = anchors.get(name, (1, 0))
                    if height:
                        copied += size
                        if copied > limit:
                            return _at(filename, event, f"expands the document beyond {limit} "
                                                        "values (YAML alias bomb?)")
                        if len(stack) + height > MAX_DEPTH:
                            return _at(filename, event, "nests lists and mappings more than "
                                                        f"{MAX_DEPTH} levels deep")
                elif event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
                if stack:
                    stack[-1][1] += size
                    stack[-1][2] = max(stack[-1][2], height)
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                if len(stack) >= MAX_DEPTH:
                    return _at(filename, event, _DEPTH_PROBLEM)
                stack.append([event.anchor, 1, 0])
                if event.anchor is not None:
                    unfinished.add(event.anchor)
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                anchor, size, height = stack.pop()
                if anchor is not None:
                    anchors[anchor] = (size, height + 1)
                    unfinished.discard(anchor)
                if stack:
                    stack[-1][1] += size
                    stack[-1][2] = max(stack[-1][2], height + 1)
            elif kind is yaml.StreamEndEvent:
                return None
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _at(filename: str, event: yaml.Event, message: str) -> Problem:
    """The problem `message` at `event`; an alias's message follows the alias."""
    if event.__class__ is yaml.AliasEvent:
        message = f"alias *{excerpt(event.anchor)} {message}"
    return Problem(filename, event.start_mark.line + 1, f"invalid YAML: {message}")


def line_map(text: str) -> dict[Path, int]:
    """The 1-based line of every mapping key and list item of `text`, a valid YAML document."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {(): 1}
        lines = {(): node.start_mark.line + 1}
        _record_lines(node, (), lines)
        return lines
    finally:
        loader.dispose()


def _marked_problem(exc: yaml.MarkedYAMLError, filename: str, last_line: int) -> Problem:
    reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark else 1
    context_line = exc.context_mark.line + 1 if exc.context_mark else None
    # An unclosed flow collection is only noticed where the parser gives up (often the end of
    # the file); the line that opened it is the one to fix. Other errors are where they stop.
    if context_line and (exc.context or "").startswith("while parsing a flow"):
        line = context_line
        reason += f" (parsing stopped on line {min(problem_line, last_line)})"
    else:
        line = min(problem_line, last_line)
    return Problem(filename, line, f"invalid YAML: {reason}")


def _merge_sources(node: yaml.Node) -> list[yaml.Node]:
    return node.value if isinstance(node, yaml.SequenceNode) else [node]


def _record_lines(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    """Record the line of every key and item below `node`; aliased content is recorded once
    per use, at the lines of its anchor."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in _merge_sources(value_node):
                    _record_lines(source, path, lines)
                continue
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                lines[child] = key_node.start_mark.line + 1
                _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines)


class _Memo(dict):  # type: ignore[type-arg]
    """What _construct has built, by node id; and what aliases have copied so far."""

    __slots__ = ("copied", "limit", "sizes")

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit  # of copied values: see _alias_limit
        self.copied = 0  # values aliases of lists and mappings copied, as _expanded counts them
        self.sizes: dict[int, tuple[int, int]] = {}  # _expanded's, by node id

    def count_alias(self, node: yaml.Node, depth: int) -> None:
        """Count a use, at `depth`, of the list or mapping `node`; raise _AliasLimit when it
        takes the document beyond the limits."""
        self.copied += _expanded(node, self, MAX_DEPTH - depth + 1)[0]
        if self.copied > self.limit:
            raise _AliasLimit(node)


class _AliasLimit(Exception):
    """An alias of `node` crosses the limit of copied values or MAX_DEPTH, or is inside
    `node`."""

    def __init__(self, node: yaml.Node):
        super().__init__()
        self.node = node


def _construct(loader: _Loader, node: yaml.Node, memo: _Memo, depth: int) -> Any:
    """Plain JSON-like data. Aliases share one object, as in PyYAML; `depth` is the node's
    (1 for the document's), which no list or mapping, aliased or not, may take past MAX_DEPTH."""
    if node.__class__ is yaml.ScalarNode:
        # Most values are strings, which construct_yaml_str returns as they are.
        return node.value if node.tag == _STR_TAG else _scalar_value(loader, node)
    if id(node) in memo:  # an alias (or a merge) of a list or mapping built before
        memo.count_alias(node, depth)
        return memo[id(node)]
    if depth > MAX_DEPTH:
        raise yaml.MarkedYAMLError(problem=_DEPTH_PROBLEM, problem_mark=node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        memo[id(node)] = result
        merged: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag == _MERGE_TAG:
                # A list of mappings is one level deeper than a mapping, as _scan_events counts.
                sources, source_depth = ((value_node.value, depth + 2)
                                         if value_node.__class__ is yaml.SequenceNode
                                         else ((value_node,), depth + 1))
                for source in sources:
                    if source.__class__ is not yaml.MappingNode:
                        raise yaml.MarkedYAMLError(problem=_MERGE_PROBLEM,
                                                   problem_mark=key_node.start_mark)
                    for k, v in _construct(loader, source, memo, source_depth).items():
                        merged.setdefault(k, v)  # the first merged mapping wins
                continue
            if tag == _STR_TAG and key_node.__class__ is yaml.ScalarNode:
                key = key_node.value
            else:
                key = _scalar_key(loader, key_node)
            if key in result:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key '{excerpt(key)}' "
                            f"(first defined on line {first_lines[key]})",
                    problem_mark=key_node.start_mark)
            first_lines[key] = key_node.start_mark.line + 1
            # Most values are strings, which construct_yaml_str returns as they are.
            result[key] = (value_node.value if value_node.__class__ is _ScalarNode
                           and value_node.tag == _STR_TAG
                           else _construct(loader, value_node, memo, depth + 1))
        for k, v in merged.items():
            result.setdefault(k, v)  # explicit keys override merged ones
        return result
    items: list[Any] = []
    memo[id(node)] = items
    depth += 1
    items.extend([item.value if item.__class__ is _ScalarNode and item.tag == _STR_TAG
                  else _construct(loader, item, memo, depth) for item in node.value])
    return items


_UNFINISHED = (0, 0)  # in _expanded's table while a node's children are counted


def _expanded(node: yaml.Node, memo: _Memo, room: int) -> tuple[int, int]:
    """(values, levels) of a list or mapping with its aliases expanded: how many nodes it
    holds (keys included, itself too) and how many lists and mappings deep it is, remembered
    by node id. Raise _AliasLimit when there are more values than the limit, more than `room`
    levels, or the node is inside itself; the recursion is no deeper than `room`."""
    sizes = memo.sizes
    known = sizes.get(id(node))
    if known is not None:
        if known is _UNFINISHED or known[1] > room:
            raise _AliasLimit(node)
        return known
    if room <= 0:
        raise _AliasLimit(node)
    sizes[id(node)] = _UNFINISHED
    size, height = 1, 0
    for child in (node.value if node.__class__ is yaml.SequenceNode
                  else chain.from_iterable(node.value)):
        if child.__class__ is _ScalarNode:
            size += 1
        else:
            child_size, child_height = _expanded(child, memo, room - 1)
            size += child_size
            if child_height > height:
                height = child_height
    if size > memo.limit:
        raise _AliasLimit(node)
    sizes[id(node)] = known = (size, height + 1)
    return known


def _scalar(loader: _Loader, node: yaml.Node) -> Any:
    """What PyYAML's constructors make of a scalar node; anything they cannot make, or an
    integer beyond MAX_INT_DIGITS, is an error at the node's line."""
    if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
        raise yaml.MarkedYAMLError(
            problem=f"integer {excerpt(node.value)} has more than {MAX_INT_DIGITS} digits",
            problem_mark=node.start_mark)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception:  # `!!bool maybe`, `!!timestamp soon`, `!!int x`: a traceback else
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise yaml.MarkedYAMLError(problem=f"'{excerpt(node.value)}' is not a valid {tag}",
                                   problem_mark=node.start_mark) from None
    if value.__class__ is int and not -_INT_BOUND < value < _INT_BOUND:
        raise yaml.MarkedYAMLError(
            problem=f"integer {excerpt(node.value)} has more than {MAX_INT_DIGITS} digits",
            problem_mark=node.start_mark)
    return value


def _scalar_value(loader: _Loader, node: yaml.Node) -> Any:
    """A scalar that is not a string, checked to be plain JSON."""
    value = _scalar(loader, node)
    if value.__class__ is int or value.__class__ is bool or value is None:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise yaml.MarkedYAMLError(problem=f"'{excerpt(node.value)}' is not a finite number",
                                   problem_mark=node.start_mark)
    if not isinstance(value, str | int | float | bool | type(None)):
        raise yaml.MarkedYAMLError(
            problem=f"unsupported value of type {type(value).__name__} ({node.tag})",
            problem_mark=node.start_mark)
    return value


def _scalar_key(loader: _Loader, node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.MarkedYAMLError(problem="mapping keys must be plain values",
                                   problem_mark=node.start_mark)
    value = _scalar(loader, node)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
