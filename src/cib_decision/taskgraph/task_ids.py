"""The one taskgraph internal cib replaces: where taskgraph gives kept tasks their ids.

taskgraph assigns a random slugid to every task it keeps, in `optimize.base.get_subgraph`,
for the labels not yet in `label_to_taskid`. A decision that is run again (a Taskcluster rerun
after a killed or interrupted decision) must create the same tasks, so while
`deterministic_task_ids` is active the labels are filled in first with
`taskids.task_id_for(decision, label)`. This relies on `get_subgraph`'s parameters and on
`optimize_task_graph` calling it through the module: `check_taskgraph` says loudly when the
installed taskgraph differs (tests/test_task_ids.py runs it; the decision runs it too).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

from ..errors import CibError
from ..taskids import task_id_for

# The leading parameters of taskgraph.optimize.base.get_subgraph this patch relies on.
GET_SUBGRAPH_PARAMETERS = ("target_task_graph", "removed_tasks", "replaced_tasks",
                           "label_to_taskid")


def check_taskgraph() -> None:
    """Raise CibError when the installed taskgraph no longer assigns task ids where
    `deterministic_task_ids` fills them in."""
    from taskgraph.optimize import base

    found = tuple(inspect.signature(base.get_subgraph).parameters)
    calls = "get_subgraph(" in inspect.getsource(base.optimize_task_graph)
    if found[:len(GET_SUBGRAPH_PARAMETERS)] != GET_SUBGRAPH_PARAMETERS or not calls:
        raise CibError(
            "taskgraph.optimize.base.get_subgraph changed (parameters "
            f"{', '.join(found)}; called by optimize_task_graph: {calls}): cib's deterministic "
            "task ids (cib_decision/taskgraph/task_ids.py) need updating for this taskgraph")


@contextlib.contextmanager
def deterministic_task_ids(decision_task_id: str) -> Iterator[None]:
    """While active, taskgraph names every task it keeps `task_id_for(decision, label)` instead
    of a random slugid."""
    from taskgraph.optimize import base

    check_taskgraph()
    original = base.get_subgraph

    def get_subgraph(target_task_graph, removed_tasks, replaced_tasks, label_to_taskid,
                     *args, **kwargs):
        for label in target_task_graph.graph.nodes - removed_tasks - set(label_to_taskid):
            label_to_taskid[label] = task_id_for(decision_task_id, label)
        return original(target_task_graph, removed_tasks, replaced_tasks, label_to_taskid,
                        *args, **kwargs)

    base.get_subgraph = get_subgraph
    try:
        yield
    finally:
        base.get_subgraph = original
