"""cib's taskgraph extensions: parameters, loader, transforms and target tasks.

`taskcluster/config.yml` names `register` as `taskgraph.register`; taskgraph calls it once.
"""

from __future__ import annotations

from importlib import import_module


def register(graph_config) -> None:
    """Import the modules whose decorators register our parameters, target tasks and
    actions."""
    for module in ("parameters", "target_tasks", "actions"):
        import_module(f".{module}", package=__name__)
