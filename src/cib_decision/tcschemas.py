"""The genuine Taskcluster schemas: where to find them and validators built from them (adapter).

A Taskcluster deployment serves its schemas at `{rootUrl}/schemas/<service>/v1/<name>.json`. A
copy of them may also sit on disk (`../shared/reference/taskcluster-schemas/taskcluster/schemas`
beside a checkout, or the directory named by `CIB_TASKCLUSTER_SCHEMAS`); the directory is used
when there is one, otherwise each schema is fetched from the deployment on first use. Every
schema is JSON Schema draft-06 with root-relative `$id`s (`/schemas/queue/v1/task.json#`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

ENV_VAR = "CIB_TASKCLUSTER_SCHEMAS"
_RELATIVE = Path("shared", "reference", "taskcluster-schemas", "taskcluster", "schemas")

CREATE_TASK = "/schemas/queue/v1/create-task-request.json"
TASK_STATUS_RESPONSE = "/schemas/queue/v1/task-status-response.json"
CREATE_WORKER_POOL = "/schemas/worker-manager/v1/create-worker-pool-request.json"
UPDATE_WORKER_POOL = "/schemas/worker-manager/v1/update-worker-pool-request.json"
WORKER_POOL_FULL = "/schemas/worker-manager/v1/worker-pool-full.json"


def provider_config_schema(provider_type: str) -> str:
    """The schema id of a worker pool's `config` for a provider type (azure, aws, google...)."""
    return f"/schemas/worker-manager/v1/config-{provider_type}.json"


def find_schema_dir(start: Path | None = None) -> Path | None:
    """The on-disk schema directory: `$CIB_TASKCLUSTER_SCHEMAS`, else `shared/reference/...`
    in `start` (default: the working directory), the package's directory or any parent."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        for directory in (base, *base.parents):
            candidate = directory / _RELATIVE
            if candidate.is_dir():
                return candidate
    return None


class SchemaStore:
    """Validators for the Taskcluster schemas of one source (a directory or a deployment)."""

    def __init__(self, registry: Registry):
        self._registry = registry
        self._validators: dict[str, Draft6Validator] = {}

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaStore:
        """Every `*.json` schema under `directory`, registered by its `$id`."""
        docs = [json.loads(p.read_text()) for p in sorted(Path(directory).rglob("*.json"))]
        return cls(Registry().with_resources(
            (d["$id"].rstrip("#"), DRAFT6.create_resource(d)) for d in docs if "$id" in d))

    @classmethod
    def from_root_url(cls, root_url: str,
                      fetch: Callable[[str], dict[str, Any]] | None = None) -> SchemaStore:
        """Schemas fetched from a deployment (`{root_url}/schemas/...`) as they are needed,
        each once: the registry is immutable, so without the cache every validation would
        fetch its schema and everything it refers to again."""
        if fetch is None:
            import requests

            def fetch(url: str) -> dict[str, Any]:
                response = requests.get(url, timeout=30)
                response.raise_for_status()
                return response.json()

        @cache
        def retrieve(uri: str) -> Resource:
            return DRAFT6.create_resource(fetch(root_url.rstrip("/") + uri))

        return cls(Registry(retrieve=retrieve))

    @classmethod
    def default(cls, root_url: str | None = None) -> SchemaStore:
        """The schema directory when there is one, otherwise the deployment at `root_url`."""
        directory = find_schema_dir()
        if directory is not None:
            return _cached_directory_store(directory.resolve())
        if not root_url:
            raise LookupError(
                f"no Taskcluster schemas: set {ENV_VAR} to a schema directory or give a root URL")
        return _cached_deployment_store(root_url.rstrip("/"))

    def validator(self, schema_id: str) -> Draft6Validator:
        """A draft-06 validator (formats checked) for e.g. `/schemas/queue/v1/task.json`."""
        schema_id = schema_id.rstrip("#")
        if schema_id not in self._validators:
            # A root `$ref` lets the registry retrieve the schema (and what it refers to) lazily.
            self._validators[schema_id] = Draft6Validator(
                {"$ref": schema_id}, registry=self._registry,
                format_checker=Draft6Validator.FORMAT_CHECKER)
        return self._validators[schema_id]

    def errors(self, schema_id: str, instance: Any) -> list[str]:
        """Every validation error of `instance`, as `<json path>: <message>` lines."""
        return [f"{error.json_path}: {error.message}"
                for error in sorted(self.validator(schema_id).iter_errors(instance),
                                    key=lambda e: list(map(str, e.absolute_path)))]


@cache
def _cached_directory_store(directory: Path) -> SchemaStore:
    return SchemaStore.from_directory(directory)


@cache
def _cached_deployment_store(root_url: str) -> SchemaStore:
    return SchemaStore.from_root_url(root_url)
