"""One loader for every cib kind: turns the fleet into the inputs of the kind's transforms.

`cib-items` in kind.yml names the type of one input (items.py: `ITEMS`); the task environment's
one item comes from the repository at the graph's revision, every other from the fleet.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from taskgraph.config import load_graph_config

from . import fleet as graph_fleet
from .items import ITEMS
from .task_env import graph_env


def loader(kind, path, config, params, loaded_tasks, write_artifacts=False):
    """taskgraph loader: the fleet's items for this kind, one input each."""
    # path is taskcluster/kinds/<kind>; the graph config is taskcluster/config.yml.
    graph_config = _graph_config(str(Path(path).parents[1]))
    items = config["cib-items"]
    if items == "task-env":
        # what the environment is built from, at the revision the graph is for: the
        # repository's source, or the installed cib-decision (`package`)
        digest, package = graph_env(graph_fleet.repo_root(graph_config), params.get("head_rev"))
        yield {"name": "cib", "cache-name": "cib", "digest": digest, "package": package}
        return
    if items not in ITEMS:
        raise ValueError(f"{path}/kind.yml: unknown cib-items {items!r}; choose from "
                         f"task-env, {', '.join(sorted(ITEMS))}")
    loaded = graph_fleet.load(graph_fleet.config_dir(graph_config))
    yield from ITEMS[items][1](loaded.fleet, loaded.digests, params)


@cache
def _graph_config(root_dir: str):
    return load_graph_config(root_dir)
