"""Schema checks: jsonschema-rs says whether a document is valid, jsonschema says what is wrong.
Whatever the document, the errors are exactly jsonschema's."""

from __future__ import annotations

import copy
import random
from typing import Any

import jsonschema
import pytest

from cib_decision.config import schemas
from cib_decision.config.validate import SchemaCheck
from cib_decision.yamlsrc import parse_yaml

from .conftest import CONFIG_DIR

ODD_VALUES: list[Any] = [None, True, False, 0, -1, 7, 1.5, 3.0, 10**30, "", "x", "aws",
                         "ami-0abc", "a" * 64, "https://example.com/x", [], ["a"], [1], {},
                         {"zz": 1}]


def schema_of(stem: str) -> dict[str, Any]:
    if stem in schemas.SHARED:
        return schemas.SHARED[stem]
    return schemas.ENVIRONMENTS if stem == "environments" else schemas.KEY


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """The path of every value in a parsed document."""
    found = [path]
    if isinstance(value, dict):
        for name, child in value.items():
            found += nodes(child, (*path, name))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += nodes(child, (*path, index))
    return found


def mutate(document: Any, rng: random.Random) -> Any:
    """A copy of `document` with one value replaced, removed, renamed or added."""
    document = copy.deepcopy(document)
    path = rng.choice(nodes(document)[1:] or [()])
    if not path:
        return rng.choice(ODD_VALUES)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = rng.choice(["replace", "replace", "remove", "rename", "add"])
    if action == "replace":
        parent[last] = rng.choice(ODD_VALUES)
    elif action == "remove":
        del parent[last]
    elif action == "rename" and isinstance(last, str):
        parent[last[::-1] or "x"] = parent.pop(last)
    elif isinstance(parent[last], dict):
        parent[last]["unknown"] = rng.choice(ODD_VALUES)
    elif isinstance(parent[last], list):
        parent[last].append(rng.choice(ODD_VALUES))
    return document


def described(errors) -> list[tuple]:
    return [(tuple(e.absolute_path), tuple(e.schema_path), e.message) for e in errors]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_errors_are_jsonschemas_for_valid_and_broken_documents(path):
    schema = schema_of(path.stem)
    check, reference = SchemaCheck(schema), jsonschema.Draft202012Validator(schema)
    original = parse_yaml(path.read_bytes(), path.name).data
    rng = random.Random(path.stem)
    documents = [original, *(mutate(original, rng) for _ in range(80))]
    for document in documents:
        assert described(check.errors(document)) == described(reference.iter_errors(document))
    assert not described(check.errors(original))


def test_schemas_whose_patterns_depend_on_the_regex_engine_are_left_to_jsonschema():
    assert SchemaCheck(schemas.KEY).compiled
    assert all(SchemaCheck(schema).compiled for schema in schemas.SHARED.values())
    # `\s` in root-url: Python's re counts \x1c as white space, Rust's regex does not.
    check = SchemaCheck(schemas.ENVIRONMENTS)
    assert not check.compiled
    errors = list(check.errors({"production": {"root-url": "https://tc\x1cexample.com"}}))
    assert [e.validator for e in errors] == ["pattern"]


def test_a_value_jsonschema_rs_cannot_take_is_checked_by_jsonschema():
    check = SchemaCheck(schemas.KEY)
    document = {"image": {"os": b"Windows"}, "target": [{"platform": "azure", "region": "x"}]}
    errors = list(check.errors(document))
    assert [(tuple(e.absolute_path), e.validator) for e in errors] == [(("image", "os"), "type"),
                                                                       (("image",), "required")]
