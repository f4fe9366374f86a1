"""YAML parsing that remembers the line of every value, so errors can name file and line.

Booleans follow YAML 1.2 (`true`/`false` only): cloud-image-builder's files use `on:` as a
mapping key in bootstrap executions, which YAML 1.1 would silently turn into `True`.
Timestamps stay strings, and mapping keys are always strings, so parsed content is plain JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple[str | int, ...]


# libyaml's parser when PyYAML has it (it is several times faster); the resolvers and
# constructors below are Python either way, so both give the same result.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader with YAML 1.2 booleans and no implicit timestamps or sexagesimal ints."""

    def resolve(self, kind, value, implicit):
        """The tag of a node; a scalar's depends only on its text and how it was quoted (there
        are no path resolvers), so it is remembered: config files repeat most of their words."""
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _scalar_tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_scalar_tags) < _MAX_REMEMBERED_TAGS:
                _scalar_tags[key] = tag
        return tag


_scalar_tags: dict[tuple[str, tuple[bool, bool]], str] = {}
_MAX_REMEMBERED_TAGS = 200_000


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

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


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


class YamlProblem(Exception):
    """Text that is not valid YAML (or not a single document)."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def parse_yaml(text: str | bytes, filename: str) -> YamlDocument:
    """Parse one YAML document; raise YamlProblem naming the line for bad YAML or duplicate keys."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise YamlProblem(Problem(filename, 1, f"not UTF-8 text: {exc}")) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else _construct(loader, node, {})
        return YamlDocument(filename, data, text)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_marked_problem(exc, filename, text.count("\n") + 1)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(filename, 1, f"invalid YAML: {exc}")) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise YamlProblem(Problem(filename, 1, f"invalid YAML value: {exc}")) from None
    finally:
        loader.dispose()


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


def _construct(loader: _Loader, node: yaml.Node, memo: dict[int, Any]) -> Any:
    """Plain JSON-like data. Aliases share one object, as in PyYAML."""
    if node.__class__ is yaml.ScalarNode:
        # Most values are strings, which construct_yaml_str returns as they are.
        return node.value if node.tag == _STR_TAG else _scalar_value(loader, node)
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        memo[id(node)] = result
        merged: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag == _MERGE_TAG:
                for source in _merge_sources(value_node):
                    for k, v in _construct(loader, source, memo).items():
                        merged.setdefault(k, v)  # the first merged mapping wins
                continue
            if tag == _STR_TAG and key_node.__class__ is yaml.ScalarNode:
                key = key_node.value
            else:
                key = _scalar_key(loader, key_node)
            if key in result:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key '{key}' (first defined on line {first_lines[key]})",
                    problem_mark=key_node.start_mark)
            first_lines[key] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, memo)
        for k, v in merged.items():
            result.setdefault(k, v)  # explicit keys override merged ones
        return result
    items: list[Any] = []
    memo[id(node)] = items
    items.extend([_construct(loader, item, memo) for item in node.value])
    return items


def _scalar_value(loader: _Loader, node: yaml.Node) -> Any:
    value = loader.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise yaml.MarkedYAMLError(problem=f"{node.value!r} is not a finite number",
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
    value = loader.construct_object(node, deep=True)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
