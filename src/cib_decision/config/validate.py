"""Checking parsed config against its JSON Schema (draft 2020-12), fast for valid documents.

jsonschema-rs (compiled) tells first whether a document is valid; only a document it rejects
goes through jsonschema, whose errors (path, schema keyword, message) the problems are made
from. Both implement the same draft, so a valid document costs a fraction of a millisecond
and an invalid one gets exactly the errors it always got.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

# Patterns run on Python's re in jsonschema and on Rust's regex in jsonschema-rs. Escapes (\s,
# \d, \w, ...) and `.` match different characters in the two, so a schema using them is left
# to jsonschema alone. (`$` differs too, but only in that re also matches before a final
# newline: there jsonschema-rs is the stricter one, and its "invalid" is checked again.)
_ENGINE_DEPENDENT = re.compile(r"[\\.]")


class SchemaCheck:
    """One schema. `errors(instance)` yields what jsonschema's `iter_errors` yields."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema

    # Compiled on the first document checked: a fleet read from the parsed-config cache is
    # not validated again, and importing jsonschema-rs was a tenth of a warm `cib plan`'s own
    # CPU beyond taskgraph's.
    @cached_property
    def _compiled(self) -> Any:
        if any(_ENGINE_DEPENDENT.search(p) for p in _patterns(self.schema)):
            return None
        import jsonschema_rs

        return jsonschema_rs.Draft202012Validator(self.schema)

    @property
    def compiled(self) -> bool:
        """Whether valid documents are recognised by jsonschema-rs."""
        return self._compiled is not None

    @cached_property
    def _jsonschema(self) -> jsonschema.Draft202012Validator:
        import jsonschema  # only documents with problems need it

        return jsonschema.Draft202012Validator(self.schema)

    def errors(self, instance: Any) -> Iterator[jsonschema.ValidationError]:
        """Every error of `instance`, as jsonschema reports them (none when it is valid)."""
        if self._compiled is not None:
            try:
                if self._compiled.is_valid(instance):
                    return iter(())
            except (ValueError, TypeError, OverflowError):
                pass  # a value jsonschema-rs cannot take: jsonschema decides
        return self._jsonschema.iter_errors(instance)


def _patterns(schema: Any) -> Iterator[str]:
    """Every regular expression in `schema` (`pattern` values, `patternProperties` keys)."""
    if isinstance(schema, dict):
        for name, value in schema.items():
            if name == "pattern" and isinstance(value, str):
                yield value
            elif name == "patternProperties" and isinstance(value, dict):
                yield from value
            if isinstance(value, dict | list):
                yield from _patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _patterns(item)
