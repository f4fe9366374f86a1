"""Schema checks of the local Taskcluster: validation with the genuine schemas, and the
defaults the services' validator (Ajv with `useDefaults`) fills into what it validates."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
        return self.store.errors(schema_id, instance)

    def apply_defaults(self, schema_id: str, instance: Any) -> None:
        """Fill `default`s of absent properties into `instance`, in place, as Ajv's
        `useDefaults` does: through `properties`, `$ref`, `allOf` and `items` (not inside
        `oneOf`/`anyOf`). Defaults beside a `$ref` count too."""
        resolver = self._registry.resolver()
        resolved = resolver.lookup(schema_id)
        _fill(resolved.contents, instance, resolved.resolver)


def _fill(schema: Any, instance: Any, resolver: Any) -> None:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        target = resolver.lookup(schema["$ref"])
        _fill(target.contents, instance, target.resolver)
    for sub in schema.get("allOf", []):
        _fill(sub, instance, resolver)
    if isinstance(instance, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in instance:
                default = _default(sub, resolver)
                if default is not _MISSING:
                    instance[name] = copy.deepcopy(default)
            if name in instance:
                _fill(sub, instance[name], resolver)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill(schema["items"], item, resolver)


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
