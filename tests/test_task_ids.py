"""The taskgraph internal the decision replaces for deterministic task ids is checked against
the installed taskgraph, loudly: a taskgraph whose `get_subgraph` changed stops the decision
with a message naming the module to update, instead of quietly creating random ids (a rerun
would then duplicate every task). That the ids are deterministic end to end is
tests/test_decision.py's rerun ("0 created, N already existed")."""

from __future__ import annotations

import pytest
from taskgraph.optimize import base

from cib_decision.errors import CibError
from cib_decision.taskgraph.task_ids import check_taskgraph, deterministic_task_ids


def test_the_pinned_taskgraph_assigns_ids_where_the_decision_fills_them_in():
    check_taskgraph()


def test_a_taskgraph_whose_get_subgraph_changed_stops_the_decision(monkeypatch):
    def get_subgraph(graph, removed, label_to_taskid, decision_task_id):
        raise AssertionError("not called")

    monkeypatch.setattr(base, "get_subgraph", get_subgraph)
    with (pytest.raises(CibError, match=r"get_subgraph changed .*task_ids\.py"),
          deterministic_task_ids("fN1SbArXTPSVFNUvaOlinQ")):
        pass
    assert base.get_subgraph is get_subgraph  # nothing left patched
