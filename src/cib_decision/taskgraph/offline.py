"""Offline optimization for `cib plan`: images whose digest was built at the base revision
count as built, with no call to the index. Selected through taskgraph's `optimize_strategies`
parameter, which overrides registered strategies by name."""

from __future__ import annotations

from taskgraph.optimize.base import OptimizationStrategy

from .items import cache_entry


class BuiltAtBase(OptimizationStrategy):
    """Stands in for `index-search`: replaces a cached task listed in the parameter
    `cib_built_tasks` (`<type>/<name>/<digest>`) by a placeholder task id, one per entry:
    tasks that share a digest (a key's targets, a pool and its verification) keep their
    own labels wherever the plan names a dependency by its id."""

    def __init__(self) -> None:
        super().__init__()
        # the set of the parameter's list, made once per list rather than once per task
        # (taskgraph asks for every task: a thousand-key plan has nine thousand)
        self._built: tuple[object, frozenset[str]] = (None, frozenset())

    def built(self, params) -> frozenset[str]:
        """The entries of `cib_built_tasks`, as a set."""
        listed = params.get("cib_built_tasks") or ()
        if self._built[0] is not listed:
            self._built = (listed, frozenset(listed))
        return self._built[1]

    def should_replace_task(self, task, params, deadline, arg):
        cached = task.attributes.get("cached_task") or {}
        entry = cache_entry(cached.get("type", ""), cached.get("name", ""),
                            cached.get("digest", ""))
        if entry in self.built(params):
            return f"built-at-base-{cached['type']}-{cached['name']}-{cached['digest'][:12]}"
        return False


strategies = {"index-search": BuiltAtBase()}
