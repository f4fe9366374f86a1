"""YAML parsing that remembers the line of every value, so errors can name file and line.

Booleans follow YAML 1.2 (`true`/`false` only): cloud-image-builder's files use `on:` as a
mapping key in bootstrap executions, which YAML 1.1 would silently turn into `True`.
Timestamps stay strings, and mapping keys are always strings, so parsed content is plain JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and no implicit timestamps or sexagesimal ints."""


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


@dataclass
class YamlDocument:
    """Parsed YAML content plus the 1-based line of every mapping key and list item."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """Line of `path`, or of its nearest ancestor that has one (1 for the document)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


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
        if node is None:
            return YamlDocument(filename, None, {(): 1})
        doc = YamlDocument(filename, None, {(): node.start_mark.line + 1})
        doc.data = _construct(loader, node, (), doc)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise YamlProblem(Problem(filename, line, f"invalid YAML: {reason}")) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(filename, 1, f"invalid YAML: {exc}")) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise YamlProblem(Problem(filename, 1, f"invalid YAML value: {exc}")) from None
    finally:
        loader.dispose()


def _construct(loader: _Loader, node: yaml.Node, path: Path, doc: YamlDocument) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                          else [value_node])
                for source in merged:
                    for k, v in _construct(loader, source, path, doc).items():
                        result.setdefault(k, v)
                continue
            key = _scalar_key(loader, key_node)
            if key in result:
                first = doc.lines.get((*path, key), "?")
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key '{key}' (first defined on line {first})",
                    problem_mark=key_node.start_mark)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, (*path, key), doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_construct(loader, item, (*path, index), doc))
        return items
    return loader.construct_object(node, deep=True)


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
