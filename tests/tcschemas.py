"""Validators for the genuine Taskcluster schemas in ../shared/reference (test helper)."""

from __future__ import annotations

import json
from functools import cache

import yaml
from jsonschema import Draft6Validator, Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT6

from .conftest import REFERENCE, require_reference

SCHEMAS = REFERENCE / "taskcluster-schemas" / "taskcluster" / "schemas"


@cache
def _registry() -> Registry:
    docs = [json.loads(p.read_text()) for p in SCHEMAS.rglob("*.json")]
    return Registry().with_resources(
        (d["$id"].rstrip("#"), DRAFT6.create_resource(d)) for d in docs).crawl()


def validator(schema_id: str) -> Draft6Validator:
    """A validator for e.g. `/schemas/queue/v1/create-task-request.json` (skips without it)."""
    require_reference(SCHEMAS)
    registry = _registry()
    return Draft6Validator(registry.contents(schema_id), registry=registry,
                           format_checker=Draft6Validator.FORMAT_CHECKER)


def treeherder_validator() -> Draft7Validator:
    """Treeherder's schema for `task.extra.treeherder` (draft-07, YAML)."""
    path = require_reference(REFERENCE / "taskcluster-schemas" / "treeherder" / "schemas" /
                             "task-treeherder-config.yml")
    return Draft7Validator(yaml.safe_load(path.read_text()))
