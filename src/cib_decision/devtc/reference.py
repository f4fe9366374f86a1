"""The API references of the services the local Taskcluster serves, read from the genuine
`generated/references.json` (a JSON array of `{filename, content}`): routes, methods, URL
parameters, query options, scope templates and input/output schema ids."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import CibError
from .expressions import template_params

SERVICES = ("auth", "queue", "index", "worker-manager", "secrets", "object")

# URL parameters a service declares as `{*name}` (they may hold `/`), but for the methods that
# declare it `:name` (one path segment), and routes whose last parameter is optional.
_WILDCARD = {("queue", "name"), ("index", "name"), ("worker-manager", "workerPoolId"),
             ("secrets", "name"), ("object", "name")}
_SEGMENT = {("object", "createUpload"), ("object", "finishUpload")}
_OPTIONAL = {("index", "listTasks"), ("index", "listNamespaces")}


@dataclass(frozen=True)
class Entry:
    """One API method of one service."""

    service: str
    name: str
    method: str
    route: str
    args: tuple[str, ...]
    query: tuple[str, ...]
    scopes: Any
    input: str | None
    output: str | None
    pattern: re.Pattern[str] = field(compare=False)
    wildcard: bool = field(compare=False)

    @property
    def qualified(self) -> str:
        """`queue.createTask`: how stats and messages name the method."""
        return f"{self.service}.{self.name}"

    @property
    def url_scoped(self) -> bool:
        """True when the URL parameters alone fill the scope template, so the service checks
        scopes before anything else (otherwise the handler does, with body values)."""
        required = set(self.args) - ({"namespace"} if self.optional_arg else set())
        return self.scopes is not None and template_params(self.scopes) <= required

    @property
    def optional_arg(self) -> bool:
        """True for routes whose last parameter may be left out (`/tasks{/:namespace}`)."""
        return (self.service, self.name) in _OPTIONAL

    def schema_id(self, which: str) -> str | None:
        """The absolute schema id of `input` or `output`."""
        relative = self.input if which == "input" else self.output
        if not relative or relative == "blob":
            return None
        return f"/schemas/{self.service}/{relative.rstrip('#')}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The URL parameters (unquoted) when `method path` is this entry, else None."""
        if method.lower() != self.method:
            return None
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items() if v is not None}


def _compile(service: str, name: str, route: str) -> tuple[re.Pattern[str], bool]:
    wildcard = False
    parts: list[str] = []
    pieces = re.split(r"<([a-zA-Z][a-zA-Z0-9_]*)>", route)
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            parts.append(re.escape(piece))
        elif ((service, piece) in _WILDCARD and (service, name) not in _SEGMENT
              and index == len(pieces) - 2 and not pieces[-1]):
            wildcard = True
            parts.append(f"(?P<{piece}>.+)")
        else:
            parts.append(f"(?P<{piece}>[^/]+)")
    pattern = "".join(parts)
    if (service, name) in _OPTIONAL:
        pattern = pattern.replace(r"/(?P<namespace>[^/]+)", r"(?:/(?P<namespace>[^/]+))?")
    return re.compile(pattern), wildcard


@dataclass(frozen=True)
class References:
    """The entries of the served services and every schema document in references.json."""

    entries: tuple[Entry, ...]
    schemas: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, path: Path) -> References:
        """Read `generated/references.json`; a missing or unreadable file is a CibError."""
        try:
            documents = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CibError(f"cannot read the Taskcluster API references {path}: {exc}") from None
        entries: list[Entry] = []
        schemas: list[dict[str, Any]] = []
        for document in documents:
            content = document.get("content")
            if document.get("filename", "").startswith("schemas/") and "$id" in content:
                schemas.append(content)
            if not document.get("filename", "").endswith("/api.json"):
                continue
            service = content.get("serviceName")
            if service not in SERVICES:
                continue
            for e in content["entries"]:
                if e.get("type") != "function":
                    continue
                pattern, wildcard = _compile(service, e["name"], e["route"])
                entries.append(Entry(
                    service=service, name=e["name"], method=e["method"], route=e["route"],
                    args=tuple(e.get("args", [])), query=tuple(e.get("query", [])),
                    scopes=e.get("scopes"), input=e.get("input"), output=e.get("output"),
                    pattern=pattern, wildcard=wildcard))
        missing = set(SERVICES) - {e.service for e in entries}
        if missing:
            raise CibError(f"{path} has no API reference for {', '.join(sorted(missing))}")
        # Express tries routes in order; a `{*param}` route must not shadow a longer one.
        entries.sort(key=lambda e: e.wildcard)
        return cls(tuple(entries), tuple(schemas))

    def find(self, service: str, method: str, path: str) -> tuple[Entry, dict[str, str]] | None:
        """The entry serving `method path` (the path below `/api/<service>/v1`)."""
        for entry in self.entries:
            if entry.service != service:
                continue
            params = entry.match(method, path)
            if params is not None:
                return entry, params
        return None

    def entry(self, service: str, name: str) -> Entry:
        """The entry of `service.name`."""
        for entry in self.entries:
            if entry.service == service and entry.name == name:
                return entry
        raise KeyError(f"{service}.{name}")
