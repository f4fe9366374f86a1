"""The local Taskcluster's compiled schema checks answer as the schema walk they replace: the
same defaults filled in (a tree gathered once per schema), and the same errors (jsonschema-rs
recognises valid documents; jsonschema writes every message of an invalid one)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cib_decision.devtc.schemas import _MISSING, Schemas, _default
from cib_decision.devtc.testing import new_task, require_schemas
from cib_decision.tcschemas import find_schema_dir

CREATE_TASK = "/schemas/queue/v1/create-task-request.json"
WORKER_POOL = "/schemas/worker-manager/v1/create-worker-pool-request.json"
TASK_STATUS = "/schemas/queue/v1/task-status-response.json"


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    require_schemas()
    return Schemas.load(find_schema_dir())


def _walk(schema: Any, instance: Any, resolver: Any) -> None:
    """The defaults as the schema walk filled them in before (every `$ref` looked up on the
    way), kept here as the reference."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        target = resolver.lookup(schema["$ref"])
        _walk(target.contents, instance, target.resolver)
    for sub in schema.get("allOf", []):
        _walk(sub, instance, resolver)
    if isinstance(instance, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in instance:
                default = _default(sub, resolver)
                if default is not _MISSING:
                    instance[name] = copy.deepcopy(default)
            if name in instance:
                _walk(sub, instance[name], resolver)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _walk(schema["items"], item, resolver)


def _reference_defaults(schemas: Schemas, schema_id: str, instance: Any) -> Any:
    filled = copy.deepcopy(instance)
    resolved = schemas._registry.resolver().lookup(schema_id)
    _walk(resolved.contents, filled, resolved.resolver)
    return filled


INSTANCES = [
    (CREATE_TASK, new_task()),
    (CREATE_TASK, new_task(payload={"artifacts": [{"type": "file", "path": "a", "name": "b"}],
                                    "maxRunTime": 60, "command": [["x"]]})),
    (CREATE_TASK, {"metadata": {}, "extra": {"x": [1, {"y": None}]}}),
    (CREATE_TASK, {}),
    (WORKER_POOL, {"providerId": "azure", "description": "", "owner": "a@example.com",
                   "config": {"launchConfigs": [{"workerManager": {}}]}}),
    (WORKER_POOL, {}),
]


@pytest.mark.parametrize(("schema_id", "instance"), INSTANCES)
def test_compiled_defaults_fill_in_what_the_schema_walk_filled_in(schemas, schema_id, instance):
    expected = _reference_defaults(schemas, schema_id, instance)
    filled = copy.deepcopy(instance)
    schemas.apply_defaults(schema_id, filled)
    assert filled == expected


def test_filled_in_defaults_are_copies(schemas):
    first, second = new_task(), new_task()
    for task in (first, second):
        schemas.apply_defaults(CREATE_TASK, task)
    first["routes"].append("changed")
    assert "changed" not in second["routes"]


@pytest.mark.parametrize(("schema_id", "instance"), [
    (CREATE_TASK, new_task()),
    (CREATE_TASK, {**new_task(), "priority": "urgent"}),
    (CREATE_TASK, {**new_task(), "created": "yesterday", "retries": -1}),
    (CREATE_TASK, {**new_task(), "unknown": 1}),
    (CREATE_TASK, []),
    (TASK_STATUS, {"status": {}}),
])
def test_errors_are_the_messages_jsonschema_writes(schemas, schema_id, instance):
    schemas.apply_defaults(schema_id, instance)
    assert schemas.errors(schema_id, instance) == schemas.store.errors(schema_id, instance)


def test_a_valid_task_is_recognised_by_the_compiled_validator(schemas, monkeypatch):
    task = new_task()
    schemas.apply_defaults(CREATE_TASK, task)
    monkeypatch.setattr(schemas.store, "errors", lambda *a: pytest.fail("jsonschema asked"))
    assert schemas.errors(CREATE_TASK, task) == []
