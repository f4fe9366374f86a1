"""Schema checks of the local Taskcluster: validation with the genuine schemas, and the
defaults the services' validator (Ajv with `useDefaults`) fills into what it validates.

Every request and reply is checked, so both are compiled once per schema: a valid document is
recognised by jsonschema-rs (microseconds), and only an invalid one goes through jsonschema,
which writes the messages; the defaults of a schema are gathered once into a tree that is walked
along the document, with no `$ref` to look up on the way."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema_rs
from referencing import Registry
from referencing.jsonschema import DRAFT6

from ..errors import CibError
from ..tcschemas import SchemaStore


class Schemas:
    """Validators and default-filling for the schemas of one directory (plus those only in
    references.json, such as the index service's)."""

    def __init__(self, documents: Iterable[dict[str, Any]]):
        by_id = {d["$id"].rstrip("#"): d for d in documents}
        self._registry: Registry = Registry().with_resources(
            (i, DRAFT6.create_resource(d)) for i, d in by_id.items()).crawl()
        self.store = SchemaStore(self._registry)
        self.ids = frozenset(by_id)
        self.documents: dict[str, dict[str, Any]] = by_id
        self._lock = threading.Lock()
        self._fast_registry: Any = None
        self._fast: dict[str, Any] = {}  # schema id -> jsonschema-rs validator (None: none)
        self._defaults: dict[str, _Defaults] = {}  # schema id -> its defaults

    @classmethod
    def load(cls, directory: Path, extra: Iterable[dict[str, Any]] = ()) -> Schemas:
        """The `*.json` schemas under `directory` first, then `extra` documents whose ids the
        directory lacks."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CibError(f"no Taskcluster schema directory at {directory}")
        docs = [json.loads(p.read_text()) for p in sorted(directory.rglob("*.json"))]
        docs = [d for d in docs if isinstance(d, dict) and "$id" in d]
        known = {d["$id"].rstrip("#") for d in docs}
        docs += [d for d in extra if d["$id"].rstrip("#") not in known]
        return cls(docs)

    def errors(self, schema_id: str, instance: Any) -> list[str]:
        """Every validation error, as `<json path>: <message>` lines."""
        fast = self._fast_validator(schema_id)
        if fast is not None and fast.is_valid(instance):
            return []
        return self.store.errors(schema_id, instance)

    def apply_defaults(self, schema_id: str, instance: Any) -> None:
        """Fill `default`s of absent properties into `instance`, in place, as Ajv's
        `useDefaults` does: through `properties`, `$ref`, `allOf` and `items` (not inside
        `oneOf`/`anyOf`). Defaults beside a `$ref` count too."""
        defaults = self._defaults.get(schema_id)
        if defaults is None:
            with self._lock:
                resolved = self._registry.resolver().lookup(schema_id)
                defaults = _compile(resolved.contents, resolved.resolver, {})
                self._defaults[schema_id] = defaults
        defaults.fill(instance)

    def _fast_validator(self, schema_id: str) -> Any:
        """jsonschema-rs's validator of `schema_id` (formats checked), compiled on first use;
        None when it cannot compile the schema (jsonschema then checks every document)."""
        schema_id = schema_id.rstrip("#")
        if schema_id not in self._fast:
            with self._lock:
                if self._fast_registry is None:
                    # jsonschema-rs wants absolute ids; the schemas' are root-relative.
                    self._fast_registry = jsonschema_rs.Registry(
                        [(_FAST_BASE + i, {**d, "$id": _FAST_BASE + d["$id"]})
                         for i, d in self.documents.items()], draft=jsonschema_rs.Draft6)
                try:
                    validator = jsonschema_rs.Draft6Validator(
                        {"$ref": _FAST_BASE + schema_id}, registry=self._fast_registry,
                        validate_formats=True)
                except (ValueError, jsonschema_rs.ReferencingError):
                    validator = None
                self._fast[schema_id] = validator
        return self._fast[schema_id]


_FAST_BASE = "https://dev-taskcluster.invalid"
_IMMUTABLE = (str, int, float, bool, type(None))


class _Defaults:
    """The defaults of one (sub)schema: the schemas that apply to the same value first (its
    `$ref`, then its `allOf`), then per property its default and the property's own
    defaults, then those of `items`."""

    __slots__ = ("items", "properties", "same")

    def __init__(self) -> None:
        self.same: list[_Defaults] = []
        self.properties: list[tuple[str, Any, _Defaults]] = []
        self.items: _Defaults | None = None

    def fill(self, instance: Any) -> None:
        """Fill the defaults into `instance`, in place."""
        for schema in self.same:
            schema.fill(instance)
        if isinstance(instance, dict):
            for name, default, schema in self.properties:
                if name not in instance:
                    if default is _MISSING:
                        continue
                    instance[name] = (default if isinstance(default, _IMMUTABLE)
                                      else copy.deepcopy(default))
                schema.fill(instance[name])
        if isinstance(instance, list) and self.items is not None:
            for item in instance:
                self.items.fill(item)


def _compile(schema: Any, resolver: Any, seen: dict[int, _Defaults]) -> _Defaults:
    """`schema`'s defaults as a tree; a schema met again (recursion) is the same node."""
    node = seen.get(id(schema))
    if node is not None:
        return node
    seen[id(schema)] = node = _Defaults()
    if not isinstance(schema, dict):
        return node
    if "$ref" in schema:
        target = resolver.lookup(schema["$ref"])
        node.same.append(_compile(target.contents, target.resolver, seen))
    node.same += [_compile(sub, resolver, seen) for sub in schema.get("allOf", [])]
    node.properties = [(name, _default(sub, resolver), _compile(sub, resolver, seen))
                       for name, sub in schema.get("properties", {}).items()]
    if isinstance(schema.get("items"), dict):
        node.items = _compile(schema["items"], resolver, seen)
    return node


_MISSING = object()


def _default(schema: Any, resolver: Any) -> Any:
    if not isinstance(schema, dict):
        return _MISSING
    if "default" in schema:
        return schema["default"]
    if "$ref" in schema:
        target = resolver.lookup(schema["$ref"])
        return _default(target.contents, target.resolver)
    return _MISSING
