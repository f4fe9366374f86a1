"""Validators for the genuine Taskcluster schemas in ../shared/reference (test helper)."""

from __future__ import annotations

from functools import cache

import yaml
from jsonschema import Draft6Validator, Draft7Validator

from cib_decision.tcschemas import SchemaStore

from .conftest import REFERENCE, require_reference

SCHEMAS = REFERENCE / "taskcluster-schemas" / "taskcluster" / "schemas"


@cache
def store() -> SchemaStore:
    """The reference schemas (skips the calling test without them)."""
    return SchemaStore.from_directory(require_reference(SCHEMAS))


def validator(schema_id: str) -> Draft6Validator:
    """A validator for e.g. `/schemas/queue/v1/create-task-request.json` (skips without it)."""
    require_reference(SCHEMAS)
    return store().validator(schema_id)


def treeherder_validator() -> Draft7Validator:
    """Treeherder's schema for `task.extra.treeherder` (draft-07, YAML)."""
    path = require_reference(REFERENCE / "taskcluster-schemas" / "treeherder" / "schemas" /
                             "task-treeherder-config.yml")
    return Draft7Validator(yaml.safe_load(path.read_text()))
