"""cib's taskgraph extensions: parameters, loader, transforms and target tasks.

`taskcluster/config.yml` names `register` as `taskgraph.register`; taskgraph calls it once.
"""

from __future__ import annotations

from importlib import import_module


def register(graph_config) -> None:
    """Import the modules whose decorators register our parameters, target tasks and
    actions, and add the morph that gives tasks the task environment."""
    from taskgraph.morph import registered_morphs

    from .task_env import attach_task_env

    for module in ("parameters", "target_tasks", "actions"):
        import_module(f".{module}", package=__name__)
    if attach_task_env not in registered_morphs:
        registered_morphs.append(attach_task_env)
