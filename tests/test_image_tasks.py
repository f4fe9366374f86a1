"""The image tasks' definitions run the `cib image` commands this package implements, and
their payloads (retry on the transient exit status included) are valid generic-worker
payloads."""

from __future__ import annotations

import pytest
from taskgraph.util.parameterization import resolve_task_references

from cib_decision.cli import build_parser
from cib_decision.errors import TransientError

from .graphs import DECISION_TASK_ID, generator
from .graphs import cib_args as graph_cib_args
from .tcschemas import validator

pytestmark = pytest.mark.usefixtures("graph_env")
IMAGE_KINDS = ("disk-image", "machine-image")


def cib_args(task) -> list[str]:
    return graph_cib_args(task.task)


def test_image_tasks_retry_on_the_transient_exit_status_and_validate_as_generic_worker():
    check = validator("/schemas/generic-worker/multiuser_posix.json")
    tgg = generator("commit\n\noverwrite-machine-image")
    tasks = [t for t in tgg.full_task_graph.tasks.values() if t.kind in IMAGE_KINDS]
    assert {t.kind for t in tasks} == set(IMAGE_KINDS)
    for task in tasks:
        payload = resolve_task_references(task.label, task.task, "x" * 22, DECISION_TASK_ID,
                                          {name: "T" * 22 for name in task.dependencies}
                                          )["payload"]
        assert payload["onExitStatus"]["retry"] == [TransientError.exit_code]
        errors = sorted(check.iter_errors(payload), key=str)
        assert not errors, f"{task.label}: {errors[0].message}"


def test_every_image_command_of_the_graph_parses_with_the_cib_command():
    parser = build_parser()
    parsed = set()
    for message in ("commit", "commit\n\noverwrite-machine-image\ndisable-cleanup"):
        for task in generator(message).full_task_graph.tasks.values():
            if task.kind in (*IMAGE_KINDS, "tag"):
                args = parser.parse_args(cib_args(task))
                assert args.key == task.attributes["cib-key"]
                parsed.add(args.image_command)
    assert parsed == {"disk", "machine", "tag"}


def test_overwrite_machine_image_makes_machine_image_tasks_build_under_a_new_name():
    overwritten = generator("commit\n\noverwrite-machine-image").full_task_graph.tasks
    plain = generator().full_task_graph.tasks
    label = "machine-image-win2022-64-amazon-us-east-1"
    assert "--overwrite" in cib_args(overwritten[label])
    assert "--overwrite" not in cib_args(plain[label])
